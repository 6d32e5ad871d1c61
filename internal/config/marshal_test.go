package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// everyKeySet is a valid Config in which every setting differs from
// Default(), with strings YAML would misread if written bare.
func everyKeySet() *Config {
	c := Default()
	c.SMTP = SMTP{
		Listen: "127.0.0.1:2525", Hostname: "yes", MaxMessageBytes: 1234567, MaxRecipients: 7,
		MaxSessions: 3, MaxLineLength: 2000, ReadTimeout: Duration(1500 * time.Millisecond),
		WriteTimeout: Duration(2 * time.Hour), DataTimeout: Duration(90 * time.Second), ShutdownTimeout: Duration(time.Nanosecond),
		Allow: []string{"192.0.2.0/24", "::1/128"},
	}
	c.Forward = Forward{NextHop: "[::1]:10026", Timeout: Duration(42 * time.Second)}
	c.Keys.Provider = "awskms"
	c.Keys.Local.Keyring = "/tmp/key ring #1.json"
	c.Keys.AWSKMS.KeyID = "arn:aws:kms:eu-west-1:111122223333:key/0123"
	c.Keys.AWSKMS.Region = "eu-west-1"
	c.Keys.AWSKMS.Endpoint = "http://127.0.0.1:4566"
	c.Archive.Backend = "s3"
	c.Archive.FS.Dir = "~/archive: two"
	c.Archive.S3 = S3{Bucket: "0123", Prefix: "tenant/a/", Region: "eu-west-1", Endpoint: "https://s3.test:9000",
		PathStyle: true, SSE: "sse-c", SSEKMSKeyID: "null", SSECKeyFile: "/etc/mv/sse-c.key"}
	c.Archive.S3.ObjectLock.Mode = "COMPLIANCE"
	c.Archive.S3.ObjectLock.Days = 3650
	c.Retrieval = Retrieval{Listen: "", UsersFile: "'quoted'.yaml", AuditLog: "\"audit\".jsonl",
		MaxConnections: 7, MetricsListen: "127.0.0.1:9090", TrustedProxies: []string{"10.0.0.0/8"}}
	c.OpenPGP = OpenPGP{Keyring: "/etc/mv/pgp.asc", Policy: "required", KeepSubject: true,
		Fingerprints: map[string]string{"bob@example.test": "0123456789ABCDEF0123456789ABCDEF01234567", "on": "off"}}
	c.Log = Log{Level: "debug", Format: "json"}
	c.Catalog.Backend = "postgres"
	c.Catalog.SQLite.Path = "/srv/cat #1.db"
	c.Catalog.Postgres.DSN = "postgres://mv:secret@127.0.0.1:5432/mv?sslmode=disable"
	c.Catalog.Index = []string{"subject", "addresses"}
	return c
}

// TestEveryKeySetDiffersFromDefault keeps everyKeySet honest as keys are
// added: a setting left at its default would round-trip even if Marshal
// dropped it.
func TestEveryKeySetDiffersFromDefault(t *testing.T) {
	var walk func(path string, got, def reflect.Value)
	walk = func(path string, got, def reflect.Value) {
		if got.Kind() == reflect.Struct && got.Type() != reflect.TypeOf(Duration(0)) {
			for i := 0; i < got.NumField(); i++ {
				f := got.Type().Field(i)
				if f.Tag.Get("yaml") == "-" {
					continue
				}
				walk(path+"."+f.Name, got.Field(i), def.Field(i))
			}
			return
		}
		if reflect.DeepEqual(got.Interface(), def.Interface()) && path != ".Retrieval.Listen" && path != ".Milter.Listen" {
			t.Errorf("everyKeySet leaves %s at its default %v", path, got.Interface())
		}
	}
	walk("", reflect.ValueOf(*everyKeySet()), reflect.ValueOf(*Default()))
}

func TestMarshalRoundTrips(t *testing.T) {
	storeOnly := Default()
	storeOnly.Forward.NextHop = ""
	storeOnly.Retrieval.Listen = ""
	// milter.listen cannot go with openpgp, which everyKeySet turns on.
	withMilter := Default()
	withMilter.Milter.Listen = "unix:/run/mailvaultd/milter sock #1"
	for _, tc := range []struct {
		name string
		c    *Config
	}{
		{"defaults", Default()},
		{"development", Development()},
		{"store-only without http", storeOnly},
		{"milter", withMilter},
		{"every key set", everyKeySet()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.c.Validate(); err != nil {
				t.Fatalf("the case itself is invalid: %v", err)
			}
			b, err := tc.c.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(t.TempDir(), "mailvaultd.yaml")
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
			got, err := Load(path)
			if err != nil {
				t.Fatalf("Load(Marshal(c)): %v\n%s", err, b)
			}
			want := *tc.c
			want.File = path
			if !reflect.DeepEqual(*got, want) {
				t.Errorf("Load(Marshal(c)) differs from c\n got: %+v\nwant: %+v\nyaml:\n%s", *got, want, b)
			}
		})
	}
}

// TestMarshalWritesEveryKey: the file names each key, defaults included, so
// a reader of a test's config sees what the daemon used.
func TestMarshalWritesEveryKey(t *testing.T) {
	b, err := Default().Marshal()
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"listen:", "max_line_length:", "shutdown_timeout: 25s", "next_hop:", "keyring:",
		"key_id:", "endpoint:", "path_style: false", "object_lock:", "audit_log:", "policy: \"off\"", "format: text"} {
		if !strings.Contains(string(b), key) {
			t.Errorf("Marshal(Default()) has no %q:\n%s", key, b)
		}
	}
	if strings.Contains(string(b), "fingerprints") {
		t.Errorf("an empty fingerprints map is written:\n%s", b)
	}
}
