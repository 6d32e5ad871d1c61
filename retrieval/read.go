package retrieval

import (
	"context"
	"io"

	"github.com/mailvault/mailvaultd/archive"
	"github.com/mailvault/mailvaultd/sealed"
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
