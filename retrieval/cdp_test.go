package retrieval

// A small Chrome DevTools Protocol client over a hand-written RFC 6455
// websocket client, so that the web page is tested in a real headless
// Chromium without a browser-automation dependency.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// ensureChromium returns the path of a Chromium binary, installing Debian's
// package if there is none.
func ensureChromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Log("installing chromium (apt-get)")
	env := append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	for _, args := range [][]string{
		{"apt-get", "update"},
		{"apt-get", "install", "-y", "--no-install-recommends", "chromium"},
	} {
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	p, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("chromium is not on PATH after installing it")
	}
	return p
}

// browser is a headless Chromium driven over CDP.
type browser struct {
	t    *testing.T
	cmd  *exec.Cmd
	conn *wsConn

	mu      sync.Mutex
	nextID  int64
	pending map[int64]chan cdpMessage
	waiters []*cdpWaiter
	closed  error
}

type cdpMessage struct {
	ID        int64           `json:"id,omitempty"`
	Method    string          `json:"method,omitempty"`
	Params    json.RawMessage `json:"params,omitempty"`
	Result    json.RawMessage `json:"result,omitempty"`
	SessionID string          `json:"sessionId,omitempty"`
	Error     *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error,omitempty"`
}

type cdpWaiter struct {
	method string
	match  func(json.RawMessage) bool
	ch     chan json.RawMessage
}

var devtoolsRE = regexp.MustCompile(`DevTools listening on (ws://\S+)`)

func startBrowser(t *testing.T) *browser {
	t.Helper()
	bin := ensureChromium(t)
	profile := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin,
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-dev-shm-usage", "--user-data-dir="+profile, "--remote-debugging-address=127.0.0.1",
		"--remote-debugging-port=0", "--window-size=1200,900", "about:blank")
	// Chromium forks renderer and helper processes: give them a process
	// group of their own and kill the whole group, or they outlive the
	// test and keep writing into the profile directory.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	wsURL := make(chan string, 1)
	var errLog bytes.Buffer
	var errMu sync.Mutex
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			errMu.Lock()
			errLog.WriteString(sc.Text() + "\n")
			errMu.Unlock()
			if m := devtoolsRE.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case wsURL <- m[1]:
				default:
				}
			}
		}
	}()
	b := &browser{t: t, cmd: cmd, pending: map[int64]chan cdpMessage{}}
	t.Cleanup(func() {
		if b.conn != nil {
			b.conn.Close()
		}
		cancel()
		cmd.Wait()
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // helpers that outlived the parent
		// A helper may still be flushing as it dies: retry the removal for
		// a bounded time so that t.TempDir's own clean-up finds it empty.
		for deadline := time.Now().Add(10 * time.Second); ; {
			if err := os.RemoveAll(profile); err == nil || time.Now().After(deadline) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if t.Failed() {
			errMu.Lock()
			t.Logf("chromium stderr:\n%s", errLog.String())
			errMu.Unlock()
		}
	})
	var u string
	select {
	case u = <-wsURL:
	case <-time.After(30 * time.Second):
		errMu.Lock()
		defer errMu.Unlock()
		t.Fatalf("chromium did not announce its DevTools endpoint:\n%s", errLog.String())
	}
	conn, err := dialWebsocket(u)
	if err != nil {
		t.Fatalf("connecting to %s: %v", u, err)
	}
	b.conn = conn
	go b.readLoop()
	return b
}

func (b *browser) readLoop() {
	for {
		msg, err := b.conn.ReadMessage()
		if err != nil {
			b.mu.Lock()
			b.closed = err
			for id, ch := range b.pending {
				close(ch)
				delete(b.pending, id)
			}
			b.mu.Unlock()
			return
		}
		var m cdpMessage
		if err := json.Unmarshal(msg, &m); err != nil {
			continue
		}
		b.mu.Lock()
		if m.ID != 0 {
			if ch := b.pending[m.ID]; ch != nil {
				ch <- m
				delete(b.pending, m.ID)
			}
		} else if m.Method != "" {
			kept := b.waiters[:0]
			for _, w := range b.waiters {
				if w.method == m.Method && (w.match == nil || w.match(m.Params)) {
					w.ch <- m.Params
					continue
				}
				kept = append(kept, w)
			}
			b.waiters = kept
		}
		b.mu.Unlock()
	}
}

// call sends a command (to a page session if session is set) and returns
// its result.
func (b *browser) call(session, method string, params any) json.RawMessage {
	b.t.Helper()
	res, err := b.try(session, method, params)
	if err != nil {
		b.t.Fatalf("%s: %v", method, err)
	}
	return res
}

