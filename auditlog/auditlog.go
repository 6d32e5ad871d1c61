// Package auditlog owns the audit file: an append-only, hash-chained file of
// JSON lines, one per access (access.Event), and its verifier. Each line
// carries its sequence number, the SHA-256 of the line before it and the
// SHA-256 of itself, so an edited, inserted or deleted line is found by
// Verify.
//
// Any number of writers may append to one file (the daemon and `mailvaultd
// get` beside it): every append holds an exclusive flock(2) on the file and
// continues the chain from what the file holds, not from what the writer
// last wrote. A line cut short by a crash or a full disk is kept, and the
// chain goes on after it with a record that names the cut bytes (their
// length and SHA-256); Verify accepts exactly that pattern.
//
// auditlog never decides what is recorded or when (retrieval does), never
// rotates or deletes a line and never reads a record back for anyone but
// Verify.
package auditlog

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mailvault/mailvaultd/access"
)

// line is an access.Event as written: the event between its sequence number
// and the hash of the previous line. The line's own hash follows as the last
// member, computed over the line without it. Torn is set only on a recovery
// record.
type line struct {
	Seq int64 `json:"seq"`
	access.Event
	Torn *torn  `json:"torn,omitempty"`
	Prev string `json:"prev"`
}

// torn names the bytes of a torn region: the lines between the last intact
// record and the recovery record that follows them, newlines included.
type torn struct {
	Bytes  int    `json:"bytes"`
	SHA256 string `json:"sha256"`
}

// Recovery records.
const (
	recoveryUser   = "mailvaultd"
	recoveryAction = "audit_torn_tail"
)

const (
	maxLineBytes     = 64 << 10
	hashMemberPrefix = `,"hash":"`
	hashMemberLen    = len(hashMemberPrefix) + 2*sha256.Size + len(`"}`)
	// maxTornBytes bounds a torn region: one torn line, and one torn
	// recovery record after it for every crash during a recovery, fit many
	// times over. More than this after the last intact record is damage,
	// not a torn write.
	maxTornBytes = 1 << 20
)

// genesisHash is the "previous line" hash of the first line of a log.
var genesisHash = strings.Repeat("0", 2*sha256.Size)

// Log is an open audit file.
//
// Every Record is one write(2) of one whole line to a file opened with
// O_APPEND, under an exclusive flock(2), followed by fsync: a line that
// Record returned for is on disk. After a failed write the log refuses
// further records (Err reports why), so that the caller stops decrypting.
type Log struct {
	mu   sync.Mutex
	f    *os.File
	seq  int64
	prev string
	end  int64 // the file's size after this writer's last append or read of the head
	err  error
	now  func() time.Time
}

// Open opens (or creates, mode 0600, in a directory created with mode 0700)
// the audit log at path and continues the chain from its last intact line.
// A torn tail (a line cut short, with no newline) is kept and followed by a
// recovery record. A log whose last line is complete but not an intact
// record, or that holds no intact record near its end, is refused: that is
// not a torn write; run Verify on it and move it aside.
func Open(path string) (*Log, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("auditlog: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("auditlog: %w", err)
	}
	a := &Log{f: f, prev: genesisHash, end: -1, now: time.Now}
	err = a.locked(a.catchUp)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("auditlog: %s: %w", path, err)
	}
	return a, nil
}

// locked runs fn holding the exclusive lock on the file.
func (a *Log) locked(fn func() error) error {
	fd := int(a.f.Fd())
	for {
		err := syscall.Flock(fd, syscall.LOCK_EX)
		if err == nil {
			break
		}
		if err != syscall.EINTR {
			return fmt.Errorf("lock: %w", err)
		}
	}
	err := fn()
	if uerr := syscall.Flock(fd, syscall.LOCK_UN); uerr != nil && err == nil {
		err = fmt.Errorf("unlock: %w", uerr)
	}
	return err
}

