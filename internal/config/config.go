// Package config is mailvaultd's one typed configuration: defaults, the YAML
// loader (unknown keys are errors), validation whose errors name the file,
// the key and the reason, and Marshal, the loader's inverse. It holds
// settings only; it opens nothing.
package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/mailvault/mailvaultd/blind"
)

// Config is the whole configuration file.
type Config struct {
	SMTP      SMTP      `yaml:"smtp"`
	Forward   Forward   `yaml:"forward"`
	Keys      Keys      `yaml:"keys"`
	Archive   Archive   `yaml:"archive"`
	Retrieval Retrieval `yaml:"retrieval"`
	Catalog   Catalog   `yaml:"catalog"`
	OpenPGP   OpenPGP   `yaml:"openpgp"`
	Milter    Milter    `yaml:"milter"`
	Log       Log       `yaml:"log"`

	// File is the path the configuration was loaded from ("" for the
	// development defaults).
	File string `yaml:"-"`
}

// SMTP configures the listener Postfix hands mail to.
type SMTP struct {
	Listen          string   `yaml:"listen"`
	Hostname        string   `yaml:"hostname"`
	MaxMessageBytes int64    `yaml:"max_message_bytes"`
	MaxRecipients   int      `yaml:"max_recipients"`
	MaxSessions     int      `yaml:"max_sessions"`
	MaxLineLength   int      `yaml:"max_line_length"`
	ReadTimeout     Duration `yaml:"read_timeout"`
	WriteTimeout    Duration `yaml:"write_timeout"`
	DataTimeout     Duration `yaml:"data_timeout"`
	ShutdownTimeout Duration `yaml:"shutdown_timeout"`
	// Allow lists the client networks (CIDR) that may connect; anyone else
	// is answered 554. The port has no authentication, so this is who can
	// relay through the next hop and plant mail in any archive view.
	Allow []string `yaml:"allow"`
}

// Milter configures the before-queue milter front end, beside or instead of
// the content filter: Postfix hands each message to it while it receives the
// message, and queues it once. The limits of smtp (max_message_bytes,
// max_recipients) apply to it too.
type Milter struct {
	// Listen is "host:port" or "unix:/path/to/socket"; "" turns it off.
	Listen string `yaml:"listen"`
}

// MilterNetwork splits milter.listen into the network and address to listen
// on ("tcp" or "unix"); Validate has checked it.
func (m Milter) MilterNetwork() (network, addr string) {
	if p, ok := strings.CutPrefix(m.Listen, "unix:"); ok {
		return "unix", p
	}
	return "tcp", m.Listen
}

// Forward configures re-injection into Postfix.
type Forward struct {
	NextHop string   `yaml:"next_hop"` // empty: store-only
	Timeout Duration `yaml:"timeout"`
}

// Keys selects and configures the key provider.
type Keys struct {
	Provider string `yaml:"provider"`
	Local    struct {
		Keyring string `yaml:"keyring"`
	} `yaml:"local"`
	AWSKMS struct {
		KeyID    string `yaml:"key_id"`
		Region   string `yaml:"region"`
		Endpoint string `yaml:"endpoint"`
	} `yaml:"awskms"`
}

// Archive selects and configures the store.
type Archive struct {
	Backend string `yaml:"backend"`
	FS      struct {
		Dir string `yaml:"dir"`
	} `yaml:"fs"`
	S3 S3 `yaml:"s3"`
}

// S3 configures the S3 store.
type S3 struct {
	Bucket      string `yaml:"bucket"`
	Prefix      string `yaml:"prefix"`
	Region      string `yaml:"region"`
	Endpoint    string `yaml:"endpoint"`
	PathStyle   bool   `yaml:"path_style"`
	SSE         string `yaml:"sse"` // "", sse-s3, sse-kms, sse-c
	SSEKMSKeyID string `yaml:"sse_kms_key_id"`
	SSECKeyFile string `yaml:"sse_c_key_file"`
	ObjectLock  struct {
		Mode string `yaml:"mode"` // "", GOVERNANCE, COMPLIANCE
		Days int    `yaml:"days"`
	} `yaml:"object_lock"`
}

