package archive

import (
	"errors"
	"fmt"
	"strings"
)

// Object keys and metadata are checked by the same rules in every backend, so
// that what works on one works on the other and no caller input can name a
// file outside a store's directory.

const (
	// MaxKeyBytes bounds an object key (S3's limit).
	MaxKeyBytes = 1024
	// maxSegmentBytes bounds one '/'-separated segment of a key, so that it
	// fits a file name (255 bytes) with room for the fs store's suffix.
	maxSegmentBytes = 200
	// MaxMetadataBytes bounds the sum of the lengths of every metadata key
	// and value (S3's limit for user metadata).
	MaxMetadataBytes = 2048
)

var (
	// ErrInvalidKey is returned (wrapped) for a key that ValidateKey rejects.
	ErrInvalidKey = errors.New("archive: invalid key")
	// ErrInvalidMetadata is returned (wrapped) for metadata that
	// ValidateMetadata rejects.
	ErrInvalidMetadata = errors.New("archive: invalid metadata")
)

// ValidateKey checks that key is a '/'-separated relative path of segments
// made of [a-z0-9._-]: not empty, no empty segment (so no leading, trailing
// or doubled '/'), no "." or ".." segment, at most MaxKeyBytes bytes.
func ValidateKey(key string) error {
	if key == "" {
		return fmt.Errorf("%w: empty", ErrInvalidKey)
	}
	if len(key) > MaxKeyBytes {
		return fmt.Errorf("%w %s: longer than %d bytes", ErrInvalidKey, quoteShort(key), MaxKeyBytes)
	}
	for i := 0; i < len(key); i++ {
		if !keyByte(key[i]) {
			return fmt.Errorf("%w %s: byte %#02x at %d is not one of [a-z0-9._/-]", ErrInvalidKey, quoteShort(key), key[i], i)
		}
	}
	for seg := range strings.SplitSeq(key, "/") {
		if err := checkSegment(seg); err != nil {
			return fmt.Errorf("%w %s: %v", ErrInvalidKey, quoteShort(key), err)
		}
	}
	return nil
}

// ValidatePrefix checks a List prefix: the characters of a key, and every
// complete segment (before the last '/') a valid one. The trailing partial
// segment only filters names; it never becomes a path.
func ValidatePrefix(prefix string) error {
	if len(prefix) > MaxKeyBytes {
		return fmt.Errorf("%w prefix %s: longer than %d bytes", ErrInvalidKey, quoteShort(prefix), MaxKeyBytes)
	}
	for i := 0; i < len(prefix); i++ {
		if !keyByte(prefix[i]) {
			return fmt.Errorf("%w prefix %s: byte %#02x at %d is not one of [a-z0-9._/-]", ErrInvalidKey, quoteShort(prefix), prefix[i], i)
		}
	}
	i := strings.LastIndexByte(prefix, '/')
	if i < 0 {
		return nil
	}
	for seg := range strings.SplitSeq(prefix[:i], "/") {
		if err := checkSegment(seg); err != nil {
			return fmt.Errorf("%w prefix %s: %v", ErrInvalidKey, quoteShort(prefix), err)
		}
	}
	return nil
}

func checkSegment(seg string) error {
	switch {
	case seg == "":
		return errors.New("empty segment")
	case seg == "." || seg == "..":
		return fmt.Errorf("segment %q", seg)
	case len(seg) > maxSegmentBytes:
		return fmt.Errorf("segment longer than %d bytes", maxSegmentBytes)
	}
	return nil
}

func keyByte(c byte) bool {
	return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '/' || c == '-'
}

// ValidateMetadata checks object metadata against what S3 user metadata can
// carry unchanged: keys of [a-z0-9-] (S3 lower-cases header names), values of
// printable ASCII without surrounding spaces (HTTP trims them), at most
// MaxMetadataBytes in all.
func ValidateMetadata(meta map[string]string) error {
	total := 0
	for k, v := range meta {
		if k == "" {
			return fmt.Errorf("%w: empty key", ErrInvalidMetadata)
		}
		for i := 0; i < len(k); i++ {
			if c := k[i]; !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
				return fmt.Errorf("%w: key %s: byte %#02x is not one of [a-z0-9-]", ErrInvalidMetadata, quoteShort(k), c)
			}
		}
		for i := 0; i < len(v); i++ {
			if c := v[i]; c < 0x20 || c > 0x7e {
				return fmt.Errorf("%w: value of %s: byte %#02x is not printable ASCII", ErrInvalidMetadata, k, c)
			}
		}
		if strings.TrimSpace(v) != v {
			return fmt.Errorf("%w: value of %s has surrounding spaces", ErrInvalidMetadata, k)
		}
		total += len(k) + len(v)
	}
	if total > MaxMetadataBytes {
		return fmt.Errorf("%w: %d bytes exceed %d", ErrInvalidMetadata, total, MaxMetadataBytes)
	}
	return nil
}

// quoteShort quotes s for an error message, cut to a readable length.
func quoteShort(s string) string {
	const max = 64
	if len(s) > max {
		return fmt.Sprintf("%q...", s[:max])
	}
	return fmt.Sprintf("%q", s)
}
