// Package kmstest is a test double of AWS KMS: an HTTP server on 127.0.0.1
// that speaks the KMS JSON protocol (application/x-amz-json-1.1, X-Amz-Target
// TrentService.*) for GenerateDataKey, Decrypt, Encrypt, ReEncrypt and
// DescribeKey, so that code using the real aws-sdk-go-v2 KMS client can be
// tested without AWS. It checks SigV4 signatures against its own static
// credentials, enforces the encryption context like KMS (a Decrypt with any
// other context fails with InvalidCiphertextException), and can be told to
// misbehave: throttling, 5xx, latency, disabled keys.
//
// It is test support only: no non-test code may import it, and it must never
// ship. Its ciphertext format is its own (not KMS's): one AES-256-GCM master
// key per key id, the ciphertext blob names the key, and the encryption
// context is the AAD.
package kmstest

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// Fixed identity of the double.
const (
	Region    = "us-east-1"
	AccountID = "111122223333"
	AccessKey = "AKIDKMSTESTDOUBLE"
	SecretKey = "kmstest-secret-key-not-a-real-one"
)

// Fault is a switchable misbehaviour. Exactly one kind should be set.
type Fault struct {
	Throttle     bool          // answer 400 ThrottlingException
	ServerError  bool          // answer 500 KMSInternalException
	AccessDenied bool          // answer 400 AccessDeniedException (as an IAM deny does)
	Latency      time.Duration // answer only after this delay
	// Ops limits the fault to these operations ("GenerateDataKey", ...);
	// empty: every operation.
	Ops []string
	// Times limits the fault to the next Times matching requests; 0: until
	// cleared.
	Times int
}

// Server is a running KMS test double.
type Server struct {
	URL string // http://127.0.0.1:PORT, the SDK's BaseEndpoint

	hs *httptest.Server

	mu      sync.Mutex
	keys    map[string]*key   // by key id (a UUID)
	aliases map[string]string // "alias/name" -> key id
	fault   Fault
	calls   map[string]int // requests per operation, faulted ones included
}

type key struct {
	id      string
	master  cipher.AEAD
	enabled bool
	created time.Time
}

// Start starts a double on a loopback port; it is closed when t ends.
func Start(t testing.TB) *Server {
	t.Helper()
	s := &Server{keys: map[string]*key{}, aliases: map[string]string{}, calls: map[string]int{}}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("kmstest: listen: %v", err)
	}
	s.hs = httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	s.hs.Listener.Close()
	s.hs.Listener = l
	s.hs.Start()
	s.URL = s.hs.URL
	t.Cleanup(s.Close)
	return s
}

// Close stops the server.
func (s *Server) Close() {
	s.hs.CloseClientConnections()
	s.hs.Close()
}

// CreateKey creates an enabled symmetric key and returns its ARN.
func (s *Server) CreateKey() string {
	mk := make([]byte, 32)
	if _, err := rand.Read(mk); err != nil {
		panic(err)
	}
	block, _ := aes.NewCipher(mk)
	aead, _ := cipher.NewGCM(block)
	id := newUUID()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys[id] = &key{id: id, master: aead, enabled: true, created: time.Now()}
	return arn(id)
}

// CreateAlias points alias ("alias/name") at key (an id or ARN).
func (s *Server) CreateAlias(alias, keyID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := s.lookupLocked(keyID)
	if k == nil || !strings.HasPrefix(alias, "alias/") {
		panic(fmt.Sprintf("kmstest: CreateAlias(%q, %q): no such key or bad alias", alias, keyID))
	}
	s.aliases[alias] = k.id
}

// SetKeyEnabled enables or disables a key (DisableKey/EnableKey).
func (s *Server) SetKeyEnabled(keyID string, on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := s.lookupLocked(keyID)
	if k == nil {
		panic(fmt.Sprintf("kmstest: SetKeyEnabled(%q): no such key", keyID))
	}
	k.enabled = on
}

