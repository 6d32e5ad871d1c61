package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseFullExample(t *testing.T) {
	src := `
smtp:     { listen: "127.0.0.1:10025", hostname: "mailvault.local", max_message_bytes: 52428800, max_recipients: 1000 }
forward:  { next_hop: "127.0.0.1:10026" }
keys:
  provider: local
  local:  { keyring: /var/lib/mailvaultd/keyring.json }
  awskms: { key_id: "alias/mailvault", region: "us-east-1", endpoint: "" }
archive:
  backend: fs
  fs: { dir: /var/lib/mailvaultd/archive }
  s3: { bucket: "mail-archive", prefix: "", region: "us-east-1", endpoint: "", path_style: false }
retrieval: { listen: "127.0.0.1:8026", users_file: /etc/mailvaultd/users.yaml, audit_log: /var/log/mailvaultd/audit.jsonl }
`
	c, err := Parse([]byte(src), "mailvaultd.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if c.SMTP.MaxMessageBytes != 52428800 || c.Forward.NextHop != "127.0.0.1:10026" || c.Archive.S3.Bucket != "mail-archive" {
		t.Errorf("parsed %+v", c)
	}
	if c.SMTP.MaxSessions != 100 || c.SMTP.ReadTimeout.D() != 5*time.Minute {
		t.Errorf("defaults not kept for keys the file leaves out: %+v", c.SMTP)
	}
}

func TestEmptyFileIsDefaults(t *testing.T) {
	c, err := Parse(nil, "empty.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if c.SMTP.Listen != "127.0.0.1:10025" || c.Forward.NextHop != "127.0.0.1:10026" {
		t.Errorf("got %+v", c)
	}
}

func TestErrorsNameFileKeyAndReason(t *testing.T) {
	for _, tc := range []struct {
		name, src, key, reason string
		line                   int
	}{
		{"unknown top-level key", "smtpp: {}\n", "smtpp", "unknown key", 1},
		{"unknown nested key", "smtp:\n  listen: 127.0.0.1:25\n  max_mesage_bytes: 5\n", "smtp.max_mesage_bytes", "unknown key", 3},
		{"wrong type", "smtp:\n  max_recipients: lots\n", "smtp.max_recipients", "cannot unmarshal", 2},
		{"bad duration", "smtp:\n  read_timeout: soon\n", "smtp.read_timeout", "not a duration", 2},
		{"negative size", "smtp: { max_message_bytes: -1 }\n", "smtp.max_message_bytes", "must be positive", 0},
		{"bad listen", "smtp: { listen: nowhere }\n", "smtp.listen", "host:port", 0},
		{"loop", "smtp: { listen: \"127.0.0.1:10025\" }\nforward: { next_hop: \"127.0.0.1:10025\" }\n", "forward.next_hop", "loop", 0},
		{"bad provider", "keys: { provider: vault }\n", "keys.provider", "local or awskms", 0},
		{"kms without key", "keys: { provider: awskms }\n", "keys.awskms.key_id", "required", 0},
		{"bad backend", "archive: { backend: tape }\n", "archive.backend", "fs or s3", 0},
		{"s3 without bucket", "archive: { backend: s3 }\n", "archive.s3.bucket", "required", 0},
		{"bad sse", "archive: { backend: s3, s3: { bucket: b, sse: rot13 } }\n", "archive.s3.sse", "sse-s3", 0},
		{"lock without days", "archive: { backend: s3, s3: { bucket: b, object_lock: { mode: COMPLIANCE } } }\n", "archive.s3.object_lock.days", "positive", 0},
		{"duplicate key", "smtp:\n  listen: 127.0.0.1:1\n  listen: 127.0.0.1:2\n", "smtp.listen", "", 0},
		{"section not a mapping", "smtp: 5\n", "smtp", "mapping", 1},
		{"bad policy", "openpgp: { policy: sometimes }\n", "openpgp.policy", "off, opportunistic or required", 0},
		{"bad log level", "log: { level: loud }\n", "log.level", "debug, info", 0},
		{"bad catalog backend", "catalog: { backend: mysql }\n", "catalog.backend", "sqlite or postgres", 0},
		{"postgres without dsn", "catalog: { backend: postgres }\n", "catalog.postgres.dsn", "required", 0},
		{"sqlite without path", "catalog: { sqlite: { path: \"\" } }\n", "catalog.sqlite.path", "required", 0},
		{"unknown index field", "catalog: { index: [subject, headers] }\n", "catalog.index", "headers", 0},
		{"index field twice", "catalog: { index: [body, body] }\n", "catalog.index", "twice", 0},
		{"no http connections", "retrieval: { max_connections: 0 }\n", "retrieval.max_connections", "positive", 0},
		{"bad metrics address", "retrieval: { metrics_listen: \"9090\" }\n", "retrieval.metrics_listen", "host:port", 0},
		{"metrics on the api address", "retrieval: { metrics_listen: \"127.0.0.1:8026\" }\n", "retrieval.metrics_listen", "another listener", 0},
		{"metrics on the smtp address", "retrieval: { metrics_listen: \"127.0.0.1:10025\" }\n", "retrieval.metrics_listen", "another listener", 0},
		{"bad milter address", "milter: { listen: \"10027\" }\n", "milter.listen", "host:port", 0},
		{"relative milter socket", "milter: { listen: \"unix:milter.sock\" }\n", "milter.listen", "absolute path", 0},
		{"milter on the smtp address", "milter: { listen: \"127.0.0.1:10025\" }\n", "milter.listen", "smtp.listen too", 0},
		{"milter with openpgp", "forward: { next_hop: \"127.0.0.1:10026\" }\nopenpgp: { policy: required, keyring: /k.asc }\nmilter: { listen: \"127.0.0.1:10027\" }\n", "milter.listen", "openpgp.policy: required", 0},
		{"bad trusted proxy", "retrieval: { audit_log: /a, trusted_proxies: [10.0.0.0/8, proxy.example] }\n", "retrieval.trusted_proxies", "CIDR", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.src), "/etc/mailvaultd/mailvaultd.yaml")
			if err == nil {
				t.Fatal("no error")
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "/etc/mailvaultd/mailvaultd.yaml") {
				t.Errorf("%q does not name the file", msg)
			}
			if !strings.Contains(msg, tc.key) || !strings.Contains(msg, tc.reason) {
				t.Errorf("%q does not name key %q and reason %q", msg, tc.key, tc.reason)
			}
			var ce *Error
			if tc.line > 0 && (!errors.As(err, &ce) || ce.Line != tc.line) {
				t.Errorf("%q: want line %d", msg, tc.line)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "c.yaml")
	os.WriteFile(p, []byte("forward: { next_hop: \"\" }\n"), 0o600)
	c, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if c.Forward.NextHop != "" || c.File != p {
		t.Errorf("got next_hop %q file %q", c.Forward.NextHop, c.File)
	}
	if _, err := Load(filepath.Join(dir, "missing.yaml")); err == nil || !strings.Contains(err.Error(), "missing.yaml") {
		t.Errorf("missing file: %v", err)
	}
}

