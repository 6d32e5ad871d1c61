// Package awskms is the AWS KMS key provider of the sealer: every message's
// data key comes from one KMS GenerateDataKey (AES_256) bound to the
// message's encryption context, and is unwrapped again by KMS Decrypt with
// the same key id and context.
//
// awskms never sees a message byte and never stores a key: it hands the
// plaintext data key to the sealer, which clears it after use.
//
// # Errors
//
// Every error is an *Error that says what kind of failure it was. For the
// mail pipeline every one of them is transient (a key problem must never
// bounce mail: Postfix keeps the message and retries), but some will not go
// away by themselves — a disabled or deleted key, access denied, bad
// credentials. IsPermanent reports those; the provider logs them at ERROR
// level itself, and the caller should too, loudly.
package awskms

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/smithy-go"

	"github.com/mailvault/mailvaultd/sealer"
)

// Name is the provider name stored in object metadata.
const Name = "awskms"

// Defaults and limits.
const (
	DefaultTimeout     = 5 * time.Second
	DefaultMaxAttempts = 3
	// MaxBackoff caps the wait between two attempts.
	MaxBackoff = 2 * time.Second
	// MaxWrappedKey caps a wrapped data key (KMS ciphertext blobs of a
	// 32-byte key are about 180 bytes; KMS documents them as < 1 KiB).
	MaxWrappedKey = 1024
	dataKeySize   = 32
)

// Options configure a Provider.
type Options struct {
	KeyID    string // key id, key ARN, alias name ("alias/mailvault") or alias ARN
	Region   string // empty: the SDK's (AWS_REGION, shared config)
	Endpoint string // empty: AWS; otherwise e.g. a VPC endpoint URL
	// Timeout bounds one attempt (one HTTP request). Default 5s.
	Timeout time.Duration
	// MaxAttempts is the number of attempts per operation, retrying
	// throttling, 5xx and network errors with jittered exponential backoff.
	// Default 3.
	MaxAttempts int
	// Logger receives the loud reports of key problems (nil: slog.Default()).
	Logger *slog.Logger
}

// Provider is a sealer.KeyProvider backed by AWS KMS.
type Provider struct {
	client *kms.Client
	keyID  string
	bound  time.Duration // the longest one operation may take, retries included
	log    *slog.Logger
}

var (
	_ sealer.KeyProvider = (*Provider)(nil)
	_ sealer.Pinger      = (*Provider)(nil)
)

// New returns a Provider for o. Credentials come from the SDK's default
// chain (environment, shared config, instance or task role). It sends no
// request: Ping does.
func New(ctx context.Context, o Options) (*Provider, error) {
	if o.KeyID == "" {
		return nil, errors.New("awskms: key id is required")
	}
	if o.Timeout == 0 {
		o.Timeout = DefaultTimeout
	}
	if o.MaxAttempts == 0 {
		o.MaxAttempts = DefaultMaxAttempts
	}
	if o.Timeout < 0 || o.MaxAttempts < 1 || o.MaxAttempts > 10 {
		return nil, fmt.Errorf("awskms: timeout %v / max attempts %d out of range", o.Timeout, o.MaxAttempts)
	}
	if o.Endpoint != "" {
		u, err := url.Parse(o.Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("awskms: endpoint %q: want http(s)://host[:port]", o.Endpoint)
		}
	}
	// The HTTP client's timeout bounds each attempt, so a hung connection
	// is abandoned and retried rather than waited on.
	httpClient := awshttp.NewBuildableClient().
		WithTimeout(o.Timeout).
		WithDialerOptions(func(d *net.Dialer) { d.Timeout = min(o.Timeout, 5*time.Second) })
	loadOpts := []func(*config.LoadOptions) error{
		config.WithHTTPClient(httpClient),
		config.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(so *retry.StandardOptions) {
				so.MaxAttempts = o.MaxAttempts
				so.MaxBackoff = MaxBackoff
			})
		}),
	}
	if o.Region != "" {
		loadOpts = append(loadOpts, config.WithRegion(o.Region))
	}
	cfg, err := config.LoadDefaultConfig(ctx, loadOpts...)
	if err != nil {
		return nil, fmt.Errorf("awskms: load AWS config: %w", err)
	}
	if cfg.Region == "" {
		return nil, errors.New("awskms: no region (set the awskms region or AWS_REGION)")
	}
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Provider{
		client: kms.NewFromConfig(cfg, func(ko *kms.Options) {
			if o.Endpoint != "" {
				ko.BaseEndpoint = aws.String(o.Endpoint)
			}
		}),
		keyID: o.KeyID,
		// Every attempt, and a maximal backoff between each two.
		bound: time.Duration(o.MaxAttempts)*o.Timeout + time.Duration(o.MaxAttempts-1)*MaxBackoff,
		log:   log,
	}, nil
}