// catchUp makes seq and prev those of the file's last record if another
// writer has appended since this one last looked, recovering a torn tail.
// The lock is held.
func (a *Log) catchUp() error {
	st, err := a.f.Stat()
	if err != nil {
		return err
	}
	if st.Size() == a.end {
		return nil
	}
	t, err := scanTail(a.f, st.Size())
	if err != nil {
		return err
	}
	a.seq, a.prev, a.end = t.seq, t.prev, st.Size()
	if t.unterminated {
		// The last record is whole but for its newline.
		if err := a.append([]byte("\n")); err != nil {
			return err
		}
	}
	if t.torn != nil {
		sum := sha256.Sum256(append(t.torn, '\n'))
		rec := line{
			Seq:   a.seq + 1,
			Event: access.Event{Time: a.now().UTC(), User: recoveryUser, Action: recoveryAction, Remote: "local", Outcome: access.OutcomeOK},
			Torn:  &torn{Bytes: len(t.torn) + 1, SHA256: hex.EncodeToString(sum[:])},
			Prev:  a.prev,
		}
		b, err := marshalLine(rec)
		if err != nil {
			return err
		}
		// One write: the newline that ends the torn bytes and the record
		// that names them. Torn again, it leaves a longer torn region
		// that the next open recovers the same way.
		out := make([]byte, 0, len(b)+2)
		out = append(append(append(out, '\n'), b...), '\n')
		if err := a.append(out); err != nil {
			return err
		}
		a.seq, a.prev = rec.Seq, lineHash(b)
	}
	return nil
}

// append writes b at the end of the file and syncs it. The lock is held.
func (a *Log) append(b []byte) error {
	n, err := a.f.Write(b)
	a.end += int64(n)
	if err != nil {
		return fmt.Errorf("write: %w", err)
	}
	if err := a.f.Sync(); err != nil {
		return fmt.Errorf("sync: %w", err)
	}
	return nil
}

// Record appends e as one line. A zero Time is set to now.
func (a *Log) Record(e access.Event) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.err != nil {
		return a.err
	}
	if e.Time.IsZero() {
		e.Time = a.now()
	}
	e.Time = e.Time.UTC()
	err := a.locked(func() error {
		if err := a.catchUp(); err != nil {
			return err
		}
		l := line{Seq: a.seq + 1, Event: e, Prev: a.prev}
		b, err := marshalLine(l)
		if err != nil {
			return &recordError{err}
		}
		if err := a.append(append(b, '\n')); err != nil {
			return err
		}
		a.seq, a.prev = l.Seq, lineHash(b)
		return nil
	})
	var re *recordError
	if errors.As(err, &re) {
		// This event cannot be written; the log still takes others.
		return fmt.Errorf("auditlog: %w", re.err)
	}
	if err != nil {
		a.err = fmt.Errorf("auditlog: %w", err)
	}
	return a.err
}

// recordError is a record that cannot be written, as opposed to a log that
// cannot be written to.
type recordError struct{ err error }

func (e *recordError) Error() string { return e.err.Error() }

// Err reports why the log refuses records, or nil.
func (a *Log) Err() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.err
}

// Close closes the file; later records fail.
func (a *Log) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.err == nil {
		a.err = errors.New("auditlog: log closed")
	}
	return a.f.Close()
}

// tail is the end of a log as found on disk.
type tail struct {
	seq  int64  // of the last intact record; 0 if none
	prev string // its hash; genesisHash if none
	// unterminated: the last record is intact but lacks its newline.
	unterminated bool
	// torn: the bytes after the last intact record, which end without a
	// newline; nil if none.
	torn []byte
}

