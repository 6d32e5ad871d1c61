package kmstest

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/smithy-go"
)

// client is a real SDK client pointed at the double, with retries off so
// that every fault shows.
func client(s *Server, secret string) *kms.Client {
	return kms.New(kms.Options{
		Region:           Region,
		BaseEndpoint:     aws.String(s.URL),
		Credentials:      credentials.NewStaticCredentialsProvider(AccessKey, secret, ""),
		RetryMaxAttempts: 1,
	})
}

func code(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

func TestProtocolThroughSDK(t *testing.T) {
	s := Start(t)
	keyARN := s.CreateKey()
	other := s.CreateKey()
	s.CreateAlias("alias/mailvault", keyARN)
	c := client(s, SecretKey)
	ctx := context.Background()
	encCtx := map[string]string{"mailvaultd:archive-id": "abc"}

	gen, err := c.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{KeyId: aws.String("alias/mailvault"), KeySpec: types.DataKeySpecAes256, EncryptionContext: encCtx})
	if err != nil {
		t.Fatal(err)
	}
	if len(gen.Plaintext) != 32 || aws.ToString(gen.KeyId) != keyARN || len(gen.CiphertextBlob) > 1024 {
		t.Fatalf("GenerateDataKey: %d-byte key, key id %s, %d-byte blob", len(gen.Plaintext), aws.ToString(gen.KeyId), len(gen.CiphertextBlob))
	}

	t.Run("decrypt", func(t *testing.T) {
		dec, err := c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: gen.CiphertextBlob, KeyId: aws.String(keyARN), EncryptionContext: encCtx})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(dec.Plaintext, gen.Plaintext) || aws.ToString(dec.KeyId) != keyARN {
			t.Fatal("Decrypt returned another key")
		}
		// Without a key id, KMS finds the key in the blob.
		if _, err := c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: gen.CiphertextBlob, EncryptionContext: encCtx}); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("context is enforced", func(t *testing.T) {
		for name, ec := range map[string]map[string]string{
			"other value": {"mailvaultd:archive-id": "abd"},
			"extra pair":  {"mailvaultd:archive-id": "abc", "x": "y"},
			"none":        nil,
		} {
			_, err := c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: gen.CiphertextBlob, EncryptionContext: ec})
			var ice *types.InvalidCiphertextException
			if !errors.As(err, &ice) {
				t.Errorf("%s: Decrypt err = %v, want InvalidCiphertextException", name, err)
			}
		}
	})

	t.Run("tampered blob", func(t *testing.T) {
		bad := bytes.Clone(gen.CiphertextBlob)
		bad[len(bad)-1] ^= 1
		_, err := c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: bad, EncryptionContext: encCtx})
		if code(err) != "InvalidCiphertextException" {
			t.Fatalf("err = %v", err)
		}
	})

	t.Run("wrong key id", func(t *testing.T) {
		_, err := c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: gen.CiphertextBlob, KeyId: aws.String(other), EncryptionContext: encCtx})
		var ike *types.IncorrectKeyException
		if !errors.As(err, &ike) {
			t.Fatalf("err = %v, want IncorrectKeyException", err)
		}
	})

	t.Run("encrypt and re-encrypt", func(t *testing.T) {
		enc, err := c.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(keyARN), Plaintext: []byte("secret"), EncryptionContext: encCtx})
		if err != nil {
			t.Fatal(err)
		}
		re, err := c.ReEncrypt(ctx, &kms.ReEncryptInput{CiphertextBlob: enc.CiphertextBlob, SourceEncryptionContext: encCtx,
			DestinationKeyId: aws.String(other), DestinationEncryptionContext: map[string]string{"k": "v"}})
		if err != nil {
			t.Fatal(err)
		}
		if aws.ToString(re.SourceKeyId) != keyARN || aws.ToString(re.KeyId) != other {
			t.Fatalf("ReEncrypt key ids %s -> %s", aws.ToString(re.SourceKeyId), aws.ToString(re.KeyId))
		}
		dec, err := c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: re.CiphertextBlob, EncryptionContext: map[string]string{"k": "v"}})
		if err != nil || string(dec.Plaintext) != "secret" {
			t.Fatalf("Decrypt after ReEncrypt: %q, %v", dec.Plaintext, err)
		}
	})

	t.Run("describe key", func(t *testing.T) {
		d, err := c.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String("alias/mailvault")})
		if err != nil {
			t.Fatal(err)
		}
		m := d.KeyMetadata
		if aws.ToString(m.Arn) != keyARN || !m.Enabled || m.KeyState != types.KeyStateEnabled || m.KeySpec != types.KeySpecSymmetricDefault || m.CreationDate == nil {
			t.Fatalf("metadata %+v", m)
		}
		_, err = c.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String("alias/nope")})
		var nf *types.NotFoundException
		if !errors.As(err, &nf) {
			t.Fatalf("unknown alias: %v", err)
		}
	})

	t.Run("disabled key", func(t *testing.T) {
		s.SetKeyEnabled(keyARN, false)
		defer s.SetKeyEnabled(keyARN, true)
		_, err := c.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{KeyId: aws.String(keyARN), KeySpec: types.DataKeySpecAes256})
		var de *types.DisabledException
		if !errors.As(err, &de) {
			t.Fatalf("GenerateDataKey: %v", err)
		}
		_, err = c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: gen.CiphertextBlob, EncryptionContext: encCtx})
		if !errors.As(err, &de) {
			t.Fatalf("Decrypt: %v", err)
		}
		d, err := c.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(keyARN)})
		if err != nil || d.KeyMetadata.Enabled || d.KeyMetadata.KeyState != types.KeyStateDisabled {
			t.Fatalf("DescribeKey of a disabled key: %+v, %v", d, err)
		}
	})

	t.Run("validation", func(t *testing.T) {
		_, err := c.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{KeyId: aws.String(keyARN)})
		if code(err) != "ValidationException" {
			t.Fatalf("no key spec: %v", err)
		}
		_, err = c.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{KeyId: aws.String(keyARN), KeySpec: types.DataKeySpecAes256, DryRun: aws.Bool(true)})
		if code(err) != "DryRunOperationException" {
			t.Fatalf("dry run: %v", err)
		}
	})

	t.Run("bad signature", func(t *testing.T) {
		_, err := client(s, "not-the-secret").DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(keyARN)})
		if code(err) != "InvalidSignatureException" {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestFaults(t *testing.T) {
	s := Start(t)
	keyARN := s.CreateKey()
	c := client(s, SecretKey)
	ctx := context.Background()
	gen := func() error {
		_, err := c.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{KeyId: aws.String(keyARN), KeySpec: types.DataKeySpecAes256})
		return err
	}

	s.SetFault(Fault{Throttle: true, Times: 2})
	for i := range 2 {
		if err := gen(); code(err) != "ThrottlingException" {
			t.Fatalf("call %d: %v, want ThrottlingException", i, err)
		}
	}
	if err := gen(); err != nil {
		t.Fatalf("after the fault ran out: %v", err)
	}

	s.SetFault(Fault{ServerError: true})
	err := gen()
	var ie *types.KMSInternalException
	if !errors.As(err, &ie) {
		t.Fatalf("server error fault: %v", err)
	}
	s.ClearFault()

	s.SetFault(Fault{Throttle: true, Ops: []string{"Decrypt"}})
	if err := gen(); err != nil {
		t.Fatalf("fault limited to Decrypt hit GenerateDataKey: %v", err)
	}
	s.ClearFault()

	s.SetFault(Fault{Latency: 300 * time.Millisecond})
	start := time.Now()
	if err := gen(); err != nil || time.Since(start) < 300*time.Millisecond {
		t.Fatalf("latency fault: %v after %v", err, time.Since(start))
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := c.GenerateDataKey(short, &kms.GenerateDataKeyInput{KeyId: aws.String(keyARN), KeySpec: types.DataKeySpecAes256}); err == nil {
		t.Fatal("a call with a deadline shorter than the latency succeeded")
	}
	s.ClearFault()

	if got := s.Calls("GenerateDataKey"); got != 7 {
		t.Fatalf("Calls(GenerateDataKey) = %d, want 7", got)
	}
}
