package smtpd

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"
)

// The wire layer sits between the socket and go-smtp (v0.25.1, which we do
// not patch) and mends, from our side, what go-smtp gets wrong on the wire:
//
//   - It reads DATA itself, by RFC 5321 (4.1.1.4, 4.5.2): go-smtp's reader
//     archives ".\rB" as "B" (it drops the CR after a leading dot) and never
//     ends a message whose last line ends in a bare CR ("x\r\r\n.\r\n"), as
//     after CR CR LF it no longer knows it is at the start of a line. The
//     content it decodes is handed on re-encoded so that go-smtp's reader
//     decodes exactly that content (see dataDecoder).
//   - It refuses BDAT (go-smtp advertises CHUNKING unconditionally, and an
//     abandoned BDAT transaction's result can leak into the next one).
//   - It rewrites go-smtp's own reply texts into ours (replies.go).
//
// It can tell commands from message content because it hands go-smtp one
// command line per Read: go-smtp handles a command and writes its reply
// before it reads again, so when go-smtp next reads, the reply it wrote
// (354, or anything else) says whether what follows is content. Message
// content is handed on up to its end-of-data line and no further.

// wireState is what the next bytes from the client are.
type wireState int

const (
	stCommand     wireState = iota // command lines
	stData                         // message content, after a 354
	stDataRefused                  // content ended in a form go-smtp cannot take; its reply is ours
	stBroken                       // go-smtp left DATA before its end: nothing more is read
)

// Errors the wire layer hands go-smtp's reader.
var (
	errBareCREnd  = errors.New("smtpd: message has a line ending in a bare CR before its end-of-data line")
	errWireBroken = errors.New("smtpd: DATA abandoned before its end; closing")
)

// replyBareCREnd answers the DATA of a message whose last line ends in a
// bare CR ("x<CR><CR><LF>.<CR><LF>"): go-smtp's reader cannot be made to
// take it byte for byte, and the archive stores nothing else. RFC 5321
// 2.3.8 forbids bare CR in content; Postfix never sends one.
const replyBareCREnd = "550 5.6.0 Message refused: its last line ends in a bare CR; send CRLF line endings"

// replyBDATRefused answers BDAT, which is not offered.
const replyBDATRefused = "503 5.5.1 BDAT not offered\r\n"

// wireBufSize is the read buffer of one session: one command line or one
// piece of message content at a time.
const wireBufSize = 16 << 10

// maxReplyLine bounds a partial reply line held while waiting for its end;
// go-smtp writes each line whole, so this only guards the pathological.
const maxReplyLine = 128 << 10

// readerFunc is a Read method as an io.Reader.
type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

// wire is one session's connection as go-smtp reads and writes it.
type wire struct {
	sock         net.Conn
	hostname     string
	writeTimeout time.Duration
	log          *slog.Logger
	in           *bufio.Reader // over the socket (with slotConn's timeout handling)

	// Read side; only go-smtp's connection goroutine reads.
	pending []byte // bytes for go-smtp not yet handed out
	rerr    error  // an error to hand out after pending
	midLine bool   // pending ends inside a command line
	dec     dataDecoder
	out     []byte

	mu    sync.Mutex // state and the socket's write side
	state wireState
	wbuf  []byte // a reply line not yet complete
}

func newWire(sock net.Conn, raw io.Reader, hostname string, writeTimeout time.Duration, log *slog.Logger) *wire {
	return &wire{sock: sock, hostname: hostname, writeTimeout: writeTimeout, log: log,
		in: bufio.NewReaderSize(raw, wireBufSize)}
}

func (w *wire) getState() wireState {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.state
}

// Read hands go-smtp the next command line, or the next piece of message
// content, never more.
func (w *wire) Read(p []byte) (int, error) {
	for {
		if len(w.pending) > 0 {
			n := copy(p, w.pending)
			w.pending = w.pending[n:]
			return n, nil
		}
		if w.rerr != nil {
			err := w.rerr
			w.rerr = nil
			return 0, err
		}
		switch w.getState() {
		case stCommand:
			if err := w.nextLine(); err != nil {
				return 0, err
			}
		case stData:
			if err := w.nextContent(); err != nil {
				return 0, err
			}
		case stDataRefused:
			return 0, errBareCREnd
		default:
			return 0, errWireBroken
		}
	}
}

