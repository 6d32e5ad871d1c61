package sealer

import (
	"encoding/base64"
	"maps"
	"reflect"
	"strings"
	"testing"
)

func validMetadata() Metadata {
	return Metadata{
		Version:       1,
		Provider:      "awskms",
		KeyID:         "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
		WrappedKey:    []byte{0, 1, 2, 0xfe, 0xff},
		Context:       map[string]string{ContextArchiveID: "01jexample", "b": "é\"\\\n\U0001F600<>&\x7f"},
		PlaintextSize: 1234567,
	}
}

func TestMetadataMap(t *testing.T) {
	m := validMetadata()
	kv := m.Map()
	want := map[string]string{
		"mv-version":        "1",
		"mv-provider":       "awskms",
		"mv-key-id":         m.KeyID,
		"mv-wrapped-key":    "AAEC/v8=",
		"mv-context":        `{"b":"\u00e9\"\\\u000a\ud83d\ude00<>&\u007f","mailvaultd:archive-id":"01jexample"}`,
		"mv-plaintext-size": "1234567",
	}
	if !maps.Equal(kv, want) {
		t.Fatalf("Map() =\n%q\nwant\n%q", kv, want)
	}
	for k, v := range kv {
		if k != strings.ToLower(k) {
			t.Errorf("key %q is not lowercase", k)
		}
		for i := 0; i < len(v); i++ {
			if v[i] < 0x20 || v[i] > 0x7e {
				t.Errorf("value of %s has a byte that is not printable ASCII", k)
			}
		}
	}
	got, err := ParseMetadata(kv)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, m) {
		t.Fatalf("ParseMetadata(Map()) = %+v, want %+v", got, m)
	}
}

func TestParseMetadataCase(t *testing.T) {
	kv := validMetadata().Map()
	upper := map[string]string{"X-Other": "kept out"}
	for k, v := range kv {
		upper[strings.ToUpper(k[:1])+k[1:]] = v // as Go's http.Header would have it
	}
	if _, err := ParseMetadata(upper); err != nil {
		t.Fatalf("canonicalised keys: %v", err)
	}
	upper["mv-version"] = "1"
	if _, err := ParseMetadata(upper); err == nil || !strings.Contains(err.Error(), "mv-version") {
		t.Fatalf("a key given twice: %v", err)
	}
}

func TestParseMetadataErrors(t *testing.T) {
	long := func(n int) string { return strings.Repeat("a", n) }
	for _, tc := range []struct {
		name, key, value string // value "-": delete the key
	}{
		{"missing version", "mv-version", "-"},
		{"missing provider", "mv-provider", "-"},
		{"missing key id", "mv-key-id", "-"},
		{"missing wrapped key", "mv-wrapped-key", "-"},
		{"missing context", "mv-context", "-"},
		{"missing size", "mv-plaintext-size", "-"},
		{"version 2", "mv-version", "2"},
		{"version 0", "mv-version", "0"},
		{"version 01", "mv-version", "01"},
		{"version empty", "mv-version", ""},
		{"version huge", "mv-version", long(100)},
		{"provider empty", "mv-provider", ""},
		{"provider long", "mv-provider", long(65)},
		{"provider space", "mv-provider", "a b"},
		{"provider non-ASCII", "mv-provider", "lôcal"},
		{"key id empty", "mv-key-id", ""},
		{"key id long", "mv-key-id", long(2049)},
		{"key id control", "mv-key-id", "local:1\n"},
		{"wrapped key empty", "mv-wrapped-key", ""},
		{"wrapped key not base64", "mv-wrapped-key", "!!!!"},
		{"wrapped key unpadded", "mv-wrapped-key", "AAEC/v8"},
		{"wrapped key url alphabet", "mv-wrapped-key", "AAEC_v8="},
		{"wrapped key non-canonical bits", "mv-wrapped-key", "AAEC/v9="},
		{"wrapped key over 1 KiB", "mv-wrapped-key", long(1372)},
		{"wrapped key 1025 bytes", "mv-wrapped-key", base64.StdEncoding.EncodeToString(make([]byte, 1025))},
		{"context empty", "mv-context", ""},
		{"context null", "mv-context", "null"},
		{"context array", "mv-context", `["a"]`},
		{"context number value", "mv-context", `{"a":1}`},
		{"context spaces", "mv-context", `{"a": "b"}`},
		{"context unsorted", "mv-context", `{"b":"","a":""}`},
		{"context duplicate", "mv-context", `{"a":"1","a":"2"}`},
		{"context raw UTF-8", "mv-context", `{"a":"é"}`},
		{"context upper hex", "mv-context", `{"a":"\u00E9"}`},
		{"context short escape", "mv-context", `{"a":"\n"}`},
		{"context trailing", "mv-context", `{"a":"b"} `},
		{"context too long", "mv-context", `{"a":"` + long(4100) + `"}`},
		{"context 17 entries", "mv-context", `{"a":"","b":"","c":"","d":"","e":"","f":"","g":"","h":"","i":"","j":"","k":"","l":"","m":"","n":"","o":"","p":"","q":""}`},
		{"size negative", "mv-plaintext-size", "-1"},
		{"size plus", "mv-plaintext-size", "+1"},
		{"size leading zero", "mv-plaintext-size", "01"},
		{"size empty", "mv-plaintext-size", ""},
		{"size space", "mv-plaintext-size", " 1"},
		{"size hex", "mv-plaintext-size", "0x10"},
		{"size over 1 TiB", "mv-plaintext-size", "1099511627777"},
		{"size overflow", "mv-plaintext-size", "99999999999999999999"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kv := validMetadata().Map()
			if tc.value == "-" {
				delete(kv, tc.key)
			} else {
				kv[tc.key] = tc.value
			}
			_, err := ParseMetadata(kv)
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tc.key) || !strings.HasPrefix(err.Error(), "sealer: ") {
				t.Fatalf("error %q does not name %s", err, tc.key)
			}
			if len(err.Error()) > 200 {
				t.Fatalf("error is %d bytes long: it must not echo long values", len(err.Error()))
			}
		})
	}
}

func TestParseMetadataAccepts(t *testing.T) {
	for _, tc := range []struct{ name, key, value string }{
		{"empty context", "mv-context", "{}"},
		{"size zero", "mv-plaintext-size", "0"},
		{"size 1 TiB", "mv-plaintext-size", "1099511627776"},
		{"wrapped key 1 KiB", "mv-wrapped-key", base64.StdEncoding.EncodeToString(make([]byte, 1024))},
		{"key id 2 KiB", "mv-key-id", strings.Repeat("k", 2048)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kv := validMetadata().Map()
			kv[tc.key] = tc.value
			m, err := ParseMetadata(kv)
			if err != nil {
				t.Fatal(err)
			}
			if !maps.Equal(m.Map(), kv) {
				t.Fatalf("Map() does not give back what was parsed")
			}
		})
	}
}