func (b *browser) try(session, method string, params any) (json.RawMessage, error) {
	if params == nil {
		params = struct{}{}
	}
	p, err := json.Marshal(params)
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	if b.closed != nil {
		b.mu.Unlock()
		return nil, b.closed
	}
	b.nextID++
	id := b.nextID
	ch := make(chan cdpMessage, 1)
	b.pending[id] = ch
	b.mu.Unlock()
	msg, _ := json.Marshal(cdpMessage{ID: id, Method: method, Params: p, SessionID: session})
	if err := b.conn.WriteMessage(msg); err != nil {
		return nil, err
	}
	select {
	case m, ok := <-ch:
		if !ok {
			return nil, errors.New("connection closed")
		}
		if m.Error != nil {
			return nil, fmt.Errorf("CDP error %d: %s", m.Error.Code, m.Error.Message)
		}
		return m.Result, nil
	case <-time.After(60 * time.Second):
		return nil, errors.New("timed out")
	}
}

// expect registers interest in the next event method (matching match);
// register before doing what triggers it.
func (b *browser) expect(method string, match func(json.RawMessage) bool) <-chan json.RawMessage {
	w := &cdpWaiter{method: method, match: match, ch: make(chan json.RawMessage, 1)}
	b.mu.Lock()
	b.waiters = append(b.waiters, w)
	b.mu.Unlock()
	return w.ch
}

func (b *browser) wait(ch <-chan json.RawMessage, what string) json.RawMessage {
	b.t.Helper()
	select {
	case p := <-ch:
		return p
	case <-time.After(60 * time.Second):
		b.t.Fatalf("timed out waiting for %s", what)
		return nil
	}
}

// page is one tab.
type page struct {
	b       *browser
	session string
}

func (b *browser) newPage() *page {
	var target struct {
		TargetID string `json:"targetId"`
	}
	json.Unmarshal(b.call("", "Target.createTarget", map[string]any{"url": "about:blank"}), &target)
	var attached struct {
		SessionID string `json:"sessionId"`
	}
	json.Unmarshal(b.call("", "Target.attachToTarget", map[string]any{"targetId": target.TargetID, "flatten": true}), &attached)
	p := &page{b: b, session: attached.SessionID}
	p.call("Page.enable", nil)
	p.call("Runtime.enable", nil)
	p.call("Emulation.setDeviceMetricsOverride", map[string]any{"width": 1200, "height": 900, "deviceScaleFactor": 1, "mobile": false})
	return p
}

func (p *page) call(method string, params any) json.RawMessage {
	p.b.t.Helper()
	return p.b.call(p.session, method, params)
}

// loaded returns a channel for the next load of this page.
func (p *page) loaded() <-chan json.RawMessage {
	return p.b.expect("Page.loadEventFired", nil)
}

func (p *page) navigate(u string) {
	p.b.t.Helper()
	done := p.loaded()
	p.call("Page.navigate", map[string]any{"url": u})
	p.b.wait(done, "load of "+u)
}

