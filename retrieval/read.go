package retrieval

import (
	"context"
	"fmt"
	"io"

	"github.com/mailvault/mailvaultd/archive"
	"github.com/mailvault/mailvaultd/sealer"
)

// maxIDBytes bounds a caller-supplied id before archive.ValidID sees it.
const maxIDBytes = 128

func validID(id string) bool {
	return id != "" && len(id) <= maxIDBytes && archive.ValidID(id)
}

// message is one archived message whose data key is unwrapped and whose
// manifest is open. close clears the key.
type message struct {
	id   string
	info archive.ObjectInfo
	meta sealer.Metadata
	dk   *sealer.DataKey
	m    *archive.Manifest
}

// openMessage reads the metadata of id, unwraps its data key and opens its
// manifest. id must have passed validID.
func (h *handler) openMessage(ctx context.Context, id string) (*message, error) {
	info, err := h.vault.Head(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("head %s: %w", id, err)
	}
	meta, err := sealer.ParseMetadata(info.Metadata)
	if err != nil {
		return nil, fmt.Errorf("metadata of %s: %w", id, err)
	}
	if meta.Context[sealer.ContextArchiveID] != id {
		// The key service checks this too; refusing here keeps one
		// message's object from being served under another id.
		return nil, fmt.Errorf("metadata of %s names archive id %q: %w", id, meta.Context[sealer.ContextArchiveID], sealer.ErrDecrypt)
	}
	dk, err := sealer.Unwrap(ctx, h.keys, meta)
	if err != nil {
		return nil, fmt.Errorf("unwrap key of %s: %w", id, err)
	}
	msg := &message{id: id, info: info, meta: meta, dk: dk}
	blob, err := h.vault.Manifest(ctx, id)
	if err != nil {
		msg.close()
		return nil, fmt.Errorf("manifest of %s: %w", id, err)
	}
	plain, err := sealer.OpenBlob(dk, meta, "manifest", blob)
	if err != nil {
		msg.close()
		return nil, fmt.Errorf("open manifest of %s: %w", id, err)
	}
	m, err := archive.DecodeManifest(plain)
	clear(plain)
	if err != nil {
		msg.close()
		return nil, fmt.Errorf("manifest of %s: %w", id, err)
	}
	if m.ID != id {
		msg.close()
		return nil, fmt.Errorf("manifest of %s names id %q: %w", id, m.ID, sealer.ErrDecrypt)
	}
	msg.m = m
	return msg, nil
}

func (msg *message) close() {
	if msg.dk != nil {
		msg.dk.Clear()
	}
}

// reader returns plaintext bytes [off, off+n) of the message (n < 0: to the
// end), fetching only the chunks that cover them.
func (h *handler) reader(ctx context.Context, msg *message, off, n int64) (io.ReadCloser, error) {
	src := func(ctx context.Context, off, n int64) (io.ReadCloser, error) {
		return h.vault.ReadMessage(ctx, msg.id, off, n)
	}
	s, err := sealer.Open(ctx, src, msg.info.Size, msg.meta, msg.dk, "message")
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", msg.id, err)
	}
	rc, err := s.NewReader(ctx, off, n)
	if err != nil {
		return nil, fmt.Errorf("read %s [%d,+%d): %w", msg.id, off, n, err)
	}
	return rc, nil
}

// CopyMessage writes archived message id, exactly as received, to w and
// returns the bytes written; it is the read path of the API for a caller
// that is not an HTTP client (mailvaultd get), which records the read in the
// audit log itself.
func CopyMessage(ctx context.Context, v *archive.Vault, keys sealer.KeyProvider, id string, w io.Writer) (int64, error) {
	if !validID(id) {
		return 0, fmt.Errorf("retrieval: %q is not an archive id", auditString(id))
	}
	h := &handler{vault: v, keys: keys}
	msg, err := h.openMessage(ctx, id)
	if err != nil {
		return 0, fmt.Errorf("retrieval: %w", err)
	}
	defer msg.close()
	rc, err := h.reader(ctx, msg, 0, -1)
	if err != nil {
		return 0, fmt.Errorf("retrieval: %w", err)
	}
	defer rc.Close()
	n, err := io.Copy(w, rc)
	if err != nil {
		return n, fmt.Errorf("retrieval: copy %s: %w", id, err)
	}
	return n, nil
}