// Name is "awskms".
func (p *Provider) Name() string { return Name }

// GenerateDataKey asks KMS for a fresh AES-256 data key under the configured
// key, bound to encCtx. The DataKey's KeyID is the key ARN KMS reports.
func (p *Provider) GenerateDataKey(ctx context.Context, encCtx map[string]string) (*sealer.DataKey, error) {
	ctx, cancel := context.WithTimeout(ctx, p.bound)
	defer cancel()
	out, err := p.client.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{
		KeyId:             aws.String(p.keyID),
		KeySpec:           types.DataKeySpecAes256,
		EncryptionContext: encCtx,
	})
	if err != nil {
		return nil, p.fail("generate data key", p.keyID, err)
	}
	keyARN := aws.ToString(out.KeyId)
	switch {
	case len(out.Plaintext) != dataKeySize:
		clear(out.Plaintext)
		return nil, p.fail("generate data key", p.keyID, &Error{Kind: KindInvalid, Err: fmt.Errorf("KMS returned a %d-byte key, want %d", len(out.Plaintext), dataKeySize)})
	case len(out.CiphertextBlob) == 0 || len(out.CiphertextBlob) > MaxWrappedKey:
		clear(out.Plaintext)
		return nil, p.fail("generate data key", p.keyID, &Error{Kind: KindInvalid, Err: fmt.Errorf("KMS returned a %d-byte wrapped key", len(out.CiphertextBlob))})
	case keyARN == "":
		clear(out.Plaintext)
		return nil, p.fail("generate data key", p.keyID, &Error{Kind: KindInvalid, Err: errors.New("KMS returned no key id")})
	}
	return &sealer.DataKey{
		Plaintext: out.Plaintext,
		Wrapped:   out.CiphertextBlob,
		KeyID:     keyARN,
		Provider:  Name,
		Context:   copyContext(encCtx),
	}, nil
}

// Decrypt asks KMS to unwrap a data key made under keyID with encCtx. KMS
// checks both: a different key or context fails, and so does a tampered
// blob; those failures wrap sealer.ErrDecrypt.
func (p *Provider) Decrypt(ctx context.Context, keyID string, wrapped []byte, encCtx map[string]string) ([]byte, error) {
	if keyID == "" {
		return nil, &Error{Op: "decrypt", Kind: KindBadCiphertext, Err: errors.New("no key id")}
	}
	if len(wrapped) == 0 || len(wrapped) > MaxWrappedKey {
		return nil, &Error{Op: "decrypt", KeyID: keyID, Kind: KindBadCiphertext, Err: fmt.Errorf("wrapped key of %d bytes", len(wrapped))}
	}
	ctx, cancel := context.WithTimeout(ctx, p.bound)
	defer cancel()
	out, err := p.client.Decrypt(ctx, &kms.DecryptInput{
		KeyId:             aws.String(keyID),
		CiphertextBlob:    wrapped,
		EncryptionContext: encCtx,
	})
	if err != nil {
		return nil, p.fail("decrypt", keyID, err)
	}
	if len(out.Plaintext) != dataKeySize {
		clear(out.Plaintext)
		return nil, p.fail("decrypt", keyID, &Error{Kind: KindInvalid, Err: fmt.Errorf("KMS returned a %d-byte key, want %d", len(out.Plaintext), dataKeySize)})
	}
	// KMS already refused a blob of another key (IncorrectKeyException);
	// when keyID is a key ARN, check its answer names the same key.
	if got := aws.ToString(out.KeyId); isKeyARN(keyID) && got != keyID {
		clear(out.Plaintext)
		return nil, p.fail("decrypt", keyID, &Error{Kind: KindBadCiphertext, Err: fmt.Errorf("KMS decrypted with key %s", got)})
	}
	return out.Plaintext, nil
}

