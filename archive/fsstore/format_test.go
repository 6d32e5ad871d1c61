package fsstore_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"io"
	"maps"
	"os"
	"path/filepath"
	"testing"

	"github.com/mailvault/mailvaultd/archive/fsstore"
)

// The object file layout as docs/FORMAT.md §12 gives it, written out here
// independently of fsstore.go so that a change to either shows:
//
//	object bytes || metadata JSON || u64 big-endian len(metadata JSON) || "mvobj\x00v1"
//
// stored at <dir>/objects/<key>~.
const docMagic = "\x6d\x76\x6f\x62\x6a\x00\x76\x31" // "mvobj\x00v1"

func docObjectFile(t *testing.T, data []byte, meta map[string]string) []byte {
	t.Helper()
	mj, err := json.Marshal(meta)
	if err != nil {
		t.Fatal(err)
	}
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(mj)))
	return bytes.Join([][]byte{data, mj, n[:], []byte(docMagic)}, nil)
}

// docParse splits a file by the documented layout.
func docParse(t *testing.T, file []byte) (data []byte, meta map[string]string) {
	t.Helper()
	if len(file) < 16 {
		t.Fatalf("file of %d bytes has no 16-byte trailer", len(file))
	}
	trailer := file[len(file)-16:]
	if string(trailer[8:]) != docMagic {
		t.Fatalf("trailer magic %q, want %q", trailer[8:], docMagic)
	}
	n := binary.BigEndian.Uint64(trailer[:8])
	if n > uint64(len(file)-16) {
		t.Fatalf("metadata length %d is more than the file holds", n)
	}
	end := len(file) - 16
	start := end - int(n)
	if err := json.Unmarshal(file[start:end], &meta); err != nil {
		t.Fatalf("metadata %q is not a JSON object of strings: %v", file[start:end], err)
	}
	return file[:start], meta
}

// TestFSStoreFileFormat pins the fs object file of docs/FORMAT.md §12 both
// ways: what the store writes parses by the document, and a file written by
// the document reads back through the store.
func TestFSStoreFileFormat(t *testing.T) {
	ctx := context.Background()
	meta := map[string]string{
		"mv-version":        "1",
		"mv-context":        `{"mailvaultd:archive-id":"01jexample"}`,
		"mv-plaintext-size": "20",
		"mv-received-at":    "2025-06-02T10:04:00.123456789Z",
	}
	for _, tc := range []struct {
		name string
		key  string
		file string // path below the store's directory
		data []byte
		meta map[string]string
	}{
		{"message", "msg/00001iso1clr06ro5qmfpp787mq3o6sncod0n80", "objects/msg/00001iso1clr06ro5qmfpp787mq3o6sncod0n80~", []byte("MVLT\x01 sealed bytes \x00\xff"), meta},
		{"manifest", "msg/00001iso1clr06ro5qmfpp787mq3o6sncod0n80.manifest", "objects/msg/00001iso1clr06ro5qmfpp787mq3o6sncod0n80.manifest~", bytes.Repeat([]byte{0xa5}, 70000), meta},
		{"no bytes, metadata", "a/b/c", "objects/a/b/c~", nil, map[string]string{"k": "v"}},
		{"bytes, no metadata", "fp/0123", "objects/fp/0123~", []byte("00001iso1clr06ro5qmfpp787mq3o6sncod0n80"), map[string]string{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s, err := fsstore.New(dir)
			if err != nil {
				t.Fatal(err)
			}
			// Written by the store, read by the document.
			if err := putFS(t, s, tc.key, tc.data, tc.meta, false); err != nil {
				t.Fatal(err)
			}
			file, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(tc.file)))
			if err != nil {
				t.Fatalf("the object is not at the documented path: %v", err)
			}
			data, gotMeta := docParse(t, file)
			if !bytes.Equal(data, tc.data) {
				t.Errorf("object bytes by the document: %d bytes, want the %d written", len(data), len(tc.data))
			}
			if !maps.Equal(gotMeta, tc.meta) {
				t.Errorf("metadata by the document = %v, want %v", gotMeta, tc.meta)
			}

			// Written by the document, read by the store.
			data2 := append(bytes.Clone(tc.data), "!"...)
			if err := os.WriteFile(filepath.Join(dir, filepath.FromSlash(tc.file)), docObjectFile(t, data2, tc.meta), 0o600); err != nil {
				t.Fatal(err)
			}
			info, err := s.Head(ctx, tc.key)
			if err != nil {
				t.Fatal(err)
			}
			if info.Size != int64(len(data2)) || !maps.Equal(info.Metadata, tc.meta) {
				t.Errorf("head of a documented file = size %d, metadata %v; want %d, %v", info.Size, info.Metadata, len(data2), tc.meta)
			}
			rc, err := s.Get(ctx, tc.key, 0, -1)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(rc)
			rc.Close()
			if err != nil || !bytes.Equal(got, data2) {
				t.Errorf("get of a documented file: %d bytes, %v; want the %d bytes written", len(got), err, len(data2))
			}
		})
	}
}

// TestFSStoreEmptyFileIsEmptyObject: the document's one exception, an empty
// file, is an empty object without metadata.
func TestFSStoreEmptyFileIsEmptyObject(t *testing.T) {
	dir := t.TempDir()
	s, err := fsstore.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "objects", "idx", "h"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "objects", "idx", "h", "entry~"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	info, err := s.Head(context.Background(), "idx/h/entry")
	if err != nil || info.Size != 0 || len(info.Metadata) != 0 {
		t.Errorf("head of an empty file = %+v, %v; want an empty object without metadata", info, err)
	}
}
