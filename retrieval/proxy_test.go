package retrieval

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"
)

// TestForwardedProtoFromTrustedProxy is issue 10 item 13: behind a
// TLS-terminating proxy the session cookie is Secure when a trusted proxy
// says X-Forwarded-Proto: https; the header from anyone else is ignored.
func TestForwardedProtoFromTrustedProxy(t *testing.T) {
	f := newFixtureWith(t, func(o *Options) {
		o.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("::1/128")}
	})
	h := f.srv.Config.Handler
	for _, c := range []struct {
		name, remote, proto string
		secure              bool
	}{
		{"trusted proxy, https", "192.0.2.10:5000", "https", true},
		{"trusted IPv6 proxy, https", "[::1]:5000", "HTTPS", true},
		{"trusted proxy, http", "192.0.2.10:5000", "http", false},
		{"trusted proxy, no header", "192.0.2.10:5000", "", false},
		{"anyone else, https", "198.51.100.7:5000", "https", false},
		{"loopback not configured, https", "127.0.0.1:5000", "https", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			for _, target := range []string{"/signin", "/signout"} {
				body := url.Values{"token": {f.tokens["alice"]}}.Encode()
				req := httptest.NewRequest("POST", target, strings.NewReader(body))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				req.RemoteAddr = c.remote
				if c.proto != "" {
					req.Header.Set("X-Forwarded-Proto", c.proto)
				}
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if rec.Code != http.StatusSeeOther {
					t.Fatalf("POST %s: %d %s", target, rec.Code, rec.Body)
				}
				var found bool
				for _, ck := range rec.Result().Cookies() {
					if ck.Name == sessionCookie {
						found = true
						if ck.Secure != c.secure {
							t.Errorf("POST %s: cookie Secure %v, want %v", target, ck.Secure, c.secure)
						}
					}
				}
				if !found {
					t.Errorf("POST %s: no session cookie", target)
				}
			}
		})
	}
}
