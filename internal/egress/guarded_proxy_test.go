package egress

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
)

// loopbackProxy starts an HTTP server on this host's loopback standing for
// the operator's proxy, names it http://host:PORT in the proxy variables
// for the rest of the test, and returns PORT and the count of requests it
// has had.
func loopbackProxy(t *testing.T, host string) (port string, asked *atomic.Int64) {
	asked = new(atomic.Int64)
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked.Add(1)
		w.WriteHeader(http.StatusForbidden)
		io.WriteString(w, "ADMIN-TOKEN=what-the-proxy-fetched")
	}))
	t.Cleanup(proxy.Close)
	port = proxy.URL[strings.LastIndex(proxy.URL, ":")+1:]
	for _, v := range []string{"HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"} {
		t.Setenv(v, "http://"+host+":"+port)
	}
	t.Setenv("NO_PROXY", "")
	t.Setenv("no_proxy", "")
	return port, asked
}

// getRefused fails the test unless a GET of url through GuardedTransport
// is refused.
func getRefused(t *testing.T, url string) {
	t.Helper()
	tr := GuardedTransport()
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get(url)
	if err != nil {
		t.Logf("%s: refused: %v", url, err)
		return
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	t.Errorf("%s reached the proxy direct: %s %q", url, resp.Status, b)
}

// TestGuardedProxySpelling: with the operator's proxy on this host's
// loopback by name (HTTPS_PROXY=http://localhost:PORT), a request to the
// proxy's own host and port is refused however the name is spelt (another
// case, fullwidth letters, which net/http folds to "localhost" to dial):
// never sent to the proxy as if it were a registry.
func TestGuardedProxySpelling(t *testing.T) {
	port, asked := loopbackProxy(t, "localhost")
	for _, host := range []string{"localhost", "LOCALHOST", "\uff4c\uff4f\uff43\uff41\uff4c\uff48\uff4f\uff53\uff54", "\uff2cocalhost"} {
		getRefused(t, "http://"+host+":"+port+"/squid-internal-mgr/info")
	}
	if n := asked.Load(); n != 0 {
		t.Errorf("the proxy was asked %d times", n)
	}
}

// TestGuardedProxyByIPFullwidth: the same with the proxy named by its
// loopback address (HTTPS_PROXY=http://127.0.0.1:PORT) and a registry spelt
// in fullwidth digits, which image references accept and net/http dials as
// 127.0.0.1.
func TestGuardedProxyByIPFullwidth(t *testing.T) {
	port, asked := loopbackProxy(t, "127.0.0.1")
	host := "\uff11\uff12\uff17.\uff10.\uff10.\uff11"
	if _, err := name.ParseReference(host+":"+port+"/x:y", name.Insecure); err != nil {
		t.Fatalf("an image reference of a fullwidth registry: %v", err)
	}
	getRefused(t, "http://"+host+":"+port+"/v2/")
	if n := asked.Load(); n != 0 {
		t.Errorf("the proxy was asked %d times", n)
	}
}
