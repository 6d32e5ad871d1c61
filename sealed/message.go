package sealed

import (
	"context"
	"fmt"
	"io"

	"github.com/mailvault/mailvaultd/archive"
	"github.com/mailvault/mailvaultd/sealer"
)

// Message is one archived message whose data key is unwrapped and whose
// manifest is open. Close clears the key. NewReader may be called by several
// goroutines at once (each reader belongs to one), but not during Close.
type Message struct {
	v    *archive.Vault
	id   string
	info archive.ObjectInfo
	meta sealer.Metadata
	dk   *sealer.DataKey
	m    *Manifest
}

// Open reads the metadata of archived message id, unwraps its data key and
// opens its manifest. A message that does not exist (or an id that is not
// archive.ValidID) is an error wrapping archive.ErrNotFound; one that fails
// authentication, or whose context or manifest names another id, an error
// wrapping sealer.ErrDecrypt.
func Open(ctx context.Context, v *archive.Vault, keys sealer.KeyProvider, id string) (*Message, error) {
	info, err := v.Head(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("sealed: head %s: %w", id, err)
	}
	meta, err := sealer.ParseMetadata(info.Metadata)
	if err != nil {
		return nil, fmt.Errorf("sealed: metadata of %s: %w", id, err)
	}
	if got := meta.Context[sealer.ContextArchiveID]; got != id {
		// The key service checks the context too; refusing here keeps one
		// message's object from being served under another id whatever
		// the provider does.
		return nil, fmt.Errorf("sealed: metadata of %s names archive id %q: %w", id, got, sealer.ErrDecrypt)
	}
	dk, err := sealer.Unwrap(ctx, keys, meta)
	if err != nil {
		return nil, fmt.Errorf("sealed: unwrap key of %s: %w", id, err)
	}
	msg := &Message{v: v, id: id, info: info, meta: meta, dk: dk}
	if msg.m, err = msg.openManifest(ctx); err != nil {
		msg.Close()
		return nil, err
	}
	return msg, nil
}

func (msg *Message) openManifest(ctx context.Context) (*Manifest, error) {
	blob, err := msg.v.Manifest(ctx, msg.id)
	if err != nil {
		return nil, fmt.Errorf("sealed: manifest of %s: %w", msg.id, err)
	}
	plain, err := sealer.OpenBlob(msg.dk, msg.meta, purposeManifest, blob)
	if err != nil {
		return nil, fmt.Errorf("sealed: open manifest of %s: %w", msg.id, err)
	}
	m, err := DecodeManifest(plain)
	clear(plain)
	if err != nil {
		return nil, fmt.Errorf("sealed: manifest of %s: %w", msg.id, err)
	}
	if m.ID != msg.id {
		return nil, fmt.Errorf("sealed: manifest of %s names id %q: %w", msg.id, m.ID, sealer.ErrDecrypt)
	}
	return m, nil
}

// OpenManifest opens only the manifest of id, with the checks of Open, and
// clears the key at once: what a listing needs.
func OpenManifest(ctx context.Context, v *archive.Vault, keys sealer.KeyProvider, id string) (*Manifest, error) {
	msg, err := Open(ctx, v, keys, id)
	if err != nil {
		return nil, err
	}
	msg.Close()
	return msg.m, nil
}

// ID returns the archive id.
func (msg *Message) ID() string { return msg.id }

// Manifest returns the opened manifest. The caller must not modify it.
func (msg *Message) Manifest() *Manifest { return msg.m }

// Size returns the plaintext size of the message as recorded in its
// metadata (authenticated by the first NewReader).
func (msg *Message) Size() int64 { return msg.meta.PlaintextSize }

// NewReader returns plaintext bytes [off, off+n) of the message (n < 0: to
// the end), fetching only the chunks that cover them. It fails once the
// Message is closed.
func (msg *Message) NewReader(ctx context.Context, off, n int64) (io.ReadCloser, error) {
	if msg.dk == nil {
		return nil, fmt.Errorf("sealed: read %s: message is closed", msg.id)
	}
	src := func(ctx context.Context, off, n int64) (io.ReadCloser, error) {
		return msg.v.ReadMessage(ctx, msg.id, off, n)
	}
	s, err := sealer.Open(ctx, src, msg.info.Size, msg.meta, msg.dk, purposeMessage)
	if err != nil {
		return nil, fmt.Errorf("sealed: open %s: %w", msg.id, err)
	}
	rc, err := s.NewReader(ctx, off, n)
	if err != nil {
		return nil, fmt.Errorf("sealed: read %s [%d,+%d): %w", msg.id, off, n, err)
	}
	return rc, nil
}

// Close clears the data key. Readers already returned keep working (their
// payload key is derived); new ones cannot be made.
func (msg *Message) Close() {
	if msg.dk != nil {
		msg.dk.Clear()
		msg.dk = nil
	}
}

// Copy writes archived message id, exactly as received, to w and returns
// the bytes written.
func Copy(ctx context.Context, v *archive.Vault, keys sealer.KeyProvider, id string, w io.Writer) (int64, error) {
	msg, err := Open(ctx, v, keys, id)
	if err != nil {
		return 0, err
	}
	defer msg.Close()
	rc, err := msg.NewReader(ctx, 0, -1)
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	n, err := io.Copy(w, rc)
	if err != nil {
		return n, fmt.Errorf("sealed: copy %s: %w", id, err)
	}
	return n, nil
}