// Ping checks that KMS answers and the configured key is an enabled
// symmetric encryption key (DescribeKey).
func (p *Provider) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, p.bound)
	defer cancel()
	out, err := p.client.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(p.keyID)})
	if err != nil {
		return classify("describe key", p.keyID, err)
	}
	m := out.KeyMetadata
	switch {
	case m == nil:
		return classify("describe key", p.keyID, &Error{Kind: KindInvalid, Err: errors.New("no key metadata")})
	case !m.Enabled || m.KeyState != types.KeyStateEnabled:
		return classify("describe key", p.keyID, &Error{Kind: KindKeyUnusable, Code: string(m.KeyState), Err: fmt.Errorf("key %s is %s", aws.ToString(m.Arn), m.KeyState)})
	case m.KeyUsage != types.KeyUsageTypeEncryptDecrypt || m.KeySpec != types.KeySpecSymmetricDefault:
		return classify("describe key", p.keyID, &Error{Kind: KindKeyUnusable, Err: fmt.Errorf("key %s is %s/%s, want ENCRYPT_DECRYPT/SYMMETRIC_DEFAULT", aws.ToString(m.Arn), m.KeyUsage, m.KeySpec)})
	}
	return nil
}

func isKeyARN(id string) bool { return strings.HasPrefix(id, "arn:") && strings.Contains(id, ":key/") }

