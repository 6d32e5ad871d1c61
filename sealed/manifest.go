package sealed

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/mailvault/mailvaultd/partmap"
)

// ManifestVersion is the version of the manifest encoding.
const ManifestVersion = 1

// maxManifestBytes bounds a decoded manifest (1000 parts with long names fit
// well inside it). archive.Vault reads a sealed manifest of at most this much
// plus sealing overhead; the two bounds are kept together by a test.
const maxManifestBytes = 16 << 20

// Manifest describes one archived message: its envelope, a summary of its
// header and its part map. It is stored sealed under the message's data key
// (purpose "manifest"), so the archive holds it only as ciphertext.
type Manifest struct {
	Version    int            `json:"v"`
	ID         string         `json:"id"`
	ReceivedAt time.Time      `json:"received_at"`
	From       string         `json:"from"` // envelope sender, "" for the null sender
	To         []string       `json:"to"`   // envelope recipients
	Size       int64          `json:"size"` // bytes as received
	Header     partmap.Header `json:"header"`
	Parts      []partmap.Part `json:"parts"`
	Broken     string         `json:"broken,omitempty"`
}

// EncodeManifest renders m for sealing.
func EncodeManifest(m *Manifest) ([]byte, error) {
	m.Version = ManifestVersion
	return json.Marshal(m)
}

// DecodeManifest parses an opened manifest.
func DecodeManifest(b []byte) (*Manifest, error) {
	if len(b) > maxManifestBytes {
		return nil, fmt.Errorf("sealed: manifest of %d bytes exceeds %d", len(b), maxManifestBytes)
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("sealed: decode manifest: %w", err)
	}
	if m.Version != ManifestVersion {
		return nil, fmt.Errorf("sealed: manifest version %d not supported", m.Version)
	}
	if m.Size < 0 {
		return nil, fmt.Errorf("sealed: manifest size %d is negative", m.Size)
	}
	for i, p := range m.Parts {
		if p.Offset < 0 || p.Length < 0 || p.Offset > m.Size || p.Length > m.Size-p.Offset {
			return nil, fmt.Errorf("sealed: manifest part %d range [%d,+%d) outside the message", i, p.Offset, p.Length)
		}
	}
	return &m, nil
}
