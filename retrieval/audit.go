package retrieval

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Audit actions.
const (
	ActionList     = "list"
	ActionManifest = "manifest"
	ActionRaw      = "raw"
	ActionPart     = "part"
	ActionView     = "view"   // the web page's message view (manifest and text body)
	ActionSignIn   = "signin" // a failed or throttled sign-in or token
)

// Audit outcomes.
const (
	OutcomeOK              = "ok"
	OutcomeDenied          = "denied"          // authenticated, not allowed: answered 404 (403 for a mailbox)
	OutcomeNotFound        = "not_found"       // no such message or part
	OutcomeUnauthenticated = "unauthenticated" // no token or a bad one: 401
	OutcomeThrottled       = "throttled"       // too many failures from the address: 429
	OutcomeBadRequest      = "bad_request"     // a malformed id, part number or query: 400
	OutcomeError           = "error"           // an internal failure (500), or the stream broke off
)

// AuditEvent is one line of the audit log.
type AuditEvent struct {
	Time      time.Time `json:"time"`
	User      string    `json:"user"`
	Role      Role      `json:"role"`
	Action    string    `json:"action"`
	MessageID string    `json:"message_id,omitempty"`
	Part      *int      `json:"part,omitempty"`
	Mailbox   string    `json:"mailbox,omitempty"`
	Bytes     int64     `json:"bytes"` // plaintext bytes served
	Remote    string    `json:"remote"`
	Outcome   string    `json:"outcome"`
}

// auditLine is AuditEvent as written: the event between its sequence number
// and the hash of the previous line. The line's own hash follows as the last
// member, computed over the line without it.
type auditLine struct {
	Seq int64 `json:"seq"`
	AuditEvent
	Prev string `json:"prev"`
}

const (
	maxAuditLineBytes = 64 << 10
	hashMemberPrefix  = `,"hash":"`
	hashMemberLen     = len(hashMemberPrefix) + 2*sha256.Size + len(`"}`)
)

// genesisHash is the "previous line" hash of the first line of a log.
var genesisHash = strings.Repeat("0", 2*sha256.Size)

// AuditLog is an append-only, hash-chained JSON-lines file.
//
// Every Record is one write(2) of one whole line to a file opened with
// O_APPEND, followed by fsync: a line that Record returned for is on disk.
// After a failed write the log refuses further records (Err reports why), and
// the handler stops decrypting, so no read goes unrecorded.
type AuditLog struct {
	mu   sync.Mutex
	f    *os.File
	seq  int64
	prev string
	err  error
	now  func() time.Time
}

// OpenAuditLog opens (or creates, mode 0600, in a directory created with mode
// 0700) the audit log at path and continues the chain from its last line.
// A log whose last line is incomplete or fails its own hash is not appended
// to: run VerifyAuditLog on it and move it aside.
func OpenAuditLog(path string) (*AuditLog, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("retrieval: audit log: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("retrieval: audit log: %w", err)
	}
	a := &AuditLog{f: f, prev: genesisHash, now: time.Now}
	if err := a.continueChain(); err != nil {
		f.Close()
		return nil, fmt.Errorf("retrieval: audit log %s: %w", path, err)
	}
	return a, nil
}

// continueChain reads the last line of the file, if any.
func (a *AuditLog) continueChain() error {
	st, err := a.f.Stat()
	if err != nil {
		return err
	}
	size := st.Size()
	if size == 0 {
		return nil
	}
	n := min(size, int64(maxAuditLineBytes+1))
	buf := make([]byte, n)
	if _, err := a.f.ReadAt(buf, size-n); err != nil {
		return err
	}
	if buf[len(buf)-1] != '\n' {
		return errors.New("the last line is incomplete (no newline)")
	}
	buf = buf[:len(buf)-1]
	i := bytes.LastIndexByte(buf, '\n')
	if i < 0 && n == size {
		i = -1
	} else if i < 0 {
		return fmt.Errorf("the last line is longer than %d bytes", maxAuditLineBytes)
	}
	last := buf[i+1:]
	l, err := parseAuditLine(last)
	if err != nil {
		return fmt.Errorf("the last line: %w", err)
	}
	a.seq = l.Seq
	a.prev = lineHash(last)
	return nil
}