func copyContext(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	c := make(map[string]string, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// # Errors

// Kind is what a failure means for whoever handles it.
type Kind int

const (
	// KindTransient: throttling, 5xx, a timeout or a network error; retrying
	// later should work.
	KindTransient Kind = iota + 1
	// KindKeyUnusable: the key is disabled, pending deletion or missing, or
	// access is denied or the credentials are bad. Mail must be deferred,
	// not bounced, and an operator must act.
	KindKeyUnusable
	// KindBadCiphertext: the wrapped key, its key id or its encryption
	// context does not match (tampering, or the wrong object). Decrypt only;
	// the error wraps sealer.ErrDecrypt.
	KindBadCiphertext
	// KindInvalid: KMS rejected the request as malformed, or answered
	// something out of bounds. A bug or misconfiguration.
	KindInvalid
)

func (k Kind) String() string {
	switch k {
	case KindTransient:
		return "transient"
	case KindKeyUnusable:
		return "key unusable"
	case KindBadCiphertext:
		return "bad ciphertext"
	case KindInvalid:
		return "invalid request or response"
	}
	return "unknown"
}

// Error is every error the Provider returns.
type Error struct {
	Op    string // "generate data key", "decrypt", "describe key"
	KeyID string
	Kind  Kind
	Code  string // the KMS error code, if KMS answered one
	Err   error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("awskms: ")
	if e.Op != "" {
		b.WriteString(e.Op + ": ")
	}
	b.WriteString(e.Kind.String())
	if e.Code != "" {
		b.WriteString(" (" + e.Code + ")")
	}
	if e.Err != nil {
		b.WriteString(": " + e.Err.Error())
	}
	return b.String()
}

// Unwrap gives the cause, and sealer.ErrDecrypt for KindBadCiphertext.
func (e *Error) Unwrap() []error {
	if e.Kind == KindBadCiphertext {
		return []error{e.Err, sealer.ErrDecrypt}
	}
	return []error{e.Err}
}

// KindOf returns the Kind of an error from this package (KindTransient for
// any other non-nil error: unknown failures are retried, never bounced).
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	if err == nil {
		return 0
	}
	return KindTransient
}

// IsTransient reports whether err should go away by itself (throttling,
// 5xx, timeouts, network).
func IsTransient(err error) bool { return err != nil && KindOf(err) == KindTransient }

// IsPermanent reports whether err will not go away without an operator: the
// key is unusable, access is denied, the request or the ciphertext is bad.
// The pipeline still answers such a failure with a transient 451 (mail is
// deferred, never bounced for a key problem); the caller must log it loudly.
func IsPermanent(err error) bool { return err != nil && KindOf(err) != KindTransient }

// codeKinds classifies the KMS error codes that are not transient.
var codeKinds = map[string]Kind{
	"DisabledException":                                  KindKeyUnusable,
	"KMSInvalidStateException":                           KindKeyUnusable,
	"NotFoundException":                                  KindKeyUnusable,
	"AccessDeniedException":                              KindKeyUnusable,
	"InvalidKeyUsageException":                           KindKeyUnusable,
	"InvalidGrantTokenException":                         KindKeyUnusable,
	"UnrecognizedClientException":                        KindKeyUnusable,
	"InvalidSignatureException":                          KindKeyUnusable,
	"IncompleteSignatureException":                       KindKeyUnusable,
	"MissingAuthenticationTokenException":                KindKeyUnusable,
	"InvalidClientTokenId":                               KindKeyUnusable,
	"ExpiredTokenException":                              KindKeyUnusable,
	"SignatureDoesNotMatch":                              KindKeyUnusable,
	"InvalidCiphertextException":                         KindBadCiphertext,
	"IncorrectKeyException":                              KindBadCiphertext,
	"ValidationException":                                KindInvalid,
	"SerializationException":                             KindInvalid,
	"InvalidArnException":                                KindInvalid,
	"UnknownOperationException":                          KindInvalid,
	"DryRunOperationException":                           KindInvalid,
	"UnsupportedOperationException":                      KindInvalid,
	"CustomKeyStoreInvalidStateException":                KindKeyUnusable,
	"KMSInvalidMacException":                             KindBadCiphertext,
	"KMSInvalidSignatureException":                       KindBadCiphertext,
	"InvalidAliasNameException":                          KindInvalid,
	"InvalidMarkerException":                             KindInvalid,
	"InvalidImportTokenException":                        KindInvalid,
	"IncorrectKeyMaterialException":                      KindBadCiphertext,
	"TagException":                                       KindInvalid,
	"LimitExceededException":                             KindTransient,
	"ThrottlingException":                                KindTransient,
	"KMSInternalException":                               KindTransient,
	"DependencyTimeoutException":                         KindTransient,
	"KeyUnavailableException":                            KindTransient,
	"CloudHsmClusterNotActiveException":                  KindTransient,
	"XksProxyUriUnreachableException":                    KindTransient,
	"XksProxyInvalidResponseException":                   KindTransient,
	"XksKeyNotFoundException":                            KindKeyUnusable,
	"XksKeyInvalidConfigurationException":                KindKeyUnusable,
	"CustomKeyStoreNotFoundException":                    KindKeyUnusable,
	"XksProxyIncorrectAuthenticationCredentialException": KindKeyUnusable,
}

// classify turns an SDK error into an *Error.
func classify(op, keyID string, err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		c := *e
		c.Op, c.KeyID = op, keyID
		return &c
	}
	e = &Error{Op: op, KeyID: keyID, Kind: KindTransient, Err: err}
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		// Network errors, our own deadline, the caller's cancellation, a
		// retry quota exhausted: none is a verdict on the key.
		return e
	}
	e.Code = ae.ErrorCode()
	if k, ok := codeKinds[e.Code]; ok {
		e.Kind = k
		return e
	}
	var re *awshttp.ResponseError
	if errors.As(err, &re) && re.HTTPStatusCode() >= 400 && re.HTTPStatusCode() < 500 &&
		re.HTTPStatusCode() != http.StatusTooManyRequests && re.HTTPStatusCode() != http.StatusRequestTimeout {
		// An unknown client error: not something a retry fixes.
		e.Kind = KindInvalid
	}
	return e
}

// fail classifies err and reports the failures an operator must act on.
func (p *Provider) fail(op, keyID string, err error) error {
	e := classify(op, keyID, err)
	if e.Kind == KindKeyUnusable || e.Kind == KindInvalid {
		p.log.Error("awskms: KMS KEY PROBLEM: mail is deferred (451) until an operator fixes it",
			"op", op, "key_id", keyID, "kind", e.Kind.String(), "code", e.Code, "err", e.Err)
	}
	return e
}