// Retrieval configures the HTTP service.
type Retrieval struct {
	Listen    string `yaml:"listen"`
	UsersFile string `yaml:"users_file"`
	AuditLog  string `yaml:"audit_log"`
	// MaxConnections caps the HTTP connections open at once (idle
	// keep-alives included), so that HTTP clients cannot take the file
	// descriptors SMTP sessions need; more wait in the kernel's backlog.
	MaxConnections int `yaml:"max_connections"`
	// MetricsListen serves /metrics on an address of its own; "" serves it
	// on listen beside the API, as before.
	MetricsListen string `yaml:"metrics_listen"`
	// TrustedProxies are the networks (CIDR) of reverse proxies whose
	// X-Forwarded-Proto is believed (it makes the session cookie Secure);
	// empty: nobody's.
	TrustedProxies []string `yaml:"trusted_proxies,omitempty"` // omitted when empty, so Load(Marshal(c)) keeps nil
}

// TrustedProxyPrefixes returns TrustedProxies parsed (Validate has checked
// them).
func (r Retrieval) TrustedProxyPrefixes() []netip.Prefix {
	var out []netip.Prefix
	for _, s := range r.TrustedProxies {
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
		}
	}
	return out
}

// Catalog configures the search index (package catalog): where it lives and
// which groups of terms the delivery core feeds it.
type Catalog struct {
	Backend string `yaml:"backend"` // sqlite | postgres
	SQLite  struct {
		Path string `yaml:"path"`
	} `yaml:"sqlite"`
	Postgres struct {
		DSN string `yaml:"dsn"`
	} `yaml:"postgres"`
	// Index lists the term groups indexed: addresses, subject, attachments,
	// body (blind.ParseFields). Message-ID and the envelope parties are
	// indexed whatever it says.
	Index []string `yaml:"index"`
}

// IndexFields returns Index parsed (Validate has checked it).
func (c Catalog) IndexFields() blind.Fields {
	f, err := blind.ParseFields(c.Index)
	if err != nil {
		return blind.AllFields()
	}
	return f
}

// OpenPGP configures encryption for recipients on forwarding.
type OpenPGP struct {
	Keyring      string            `yaml:"keyring"`
	Policy       string            `yaml:"policy"` // off | opportunistic | required
	KeepSubject  bool              `yaml:"keep_subject"`
	Fingerprints map[string]string `yaml:"fingerprints,omitempty"` // omitted when empty: Parse leaves it nil
}

// Log configures logging.
type Log struct {
	Level  string `yaml:"level"`  // debug | info | warn | error
	Format string `yaml:"format"` // text | json
}

