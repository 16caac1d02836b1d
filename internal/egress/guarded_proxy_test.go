package egress

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
)

// TestGuardedProxySpelling: with the operator's proxy on this host's
// loopback by name (HTTPS_PROXY=http://localhost:PORT), a request to the
// proxy's own host and port is refused however the name is spelt (another
// case, fullwidth letters, which net/http folds to "localhost" to dial):
// never sent to the proxy as if it were a registry.
func TestGuardedProxySpelling(t *testing.T) {
	var asked []string
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked = append(asked, r.Method+" "+r.Host+" "+r.URL.String())
		w.WriteHeader(http.StatusForbidden)
		io.WriteString(w, "ADMIN-TOKEN=what-the-proxy-fetched")
	}))
	defer proxy.Close()
	port := proxy.URL[strings.LastIndex(proxy.URL, ":")+1:]
	for _, v := range []string{"HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"} {
		t.Setenv(v, "http://localhost:"+port)
	}
	t.Setenv("NO_PROXY", "")
	t.Setenv("no_proxy", "")
	tr := GuardedTransport()
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr}
	for _, host := range []string{"localhost", "LOCALHOST", "\uff4c\uff4f\uff43\uff41\uff4c\uff48\uff4f\uff53\uff54", "Ｌocalhost"} {
		resp, err := c.Get("http://" + host + ":" + port + "/squid-internal-mgr/info")
		if err != nil {
			t.Logf("%s: refused: %v", host, err)
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		t.Errorf("%s:%s reached the proxy direct: %s %q", host, port, resp.Status, b)
	}
	t.Logf("the proxy was asked: %q", asked)
}

// TestGuardedProxyByIPFullwidth: the same with the proxy named by its
// loopback address (HTTPS_PROXY=http://127.0.0.1:PORT) and a registry spelt
// in fullwidth digits, which image references accept and net/http dials as
// 127.0.0.1.
func TestGuardedProxyByIPFullwidth(t *testing.T) {
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusForbidden)
		io.WriteString(w, "ADMIN-TOKEN")
	}))
	defer proxy.Close()
	port := proxy.URL[strings.LastIndex(proxy.URL, ":")+1:]
	for _, v := range []string{"HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"} {
		t.Setenv(v, "http://127.0.0.1:"+port)
	}
	host := "１２７.０.０.１"
	if _, err := name.ParseReference(host+":"+port+"/x:y", name.Insecure); err != nil {
		t.Fatalf("an image reference of a fullwidth registry: %v", err)
	}
	tr := GuardedTransport()
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get("http://" + host + ":" + port + "/v2/")
	if err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		t.Errorf("reached the proxy: %s %s", resp.Status, b)
	} else {
		t.Logf("refused: %v", err)
	}
}