// SetFault switches a fault on, replacing the current one.
func (s *Server) SetFault(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fault = f
}

// ClearFault switches faults off.
func (s *Server) ClearFault() { s.SetFault(Fault{}) }

// Calls returns how many requests for op ("GenerateDataKey", ...) arrived,
// faulted and failed ones included.
func (s *Server) Calls(op string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[op]
}

// ResetCalls zeroes the counters.
func (s *Server) ResetCalls() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.calls)
}

// # Protocol

const targetPrefix = "TrentService."

// maxBody bounds a request (KMS's largest plaintext is 4 KiB).
const maxBody = 64 << 10

// apiError is a KMS error: its type name, HTTP status and message.
type apiError struct {
	code   string
	status int
	msg    string
}

func (e *apiError) Error() string { return e.code + ": " + e.msg }

func errf(code string, status int, format string, args ...any) *apiError {
	return &apiError{code: code, status: status, msg: fmt.Sprintf(format, args...)}
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	op := strings.TrimPrefix(r.Header.Get("X-Amz-Target"), targetPrefix)
	s.mu.Lock()
	s.calls[op]++
	fault := s.takeFaultLocked(op)
	s.mu.Unlock()

	// Read the request before any delay, so that net/http notices a client
	// that gives up and cancels r.Context().
	body, readErr := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if fault.Latency > 0 {
		t := time.NewTimer(fault.Latency)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}
	out, aerr := s.handle(r, op, fault, body, readErr)
	w.Header().Set("X-Amzn-Requestid", newUUID())
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	if aerr != nil {
		b, _ := json.Marshal(map[string]string{"__type": aerr.code, "message": aerr.msg})
		w.WriteHeader(aerr.status)
		w.Write(b)
		return
	}
	b, err := json.Marshal(out)
	if err != nil {
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	w.Write(b)
}

// takeFaultLocked returns the fault that applies to this request, counting
// it down.
func (s *Server) takeFaultLocked(op string) Fault {
	f := s.fault
	if !f.Throttle && !f.ServerError && !f.AccessDenied && f.Latency == 0 {
		return Fault{}
	}
	if len(f.Ops) > 0 && !slices.Contains(f.Ops, op) {
		return Fault{}
	}
	if f.Times > 0 {
		s.fault.Times--
		if s.fault.Times == 0 {
			s.fault = Fault{}
		}
	}
	return f
}

func (s *Server) handle(r *http.Request, op string, fault Fault, body []byte, err error) (any, *apiError) {
	if r.Method != http.MethodPost || r.URL.Path != "/" {
		return nil, errf("UnknownOperationException", http.StatusNotFound, "")
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/x-amz-json-1.1" {
		return nil, errf("SerializationException", http.StatusBadRequest, "unexpected content type %q", ct)
	}
	if err != nil || len(body) > maxBody {
		return nil, errf("SerializationException", http.StatusBadRequest, "request body unreadable or too large")
	}
	if aerr := verifySignature(r, body); aerr != nil {
		return nil, aerr
	}
	switch {
	case fault.Throttle:
		return nil, errf("ThrottlingException", http.StatusBadRequest, "You have exceeded the rate at which you may call KMS. Reduce the frequency of your calls.")
	case fault.ServerError:
		return nil, errf("KMSInternalException", http.StatusInternalServerError, "The request was rejected because an internal exception occurred.")
	case fault.AccessDenied:
		return nil, errf("AccessDeniedException", http.StatusBadRequest, "User: arn:aws:iam::%s:user/kmstest is not authorized to perform: kms:%s because no identity-based policy allows the kms:%s action", AccountID, op, op)
	}
	switch op {
	case "GenerateDataKey":
		return decodeAnd(body, s.generateDataKey)
	case "Encrypt":
		return decodeAnd(body, s.encrypt)
	case "Decrypt":
		return decodeAnd(body, s.decrypt)
	case "ReEncrypt":
		return decodeAnd(body, s.reEncrypt)
	case "DescribeKey":
		return decodeAnd(body, s.describeKey)
	}
	return nil, errf("UnknownOperationException", http.StatusBadRequest, "operation %q is not implemented by the test double", op)
}

// decodeAnd decodes the body strictly (unknown members are an error, so the
// double notices what it does not model) and calls f.
func decodeAnd[In any](body []byte, f func(*In) (any, *apiError)) (any, *apiError) {
	var in In
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return nil, errf("SerializationException", http.StatusBadRequest, "%v", err)
	}
	return f(&in)
}