// Duration is a time.Duration written as "30s", "5m".
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// UnmarshalYAML parses a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("not a duration (like 30s or 5m): %q", n.Value)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes d as a Go duration string.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// Default returns the production defaults of ARCHITECTURE.md.
func Default() *Config {
	c := &Config{}
	c.SMTP = SMTP{
		Listen:          "127.0.0.1:10025",
		Hostname:        "mailvault.local",
		MaxMessageBytes: 50 << 20,
		MaxRecipients:   1000,
		MaxSessions:     100,
		MaxLineLength:   64 << 10,
		ReadTimeout:     Duration(5 * time.Minute),
		WriteTimeout:    Duration(5 * time.Minute),
		// Shorter than Postfix's smtp_data_done_timeout (600s), the time the
		// scan client waits for our reply to ".": a slow transaction ends
		// with our 451, which Postfix hears, rather than with both sides
		// giving up at the same moment and Postfix never learning whether
		// the message went through.
		DataTimeout:     Duration(5 * time.Minute),
		ShutdownTimeout: Duration(25 * time.Second),
		Allow:           []string{"127.0.0.0/8", "::1/128"},
	}
	c.Forward = Forward{NextHop: "127.0.0.1:10026", Timeout: Duration(5 * time.Minute)}
	c.Keys.Provider = "local"
	c.Keys.Local.Keyring = "/var/lib/mailvaultd/keyring.json"
	c.Keys.AWSKMS.Region = "us-east-1"
	c.Archive.Backend = "fs"
	c.Archive.FS.Dir = "/var/lib/mailvaultd/archive"
	c.Archive.S3.Region = "us-east-1"
	c.Retrieval = Retrieval{
		Listen:         "127.0.0.1:8026",
		UsersFile:      "/etc/mailvaultd/users.yaml",
		AuditLog:       "/var/log/mailvaultd/audit.jsonl",
		MaxConnections: 64,
	}
	c.Catalog.Backend = "sqlite"
	c.Catalog.SQLite.Path = "/var/lib/mailvaultd/catalog.db"
	c.Catalog.Index = []string{"addresses", "subject", "attachments", "body"}
	c.OpenPGP.Policy = "off"
	c.Log = Log{Level: "info", Format: "text"}
	return c
}

// DevDataDir is where the development defaults keep everything.
const DevDataDir = "mailvaultd-data"

// Development returns the development defaults: production listeners,
// store-only, and everything under ./mailvaultd-data/.
func Development() *Config {
	c := Default()
	c.Forward.NextHop = ""
	c.Keys.Local.Keyring = filepath.Join(DevDataDir, "keyring.json")
	c.Archive.FS.Dir = filepath.Join(DevDataDir, "archive")
	c.Retrieval.UsersFile = filepath.Join(DevDataDir, "users.yaml")
	c.Retrieval.AuditLog = filepath.Join(DevDataDir, "audit.jsonl")
	c.Catalog.SQLite.Path = filepath.Join(DevDataDir, "catalog.db")
	return c
}

// Error is a configuration error: the file, the key and the reason.
type Error struct {
	File, Key, Reason string
	Line              int
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			fmt.Fprintf(&b, ":%d", e.Line)
		}
		b.WriteString(": ")
	}
	if e.Key != "" {
		b.WriteString(e.Key)
		b.WriteString(": ")
	}
	b.WriteString(e.Reason)
	return b.String()
}

// maxConfigBytes bounds the configuration file.
const maxConfigBytes = 1 << 20

// Load reads path over the production defaults and validates the result.
func Load(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, &Error{File: path, Reason: fmt.Sprintf("cannot read: %v", errors.Unwrap(err))}
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, &Error{File: path, Reason: err.Error()}
	}
	if st.Size() > maxConfigBytes {
		return nil, &Error{File: path, Reason: fmt.Sprintf("file is %d bytes; the limit is %d", st.Size(), maxConfigBytes)}
	}
	data := make([]byte, st.Size())
	if _, err := f.ReadAt(data, 0); err != nil && st.Size() > 0 {
		return nil, &Error{File: path, Reason: err.Error()}
	}
	c, err := Parse(data, path)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// Parse reads YAML over the production defaults and validates the result;
