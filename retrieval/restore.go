package retrieval

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/mailvault/mailvaultd/access"
	"github.com/mailvault/mailvaultd/archive"
	"github.com/mailvault/mailvaultd/restore"
)

// Restorer re-sends an archived message to one address through the next
// hop (package restore). A nil error with a refusing Reply is the next
// hop's refusal; an error is everything else.
type Restorer interface {
	Restore(ctx context.Context, id, to string) (restore.Reply, error)
}

var _ Restorer = (*restore.Sender)(nil)

// restoreTimeout bounds one restore: the message goes through in full
// before the next hop answers.
const restoreTimeout = 5 * time.Minute

// restoreResponse is the answer of POST /v1/messages/{id}/restore.
type restoreResponse struct {
	To    string        `json:"to"`
	Reply restore.Reply `json:"reply"`
}

// # Restore
//
// POST /v1/messages/{id}/restore {"to": ADDR} (body optional) re-sends the
// message. A reader may send it only to one of their own mailboxes (their
// first if to is empty); an auditor to any address (to is then required).
// The request must come from this origin (a cookie-authenticated POST from
// another site is refused, as sign-out's is) and, if it has a body, carry
// it as application/json, which a cross-site form cannot send.

func (h *handler) apiRestore(w http.ResponseWriter, r *http.Request) {
	ev := h.event(r, access.ActionRestore)
	if !sameOrigin(r) {
		h.record(ev, access.OutcomeDenied, 0)
		writeError(w, http.StatusForbidden, "forbidden")
		return
	}
	var body struct {
		To string `json:"to"`
	}
	r.Body = http.MaxBytesReader(w, r.Body, 4096)
	b, err := io.ReadAll(r.Body)
	if err == nil && len(strings.TrimSpace(string(b))) > 0 {
		if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			err = errors.New("want Content-Type: application/json")
		} else if jerr := json.Unmarshal(b, &body); jerr != nil {
			err = errors.New("body: want {\"to\": ADDRESS}")
		}
	}
	status, res, msg := h.restore(w, r, &ev, body.To, err)
	if status != http.StatusOK && res.Reply.Code == 0 {
		writeError(w, status, msg)
		return
	}
	writeJSON(w, status, res)
}

// restore runs a restore for the caller of r and records ev. status is 200
// if the next hop took the message, 502 with the Reply if it refused it; on
// any other failure res is zero and msg is for the client.
//
// Headers of a failure answer (WWW-Authenticate, Retry-After) go to w.
func (h *handler) restore(w http.ResponseWriter, r *http.Request, ev *access.Event, to string, bodyErr error) (status int, res restoreResponse, msg string) {
	ctx, cancel := context.WithTimeout(r.Context(), restoreTimeout)
	defer cancel()
	// openReadable answers failures itself; collect them instead.
	cw := &capturedError{header: http.Header{}}
	p, m, ok := h.openReadable(ctx, cw, r, ev, nil)
	if !ok {
		for k, vs := range cw.header {
			if k != "Content-Type" && k != "Content-Length" {
				w.Header()[k] = vs
			}
		}
		return cw.status, res, cw.message()
	}
	size := m.Size()
	m.close()
	ev.To = auditString(to)
	if bodyErr != nil {
		h.record(*ev, access.OutcomeBadRequest, 0)
		return http.StatusBadRequest, res, bodyErr.Error()
	}
	to = strings.TrimSpace(to)
	switch {
	case p.role == access.RoleAuditor:
		if to == "" {
			h.record(*ev, access.OutcomeBadRequest, 0)
			return http.StatusBadRequest, res, "to: an auditor must name the address"
		}
		if access.ValidateMailbox(to) != nil || archive.NormalizeAddress(to) == "" {
			h.record(*ev, access.OutcomeBadRequest, 0)
			return http.StatusBadRequest, res, "to: not an address"
		}
	case to == "":
		if len(p.mailboxes) == 0 {
			h.record(*ev, access.OutcomeDenied, 0)
			return http.StatusForbidden, res, "you have no mailbox to restore to"
		}
		to = p.mailboxes[0]
	case access.ValidateMailbox(to) != nil || !p.hasMailbox(archive.NormalizeAddress(to)):
		h.record(*ev, access.OutcomeDenied, 0)
		return http.StatusForbidden, res, "to: a reader may restore only to their own mailboxes"
	default:
		// The mailbox as the users file has it, not as typed.
		to = archive.NormalizeAddress(to)
	}
	ev.To = auditString(to)
	if h.restorer == nil {
		h.record(*ev, access.OutcomeBadRequest, 0)
		return http.StatusNotImplemented, res, "restore is not available: this vault is store-only (no forward.next_hop)"
	}
	reply, err := h.restorer.Restore(ctx, m.id, to)
	res = restoreResponse{To: to, Reply: reply}
	switch {
	case err != nil:
		h.log.Error("retrieval: restore failed", "message_id", m.id, "user", p.name, "to", to, "err", err)
		h.record(*ev, access.OutcomeError, 0)
		if errors.Is(err, archive.ErrNotFound) {
			return http.StatusNotFound, restoreResponse{}, "not found"
		}
		return http.StatusBadGateway, res, "the next hop did not take the message"
	case !reply.OK():
		h.log.Warn("retrieval: next hop refused a restore", "message_id", m.id, "user", p.name, "to", to, "code", reply.Code, "text", reply.Text)
		h.record(*ev, access.OutcomeError, 0)
		return http.StatusBadGateway, res, "the next hop refused the message"
	}
	h.record(*ev, access.OutcomeOK, size)
	return http.StatusOK, res, ""
}

// capturedError is a ResponseWriter that keeps an error answer (status and
// JSON body) instead of sending it.
type capturedError struct {
	header http.Header
	status int
	body   []byte
}

func (c *capturedError) Header() http.Header { return c.header }
func (c *capturedError) WriteHeader(code int) {
	if c.status == 0 {
		c.status = code
	}
}
func (c *capturedError) Write(b []byte) (int, error) {
	if c.status == 0 {
		c.status = http.StatusOK
	}
	c.body = append(c.body, b...)
	return len(b), nil
}

func (c *capturedError) message() string {
	var e struct{ Error string }
	_ = json.Unmarshal(c.body, &e)
	return e.Error
}
