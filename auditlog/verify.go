package auditlog

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
)

// ChainError names the first line of an audit log that fails a check.
type ChainError struct {
	Line   int // 1-based
	Reason string
}

func (e *ChainError) Error() string {
	return fmt.Sprintf("audit log broken at line %d: %s", e.Line, e.Reason)
}

// Verify checks a whole audit log: every line is a complete record that
// matches its own hash, carries the next sequence number, and carries the
// SHA-256 of the line before it (all zeros for the first). The one exception
// is what a torn write leaves and Open recovers: lines that are not records,
// immediately followed by a recovery record that names exactly their bytes
// (length and SHA-256) and continues the chain from the record before them.
// It returns the number of lines that passed and, for the first line that
// does not, a *ChainError naming it. A deleted last line cannot be told from
// a log that ended there; compare the count or the last hash with a copy
// kept elsewhere for that.
func Verify(r io.Reader) (lines int, err error) {
	br := bufio.NewReaderSize(r, 64<<10)
	prev := genesisHash
	var seq int64
	// A run of lines that are not records, waiting for its recovery record.
	var (
		tornFirst  int    // line number of the first; 0 if there is no run
		tornReason string // why it is not a record
		tornBytes  int
		tornSum    hash.Hash
	)
	for n := 1; ; n++ {
		ln, err := readLine(br)
		if err == io.EOF {
			if tornFirst != 0 {
				return lines, &ChainError{Line: tornFirst, Reason: tornReason}
			}
			return lines, nil
		}
		if err != nil {
			if tornFirst != 0 {
				return lines, &ChainError{Line: tornFirst, Reason: tornReason}
			}
			var ce *ChainError
			if errors.As(err, &ce) {
				ce.Line = n
				return lines, ce
			}
			return lines, fmt.Errorf("audit log: reading line %d: %w", n, err)
		}
		l, perr := parseLine(ln)
		if perr != nil {
			if tornFirst == 0 {
				tornFirst, tornReason, tornBytes, tornSum = n, perr.Error(), 0, sha256.New()
			}
			tornBytes += len(ln) + 1
			tornSum.Write(ln)
			tornSum.Write([]byte{'\n'})
			if tornBytes > maxTornBytes {
				return lines, &ChainError{Line: tornFirst, Reason: tornReason}
			}
			continue
		}
		switch {
		case tornFirst != 0 && l.Torn == nil:
			return lines, &ChainError{Line: tornFirst, Reason: tornReason}
		case tornFirst != 0 && (l.Torn.Bytes != tornBytes || l.Torn.SHA256 != hex.EncodeToString(tornSum.Sum(nil))):
			return lines, &ChainError{Line: tornFirst, Reason: fmt.Sprintf("%s; the recovery record at line %d does not name the %d bytes of lines %d-%d", tornReason, n, tornBytes, tornFirst, n-1)}
		case tornFirst == 0 && l.Torn != nil:
			return lines, &ChainError{Line: n, Reason: "a recovery record with no torn line before it"}
		}
		if l.Seq != seq+1 {
			return lines, &ChainError{Line: n, Reason: fmt.Sprintf("sequence number %d, want %d (a line before it was removed or inserted)", l.Seq, seq+1)}
		}
		if l.Prev != prev {
			what := "the line before it was altered, removed or inserted"
			if n == 1 {
				what = "the first line is not the start of a chain (lines before it were removed)"
			}
			return lines, &ChainError{Line: n, Reason: "prev does not match the hash of the line before: " + what}
		}
		seq = l.Seq
		prev = lineHash(ln)
		lines = n
		tornFirst = 0
	}
}

// readLine returns the next line without its newline, io.EOF at a clean end,
// and a *ChainError (line number unset) for a torn or over-long line.
func readLine(br *bufio.Reader) ([]byte, error) {
	var ln []byte
	for {
		frag, err := br.ReadSlice('\n')
		ln = append(ln, frag...)
		if len(ln) > maxLineBytes+1 {
			return nil, &ChainError{Reason: fmt.Sprintf("longer than %d bytes", maxLineBytes)}
		}
		if err == nil {
			return ln[:len(ln)-1], nil
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err == io.EOF {
			if len(ln) == 0 {
				return nil, io.EOF
			}
			return nil, &ChainError{Reason: "incomplete last line (no newline)"}
		}
		return nil, err
	}
}
