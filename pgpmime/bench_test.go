package pgpmime

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

var benchSizes = []struct {
	name string
	n    int
}{{"10KB", 10 << 10}, {"10MB", 10 << 20}}

// benchMessage is a message of about n bytes: a short text part and a base64
// attachment.
func benchMessage(tb testing.TB, n int) []byte {
	var b bytes.Buffer
	if _, err := writeLargeMessage(&b, n, nil); err != nil {
		tb.Fatal(err)
	}
	return b.Bytes()
}

func encryptOnce(w io.Writer, msg []byte, rs []*Recipient) error {
	pw, err := NewPGPMIMEWriter(w, ParseOuterHeaders(msg), rs, Options{})
	if err != nil {
		return err
	}
	if _, err := pw.Write(msg); err != nil {
		return err
	}
	return pw.Close()
}

// BenchmarkEncrypt: go test -run '^$' -bench Encrypt ./pgpmime/
func BenchmarkEncrypt(b *testing.B) {
	ks := testKeys(b)
	rs := recipientsOf(b, ks.alice.pub)
	for _, s := range benchSizes {
		b.Run(s.name, func(b *testing.B) {
			msg := benchMessage(b, s.n)
			b.SetBytes(int64(len(msg)))
			b.ReportAllocs()
			for b.Loop() {
				if err := encryptOnce(io.Discard, msg, rs); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestCompareGPG times, in one run, this package's encryption of 10 KB and
// 10 MB messages against `gpg --encrypt --armor -r KEY` of the same bytes to
// the same (gpg-generated, cv25519) key:
//
//	go test -run TestCompareGPG -v ./pgpmime/
//
// gpg's time includes starting the process and reading its keyring, as it
// would for a filter that shells out to it. Figures under -race are not
// meaningful.
func TestCompareGPG(t *testing.T) {
	gk := testGPGKey(t)
	rs := recipientsOf(t, gk.pub)
	dir := t.TempDir()
	// Warm gpg-agent and the keyring once, so that no run pays for it.
	gk.g.run(bytes.NewReader([]byte("x")), "--trust-model", "always", "--encrypt", "--armor", "-r", gk.fpr)
	startup := timeRuns(5, func() error { return gk.g.command("--version").Run() })

	t.Logf("%-6s %-44s %12s %10s", "size", "encryptor", "median/op", "MB/s")
	for _, s := range benchSizes {
		msg := benchMessage(t, s.n)
		in := filepath.Join(dir, s.name+".eml")
		if err := os.WriteFile(in, msg, 0o600); err != nil {
			t.Fatal(err)
		}
		reps, gpgReps := 200, 15
		if s.n > 1<<20 {
			reps, gpgReps = 7, 5
		}
		if raceEnabled {
			reps = min(reps, 3)
		}
		ours := timeRuns(reps, func() error { return encryptOnce(io.Discard, msg, rs) })
		gpgRun := func(extra ...string) func() error {
			return func() error {
				args := append([]string{"--yes", "--trust-model", "always", "--encrypt", "--armor", "-r", gk.fpr, "--output", os.DevNull}, extra...)
				cmd := gk.g.command(append(args, in)...)
				if out, err := cmd.CombinedOutput(); err != nil {
					return fmt.Errorf("%v: %s", err, out)
				}
				return nil
			}
		}
		gpgDefault := timeRuns(gpgReps, gpgRun())
		gpgNoZ := timeRuns(gpgReps, gpgRun("--compress-algo", "none"))
		for _, r := range []struct {
			name string
			res  timing
		}{
			{"mailvaultd NewPGPMIMEWriter (PGP/MIME)", ours},
			{"gpg --encrypt --armor -r KEY", gpgDefault},
			{"gpg --encrypt --armor --compress-algo none", gpgNoZ},
		} {
			if r.res.err != nil {
				t.Fatalf("%s: %v", r.name, r.res.err)
			}
			t.Logf("%-6s %-44s %12s %10.1f", s.name, r.name, r.res.median.Round(time.Microsecond),
				float64(len(msg))/r.res.median.Seconds()/1e6)
		}
	}
	t.Logf("gpg process start-up alone (gpg --version): %s", startup.median.Round(time.Microsecond))
	if raceEnabled {
		t.Log("built with -race: the mailvaultd figures are not representative")
	}
}

type timing struct {
	median time.Duration
	err    error
}

func timeRuns(n int, f func() error) timing {
	ds := make([]time.Duration, 0, n)
	for range n {
		start := time.Now()
		if err := f(); err != nil {
			return timing{err: err}
		}
		ds = append(ds, time.Since(start))
	}
	slices.Sort(ds)
	return timing{median: ds[len(ds)/2]}
}
