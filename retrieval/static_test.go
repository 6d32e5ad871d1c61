package retrieval

import (
	"strings"
	"testing"
)

// TestStaticServesFilesOnly is issue 10 item 15: /static/ listed its
// directory; now only files are served.
func TestStaticServesFilesOnly(t *testing.T) {
	f := newFixture(t)
	for _, c := range []struct {
		path   string
		status int
	}{
		{"/static/", 404},
		{"/static/style.css", 200},
		{"/static/nope.css", 404},
		{"/static/style.css/", 404},
	} {
		res := f.get(c.path, "")
		if res.status != c.status {
			t.Errorf("GET %s: %d, want %d", c.path, res.status, c.status)
		}
		if strings.Contains(string(res.body), "<a href=") {
			t.Errorf("GET %s lists a directory: %.200s", c.path, res.body)
		}
	}
}
