package s3store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/mailvault/mailvaultd/internal/kmstest"
	"github.com/mailvault/mailvaultd/internal/miniotest"
	"github.com/mailvault/mailvaultd/sealer"
	"github.com/mailvault/mailvaultd/sealer/awskms"
)

// TestSealedMessagesInBucket runs the production pieces together: data keys
// from AWS KMS (the protocol double, through the real SDK), the sealed
// format, and this store on a real MinIO. It shows that the bucket holds only
// ciphertext, that every message object carries its wrapped key and format
// fields in metadata that a standard S3 client reads back, that the write
// path costs one GenerateDataKey per message, and that the metadata is bound
// to the ciphertext.
func TestSealedMessagesInBucket(t *testing.T) {
	kms := kmstest.Start(t)
	kms.SetEnv(t)
	keyARN := kms.CreateKey()
	kms.CreateAlias("alias/mailvault", keyARN)
	// One identity for S3 and KMS, as one IAM role has in production.
	srv := miniotest.StartWith(t, miniotest.Config{AccessKey: kmstest.AccessKey, SecretKey: kmstest.SecretKey})
	bucket := newBucket(t, srv, false)
	store, _ := newStore(t, srv, Options{Bucket: bucket, Prefix: "mail/", PartSize: MinPartSize})
	ctx := ctxT(t)
	keys, err := awskms.New(ctx, awskms.Options{KeyID: "alias/mailvault", Endpoint: kms.URL})
	if err != nil {
		t.Fatal(err)
	}

	// Messages that are easy to spot: a marker line repeated, one of them
	// large enough for the multipart path.
	messages := map[string][]byte{}
	for i, size := range []int{0, 1, 200, 64 << 10, 100_000, 12 << 20} {
		id := fmt.Sprintf("m%02d", i)
		line := fmt.Sprintf("Subject: PLAINTEXT-MARKER-%s secret invoice\r\n", id)
		messages[id] = bytes.Repeat([]byte(line), size/len(line)+1)[:size]
	}
	for id, msg := range messages {
		dk, err := keys.GenerateDataKey(ctx, sealer.ArchiveContext(id))
		if err != nil {
			t.Fatal(err)
		}
		w, err := store.Create(ctx, "msg/"+id)
		if err != nil {
			t.Fatal(err)
		}
		sw, err := sealer.NewWriter(w, dk, "message")
		if err != nil {
			t.Fatal(err)
		}
		dk.Clear()
		if _, err := sw.Write(msg); err != nil {
			t.Fatal(err)
		}
		if err := sw.Close(); err != nil {
			t.Fatal(err)
		}
		if err := w.Commit(ctx, sw.Metadata().Map(), true); err != nil {
			t.Fatal(err)
		}
	}
	if g, all := kms.Calls("GenerateDataKey"), kms.Calls("Decrypt")+kms.Calls("Encrypt")+kms.Calls("DescribeKey"); g != len(messages) || all != 0 {
		t.Fatalf("write path: %d GenerateDataKey (and %d other KMS calls) for %d messages", g, all, len(messages))
	}
	t.Logf("KMS calls on the write path: %d GenerateDataKey for %d messages", kms.Calls("GenerateDataKey"), len(messages))

	// What a standard S3 client sees in the bucket.
	c := srv.Client()
	list, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: &bucket})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Contents) != len(messages) {
		t.Fatalf("bucket holds %d objects, want %d", len(list.Contents), len(messages))
	}
	for _, o := range list.Contents {
		key := aws.ToString(o.Key)
		id := key[len("mail/msg/"):]
		obj, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: &bucket, Key: &key})
		if err != nil {
			t.Fatal(err)
		}
		stored, _ := io.ReadAll(obj.Body)
		obj.Body.Close()
		for _, needle := range [][]byte{[]byte("PLAINTEXT-MARKER"), []byte("invoice"), []byte("Subject:")} {
			if bytes.Contains(stored, needle) {
				t.Fatalf("%s: plaintext %q in the bucket", key, needle)
			}
		}
		if want := sealer.CiphertextSize(int64(len(messages[id]))); int64(len(stored)) != want {
			t.Errorf("%s: %d bytes stored, want %d", key, len(stored), want)
		}

		head, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &bucket, Key: &key, ChecksumMode: types.ChecksumModeEnabled})
		if err != nil {
			t.Fatal(err)
		}
		for _, field := range []string{"mv-version", "mv-provider", "mv-key-id", "mv-wrapped-key", "mv-context", "mv-plaintext-size"} {
			if head.Metadata[field] == "" {
				t.Fatalf("%s: metadata lacks %s: %v", key, field, head.Metadata)
			}
		}
		if head.Metadata["mv-provider"] != "awskms" || head.Metadata["mv-key-id"] != keyARN || head.Metadata["mv-plaintext-size"] != fmt.Sprint(len(messages[id])) {
			t.Fatalf("%s: metadata %v", key, head.Metadata)
		}
		if aws.ToString(head.ChecksumSHA256) == "" {
			t.Errorf("%s: no SHA-256 checksum stored", key)
		}

		// Read it back the way retrieval does: metadata from the plain
		// client, key from KMS, authenticated ranges through the store.
		meta, err := sealer.ParseMetadata(head.Metadata)
		if err != nil {
			t.Fatal(err)
		}
		dk, err := sealer.Unwrap(ctx, keys, meta)
		if err != nil {
			t.Fatal(err)
		}
		src := func(ctx context.Context, off, n int64) (io.ReadCloser, error) {
			return store.Get(ctx, "msg/"+id, off, n)
		}
		sealed, err := sealer.Open(ctx, src, int64(len(stored)), meta, dk, "message")
		dk.Clear()
		if err != nil {
			t.Fatal(err)
		}
		rc, err := sealed.NewReader(ctx, 0, -1)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || !bytes.Equal(got, messages[id]) {
			t.Fatalf("%s: decrypted %d bytes, %v; want the %d received", key, len(got), err, len(messages[id]))
		}
		if n := int64(len(got)); n > 200_000 {
			off := n / 2
			rc, err := sealed.NewReader(ctx, off, 1000)
			if err != nil {
				t.Fatal(err)
			}
			part, _ := io.ReadAll(rc)
			rc.Close()
			if !bytes.Equal(part, messages[id][off:off+1000]) {
				t.Fatalf("%s: ranged plaintext differs", key)
			}
		}
	}

	// Metadata is bound: the same ciphertext under another message's
	// context does not open (KMS refuses the context).
	info, err := store.Head(ctx, "msg/m02")
	if err != nil {
		t.Fatal(err)
	}
	forged := maps.Clone(info.Metadata)
	other, _ := store.Head(ctx, "msg/m03")
	forged["mv-context"] = other.Metadata["mv-context"]
	meta, err := sealer.ParseMetadata(forged)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sealer.Unwrap(ctx, keys, meta); !errors.Is(err, sealer.ErrDecrypt) || awskms.KindOf(err) != awskms.KindBadCiphertext {
		t.Fatalf("unwrap under another message's context: %v", err)
	}

	// A wrapped key copied onto another message's object does not decrypt
	// it: alone, KMS refuses it under that object's context; with its own
	// context (and key id) too, it unwraps, but to a key that does not open
	// the other object's ciphertext.
	copied := maps.Clone(other.Metadata)
	copied["mv-wrapped-key"] = info.Metadata["mv-wrapped-key"]
	meta, err = sealer.ParseMetadata(copied)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sealer.Unwrap(ctx, keys, meta); !errors.Is(err, sealer.ErrDecrypt) {
		t.Fatalf("m02's wrapped key on m03: unwrap gave %v, want ErrDecrypt", err)
	}
	for _, k := range []string{"mv-wrapped-key", "mv-key-id", "mv-context"} {
		copied[k] = info.Metadata[k]
	}
	meta, err = sealer.ParseMetadata(copied)
	if err != nil {
		t.Fatal(err)
	}
	dk, err := sealer.Unwrap(ctx, keys, meta)
	if err != nil {
		t.Fatalf("unwrap of m02's own key fields: %v", err)
	}
	defer dk.Clear()
	src := func(ctx context.Context, off, n int64) (io.ReadCloser, error) {
		return store.Get(ctx, "msg/m03", off, n)
	}
	if _, err := sealer.Open(ctx, src, other.Size, meta, dk, "message"); !errors.Is(err, sealer.ErrDecrypt) {
		t.Fatalf("m03's ciphertext under m02's key: %v, want ErrDecrypt", err)
	}
}