// Common request members the double accepts and ignores or rejects.
type common struct {
	GrantTokens []string
	DryRun      *bool
}

func (c common) check() *apiError {
	if c.DryRun != nil && *c.DryRun {
		return errf("DryRunOperationException", http.StatusPreconditionFailed, "The request would have succeeded, but the DryRun option is set.")
	}
	return nil
}

type generateDataKeyIn struct {
	common
	KeyId             string
	KeySpec           string
	NumberOfBytes     *int
	EncryptionContext map[string]string
	Recipient         json.RawMessage
}

func (s *Server) generateDataKey(in *generateDataKeyIn) (any, *apiError) {
	if aerr := in.check(); aerr != nil {
		return nil, aerr
	}
	if in.Recipient != nil {
		return nil, errf("ValidationException", http.StatusBadRequest, "Recipient is not supported by the test double")
	}
	n := 0
	switch {
	case in.KeySpec != "" && in.NumberOfBytes != nil:
		return nil, errf("ValidationException", http.StatusBadRequest, "Please specify either number of bytes or key spec.")
	case in.KeySpec == "AES_256":
		n = 32
	case in.KeySpec == "AES_128":
		n = 16
	case in.KeySpec != "":
		return nil, errf("ValidationException", http.StatusBadRequest, "1 validation error detected: Value '%s' at 'keySpec' failed to satisfy constraint", in.KeySpec)
	case in.NumberOfBytes != nil && *in.NumberOfBytes >= 1 && *in.NumberOfBytes <= 1024:
		n = *in.NumberOfBytes
	default:
		return nil, errf("ValidationException", http.StatusBadRequest, "Please specify either number of bytes or key spec.")
	}
	k, aerr := s.usableKey(in.KeyId)
	if aerr != nil {
		return nil, aerr
	}
	pt := make([]byte, n)
	rand.Read(pt)
	return map[string]any{
		"CiphertextBlob": seal(k, pt, in.EncryptionContext),
		"Plaintext":      pt,
		"KeyId":          arn(k.id),
	}, nil
}

type encryptIn struct {
	common
	KeyId               string
	Plaintext           []byte
	EncryptionContext   map[string]string
	EncryptionAlgorithm string
}

func (s *Server) encrypt(in *encryptIn) (any, *apiError) {
	if aerr := in.check(); aerr != nil {
		return nil, aerr
	}
	if aerr := checkAlgorithm(in.EncryptionAlgorithm); aerr != nil {
		return nil, aerr
	}
	if len(in.Plaintext) == 0 || len(in.Plaintext) > 4096 {
		return nil, errf("ValidationException", http.StatusBadRequest, "Plaintext must be 1 to 4096 bytes")
	}
	k, aerr := s.usableKey(in.KeyId)
	if aerr != nil {
		return nil, aerr
	}
	return map[string]any{
		"CiphertextBlob":      seal(k, in.Plaintext, in.EncryptionContext),
		"KeyId":               arn(k.id),
		"EncryptionAlgorithm": "SYMMETRIC_DEFAULT",
	}, nil
}

type decryptIn struct {
	common
	CiphertextBlob      []byte
	EncryptionContext   map[string]string
	KeyId               string
	EncryptionAlgorithm string
	DryRunModifiers     []string
	Recipient           json.RawMessage
}