// name is used in errors.
func Parse(data []byte, name string) (*Config, error) {
	c := Default()
	c.File = name
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, &Error{File: name, Reason: strings.TrimPrefix(err.Error(), "yaml: ")}
	}
	if len(root.Content) > 0 {
		if err := decodeNode(root.Content[0], reflect.ValueOf(c).Elem(), "", name); err != nil {
			return nil, err
		}
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// decodeNode decodes n into v field by field, so that an unknown key or a bad
// value is reported with its full dotted key and line.
func decodeNode(n *yaml.Node, v reflect.Value, key, file string) error {
	if v.Kind() == reflect.Struct && v.Type() != reflect.TypeOf(Duration(0)) {
		if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
			return nil
		}
		if n.Kind != yaml.MappingNode {
			return &Error{File: file, Line: n.Line, Key: keyOr(key), Reason: "must be a mapping"}
		}
		fields := map[string]reflect.Value{}
		for i := 0; i < v.NumField(); i++ {
			tag := strings.Split(v.Type().Field(i).Tag.Get("yaml"), ",")[0]
			if tag != "" && tag != "-" {
				fields[tag] = v.Field(i)
			}
		}
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			full := join(key, k.Value)
			f, ok := fields[k.Value]
			if !ok {
				return &Error{File: file, Line: k.Line, Key: full, Reason: "unknown key"}
			}
			if seen[k.Value] {
				return &Error{File: file, Line: k.Line, Key: full, Reason: "key given twice"}
			}
			seen[k.Value] = true
			if err := decodeNode(val, f, full, file); err != nil {
				return err
			}
		}
		return nil
	}
	if err := n.Decode(v.Addr().Interface()); err != nil {
		reason := err.Error()
		var te *yaml.TypeError
		if errors.As(err, &te) && len(te.Errors) > 0 {
			reason = te.Errors[0]
			if i := strings.Index(reason, ": "); i >= 0 && strings.HasPrefix(reason, "line ") {
				reason = reason[i+2:]
			}
		}
		return &Error{File: file, Line: n.Line, Key: key, Reason: reason}
	}
	return nil
}

func join(a, b string) string {
	if a == "" {
		return b
	}
	return a + "." + b
}

func keyOr(k string) string {
	if k == "" {
		return "(top level)"
	}
	return k
}

// Marshal renders c as YAML that Parse reads back to a Config equal to c
// (File aside, which is where it was loaded from, not a setting). Every key is
// written, defaults included, so the file says everything the daemon will use.
// An empty fingerprints map is left out and reads back as nil.
func (c *Config) Marshal() ([]byte, error) {
	b, err := yaml.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("config: marshal: %w", err)
	}
	return b, nil
}