// nextLine queues the next command line (or the next piece of one longer
// than the buffer), answering and dropping BDAT.
func (w *wire) nextLine() error {
	line, err := w.in.ReadSlice('\n')
	if len(line) == 0 {
		return err
	}
	switch {
	case err == io.EOF:
		w.rerr = err // a last line without its end is handed on: go-smtp runs it
	case err != nil && err != bufio.ErrBufferFull:
		return err // a line cut short by a timeout or a reset is not a command
	}
	startOfLine := !w.midLine
	w.midLine = err == bufio.ErrBufferFull
	if startOfLine && bdatVerb(line) {
		return w.refuseBDAT(line)
	}
	w.pending = line
	return nil
}

// refuseBDAT answers a BDAT command 503 after reading past its chunk (RFC
// 3030: the chunk follows the command even when the command fails), so
// that chunk bytes are never taken for commands. A command whose size
// cannot be read has no chunk we could find; what follows is read as
// commands, as after any other malformed command.
func (w *wire) refuseBDAT(line []byte) error {
	size := int64(-1)
	if w.midLine {
		// Far too long to be a valid BDAT: skip the rest of the line.
		for w.midLine {
			rest, err := w.in.ReadSlice('\n')
			w.midLine = err == bufio.ErrBufferFull
			if err != nil && err != bufio.ErrBufferFull {
				if len(rest) == 0 {
					return err
				}
				w.rerr = err
			}
		}
	} else if args := bytes.Fields(bytes.TrimRight(line, "\r\n")[4:]); len(args) == 1 || len(args) == 2 && bytes.EqualFold(args[1], []byte("LAST")) {
		if n, err := strconv.ParseUint(string(args[0]), 10, 32); err == nil {
			size = int64(n)
		}
	}
	if size > 0 && w.rerr == nil {
		if _, err := io.CopyN(io.Discard, w.in, size); err != nil {
			return err
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.sock.SetWriteDeadline(time.Now().Add(w.writeTimeout))
	_, err := io.WriteString(w.sock, replyBDATRefused)
	return err
}

// nextContent decodes what is buffered of the message (at least one byte)
// and queues it, re-encoded for go-smtp, up to the end-of-data line.
func (w *wire) nextContent() error {
	if _, err := w.in.Peek(1); err != nil {
		return err
	}
	buf, _ := w.in.Peek(w.in.Buffered())
	out, used, end := w.dec.decode(w.out[:0], buf)
	w.in.Discard(used)
	w.out = out
	w.pending = out
	if end {
		w.mu.Lock()
		if w.dec.g == gBegin {
			w.pending = append(w.pending, ".\r\n"...)
			w.state = stCommand
		} else {
			// Handing go-smtp its end-of-data line here would not end
			// the message for its reader: refuse the message instead.
			w.state = stDataRefused
			w.rerr = errBareCREnd
		}
		w.mu.Unlock()
		w.dec = dataDecoder{}
	}
	return nil
}

// Write rewrites go-smtp's reply lines (replies.go) and follows what they
// say about the state: 354 starts message content.
func (w *wire) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.wbuf = append(w.wbuf, p...)
	var out []byte
	for {
		i := bytes.IndexByte(w.wbuf, '\n')
		if i < 0 {
			break
		}
		line := bytes.TrimSuffix(w.wbuf[:i], []byte("\r"))
		out = w.reply(out, line)
		w.wbuf = w.wbuf[i+1:]
	}
	if len(w.wbuf) > maxReplyLine {
		out = append(out, w.wbuf...)
		w.wbuf = w.wbuf[:0]
	}
	if len(w.wbuf) == 0 {
		w.wbuf = nil
	}
	if len(out) == 0 {
		return len(p), nil
	}
	if _, err := w.sock.Write(out); err != nil {
		return 0, err
	}
	return len(p), nil
}

// reply appends what goes out for one line go-smtp wrote; w.mu is held.
func (w *wire) reply(out, line []byte) []byte {
	code, final := finalReply(line)
	switch {
	case !final:
	case code == "354":
		w.state = stData
		w.dec = dataDecoder{}
	case w.state == stDataRefused:
		// go-smtp's answer to the DATA we cut short: ours says why.
		w.state = stCommand
		w.log.Warn("message refused: its last line ends in a bare CR", "remote", w.sock.RemoteAddr().String())
		return append(append(out, replyBareCREnd...), '\r', '\n')
	case w.state == stData:
		// go-smtp answered the DATA before its end-of-data line (a line
		// over the limit, say): nobody knows where the client is in its
		// stream, so no byte more is read as a command.
		w.state = stBroken
	}
	if r := rewriteReply(line, w.hostname); r != nil {
		out = append(append(out, r...), '\r', '\n')
	}
	return out
}

// States of go-smtp's DATA reader as far as the bytes we hand it drive it
// (it is never left after a leading dot: we only ever give it "..").
const (
	gBegin = iota // at the start of a line
	gCR           // after a CR
	gData         // inside a line
)

// States of the RFC 5321 reader.
const (
	dBegin = iota // at the start of a line (after CRLF)
	dDot          // after a leading "."
	dDotCR        // after a leading ".", CR
	dCR           // after a CR
	dData         // inside a line
)

// dataDecoder reads message content by RFC 5321 alone: lines end in CRLF;
// the line "." ends the data; a leading "." of any other line is removed.
// Every content byte is then encoded for go-smtp's reader so that it
// decodes that same byte: a "." at what go-smtp takes for the start of a
// line is doubled, anything else goes as it is. (go-smtp's idea of the start
// of a line can differ from RFC 5321's after a bare CR; only where that
// matters is a dot stuffed.) Every content can be encoded so; only the end
// cannot when go-smtp does not think it is at the start of a line (the
// content ends in CR CR LF, with go-smtp's reader inside a line).
type dataDecoder struct {
	d int // RFC 5321 reader state
	g int // go-smtp reader state
}

// decode appends to out the encoding of the content in in, stopping after
// an end-of-data line (end). It returns how many bytes of in it used.
func (dec *dataDecoder) decode(out, in []byte) (_ []byte, used int, end bool) {
	i := 0
	for i < len(in) {
		if dec.d == dData && dec.g == gData {
			// Inside a line for both readers, only a CR matters.
			j := bytes.IndexByte(in[i:], '\r')
			if j < 0 {
				return append(out, in[i:]...), len(in), false
			}
			out = append(out, in[i:i+j]...)
			i += j
		}
		c := in[i]
		i++
		switch dec.d {
		case dBegin:
			switch c {
			case '.':
				dec.d = dDot
			case '\r':
				out, dec.d = dec.emit(out, c), dCR
			default:
				out, dec.d = dec.emit(out, c), dData
			}
		case dDot:
			if c == '\r' {
				dec.d = dDotCR
			} else {
				out, dec.d = dec.emit(out, c), dData
			}
		case dDotCR:
			if c == '\n' {
				return out, i, true
			}
			out = dec.emit(out, '\r')
			out = dec.emit(out, c)
			dec.d = dData
			if c == '\r' {
				dec.d = dCR
			}
		case dCR:
			out = dec.emit(out, c)
			switch c {
			case '\n':
				dec.d = dBegin
			case '\r':
				dec.d = dCR
			default:
				dec.d = dData
			}
		default: // dData
			out = dec.emit(out, c)
			if c == '\r' {
				dec.d = dCR
			}
		}
	}
	return out, i, false
}

// emit appends content byte c encoded for go-smtp's reader and moves that
// reader's state as the bytes appended move it.
func (dec *dataDecoder) emit(out []byte, c byte) []byte {
	switch dec.g {
	case gBegin:
		if c == '.' {
			dec.g = gData
			return append(out, '.', '.')
		}
		dec.g = gData
		if c == '\r' {
			dec.g = gCR
		}
	case gCR:
		dec.g = gData
		if c == '\n' {
			dec.g = gBegin
		}
	default:
		if c == '\r' {
			dec.g = gCR
		}
	}
	return append(out, c)
}