func (s *Server) decrypt(in *decryptIn) (any, *apiError) {
	if aerr := in.check(); aerr != nil {
		return nil, aerr
	}
	if in.Recipient != nil {
		return nil, errf("ValidationException", http.StatusBadRequest, "Recipient is not supported by the test double")
	}
	if aerr := checkAlgorithm(in.EncryptionAlgorithm); aerr != nil {
		return nil, aerr
	}
	k, pt, aerr := s.open(in.CiphertextBlob, in.KeyId, in.EncryptionContext)
	if aerr != nil {
		return nil, aerr
	}
	return map[string]any{
		"KeyId":               arn(k.id),
		"Plaintext":           pt,
		"EncryptionAlgorithm": "SYMMETRIC_DEFAULT",
	}, nil
}

type reEncryptIn struct {
	common
	CiphertextBlob                 []byte
	SourceEncryptionContext        map[string]string
	SourceKeyId                    string
	SourceEncryptionAlgorithm      string
	DestinationKeyId               string
	DestinationEncryptionContext   map[string]string
	DestinationEncryptionAlgorithm string
	DryRunModifiers                []string
}

func (s *Server) reEncrypt(in *reEncryptIn) (any, *apiError) {
	if aerr := in.check(); aerr != nil {
		return nil, aerr
	}
	if aerr := checkAlgorithm(in.SourceEncryptionAlgorithm); aerr != nil {
		return nil, aerr
	}
	if aerr := checkAlgorithm(in.DestinationEncryptionAlgorithm); aerr != nil {
		return nil, aerr
	}
	src, pt, aerr := s.open(in.CiphertextBlob, in.SourceKeyId, in.SourceEncryptionContext)
	if aerr != nil {
		return nil, aerr
	}
	defer clear(pt)
	dst, aerr := s.usableKey(in.DestinationKeyId)
	if aerr != nil {
		return nil, aerr
	}
	return map[string]any{
		"CiphertextBlob":                 seal(dst, pt, in.DestinationEncryptionContext),
		"SourceKeyId":                    arn(src.id),
		"KeyId":                          arn(dst.id),
		"SourceEncryptionAlgorithm":      "SYMMETRIC_DEFAULT",
		"DestinationEncryptionAlgorithm": "SYMMETRIC_DEFAULT",
	}, nil
}

type describeKeyIn struct {
	KeyId       string
	GrantTokens []string
}

func (s *Server) describeKey(in *describeKeyIn) (any, *apiError) {
	s.mu.Lock()
	k := s.lookupLocked(in.KeyId)
	var enabled bool
	if k != nil {
		enabled = k.enabled
	}
	s.mu.Unlock()
	if k == nil {
		return nil, notFound(in.KeyId)
	}
	state := "Enabled"
	if !enabled {
		state = "Disabled"
	}
	return map[string]any{"KeyMetadata": map[string]any{
		"AWSAccountId":          AccountID,
		"KeyId":                 k.id,
		"Arn":                   arn(k.id),
		"CreationDate":          float64(k.created.UnixMilli()) / 1000,
		"Enabled":               enabled,
		"Description":           "",
		"KeyUsage":              "ENCRYPT_DECRYPT",
		"KeyState":              state,
		"Origin":                "AWS_KMS",
		"KeyManager":            "CUSTOMER",
		"CustomerMasterKeySpec": "SYMMETRIC_DEFAULT",
		"KeySpec":               "SYMMETRIC_DEFAULT",
		"EncryptionAlgorithms":  []string{"SYMMETRIC_DEFAULT"},
		"MultiRegion":           false,
	}}, nil
}

func checkAlgorithm(a string) *apiError {
	if a != "" && a != "SYMMETRIC_DEFAULT" {
		return errf("InvalidKeyUsageException", http.StatusBadRequest, "encryption algorithm %s is not valid for this key", a)
	}
	return nil
}

// # Keys and ciphertext

func arn(id string) string { return "arn:aws:kms:" + Region + ":" + AccountID + ":key/" + id }

