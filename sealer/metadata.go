package sealer

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// Object metadata keys. They are lowercase ASCII because S3 lowercases user
// metadata keys; ParseMetadata matches them case-insensitively all the same.
const (
	metaVersion       = "mv-version"
	metaProvider      = "mv-provider"
	metaKeyID         = "mv-key-id"
	metaWrappedKey    = "mv-wrapped-key"
	metaContext       = "mv-context"
	metaPlaintextSize = "mv-plaintext-size"
)

var metaKeys = [...]string{metaVersion, metaProvider, metaKeyID, metaWrappedKey, metaContext, metaPlaintextSize}

// Bounds on metadata, checked both when parsing and before sealing, so that
// whatever is sealed can be parsed again.
const (
	maxProviderLen    = 64
	maxKeyIDLen       = 2 << 10
	maxWrappedKeyLen  = 1 << 10 // decoded
	maxContextLen     = 4 << 10 // canonical JSON
	maxContextEntries = 16
)

// Map renders m as object metadata (keys "mv-version", "mv-provider",
// "mv-key-id", "mv-wrapped-key" (base64), "mv-context" (canonical JSON),
// "mv-plaintext-size").
func (m Metadata) Map() map[string]string {
	return map[string]string{
		metaVersion:       strconv.Itoa(m.Version),
		metaProvider:      m.Provider,
		metaKeyID:         m.KeyID,
		metaWrappedKey:    base64.StdEncoding.EncodeToString(m.WrappedKey),
		metaContext:       string(appendContextJSON(nil, m.Context)),
		metaPlaintextSize: strconv.FormatInt(m.PlaintextSize, 10),
	}
}

// ParseMetadata is the inverse of Map; it rejects missing fields, unknown
// versions and over-long values (the wrapped key is capped at 1 KiB).
//
// Keys are matched case-insensitively and keys it does not know are ignored
// (the store may keep its own metadata beside ours). Every value must be in
// the exact form Map writes, so parsing and rendering again is byte-identical.
func ParseMetadata(kv map[string]string) (Metadata, error) {
	var vals [len(metaKeys)]string
	var seen [len(metaKeys)]bool
	for k, v := range kv {
		i := slices.Index(metaKeys[:], strings.ToLower(k))
		if i < 0 {
			continue
		}
		if seen[i] {
			return Metadata{}, fmt.Errorf("sealer: metadata %s: given more than once", metaKeys[i])
		}
		vals[i], seen[i] = v, true
	}
	for i, k := range metaKeys {
		if !seen[i] {
			return Metadata{}, fmt.Errorf("sealer: metadata: missing %s", k)
		}
	}
	var m Metadata

	v, err := parseDecimal(vals[0], 1<<20)
	if err != nil {
		return Metadata{}, metaErr(metaVersion, "%v", err)
	}
	if v != FormatVersion {
		return Metadata{}, metaErr(metaVersion, "unsupported format version %d (this build reads %d)", v, FormatVersion)
	}
	m.Version = int(v)

	m.Provider, m.KeyID = vals[1], vals[2]

	raw := vals[3]
	if len(raw) > base64.StdEncoding.EncodedLen(maxWrappedKeyLen) {
		return Metadata{}, metaErr(metaWrappedKey, "longer than %d bytes decoded", maxWrappedKeyLen)
	}
	m.WrappedKey, err = base64.StdEncoding.Strict().DecodeString(raw)
	if err != nil {
		return Metadata{}, metaErr(metaWrappedKey, "not standard base64")
	}

	if m.Context, err = parseContextJSON(vals[4]); err != nil {
		return Metadata{}, err
	}

	if m.PlaintextSize, err = parseDecimal(vals[5], maxPlaintextSize); err != nil {
		return Metadata{}, metaErr(metaPlaintextSize, "%v", err)
	}

	if err := m.validate(); err != nil {
		return Metadata{}, err
	}
	return m, nil
}

// validate checks every bound ParseMetadata checks, for metadata that comes
// from a DataKey or straight from a caller.
func (m *Metadata) validate() error {
	if m.Version != FormatVersion {
		return metaErr(metaVersion, "unsupported format version %d (this build reads %d)", m.Version, FormatVersion)
	}
	if err := checkToken(m.Provider, maxProviderLen); err != nil {
		return metaErr(metaProvider, "%v", err)
	}
	if err := checkToken(m.KeyID, maxKeyIDLen); err != nil {
		return metaErr(metaKeyID, "%v", err)
	}
	if len(m.WrappedKey) == 0 {
		return metaErr(metaWrappedKey, "empty")
	}
	if len(m.WrappedKey) > maxWrappedKeyLen {
		return metaErr(metaWrappedKey, "longer than %d bytes decoded", maxWrappedKeyLen)
	}
	if err := validateContext(m.Context); err != nil {
		return err
	}
	if m.PlaintextSize < 0 || m.PlaintextSize > maxPlaintextSize {
		return metaErr(metaPlaintextSize, "%d is out of range", m.PlaintextSize)
	}
	return nil
}