// scanTail finds the last intact record of a file of size bytes, reading as
// little of its end as it can.
func scanTail(f *os.File, size int64) (tail, error) {
	if size == 0 {
		return tail{prev: genesisHash}, nil
	}
	for _, window := range []int64{maxLineBytes + 2, maxTornBytes + maxLineBytes + 2} {
		n := min(size, window)
		buf := make([]byte, n)
		if _, err := f.ReadAt(buf, size-n); err != nil {
			return tail{}, err
		}
		t, ok, err := parseTail(buf, n == size)
		if err != nil || ok {
			return t, err
		}
		if n == size {
			break
		}
	}
	return tail{}, fmt.Errorf("no intact record in the last %d bytes", maxTornBytes+maxLineBytes)
}

// parseTail finds the last intact record in buf, the end of a log (all of it
// if whole). ok is false if buf is too short to tell.
func parseTail(buf []byte, whole bool) (t tail, ok bool, err error) {
	nl := bytes.LastIndexByte(buf, '\n')
	frag := buf[nl+1:]
	if len(frag) > 0 {
		if l, err := parseLine(frag); err == nil {
			return tail{seq: l.Seq, prev: lineHash(frag), unterminated: true}, true, nil
		}
	}
	// Walk the complete lines back to the last intact record.
	end := nl + 1 // buf[:end] ends with a newline, or is empty
	for end > 0 {
		start := bytes.LastIndexByte(buf[:end-1], '\n') + 1
		if start == 0 && !whole {
			return tail{}, false, nil // the line may begin before buf
		}
		ln := buf[start : end-1]
		if l, err := parseLine(ln); err == nil {
			t, err := tornTail(buf[end:])
			t.seq, t.prev = l.Seq, lineHash(ln)
			return t, true, err
		}
		end = start
	}
	if !whole {
		return tail{}, false, nil
	}
	t, err = tornTail(buf)
	t.prev = genesisHash
	return t, true, err
}

// tornTail checks that region, what follows the last intact record, is what
// torn writes leave: nothing, or bytes that end without a newline (lines
// before them are earlier torn bytes, ended by a recovery's newline).
func tornTail(region []byte) (tail, error) {
	switch {
	case len(region) == 0:
		return tail{}, nil
	case region[len(region)-1] == '\n':
		return tail{}, errors.New("the last line is complete but is not an intact record (it was altered, not cut short): run `mailvaultd audit verify` on the log and move it aside")
	case len(region) > maxTornBytes:
		return tail{}, fmt.Errorf("%d bytes after the last intact record: more than a torn write leaves", len(region))
	}
	return tail{torn: bytes.Clone(region)}, nil
}

func marshalLine(l line) ([]byte, error) {
	b, err := json.Marshal(l)
	if err != nil {
		return nil, err
	}
	if len(b)+hashMemberLen > maxLineBytes {
		return nil, fmt.Errorf("line of %d bytes is too long", len(b))
	}
	sum := sha256.Sum256(b)
	out := make([]byte, 0, len(b)+hashMemberLen)
	out = append(out, b[:len(b)-1]...)
	out = append(out, hashMemberPrefix...)
	out = hex.AppendEncode(out, sum[:])
	out = append(out, `"}`...)
	return out, nil
}

func lineHash(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// parseLine checks a line's own hash and decodes it strictly.
func parseLine(b []byte) (line, error) {
	var l line
	if len(b) < hashMemberLen+2 || !bytes.HasSuffix(b, []byte(`"}`)) ||
		!bytes.Equal(b[len(b)-hashMemberLen:len(b)-hashMemberLen+len(hashMemberPrefix)], []byte(hashMemberPrefix)) {
		return l, errors.New("no hash member at the end of the line")
	}
	body := append(append([]byte(nil), b[:len(b)-hashMemberLen]...), '}')
	want := b[len(b)-hashMemberLen+len(hashMemberPrefix) : len(b)-2]
	sum := sha256.Sum256(body)
	if hex.EncodeToString(sum[:]) != string(want) {
		return l, errors.New("the line does not match its own hash (it was altered)")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&l); err != nil {
		return l, fmt.Errorf("not an audit record: %v", err)
	}
	if dec.More() {
		return l, errors.New("trailing data after the record")
	}
	return l, nil
}