func TestDevelopmentDefaults(t *testing.T) {
	c := Development()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Forward.NextHop != "" || !strings.HasPrefix(c.Archive.FS.Dir, DevDataDir) || c.Retrieval.Listen != "127.0.0.1:8026" {
		t.Errorf("got %+v", c)
	}
}

// TestDataTimeoutBelowPostfix pins the documented default (docs/OPERATIONS.md,
// "Timeouts"): smtp.data_timeout is 5m, below Postfix's
// smtp_data_done_timeout of 600s, so that mailvaultd, not Postfix, gives up
// first and Postfix hears a 451.
func TestDataTimeoutBelowPostfix(t *testing.T) {
	const postfixDataDone = 600 * time.Second
	for _, tc := range []struct {
		name string
		src  string
	}{
		{"built-in defaults", ""},
		{"a file that leaves it out", "smtp: { max_sessions: 40 }\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse([]byte(tc.src), "mailvaultd.yaml")
			if err != nil {
				t.Fatal(err)
			}
			if got := c.SMTP.DataTimeout.D(); got != 5*time.Minute || got >= postfixDataDone {
				t.Errorf("smtp.data_timeout defaults to %v; want 5m, below Postfix's smtp_data_done_timeout %v", got, postfixDataDone)
			}
		})
	}
}

func TestTrustedProxies(t *testing.T) {
	c, err := Parse(nil, "empty.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Retrieval.TrustedProxyPrefixes()) != 0 {
		t.Errorf("trusted proxies by default: %v", c.Retrieval.TrustedProxies)
	}
	c, err = Parse([]byte("retrieval: { trusted_proxies: [127.0.0.1/32, \"10.1.2.3/8\", \"::1/128\"] }\n"), "x.yaml")
	if err != nil {
		t.Fatal(err)
	}
	got := c.Retrieval.TrustedProxyPrefixes()
	if len(got) != 3 || got[1].String() != "10.0.0.0/8" {
		t.Errorf("parsed %v", got)
	}
}

func TestMilterListen(t *testing.T) {
	for _, tc := range []struct{ src, network, addr string }{
		{"", "tcp", ""},
		{"milter: { listen: \"127.0.0.1:10027\" }\n", "tcp", "127.0.0.1:10027"},
		{"milter: { listen: \"unix:/run/mailvaultd/milter.sock\" }\n", "unix", "/run/mailvaultd/milter.sock"},
	} {
		c, err := Parse([]byte(tc.src), "/etc/mailvaultd/mailvaultd.yaml")
		if err != nil {
			t.Fatalf("%q: %v", tc.src, err)
		}
		if n, a := c.Milter.MilterNetwork(); n != tc.network || a != tc.addr {
			t.Errorf("%q: got %s %q, want %s %q", tc.src, n, a, tc.network, tc.addr)
		}
		if c.SMTP.Listen == "" {
			t.Errorf("%q: smtp.listen turned off by the milter", tc.src)
		}
	}
}