// validateContext bounds an encryption context so that its canonical JSON
// can be stored and parsed back to the same map.
func validateContext(c map[string]string) error {
	if len(c) > maxContextEntries {
		return metaErr(metaContext, "%d entries, at most %d allowed", len(c), maxContextEntries)
	}
	raw := 0
	for k, v := range c {
		if !utf8.ValidString(k) || !utf8.ValidString(v) {
			return metaErr(metaContext, "keys and values must be valid UTF-8")
		}
		raw += len(k) + len(v)
	}
	// The JSON form is never shorter than the raw strings; only encode
	// contexts that have a chance of fitting.
	if raw > maxContextLen || len(appendContextJSON(nil, c)) > maxContextLen {
		return metaErr(metaContext, "longer than %d bytes as JSON", maxContextLen)
	}
	return nil
}

// checkToken accepts 1 to max bytes of printable ASCII without spaces: the
// form provider names and key ids take, and one that survives an HTTP header.
func checkToken(s string, max int) error {
	if s == "" {
		return fmt.Errorf("empty")
	}
	if len(s) > max {
		return fmt.Errorf("longer than %d bytes", max)
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return fmt.Errorf("byte %d is not printable ASCII", i)
		}
	}
	return nil
}

func metaErr(key, format string, args ...any) error {
	return fmt.Errorf("sealer: metadata %s: %s", key, fmt.Sprintf(format, args...))
}

// parseDecimal accepts only the canonical decimal form of 0 to max.
func parseDecimal(s string, max int64) (int64, error) {
	if len(s) > 20 {
		return 0, fmt.Errorf("not a decimal number")
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || strconv.FormatInt(n, 10) != s {
		return 0, fmt.Errorf("%q is not a canonical decimal number", s)
	}
	if n < 0 || n > max {
		return 0, fmt.Errorf("%d is out of range", n)
	}
	return n, nil
}

// parseContextJSON accepts exactly what appendContextJSON writes.
func parseContextJSON(s string) (map[string]string, error) {
	if len(s) > maxContextLen {
		return nil, metaErr(metaContext, "longer than %d bytes", maxContextLen)
	}
	var c map[string]string
	if err := json.Unmarshal([]byte(s), &c); err != nil || c == nil {
		return nil, metaErr(metaContext, "not a JSON object of strings")
	}
	if len(c) > maxContextEntries {
		return nil, metaErr(metaContext, "%d entries, at most %d allowed", len(c), maxContextEntries)
	}
	if string(appendContextJSON(nil, c)) != s {
		return nil, metaErr(metaContext, "not in canonical form (sorted keys, no spaces, non-ASCII escaped)")
	}
	return c, nil
}

// appendContextJSON is the canonical JSON form of an encryption context: one
// object, keys in ascending byte order, no white space, and every byte that is
// not printable ASCII written as a \u escape, so the value is plain ASCII (S3
// metadata values must be).
func appendContextJSON(b []byte, c map[string]string) []byte {
	b = append(b, '{')
	for i, k := range slices.Sorted(maps.Keys(c)) {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, k)
		b = append(b, ':')
		b = appendJSONString(b, c[k])
	}
	return append(b, '}')
}

func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	u := func(b []byte, r rune) []byte {
		return append(b, '\\', 'u', hex[r>>12&0xf], hex[r>>8&0xf], hex[r>>4&0xf], hex[r&0xf])
	}
	b = append(b, '"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b = append(b, '\\', byte(r))
		case r >= 0x20 && r < 0x7f:
			b = append(b, byte(r))
		case r < 0x10000:
			b = u(b, r)
		default:
			r1, r2 := utf16.EncodeRune(r)
			b = u(u(b, r1), r2)
		}
	}
	return append(b, '"')
}

// metadataFor is the metadata of a stream sealed under dk, before its size is
// known. Slices and maps are copied so that the caller may reuse dk.
func metadataFor(dk *DataKey) (Metadata, error) {
	if dk == nil {
		return Metadata{}, fmt.Errorf("sealer: no data key")
	}
	if len(dk.Plaintext) != dataKeySize {
		return Metadata{}, fmt.Errorf("sealer: data key is %d bytes, want %d", len(dk.Plaintext), dataKeySize)
	}
	m := Metadata{
		Version:    FormatVersion,
		Provider:   dk.Provider,
		KeyID:      dk.KeyID,
		WrappedKey: slices.Clone(dk.Wrapped),
		Context:    maps.Clone(dk.Context),
	}
	if err := m.validate(); err != nil {
		return Metadata{}, err
	}
	return m, nil
}
