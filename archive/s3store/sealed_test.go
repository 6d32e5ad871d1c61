package s3store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/mailvault/mailvaultd/archive"
	"github.com/mailvault/mailvaultd/internal/kmstest"
	"github.com/mailvault/mailvaultd/internal/miniotest"
	"github.com/mailvault/mailvaultd/partmap"
	"github.com/mailvault/mailvaultd/sealed"
	"github.com/mailvault/mailvaultd/sealer"
	"github.com/mailvault/mailvaultd/sealer/awskms"
)

// TestSealedMessagesInBucket runs the production pieces together: data keys
// from AWS KMS (the protocol double, through the real SDK), the sealed
// format and Vault layout (through package sealed), and this store on a real
// MinIO. It shows that the bucket holds only ciphertext and hashed keys, that every message object carries its wrapped key and format
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

	// The write path is the delivery core's: package sealed over a Vault on
	// this store.
	vault := archive.NewVault(store, randBytes(t, 32))
	env := archive.Envelope{From: "sender@example.test", To: []string{"rcpt@example.test"}}

	// Messages that are easy to spot: a marker line repeated, one of them
	// large enough for the multipart path.
	messages := map[string][]byte{}
	var ids []string
	for i, size := range []int{0, 1, 200, 64 << 10, 100_000, 12 << 20} {
		line := fmt.Sprintf("Subject: PLAINTEXT-MARKER-%d secret invoice\r\n", i)
		msg := bytes.Repeat([]byte(line), size/len(line)+1)[:size]
		w, err := sealed.Begin(ctx, vault, keys, archive.NewID(time.Now()))
		if err != nil {
			t.Fatal(err)
		}
		fp := vault.Fingerprint(env)
		scan := partmap.NewScanner(partmap.Limits{})
		if _, err := io.Copy(io.MultiWriter(w, fp, scan), bytes.NewReader(msg)); err != nil {
			t.Fatal(err)
		}
		id, dup, err := w.Commit(ctx, sealed.Record{Envelope: env, ReceivedAt: time.Now(), Parts: scan.Close(), Fingerprint: fp.Sum(nil)})
		if err != nil || dup {
			t.Fatalf("commit: %v (duplicate %v)", err, dup)
		}
		messages[id] = msg
		ids = append(ids, id)
	}
	if g, all := kms.Calls("GenerateDataKey"), kms.Calls("Decrypt")+kms.Calls("Encrypt")+kms.Calls("DescribeKey"); g != len(messages) || all != 0 {
		t.Fatalf("write path: %d GenerateDataKey (and %d other KMS calls) for %d messages", g, all, len(messages))
	}
	t.Logf("KMS calls on the write path: %d GenerateDataKey for %d messages", kms.Calls("GenerateDataKey"), len(messages))

	// What a standard S3 client sees in the bucket: no plaintext in any
	// object (message, manifest, marker, index entry) nor in any key.
	c := srv.Client()
	list, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: &bucket})
	if err != nil {
		t.Fatal(err)
	}
	var messageObjects int
	for _, o := range list.Contents {
		key := aws.ToString(o.Key)
		if strings.Contains(key, "example") {
			t.Fatalf("object key %s names an address", key)
		}
		obj, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: &bucket, Key: &key})
		if err != nil {
			t.Fatal(err)
		}
		stored, _ := io.ReadAll(obj.Body)
		obj.Body.Close()
		for _, needle := range [][]byte{[]byte("PLAINTEXT-MARKER"), []byte("invoice"), []byte("Subject:"), []byte("example.test")} {
			if bytes.Contains(stored, needle) {
				t.Fatalf("%s: plaintext %q in the bucket", key, needle)
			}
		}
		id, isMessage := strings.CutPrefix(key, "mail/msg/")
		if !isMessage || strings.HasSuffix(id, ".manifest") {
			continue
		}
		messageObjects++
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

		// Read it back the way retrieval does: key from KMS, manifest and
		// authenticated ranges through the store.
		msg, err := sealed.Open(ctx, vault, keys, id)
		if err != nil {
			t.Fatal(err)
		}
		if m := msg.Manifest(); m.ID != id || m.Size != int64(len(messages[id])) || m.From != env.From {
			t.Fatalf("%s: manifest %+v", key, m)
		}
		rc, err := msg.NewReader(ctx, 0, -1)
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
			rc, err := msg.NewReader(ctx, off, 1000)
			if err != nil {
				t.Fatal(err)
			}
			part, _ := io.ReadAll(rc)
			rc.Close()
			if !bytes.Equal(part, messages[id][off:off+1000]) {
				t.Fatalf("%s: ranged plaintext differs", key)
			}
		}
		msg.Close()
	}
	if messageObjects != len(messages) {
		t.Fatalf("bucket holds %d message objects, want %d", messageObjects, len(messages))
	}

	// Metadata is bound: the same ciphertext under another message's
	// context does not open (KMS refuses the context).
	info, err := store.Head(ctx, "msg/"+ids[2])
	if err != nil {
		t.Fatal(err)
	}
	forged := maps.Clone(info.Metadata)
	other, _ := store.Head(ctx, "msg/"+ids[3])
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
		t.Fatalf("message 2's wrapped key on message 3: unwrap gave %v, want ErrDecrypt", err)
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
		t.Fatalf("unwrap of message 2's own key fields: %v", err)
	}
	defer dk.Clear()
	src := func(ctx context.Context, off, n int64) (io.ReadCloser, error) {
		return store.Get(ctx, "msg/"+ids[3], off, n)
	}
	if _, err := sealer.Open(ctx, src, other.Size, meta, dk, "message"); !errors.Is(err, sealer.ErrDecrypt) {
		t.Fatalf("message 3's ciphertext under message 2's key: %v, want ErrDecrypt", err)
	}
}