// eval evaluates a JavaScript expression in the page and returns its value
// as JSON. DevTools evaluation is not subject to the page's CSP, which
// forbids every script of the page's own.
func (p *page) eval(expr string) json.RawMessage {
	p.b.t.Helper()
	var res struct {
		Result struct {
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		ExceptionDetails *struct {
			Text string `json:"text"`
		} `json:"exceptionDetails"`
	}
	json.Unmarshal(p.call("Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true}), &res)
	if res.ExceptionDetails != nil {
		p.b.t.Fatalf("evaluating %s: %s", expr, res.ExceptionDetails.Text)
	}
	return res.Result.Value
}

func (p *page) evalString(expr string) string {
	p.b.t.Helper()
	var s string
	json.Unmarshal(p.eval(expr), &s)
	return s
}

// evalAndLoad evaluates expr (a click, a submit) and waits for the page
// load it causes.
func (p *page) evalAndLoad(expr string) {
	p.b.t.Helper()
	done := p.loaded()
	p.eval(expr)
	p.b.wait(done, "the load after "+expr)
}

func (p *page) screenshot(path string) {
	p.b.t.Helper()
	var res struct {
		Data string `json:"data"`
	}
	json.Unmarshal(p.call("Page.captureScreenshot", map[string]any{"format": "png"}), &res)
	png, err := base64.StdEncoding.DecodeString(res.Data)
	if err != nil || len(png) < 1000 {
		p.b.t.Fatalf("screenshot: %d bytes, %v", len(png), err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		p.b.t.Fatal(err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		p.b.t.Fatal(err)
	}
}

// download clicks the element matched by selector and waits for the
// download it starts; it returns the downloaded file's bytes and the name
// the browser chose.
func (b *browser) download(p *page, dir, selector string) ([]byte, string) {
	b.t.Helper()
	begin := b.expect("Browser.downloadWillBegin", nil)
	p.eval(`document.querySelector(` + jsString(selector) + `).click()`)
	var wb struct {
		GUID              string `json:"guid"`
		SuggestedFilename string `json:"suggestedFilename"`
	}
	json.Unmarshal(b.wait(begin, "download of "+selector), &wb)
	done := b.expect("Browser.downloadProgress", func(raw json.RawMessage) bool {
		var pr struct {
			GUID  string `json:"guid"`
			State string `json:"state"`
		}
		json.Unmarshal(raw, &pr)
		return pr.GUID == wb.GUID && pr.State != "inProgress"
	})
	var pr struct {
		State string `json:"state"`
	}
	json.Unmarshal(b.wait(done, "completion of "+selector), &pr)
	if pr.State != "completed" {
		b.t.Fatalf("download of %s: %s", selector, pr.State)
	}
	data, err := os.ReadFile(filepath.Join(dir, wb.GUID))
	if err != nil {
		b.t.Fatal(err)
	}
	return data, wb.SuggestedFilename
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// # Websocket (RFC 6455), client side, enough for CDP

type wsConn struct {
	c  net.Conn
	br *bufio.Reader
	wm sync.Mutex
}

func dialWebsocket(rawURL string) (*wsConn, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	c, err := net.DialTimeout("tcp", u.Host, 10*time.Second)
	if err != nil {
		return nil, err
	}
	key := make([]byte, 16)
	rand.Read(key)
	req := "GET " + u.RequestURI() + " HTTP/1.1\r\nHost: " + u.Host + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: " + base64.StdEncoding.EncodeToString(key) + "\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if _, err := c.Write([]byte(req)); err != nil {
		c.Close()
		return nil, err
	}
	br := bufio.NewReaderSize(c, 1<<16)
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		c.Close()
		return nil, err
	}
	if res.StatusCode != http.StatusSwitchingProtocols {
		c.Close()
		return nil, fmt.Errorf("websocket handshake: %s", res.Status)
	}
	return &wsConn{c: c, br: br}, nil
}

func (w *wsConn) Close() error { return w.c.Close() }

// WriteMessage sends one masked text frame.
func (w *wsConn) WriteMessage(p []byte) error {
	w.wm.Lock()
	defer w.wm.Unlock()
	return w.writeFrame(0x1, p)
}

func (w *wsConn) writeFrame(opcode byte, p []byte) error {
	hdr := []byte{0x80 | opcode}
	switch n := len(p); {
	case n < 126:
		hdr = append(hdr, 0x80|byte(n))
	case n <= 0xffff:
		hdr = append(hdr, 0x80|126, byte(n>>8), byte(n))
	default:
		hdr = append(hdr, 0x80|127)
		hdr = binary.BigEndian.AppendUint64(hdr, uint64(n))
	}
	mask := make([]byte, 4)
	rand.Read(mask)
	hdr = append(hdr, mask...)
	body := make([]byte, len(p))
	for i := range p {
		body[i] = p[i] ^ mask[i%4]
	}
	_, err := w.c.Write(append(hdr, body...))
	return err
}

// ReadMessage returns the next text or binary message, reassembling
// fragments and answering pings.
func (w *wsConn) ReadMessage() ([]byte, error) {
	var msg []byte
	for {
		var h [2]byte
		if _, err := io.ReadFull(w.br, h[:]); err != nil {
			return nil, err
		}
		fin, opcode := h[0]&0x80 != 0, h[0]&0x0f
		n := int64(h[1] & 0x7f)
		switch n {
		case 126:
			var l [2]byte
			if _, err := io.ReadFull(w.br, l[:]); err != nil {
				return nil, err
			}
			n = int64(binary.BigEndian.Uint16(l[:]))
		case 127:
			var l [8]byte
			if _, err := io.ReadFull(w.br, l[:]); err != nil {
				return nil, err
			}
			n = int64(binary.BigEndian.Uint64(l[:]))
		}
		var mask [4]byte
		if h[1]&0x80 != 0 {
			if _, err := io.ReadFull(w.br, mask[:]); err != nil {
				return nil, err
			}
		}
		if n > 256<<20 {
			return nil, fmt.Errorf("websocket frame of %d bytes", n)
		}
		payload := make([]byte, n)
		if _, err := io.ReadFull(w.br, payload); err != nil {
			return nil, err
		}
		if h[1]&0x80 != 0 {
			for i := range payload {
				payload[i] ^= mask[i%4]
			}
		}
		switch opcode {
		case 0x8:
			return nil, io.EOF
		case 0x9:
			w.wm.Lock()
			err := w.writeFrame(0xA, payload)
			w.wm.Unlock()
			if err != nil {
				return nil, err
			}
			continue
		case 0xA:
			continue
		}
		msg = append(msg, payload...)
		if fin {
			return msg, nil
		}
	}
}
