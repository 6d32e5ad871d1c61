package retrieval

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/mailvault/mailvaultd/access"
	"github.com/mailvault/mailvaultd/archive"
	"github.com/mailvault/mailvaultd/export"
)

// # Export
//
// GET /v1/export?q=&format=mbox|zip (and the list's mailbox, since, until)
// streams every message the caller may read that the listing holds. The ids
// are collected first (at most export.MaxMessages, else 413 before a byte
// is sent); then each message is opened, checked against the caller again
// and streamed, one audit record (action export) per message. Should a
// message fail half-way, the connection is dropped so that a short export
// is never taken for a whole one.

// exportMaxDuration bounds one export; the write deadline moves on with
// every message.
const exportMaxDuration = 2 * time.Hour

func (h *handler) apiExport(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), exportMaxDuration)
	defer cancel()
	ev := h.event(r, access.ActionExport)
	p, ok := h.authenticate(w, r, &ev)
	if !ok {
		return
	}
	v := r.URL.Query()
	ev.Mailbox = auditString(v.Get("mailbox"))
	ev.Query = auditQuery(v.Get("q"))
	format, err := export.ParseFormat(v.Get("format"))
	if v.Get("format") == "" {
		format, err = export.Mbox, nil
	}
	if err != nil || len(v["format"]) > 1 {
		h.record(ev, access.OutcomeBadRequest, 0)
		writeError(w, http.StatusBadRequest, "format: want mbox or zip")
		return
	}
	v.Del("format")
	q, err := h.parseListQuery(v)
	if err != nil {
		h.record(ev, access.OutcomeBadRequest, 0)
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if !mailboxesFor(p, v.Get("mailbox"), &q) {
		h.record(ev, access.OutcomeDenied, 0)
		writeError(w, http.StatusForbidden, "mailbox not permitted")
		return
	}
	if !h.auditReady(w) {
		return
	}
	listCtx, listCancel := context.WithTimeout(ctx, requestTimeout)
	ids, err := export.Collect(listCtx, h.lister, q, h.maxExport, p.mayRead)
	if errors.Is(err, export.ErrTooMany) {
		listCancel()
		h.record(ev, access.OutcomeBadRequest, 0)
		writeError(w, http.StatusRequestEntityTooLarge, strings.TrimPrefix(err.Error(), "export: "))
		return
	}
	if status, msg, failed := h.listFailed(listCtx, p, &ev, err); failed {
		listCancel()
		writeError(w, status, msg)
		return
	}
	listCancel()
	setDownloadHeaders(w, format.ContentType(), "mailvaultd-export."+string(format))
	w.Header().Set("X-Mailvaultd-Messages", strconv.Itoa(len(ids)))
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	ew := export.NewWriter(&deadlineWriter{w: w, rc: rc}, format)
	src := export.Source{Vault: h.vault, Keys: h.keys}
	err = src.Each(ctx, ew, ids, p.mayRead, func(id string, n int64, err error) error {
		e := ev
		e.MessageID = id
		switch {
		case err == nil:
			h.record(e, access.OutcomeOK, n)
		case errors.Is(err, export.ErrNotReadable):
			h.log.Warn("retrieval: listed message not readable by its mailbox owner; left out of the export", "message_id", id, "user", p.name)
			h.record(e, access.OutcomeDenied, 0)
		case errors.Is(err, archive.ErrNotFound):
			h.record(e, access.OutcomeNotFound, 0)
		default:
			h.log.Error("retrieval: export broke off", "message_id", id, "user", p.name, "bytes", n, "err", err)
			h.record(e, access.OutcomeError, n)
		}
		// No message is decrypted that cannot be recorded.
		return h.audit.Err()
	})
	if err == nil {
		err = ew.Close()
	}
	if err != nil {
		panic(http.ErrAbortHandler)
	}
}

// deadlineWriter moves the write deadline on with every write, so that a
// long export stalls out only if the client stops reading.
type deadlineWriter struct {
	w  http.ResponseWriter
	rc *http.ResponseController
}

func (d *deadlineWriter) Write(b []byte) (int, error) {
	_ = d.rc.SetWriteDeadline(time.Now().Add(streamWriteStall))
	return d.w.Write(b)
}

// retrieval's lister is what an export pages through.
var _ export.Lister = Lister(nil)