// Validate checks every value; the first problem is returned as an *Error.
func (c *Config) Validate() error {
	bad := func(key, format string, args ...any) error {
		return &Error{File: c.File, Key: key, Reason: fmt.Sprintf(format, args...)}
	}
	if err := checkAddr(c.SMTP.Listen); err != nil {
		return bad("smtp.listen", "%v", err)
	}
	if c.SMTP.Hostname == "" || strings.ContainsAny(c.SMTP.Hostname, " \t\r\n") {
		return bad("smtp.hostname", "must be a host name without spaces")
	}
	if c.SMTP.MaxMessageBytes <= 0 {
		return bad("smtp.max_message_bytes", "must be positive (got %d)", c.SMTP.MaxMessageBytes)
	}
	if c.SMTP.MaxRecipients <= 0 {
		return bad("smtp.max_recipients", "must be positive (got %d)", c.SMTP.MaxRecipients)
	}
	if c.SMTP.MaxSessions <= 0 {
		return bad("smtp.max_sessions", "must be positive (got %d)", c.SMTP.MaxSessions)
	}
	if c.SMTP.MaxLineLength < 1000 {
		return bad("smtp.max_line_length", "must be at least 1000, the SMTP minimum (got %d)", c.SMTP.MaxLineLength)
	}
	if len(c.SMTP.Allow) == 0 {
		return bad("smtp.allow", "is empty: no client could send mail (list Postfix's address, e.g. 127.0.0.0/8)")
	}
	for i, n := range c.SMTP.Allow {
		if _, err := netip.ParsePrefix(n); err != nil {
			return bad(fmt.Sprintf("smtp.allow[%d]", i), "%q is not a CIDR network (like 127.0.0.0/8 or ::1/128)", n)
		}
	}
	for key, d := range map[string]Duration{
		"smtp.read_timeout": c.SMTP.ReadTimeout, "smtp.write_timeout": c.SMTP.WriteTimeout,
		"smtp.data_timeout": c.SMTP.DataTimeout, "smtp.shutdown_timeout": c.SMTP.ShutdownTimeout,
		"forward.timeout": c.Forward.Timeout,
	} {
		if d <= 0 {
			return bad(key, "must be a positive duration")
		}
	}
	if c.Forward.NextHop != "" {
		if err := checkAddr(c.Forward.NextHop); err != nil {
			return bad("forward.next_hop", "%v", err)
		}
		if c.Forward.NextHop == c.SMTP.Listen {
			return bad("forward.next_hop", "is smtp.listen itself: mail would loop")
		}
	}
	switch c.Keys.Provider {
	case "local":
	case "awskms":
		if c.Keys.AWSKMS.KeyID == "" {
			return bad("keys.awskms.key_id", "is required with keys.provider: awskms")
		}
		if c.Keys.AWSKMS.Region == "" {
			return bad("keys.awskms.region", "is required with keys.provider: awskms")
		}
	default:
		return bad("keys.provider", "must be local or awskms (got %q)", c.Keys.Provider)
	}
	if c.Keys.Local.Keyring == "" {
		return bad("keys.local.keyring", "is required: it holds the master keys (provider local) and the index key (always)")
	}
	switch c.Archive.Backend {
	case "fs":
		if c.Archive.FS.Dir == "" {
			return bad("archive.fs.dir", "is required with archive.backend: fs")
		}
	case "s3":
		s := c.Archive.S3
		if s.Bucket == "" {
			return bad("archive.s3.bucket", "is required with archive.backend: s3")
		}
		if s.Region == "" {
			return bad("archive.s3.region", "is required with archive.backend: s3")
		}
		switch s.SSE {
		case "", "sse-s3":
		case "sse-kms":
			if s.SSEKMSKeyID == "" {
				return bad("archive.s3.sse_kms_key_id", "is required with archive.s3.sse: sse-kms")
			}
		case "sse-c":
			if s.SSECKeyFile == "" {
				return bad("archive.s3.sse_c_key_file", "is required with archive.s3.sse: sse-c")
			}
		default:
			return bad("archive.s3.sse", "must be empty, sse-s3, sse-kms or sse-c (got %q)", s.SSE)
		}
		switch s.ObjectLock.Mode {
		case "":
		case "GOVERNANCE", "COMPLIANCE":
			if s.ObjectLock.Days <= 0 {
				return bad("archive.s3.object_lock.days", "must be positive with an object lock mode")
			}
		default:
			return bad("archive.s3.object_lock.mode", "must be empty, GOVERNANCE or COMPLIANCE (got %q)", s.ObjectLock.Mode)
		}
	default:
		return bad("archive.backend", "must be fs or s3 (got %q)", c.Archive.Backend)
	}
	if c.Retrieval.Listen != "" {
		if err := checkAddr(c.Retrieval.Listen); err != nil {
			return bad("retrieval.listen", "%v", err)
		}
	}
	if c.Retrieval.MaxConnections <= 0 {
		return bad("retrieval.max_connections", "must be positive (got %d)", c.Retrieval.MaxConnections)
	}
	if m := c.Retrieval.MetricsListen; m != "" {
		if err := checkAddr(m); err != nil {
			return bad("retrieval.metrics_listen", "%v", err)
		}
		if m == c.Retrieval.Listen || m == c.SMTP.Listen {
			return bad("retrieval.metrics_listen", "is %q, the address of another listener; leave it empty to serve /metrics on retrieval.listen", m)
		}
	}
	if c.Retrieval.AuditLog == "" {
		return bad("retrieval.audit_log", "is required: every read is audited")
	}
	for _, cidr := range c.Retrieval.TrustedProxies {
		if _, err := netip.ParsePrefix(cidr); err != nil {
			return bad("retrieval.trusted_proxies", "%q is not a network in CIDR form (e.g. 127.0.0.1/32, 10.0.0.0/8)", cidr)
		}
	}
	switch c.Catalog.Backend {
	case "sqlite":
		if c.Catalog.SQLite.Path == "" {
			return bad("catalog.sqlite.path", "is required with catalog.backend: sqlite")
		}
	case "postgres":
		if c.Catalog.Postgres.DSN == "" {
			return bad("catalog.postgres.dsn", "is required with catalog.backend: postgres")
		}
	default:
		return bad("catalog.backend", "must be sqlite or postgres (got %q)", c.Catalog.Backend)
	}
	if _, err := blind.ParseFields(c.Catalog.Index); err != nil {
		return bad("catalog.index", "%v", strings.TrimPrefix(err.Error(), "blind: "))
	}
	switch c.OpenPGP.Policy {
	case "off", "":
	case "opportunistic", "required":
		if c.OpenPGP.Keyring == "" {
			return bad("openpgp.keyring", "is required with openpgp.policy: %s", c.OpenPGP.Policy)
		}
		if c.Forward.NextHop == "" {
			return bad("openpgp.policy", "needs forward.next_hop: there is nothing to encrypt for in store-only mode")
		}
	default:
		return bad("openpgp.policy", "must be off, opportunistic or required (got %q)", c.OpenPGP.Policy)
	}
	if c.Milter.Listen != "" {
		if err := c.validateMilter(); err != nil {
			return err
		}
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		return bad("log.level", "must be debug, info, warn or error (got %q)", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		return bad("log.format", "must be text or json (got %q)", c.Log.Format)
	}
	return nil
}

// validateMilter checks milter.listen and the settings that cannot go with it.
func (c *Config) validateMilter() error {
	bad := func(format string, args ...any) error {
		return &Error{File: c.File, Key: "milter.listen", Reason: fmt.Sprintf(format, args...)}
	}
	network, addr := c.Milter.MilterNetwork()
	switch network {
	case "unix":
		if addr == "" || !filepath.IsAbs(addr) {
			return bad("a unix socket needs an absolute path, like unix:/run/mailvaultd/milter.sock (got %q)", c.Milter.Listen)
		}
	default:
		if err := checkAddr(addr); err != nil {
			return bad("%v (or unix:/path/to/socket)", err)
		}
		for key, other := range map[string]string{"smtp.listen": c.SMTP.Listen, "retrieval.listen": c.Retrieval.Listen,
			"retrieval.metrics_listen": c.Retrieval.MetricsListen} {
			if addr == other {
				return bad("is %s too: each listener needs its own address", key)
			}
		}
	}
	// A milter sees the message before Postfix queues it and cannot hand
	// Postfix a PGP/MIME replacement yet: rather than forward plaintext
	// that the policy says must be encrypted, refuse the combination.
	if p := c.OpenPGP.Policy; p != "" && p != "off" {
		return bad("cannot be used with openpgp.policy: %s (the milter does not encrypt for recipients); set openpgp.policy: off or milter.listen: \"\"", p)
	}
	return nil
}

// AllowNets returns smtp.allow parsed (Validate has checked it), each
// network masked to its prefix length.
func (s SMTP) AllowNets() []netip.Prefix {
	nets := make([]netip.Prefix, 0, len(s.Allow))
	for _, n := range s.Allow {
		if p, err := netip.ParsePrefix(n); err == nil {
			nets = append(nets, p.Masked())
		}
	}
	return nets
}

func checkAddr(a string) error {
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return fmt.Errorf("must be host:port (got %q)", a)
	}
	if host == "" {
		return fmt.Errorf("must name a host (got %q); use 127.0.0.1 for loopback", a)
	}
	if _, err := net.LookupPort("tcp", port); err != nil || port == "" {
		return fmt.Errorf("bad port in %q", a)
	}
	return nil
}