// Record appends e as one line. A zero Time is set to now.
func (a *AuditLog) Record(e AuditEvent) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.err != nil {
		return a.err
	}
	if e.Time.IsZero() {
		e.Time = a.now()
	}
	e.Time = e.Time.UTC()
	l := auditLine{Seq: a.seq + 1, AuditEvent: e, Prev: a.prev}
	line, err := marshalAuditLine(l)
	if err != nil {
		return fmt.Errorf("retrieval: audit: %w", err)
	}
	if _, err := a.f.Write(append(line, '\n')); err != nil {
		a.err = fmt.Errorf("retrieval: audit: write: %w", err)
		return a.err
	}
	if err := a.f.Sync(); err != nil {
		a.err = fmt.Errorf("retrieval: audit: sync: %w", err)
		return a.err
	}
	a.seq++
	a.prev = lineHash(line)
	return nil
}

// Err reports why the log refuses records, or nil.
func (a *AuditLog) Err() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.err
}

// Close closes the file; later records fail.
func (a *AuditLog) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.err == nil {
		a.err = errors.New("retrieval: audit: log closed")
	}
	return a.f.Close()
}

func marshalAuditLine(l auditLine) ([]byte, error) {
	b, err := json.Marshal(l)
	if err != nil {
		return nil, err
	}
	if len(b)+hashMemberLen > maxAuditLineBytes {
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

func lineHash(line []byte) string {
	sum := sha256.Sum256(line)
	return hex.EncodeToString(sum[:])
}

// parseAuditLine checks a line's own hash and decodes it strictly.
func parseAuditLine(line []byte) (auditLine, error) {
	var l auditLine
	if len(line) < hashMemberLen+2 || !bytes.HasSuffix(line, []byte(`"}`)) ||
		!bytes.Equal(line[len(line)-hashMemberLen:len(line)-hashMemberLen+len(hashMemberPrefix)], []byte(hashMemberPrefix)) {
		return l, errors.New("no hash member at the end of the line")
	}
	body := append(append([]byte(nil), line[:len(line)-hashMemberLen]...), '}')
	want := line[len(line)-hashMemberLen+len(hashMemberPrefix) : len(line)-2]
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

// AuditChainError names the first line of an audit log that fails a check.
type AuditChainError struct {
	Line   int // 1-based
	Reason string
}

func (e *AuditChainError) Error() string {
	return fmt.Sprintf("audit log broken at line %d: %s", e.Line, e.Reason)
}

// VerifyAuditLog checks a whole audit log: every line is a complete record
// that matches its own hash, carries the next sequence number, and carries the
// SHA-256 of the line before it (all zeros for the first). It returns the
// number of lines that passed and, for the first line that does not, an
// *AuditChainError naming it. A deleted last line cannot be told from a log
// that ended there; compare the count or the last hash with a copy kept
// elsewhere for that.
func VerifyAuditLog(r io.Reader) (lines int, err error) {
	br := bufio.NewReaderSize(r, 64<<10)
	prev := genesisHash
	var seq int64
	for {
		line, err := readAuditLine(br)
		if err == io.EOF {
			return lines, nil
		}
		n := lines + 1
		if err != nil {
			var ce *AuditChainError
			if errors.As(err, &ce) {
				ce.Line = n
				return lines, ce
			}
			return lines, fmt.Errorf("audit log: reading line %d: %w", n, err)
		}
		l, perr := parseAuditLine(line)
		if perr != nil {
			return lines, &AuditChainError{Line: n, Reason: perr.Error()}
		}
		if l.Seq != seq+1 {
			return lines, &AuditChainError{Line: n, Reason: fmt.Sprintf("sequence number %d, want %d (a line before it was removed or inserted)", l.Seq, seq+1)}
		}
		if l.Prev != prev {
			what := "the line before it was altered, removed or inserted"
			if n == 1 {
				what = "the first line is not the start of a chain (lines before it were removed)"
			}
			return lines, &AuditChainError{Line: n, Reason: "prev does not match the hash of the line before: " + what}
		}
		seq = l.Seq
		prev = lineHash(line)
		lines = n
	}
}

// readAuditLine returns the next line without its newline, io.EOF at a clean
// end, and an *AuditChainError (line number unset) for a torn or over-long
// line.
func readAuditLine(br *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		frag, err := br.ReadSlice('\n')
		line = append(line, frag...)
		if len(line) > maxAuditLineBytes+1 {
			return nil, &AuditChainError{Reason: fmt.Sprintf("longer than %d bytes", maxAuditLineBytes)}
		}
		if err == nil {
			return line[:len(line)-1], nil
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err == io.EOF {
			if len(line) == 0 {
				return nil, io.EOF
			}
			return nil, &AuditChainError{Reason: "incomplete last line (no newline)"}
		}
		return nil, err
	}
}