func notFound(id string) *apiError {
	return errf("NotFoundException", http.StatusBadRequest, "Key '%s' does not exist", id)
}

// lookupLocked resolves a key id, key ARN, alias name or alias ARN.
func (s *Server) lookupLocked(id string) *key {
	aliasARN := "arn:aws:kms:" + Region + ":" + AccountID + ":alias/"
	switch {
	case strings.HasPrefix(id, "alias/"):
		id = s.aliases[id]
	case strings.HasPrefix(id, aliasARN):
		id = s.aliases["alias/"+strings.TrimPrefix(id, aliasARN)]
	case strings.HasPrefix(id, "arn:"):
		kid, ok := strings.CutPrefix(id, arn(""))
		if !ok {
			return nil
		}
		id = kid
	}
	return s.keys[id]
}

// usableKey resolves id to an enabled key.
func (s *Server) usableKey(id string) (*key, *apiError) {
	if id == "" {
		return nil, errf("ValidationException", http.StatusBadRequest, "1 validation error detected: Value null at 'keyId' failed to satisfy constraint: Member must not be null")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	k := s.lookupLocked(id)
	if k == nil {
		return nil, notFound(id)
	}
	if !k.enabled {
		return nil, errf("DisabledException", http.StatusBadRequest, "%s is disabled.", arn(k.id))
	}
	return k, nil
}

// Blob layout: "kt1" | len(key id) (1 byte) | key id | 12-byte nonce | GCM
// ciphertext and tag. The AAD is the header plus the canonical encoding of
// the encryption context, so a blob opens only under the context (and key)
// it was made with.
const blobMagic = "kt1"

func seal(k *key, pt []byte, encCtx map[string]string) []byte {
	hdr := append([]byte(blobMagic), byte(len(k.id)))
	hdr = append(hdr, k.id...)
	nonce := make([]byte, k.master.NonceSize())
	rand.Read(nonce)
	out := append(hdr, nonce...)
	return k.master.Seal(out, nonce, pt, aad(hdr, encCtx))
}

// open parses and decrypts a blob. keyID, if given, must name the key the
// blob was made with (IncorrectKeyException otherwise, as in KMS).
func (s *Server) open(blob []byte, keyID string, encCtx map[string]string) (*key, []byte, *apiError) {
	invalid := errf("InvalidCiphertextException", http.StatusBadRequest, "")
	if len(blob) < len(blobMagic)+1 || string(blob[:len(blobMagic)]) != blobMagic {
		return nil, nil, invalid
	}
	n := int(blob[len(blobMagic)])
	hdrLen := len(blobMagic) + 1 + n
	if len(blob) < hdrLen+12+16 {
		return nil, nil, invalid
	}
	id := string(blob[len(blobMagic)+1 : hdrLen])
	s.mu.Lock()
	k := s.keys[id]
	var want *key
	if keyID != "" {
		want = s.lookupLocked(keyID)
	}
	enabled := k != nil && k.enabled
	s.mu.Unlock()
	if k == nil {
		return nil, nil, invalid
	}
	if keyID != "" && want != k {
		return nil, nil, errf("IncorrectKeyException", http.StatusBadRequest, "The key ID in the request does not identify a CMK that can perform this operation.")
	}
	if !enabled {
		return nil, nil, errf("DisabledException", http.StatusBadRequest, "%s is disabled.", arn(k.id))
	}
	nonce := blob[hdrLen : hdrLen+12]
	pt, err := k.master.Open(nil, nonce, blob[hdrLen+12:], aad(blob[:hdrLen], encCtx))
	if err != nil {
		return nil, nil, invalid
	}
	return k, pt, nil
}

func aad(hdr []byte, encCtx map[string]string) []byte {
	out := append([]byte{}, hdr...)
	keys := make([]string, 0, len(encCtx))
	for k := range encCtx {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		out = binary.BigEndian.AppendUint32(out, uint32(len(k)))
		out = append(out, k...)
		out = binary.BigEndian.AppendUint32(out, uint32(len(encCtx[k])))
		out = append(out, encCtx[k]...)
	}
	return out
}

func newUUID() string {
	b := make([]byte, 16)
	rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// # SigV4

// verifySignature checks the request's AWS Signature Version 4 against the
// double's static credentials, independently of the SDK's signer.
func verifySignature(r *http.Request, body []byte) *apiError {
	auth := r.Header.Get("Authorization")
	const algo = "AWS4-HMAC-SHA256"
	rest, ok := strings.CutPrefix(auth, algo+" ")
	if !ok {
		return errf("MissingAuthenticationTokenException", http.StatusBadRequest, "Missing Authentication Token")
	}
	var cred, signed, sig string
	for _, part := range strings.Split(rest, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "Credential":
			cred = v
		case "SignedHeaders":
			signed = v
		case "Signature":
			sig = v
		}
	}
	scope := strings.Split(cred, "/")
	if len(scope) != 5 || scope[4] != "aws4_request" || scope[3] != "kms" {
		return errf("IncompleteSignatureException", http.StatusBadRequest, "malformed credential scope")
	}
	if scope[0] != AccessKey {
		return errf("UnrecognizedClientException", http.StatusBadRequest, "The security token included in the request is invalid.")
	}
	if scope[2] != Region {
		return errf("InvalidSignatureException", http.StatusBadRequest, "credential scope names region %q, not %q", scope[2], Region)
	}
	amzDate := r.Header.Get("X-Amz-Date")
	ts, err := time.Parse("20060102T150405Z", amzDate)
	if err != nil || !strings.HasPrefix(amzDate, scope[1]) {
		return errf("IncompleteSignatureException", http.StatusBadRequest, "bad X-Amz-Date")
	}
	if d := time.Since(ts); d > 5*time.Minute || d < -5*time.Minute {
		return errf("InvalidSignatureException", http.StatusBadRequest, "Signature expired")
	}
	names := strings.Split(signed, ";")
	if !slices.Contains(names, "host") || !slices.Contains(names, "x-amz-date") {
		return errf("IncompleteSignatureException", http.StatusBadRequest, "host and x-amz-date must be signed")
	}
	var canon strings.Builder
	canon.WriteString(r.Method + "\n/\n" + r.URL.RawQuery + "\n")
	for _, n := range names {
		var v string
		switch n {
		case "host":
			v = r.Host
		case "content-length":
			v = fmt.Sprint(r.ContentLength)
		default:
			v = strings.Join(r.Header.Values(n), ",")
		}
		canon.WriteString(n + ":" + strings.Join(strings.Fields(v), " ") + "\n")
	}
	payload := sha256.Sum256(body)
	canon.WriteString("\n" + signed + "\n" + hex.EncodeToString(payload[:]))
	creq := sha256.Sum256([]byte(canon.String()))
	toSign := algo + "\n" + amzDate + "\n" + strings.Join(scope[1:], "/") + "\n" + hex.EncodeToString(creq[:])
	k := hmacSHA256([]byte("AWS4"+SecretKey), scope[1])
	for _, p := range scope[2:] {
		k = hmacSHA256(k, p)
	}
	want := hex.EncodeToString(hmacSHA256(k, toSign))
	if !hmac.Equal([]byte(want), []byte(sig)) {
		return errf("InvalidSignatureException", http.StatusBadRequest, "The request signature we calculated does not match the signature you provided.")
	}
	return nil
}

func hmacSHA256(key []byte, data string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(data))
	return m.Sum(nil)
}

// SetEnv points the AWS SDK's default credential chain at the double's static
// credentials for the duration of t (and keeps it away from shared config
// files and instance metadata).
func (s *Server) SetEnv(t testing.TB) {
	t.Setenv("AWS_ACCESS_KEY_ID", AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", SecretKey)
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_REGION", Region)
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_CONFIG_FILE", os.DevNull)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", os.DevNull)
	t.Setenv("AWS_PROFILE", "")
}
