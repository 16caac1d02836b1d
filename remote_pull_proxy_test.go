package sandbox

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// TestRemotePullProxyFullwidth: a helper whose operator's proxy is on its
// loopback by name (HTTPS_PROXY=http://localhost:PORT), as configured
// proxies often are; a client pulls from the proxy's own host and port
// spelt in fullwidth letters, which net/http dials as localhost: the pull
// is refused, the proxy never asked as a registry, and nothing of its
// answer reaches the client.
func TestRemotePullProxyFullwidth(t *testing.T) {
	var mu sync.Mutex
	var asked []string
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		asked = append(asked, r.Method+" "+r.Host+" "+r.URL.String())
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusForbidden)
		io.WriteString(w, `{"errors":[{"code":"DENIED","message":"proxy-internal: ADMIN-TOKEN=secret"}]}`)
	}))
	defer proxy.Close()
	port := proxy.URL[strings.LastIndex(proxy.URL, ":")+1:]
	for _, v := range []string{"HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"} {
		t.Setenv(v, "http://localhost:"+port)
	}
	t.Setenv("NO_PROXY", "")
	t.Setenv("no_proxy", "")
	p := newTestPKI(t)
	s := serveNetHelper(t, p) // no -allow-registry
	r, err := DialRemote(context.Background(), s.Addr().String(), p.client("alice"))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for _, host := range []string{"localhost", "ｌｏｃａｌｈｏｓｔ"} {
		_, err = r.Pull(context.Background(), host+":"+port+"/squid-internal-mgr/info:x", WithPlainHTTP())
		t.Logf("pull from %s:%s: %v", host, port, err)
		if err == nil || strings.Contains(err.Error(), "ADMIN-TOKEN") {
			t.Errorf("a pull from the proxy's own address spelt %q read its answer: %v", host, err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(asked) != 0 {
		t.Errorf("the proxy was asked as a registry: %q", asked)
	}
}
