package retrieval

import (
	"context"
	"fmt"
	"io"

	"github.com/mailvault/mailvaultd/archive"
	"github.com/mailvault/mailvaultd/sealed"
	"github.com/mailvault/mailvaultd/sealer"
)

// maxIDBytes bounds a caller-supplied id before archive.ValidID sees it.
const maxIDBytes = 128

func validID(id string) bool {
	return id != "" && len(id) <= maxIDBytes && archive.ValidID(id)
}

// message is one archived message whose data key is unwrapped and whose
// manifest is open (package sealed does the opening and its checks). close
// clears the key.
type message struct {
	*sealed.Message
	id string
	m  *sealed.Manifest
}

// openMessage opens id: its metadata, data key and manifest. id must have
// passed validID.
func (h *handler) openMessage(ctx context.Context, id string) (*message, error) {
	msg, err := sealed.Open(ctx, h.vault, h.keys, id)
	if err != nil {
		return nil, err
	}
	return &message{Message: msg, id: id, m: msg.Manifest()}, nil
}

func (msg *message) close() { msg.Close() }

// reader returns plaintext bytes [off, off+n) of the message (n < 0: to the
// end), fetching only the chunks that cover them.
func (h *handler) reader(ctx context.Context, msg *message, off, n int64) (io.ReadCloser, error) {
	return msg.NewReader(ctx, off, n)
}

// CopyMessage writes archived message id, exactly as received, to w and
// returns the bytes written; it is the read path of the API for a caller
// that is not an HTTP client (mailvaultd get), which records the read in the
// audit log itself.
func CopyMessage(ctx context.Context, v *archive.Vault, keys sealer.KeyProvider, id string, w io.Writer) (int64, error) {
	if !validID(id) {
		return 0, fmt.Errorf("retrieval: %q is not an archive id", auditString(id))
	}
	n, err := sealed.Copy(ctx, v, keys, id, w)
	if err != nil {
		return n, fmt.Errorf("retrieval: %w", err)
	}
	return n, nil
}
