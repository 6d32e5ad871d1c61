package partmap

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
)

var update = flag.Bool("update", false, "rewrite testdata/*.json from what the scanner gives now")

// goldenInputs are the testdata messages, by name.
func goldenInputs(t testing.TB) map[string][]byte {
	t.Helper()
	files, err := filepath.Glob("testdata/*.eml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata/*.eml: %v", err)
	}
	m := make(map[string][]byte)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		m[strings.TrimSuffix(filepath.Base(f), ".eml")] = b
	}
	return m
}

func marshalPartMap(t testing.TB, pm *PartMap) []byte {
	t.Helper()
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(pm); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestGolden scans each testdata/NAME.eml and compares the PartMap with
// testdata/NAME.json. Run with -update to rewrite the JSON files, then
// review the diff.
func TestGolden(t *testing.T) {
	for name, raw := range goldenInputs(t) {
		t.Run(name, func(t *testing.T) {
			pm, err := Scan(bytes.NewReader(raw), Limits{})
			if err != nil {
				t.Fatal(err)
			}
			got := marshalPartMap(t, pm)
			golden := filepath.Join("testdata", name+".json")
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -run TestGolden -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("PartMap differs from %s\n--- got\n%s\n--- want\n%s", golden, got, want)
			}
			checkInvariants(t, raw, pm, Limits{})
			checkDecodedSizes(t, raw, pm)
		})
	}
}

// TestWriteSizeIndependence feeds each message in one write, byte by byte,
// in random sizes, split in two at every position, and through iotest
// readers: the PartMap must not change.
func TestWriteSizeIndependence(t *testing.T) {
	inputs := goldenInputs(t)
	inputs["generated-attachments"], _ = attachmentMessage(t, "\r\n")
	for name, raw := range inputs {
		t.Run(name, func(t *testing.T) {
			for _, l := range []Limits{{}, {MaxDepth: 1, MaxParts: 2, MaxHeaderBytes: 80}} {
				want := scanOnce(raw, l)
				check := func(how string, got *PartMap) {
					t.Helper()
					if !reflect.DeepEqual(got, want) {
						t.Fatalf("%+v, %s: PartMap differs from one write\n--- got\n%s\n--- want\n%s", l, how, marshalPartMap(t, got), marshalPartMap(t, want))
					}
				}
				check("1-byte writes", scanBytewise(raw, l))
				for seed := range uint64(5) {
					check("random writes", scanRandom(raw, l, seed))
				}
				if len(raw) <= 8<<10 {
					for i := 1; i < len(raw); i++ {
						s := NewScanner(l)
						s.Write(raw[:i])
						s.Write(raw[i:])
						check("split at "+strconv.Itoa(i), s.Close())
					}
				}
				for how, r := range map[string]io.Reader{
					"OneByteReader": iotest.OneByteReader(bytes.NewReader(raw)),
					"HalfReader":    iotest.HalfReader(bytes.NewReader(raw)),
					"DataErrReader": iotest.DataErrReader(bytes.NewReader(raw)),
				} {
					got, err := Scan(r, l)
					if err != nil {
						t.Fatal(err)
					}
					check(how, got)
				}
			}
		})
	}
}

func TestScanReadError(t *testing.T) {
	raw := goldenInputs(t)["alternative"]
	boom := errors.New("boom")
	pm, err := Scan(io.MultiReader(bytes.NewReader(raw[:300]), iotest.ErrReader(boom)), Limits{})
	if !errors.Is(err, boom) || pm == nil {
		t.Fatalf("Scan = %v, %v; want the partial map and the error", pm, err)
	}
	if pm.Size != 300 {
		t.Errorf("Size = %d, want 300", pm.Size)
	}
	checkInvariants(t, raw[:300], pm, Limits{})
}
