package archive

// # Object layout
//
// The Vault lays one message out in a Store as:
//
//	msg/<id>                              the sealed message; metadata: Record.Meta
//	                                      plus "mv-received-at" (RFC 3339, ns)
//	msg/<id>.manifest                     the sealed manifest; same metadata
//	fp/<hex fingerprint>                  dedupe marker; content: <id>; committed IfAbsent
//	idx/<mailbox hash>/<inv time>-<id>    empty; one per distinct normalised address
//	                                      among the envelope sender and recipients
//	all/<inv time>-<id>                   empty; every message, for auditors
//
// <id> is NewID's 39 characters of [0-9a-v]. <mailbox hash> is
// hex(HMAC-SHA256(indexKey, "mailbox\x00" + NormalizeAddress(addr))), and the
// fingerprint is the HMAC of Fingerprint: no key holds an address or anything
// computable from one without the index key. <inv time> is the 19-digit
// decimal of math.MaxInt64 minus the receive time in Unix nanoseconds, so
// ascending key order is newest first.
//
// # Ordering
//
// Commit writes marker (if absent), manifest, message, index entries; Undo
// (and the clean-up of a failed Commit) removes index entries, message,
// manifest, marker. So a message never exists without its marker: a crash
// leaves either a marker whose message is missing (the retry removes it and
// archives anew) or a complete message whose index may be incomplete (the
// retry completes it and answers with the archived id). docs/DESIGN.md,
// "Commit, duplicates and Undo", has the whole argument.

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"maps"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Envelope is the SMTP envelope of one message.
type Envelope struct {
	From string
	To   []string
}

// Record is what Commit stores beside the sealed message.
type Record struct {
	Envelope    Envelope
	ReceivedAt  time.Time
	Meta        map[string]string // object metadata of the message (sealer.Metadata.Map())
	Manifest    []byte            // the sealed manifest
	Fingerprint []byte            // Vault.Fingerprint over envelope and message bytes
}

// Entry is one line of a listing.
type Entry struct {
	ID         string
	ReceivedAt time.Time
}

// MetaReceivedAt is the metadata key under which Commit records the receive
// time (RFC 3339 with nanoseconds) on the message and manifest objects.
const MetaReceivedAt = "mv-received-at"

// MessagePrefix is the key prefix of every message object (and its
// manifest): one List of it with limit 1 says whether a store holds any
// message, without the index key.
const MessagePrefix = msgPrefix

const (
	msgPrefix      = "msg/"
	manifestSuffix = ".manifest"
	fpPrefix       = "fp/"
	idxPrefix      = "idx/"
	allPrefix      = "all/"

	idTimeLen = 13 // unix milliseconds, base 32
	idRandLen = 26 // 128 random bits, base 32
	idLen     = idTimeLen + idRandLen

	invTimeLen = 19 // digits of math.MaxInt64
	// indexSuffixLen is the length of "<inv time>-<id>".
	indexSuffixLen = invTimeLen + 1 + idLen

	// maxSealedManifestBytes bounds a manifest read: the 16 MiB bound of a
	// decoded manifest (package sealed) plus room for the sealing overhead
	// (headers and per-chunk tags). The Vault stores the manifest as opaque
	// ciphertext and never decodes it.
	maxSealedManifestBytes = 17 << 20

	defaultListLimit = 50
	maxListLimit     = 1000
	maxCursorBytes   = 128

	// cleanupTimeout bounds the removal of a failed Commit's objects, which
	// runs even when the caller's context is done.
	cleanupTimeout = 30 * time.Second
)

// idEncoding is base32 with the "extended hex" alphabet in lower case: its
// digits sort in ASCII order, so ids sort by time.
var idEncoding = base32.NewEncoding("0123456789abcdefghijklmnopqrstuv").WithPadding(base32.NoPadding)

// Vault lays sealed messages out in a Store. It is safe for concurrent use.
type Vault struct {
	store Store
	key   []byte

	mu       sync.Mutex
	inflight map[string]struct{} // fingerprint markers being committed here
}

// NewVault returns a Vault over s; indexKey keys every hash that stands in for
// an address or a message (it must be secret, 32 bytes). The Vault takes
// indexKey over rather than copying it, so that the secret has one copy, which
// Close clears: the caller must not change or reuse the slice. NewVault panics
// if indexKey is shorter than 32 bytes: that is a wiring mistake, not a
// runtime condition.
func NewVault(s Store, indexKey []byte) *Vault {
	if s == nil {
		panic("archive: NewVault: nil store")
	}
	if len(indexKey) < 32 {
		panic(fmt.Sprintf("archive: NewVault: index key of %d bytes, want 32", len(indexKey)))
	}
	return &Vault{store: s, key: indexKey, inflight: map[string]struct{}{}}
}

// Close clears the index key. Call it once nothing uses the Vault any more:
// a hash computed after Close would be keyed with zeros. It does not close
// the store.
func (v *Vault) Close() { clear(v.key) }

// Store returns the underlying store.
func (v *Vault) Store() Store { return v.store }

// NewID returns a new archive id for a message received at t: sortable by
// time, unguessable, [0-9a-v] only. It is 39 characters: t in Unix
// milliseconds (13 base-32 digits, so ids of different milliseconds sort in
// time order) then 128 random bits (26 base-32 digits).
func NewID(t time.Time) string {
	ms := max(t.UnixMilli(), 0)
	ts := strconv.FormatUint(uint64(ms), 32) // digits 0-9a-v, as idEncoding
	var r [16]byte
	rand.Read(r[:]) // never fails (crypto/rand)
	return strings.Repeat("0", idTimeLen-len(ts)) + ts + idEncoding.EncodeToString(r[:])
}

// ValidID reports whether s has the form of an archive id (use it before any
// store access with a caller-supplied id): exactly 39 bytes of [0-9a-v].
func ValidID(s string) bool {
	if len(s) != idLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'v') {
			return false
		}
	}
	return true
}

// idTime is the receive time encoded in a valid id (millisecond precision).
func idTime(id string) time.Time {
	ms, err := strconv.ParseUint(id[:idTimeLen], 32, 63)
	if err != nil {
		return time.Time{}
	}
	return time.UnixMilli(int64(ms)).UTC()
}

// Fingerprint returns a keyed hash seeded with env; the caller writes the
// message bytes into it. Equal envelopes and bytes give equal fingerprints.
//
// It is HMAC-SHA256 under the index key of "fingerprint\x00", then the
// normalised sender and the number of recipients, then each normalised
// recipient in the given order, every string preceded by its length (uint32,
// big endian) so that no two envelopes feed the same bytes, then the message.
func (v *Vault) Fingerprint(env Envelope) hash.Hash {
	h := hmac.New(sha256.New, v.key)
	h.Write([]byte("fingerprint\x00"))
	writeField(h, NormalizeAddress(env.From))
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(env.To)))
	h.Write(n[:])
	for _, to := range env.To {
		writeField(h, NormalizeAddress(to))
	}
	return h
}

func writeField(h hash.Hash, s string) {
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(s)))
	h.Write(n[:])
	h.Write([]byte(s))
}

// mailboxHash is the index directory name of a normalised address.
func (v *Vault) mailboxHash(normalized string) string {
	h := hmac.New(sha256.New, v.key)
	h.Write([]byte("mailbox\x00"))
	h.Write([]byte(normalized))
	return hex.EncodeToString(h.Sum(nil))
}

func msgKey(id string) string      { return msgPrefix + id }
func manifestKey(id string) string { return msgPrefix + id + manifestSuffix }

// MessageKeys returns the store keys holding message id (its sealed bytes
// and its manifest), for store-level operations such as a legal hold. id
// must be valid (ValidID).
func MessageKeys(id string) []string { return []string{msgKey(id), manifestKey(id)} }

// invTime is t as the 19-digit inverted timestamp of index keys. Times
// outside what UnixNano represents are clamped to its range.
func invTime(t time.Time) string {
	var ns int64
	switch {
	case t.Before(time.Unix(0, 0)):
		ns = 0
	case t.After(time.Unix(0, math.MaxInt64)):
		ns = math.MaxInt64
	default:
		ns = t.UnixNano()
	}
	return fmt.Sprintf("%0*d", invTimeLen, math.MaxInt64-ns)
}

// parseIndexSuffix splits "<inv time>-<id>".
func parseIndexSuffix(s string) (inv int64, id string, ok bool) {
	if len(s) != indexSuffixLen || s[invTimeLen] != '-' {
		return 0, "", false
	}
	for i := 0; i < invTimeLen; i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, "", false
		}
	}
	inv, err := strconv.ParseInt(s[:invTimeLen], 10, 64)
	if err != nil {
		return 0, "", false
	}
	id = s[invTimeLen+1:]
	if !ValidID(id) {
		return 0, "", false
	}
	return inv, id, true
}

func timeOfInv(inv int64) time.Time { return time.Unix(0, math.MaxInt64-inv).UTC() }

// indexAddresses returns the distinct normalised addresses of env that get
// an index entry (the null sender gets none).
func indexAddresses(env Envelope) []string {
	var out []string
	seen := make(map[string]bool)
	for _, a := range append([]string{env.From}, env.To...) {
		n := NormalizeAddress(a)
		if n == "" || seen[n] {
			continue
		}
		seen[n] = true
		out = append(out, n)
	}
	return out
}

// indexKeys returns the idx/ entries of a message, then its all/ entry.
func (v *Vault) indexKeys(id string, at time.Time, addrs []string) []string {
	suffix := invTime(at) + "-" + id
	keys := make([]string, 0, len(addrs)+1)
	for _, a := range addrs {
		keys = append(keys, idxPrefix+v.mailboxHash(a)+"/"+suffix)
	}
	return append(keys, allPrefix+suffix)
}

// put stores data under key.
func (v *Vault) put(ctx context.Context, key string, data []byte, meta map[string]string, ifAbsent bool) error {
	w, err := v.store.Create(ctx, key)
	if err != nil {
		return err
	}
	if _, err := w.Write(data); err != nil {
		w.Abort()
		return err
	}
	if err := w.Commit(ctx, meta, ifAbsent); err != nil {
		w.Abort() // a no-op after Commit; releases what a failed one left
		return err
	}
	return nil
}

// putEmpty stores empty objects under keys, concurrently: index entries
// are independent of each other, and on a remote store each is a round
// trip. It returns the first error.
func (v *Vault) putEmpty(ctx context.Context, keys []string) error {
	errs := make([]error, len(keys))
	var wg sync.WaitGroup
	for i, key := range keys {
		wg.Go(func() { errs[i] = v.put(ctx, key, nil, nil, false) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// readSmall reads key whole, failing if it holds more than max bytes.
func (v *Vault) readSmall(ctx context.Context, key string, max int64) ([]byte, error) {
	rc, err := v.store.Get(ctx, key, 0, -1)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("archive: %s holds more than %d bytes", key, max)
	}
	return b, nil
}

// resolveMarker returns the id named by the fingerprint marker fpKey and
// that message's receive time, or "" if there is no usable marker.
//
// Commit claims the marker before it writes the manifest and the message, and
// Undo removes the marker last, so a marker whose message is missing belongs
// to a delivery that died before its message landed, or to one being undone.
// The caller holds the in-process claim on fpKey (Vault.claim), so it is not
// a delivery still running here: the marker is stale, and it and the manifest
// it may have left are removed.
func (v *Vault) resolveMarker(ctx context.Context, fpKey string) (string, time.Time, error) {
	b, err := v.readSmall(ctx, fpKey, idLen)
	if errors.Is(err, ErrNotFound) {
		return "", time.Time{}, nil
	}
	if err != nil {
		return "", time.Time{}, fmt.Errorf("read marker %s: %w", fpKey, err)
	}
	id := string(b)
	if !ValidID(id) {
		if err := v.store.Delete(ctx, fpKey); err != nil {
			return "", time.Time{}, fmt.Errorf("remove corrupt marker %s: %w", fpKey, err)
		}
		return "", time.Time{}, nil
	}
	info, err := v.store.Head(ctx, msgKey(id))
	if err == nil {
		return id, receivedAt(info, id), nil
	}
	if !errors.Is(err, ErrNotFound) {
		return "", time.Time{}, fmt.Errorf("head %s: %w", msgKey(id), err)
	}
	for _, key := range []string{manifestKey(id), fpKey} {
		if err := v.store.Delete(ctx, key); err != nil {
			return "", time.Time{}, fmt.Errorf("remove what %s left: %w", id, err)
		}
	}
	return "", time.Time{}, nil
}

// ErrInProgress is returned by Commit when the same message (same
// fingerprint) is being committed by another deposit of this process: a
// client that retried before our first answer. It is transient.
var ErrInProgress = errors.New("archive: the same message is being archived by another session")

// claim takes the in-process claim on a fingerprint marker; release gives
// it back.
func (v *Vault) claim(fpKey string) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	if _, busy := v.inflight[fpKey]; busy {
		return false
	}
	v.inflight[fpKey] = struct{}{}
	return true
}

func (v *Vault) release(fpKey string) {
	v.mu.Lock()
	delete(v.inflight, fpKey)
	v.mu.Unlock()
}

// receivedAt is the receive time recorded on a message object, or failing
// that the one in its id.
func receivedAt(info ObjectInfo, id string) time.Time {
	if t, err := time.Parse(time.RFC3339Nano, info.Metadata[MetaReceivedAt]); err == nil {
		return t
	}
	return idTime(id)
}

// # Deposits

type depositState int

const (
	depositOpen depositState = iota
	depositCommitted
	depositDuplicate
	depositDone // aborted, failed or undone
)

// Deposit is a message being archived. Like an io.Writer it is used by one
// goroutine at a time.
type Deposit struct {
	v       *Vault
	id      string
	w       ObjectWriter
	wDone   bool // w has been committed or aborted
	state   depositState
	written written
}

// written is what a deposit stored, so that Undo or a failed Commit can take
// it back.
type written struct {
	msg, manifest, marker string
	index                 []string // idx/ entries, then the all/ entry
}

var errDepositFinished = errors.New("archive: deposit already committed or aborted")

// Begin starts the message object of archive id id (from NewID).
func (v *Vault) Begin(ctx context.Context, id string) (*Deposit, error) {
	if !ValidID(id) {
		return nil, fmt.Errorf("archive: begin: invalid id %s", quoteShort(id))
	}
	w, err := v.store.Create(ctx, msgKey(id))
	if err != nil {
		return nil, fmt.Errorf("archive: begin %s: %w", id, err)
	}
	return &Deposit{v: v, id: id, w: w}, nil
}

// Write writes sealed message bytes.
func (d *Deposit) Write(p []byte) (int, error) {
	if d.state != depositOpen {
		return 0, errDepositFinished
	}
	return d.w.Write(p)
}

// Commit stores the message, its manifest, the fingerprint marker and the
// index entries. If a message with the same fingerprint is already archived,
// nothing new is stored and Commit returns that message's id with duplicate
// set (and makes sure its index entries exist).
//
// r.Fingerprint must be the 32-byte sum of Fingerprint, r.ReceivedAt must be
// set. Commit finishes the deposit whatever it returns: after an error,
// everything it wrote has been removed (best effort) and Abort is a no-op.
func (d *Deposit) Commit(ctx context.Context, r Record) (id string, duplicate bool, err error) {
	if d.state != depositOpen {
		return "", false, fmt.Errorf("archive: commit %s: %w", d.id, errDepositFinished)
	}
	id, duplicate, err = d.commit(ctx, r)
	if err != nil {
		d.state = depositDone
		d.abortWriter()
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		if cerr := d.remove(cctx); cerr != nil {
			return "", false, fmt.Errorf("archive: commit %s: %w (and removing what was written: %v)", d.id, err, cerr)
		}
		return "", false, fmt.Errorf("archive: commit %s: %w", d.id, err)
	}
	return id, duplicate, nil
}

func (d *Deposit) commit(ctx context.Context, r Record) (string, bool, error) {
	if len(r.Fingerprint) != sha256.Size {
		return "", false, fmt.Errorf("fingerprint of %d bytes, want %d", len(r.Fingerprint), sha256.Size)
	}
	if r.ReceivedAt.IsZero() {
		return "", false, errors.New("record has no receive time")
	}
	fpKey := fpPrefix + hex.EncodeToString(r.Fingerprint)
	addrs := indexAddresses(r.Envelope)

	// One deposit per fingerprint at a time in this process: a second one
	// is a client retrying before our first answer, and must not take the
	// first one's marker for a stale one.
	if !d.v.claim(fpKey) {
		return "", false, ErrInProgress
	}
	defer d.v.release(fpKey)

	// Already archived (a retry of a delivery that was committed)?
	existing, at, err := d.v.resolveMarker(ctx, fpKey)
	if err != nil {
		return "", false, err
	}
	if existing != "" {
		d.abortWriter()
		return d.duplicateOf(ctx, existing, at, addrs)
	}

	// The order is what makes a crash harmless: marker, manifest, message,
	// index. Until the message lands, what exists is a marker whose message
	// is missing, which the retry removes (resolveMarker); once it has
	// landed, the retry finds it and completes the index (duplicateOf). No
	// message object is ever left that no retry would find.
	for attempt := 0; ; attempt++ {
		err := d.v.put(ctx, fpKey, []byte(d.id), nil, true)
		if err == nil {
			d.written.marker = fpKey
			break
		}
		if !errors.Is(err, ErrExists) || attempt == 3 {
			return "", false, err
		}
		// Another process committed the same message meanwhile.
		existing, at, err := d.v.resolveMarker(ctx, fpKey)
		if err != nil {
			return "", false, err
		}
		if existing != "" {
			d.abortWriter()
			return d.duplicateOf(ctx, existing, at, addrs)
		}
	}

	meta := maps.Clone(r.Meta)
	if meta == nil {
		meta = make(map[string]string, 1)
	}
	meta[MetaReceivedAt] = r.ReceivedAt.UTC().Format(time.RFC3339Nano)

	if err := d.v.put(ctx, manifestKey(d.id), r.Manifest, meta, true); err != nil {
		if !errors.Is(err, ErrExists) {
			d.written.manifest = manifestKey(d.id)
		}
		return "", false, err
	}
	d.written.manifest = manifestKey(d.id)

	d.wDone = true
	if err := d.w.Commit(ctx, meta, true); err != nil {
		d.w.Abort() // a no-op after Commit; releases what a failed one left
		if !errors.Is(err, ErrExists) {
			d.written.msg = msgKey(d.id) // it may have landed
		}
		return "", false, err
	}
	d.written.msg = msgKey(d.id)

	keys := d.v.indexKeys(d.id, r.ReceivedAt, addrs)
	d.written.index = keys // on failure, remove them all: deleting a missing key is fine
	if err := d.v.putEmpty(ctx, keys); err != nil {
		return "", false, err
	}
	d.state = depositCommitted
	return d.id, false, nil
}

// duplicateOf (re)writes the index entries of the archived message existing
// and checks that it is still there: if an Undo took it away meanwhile, the
// entries are taken back and Commit fails, so that the delivery is retried
// rather than answered with an id that no longer exists.
func (d *Deposit) duplicateOf(ctx context.Context, existing string, at time.Time, addrs []string) (string, bool, error) {
	keys := d.v.indexKeys(existing, at, addrs)
	if err := d.v.putEmpty(ctx, keys); err != nil {
		return "", false, fmt.Errorf("index duplicate %s: %w", existing, err)
	}
	if _, err := d.v.store.Head(ctx, msgKey(existing)); err != nil {
		for _, key := range keys {
			d.v.store.Delete(ctx, key)
		}
		if errors.Is(err, ErrNotFound) {
			return "", false, fmt.Errorf("duplicate %s was removed while being indexed", existing)
		}
		return "", false, fmt.Errorf("head duplicate %s: %w", existing, err)
	}
	d.state = depositDuplicate
	return existing, true, nil
}

func (d *Deposit) abortWriter() {
	if !d.wDone {
		d.wDone = true
		d.w.Abort()
	}
}

// remove deletes what the deposit wrote: index entries, message, manifest,
// marker, the reverse of Commit's order, stopping at the first failure so
// that a message never outlives its marker (a retry must find it). What was
// removed is forgotten, so it can be called again.
func (d *Deposit) remove(ctx context.Context) error {
	for len(d.written.index) > 0 {
		if err := d.v.store.Delete(ctx, d.written.index[0]); err != nil {
			return err
		}
		d.written.index = d.written.index[1:]
	}
	for _, key := range []*string{&d.written.msg, &d.written.manifest, &d.written.marker} {
		if *key == "" {
			continue
		}
		if err := d.v.store.Delete(ctx, *key); err != nil {
			return err
		}
		*key = ""
	}
	return nil
}

// Abort discards an uncommitted deposit. It is a no-op after Commit or
// Abort.
func (d *Deposit) Abort() {
	if d.state != depositOpen {
		return
	}
	d.state = depositDone
	d.abortWriter()
}

// Undo removes what Commit stored (when forwarding fails after the archive
// commit): index entries, message, manifest, fingerprint marker. For a
// duplicate, an uncommitted or an undone deposit it does nothing. If it
// fails, calling it again resumes.
func (d *Deposit) Undo(ctx context.Context) error {
	if d.state != depositCommitted {
		return nil
	}
	if err := d.remove(ctx); err != nil {
		return fmt.Errorf("archive: undo %s: %w", d.id, err)
	}
	d.state = depositDone
	return nil
}

// # Reading

// Head returns the message object's size and metadata. An id that is not
// ValidID is ErrNotFound.
func (v *Vault) Head(ctx context.Context, id string) (ObjectInfo, error) {
	if !ValidID(id) {
		return ObjectInfo{}, ErrNotFound
	}
	info, err := v.store.Head(ctx, msgKey(id))
	if err != nil {
		return ObjectInfo{}, fmt.Errorf("archive: head %s: %w", id, err)
	}
	return info, nil
}

// ReadMessage reads sealed message bytes [off, off+n) (n < 0: to the end).
// An id that is not ValidID is ErrNotFound.
func (v *Vault) ReadMessage(ctx context.Context, id string, off, n int64) (io.ReadCloser, error) {
	if !ValidID(id) {
		return nil, ErrNotFound
	}
	rc, err := v.store.Get(ctx, msgKey(id), off, n)
	if err != nil {
		return nil, fmt.Errorf("archive: read %s: %w", id, err)
	}
	return rc, nil
}

// Manifest returns the sealed manifest of id (at most 17 MiB: the 16 MiB
// bound of a decoded manifest plus sealing overhead). An id that is not
// ValidID is ErrNotFound.
func (v *Vault) Manifest(ctx context.Context, id string) ([]byte, error) {
	if !ValidID(id) {
		return nil, ErrNotFound
	}
	b, err := v.readSmall(ctx, manifestKey(id), maxSealedManifestBytes)
	if err != nil {
		return nil, fmt.Errorf("archive: manifest %s: %w", id, err)
	}
	return b, nil
}

// # Listing

// List returns entries of mailbox ("" lists every message) received in
// [since, until) (zero values: unbounded), newest first, at most limit, and a
// cursor for the next page ("" when there is none).
//
// limit is clamped to [1, 1000]; 0 or less means 50. Entries received at
// the same nanosecond come in id order. The cursor is opaque (base64url of
// the position in the listing); one from another mailbox's listing only
// positions this one in time, it cannot reach outside it. A mailbox that
// normalises to "" (such as "<>") is an error, not a request for everything.
func (v *Vault) List(ctx context.Context, mailbox string, since, until time.Time, limit int, cursor string) ([]Entry, string, error) {
	prefix := allPrefix
	if mailbox != "" {
		n := NormalizeAddress(mailbox)
		if n == "" {
			return nil, "", fmt.Errorf("archive: list: mailbox %s is empty once normalised", quoteShort(mailbox))
		}
		prefix = idxPrefix + v.mailboxHash(n) + "/"
	}
	limit = clampLimit(limit)

	startAfter := ""
	if cursor != "" {
		suffix, err := decodeCursor(cursor)
		if err != nil {
			return nil, "", err
		}
		startAfter = prefix + suffix
	}
	if !until.IsZero() {
		// Skip every entry at or after until: "." sorts after the "-" that
		// follows the timestamp.
		startAfter = max(startAfter, prefix+invTime(until)+".")
	}
	var invSince int64 = math.MaxInt64
	if !since.IsZero() {
		invSince, _ = strconv.ParseInt(invTime(since), 10, 64)
	}

	var out []Entry
	last := ""
	for {
		ask := limit + 1 - len(out) // one more than needed: is there a next page?
		page, err := v.store.List(ctx, prefix, startAfter, ask)
		if err != nil {
			return nil, "", fmt.Errorf("archive: list: %w", err)
		}
		for _, o := range page {
			startAfter = o.Key
			inv, id, ok := parseIndexSuffix(strings.TrimPrefix(o.Key, prefix))
			if !ok {
				continue // not ours; nothing the Vault writes
			}
			if inv > invSince {
				return out, "", nil // older than since
			}
			if len(out) == limit {
				return out, encodeCursor(last), nil
			}
			out = append(out, Entry{ID: id, ReceivedAt: timeOfInv(inv)})
			last = o.Key[len(prefix):]
		}
		if len(page) < ask {
			return out, "", nil
		}
	}
}

func clampLimit(limit int) int {
	switch {
	case limit <= 0:
		return defaultListLimit
	case limit > maxListLimit:
		return maxListLimit
	}
	return limit
}

func encodeCursor(suffix string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(suffix))
}

// decodeCursor returns the "<inv time>-<id>" position a cursor holds.
func decodeCursor(cursor string) (string, error) {
	bad := fmt.Errorf("archive: list: malformed cursor %s", quoteShort(cursor))
	if len(cursor) > maxCursorBytes {
		return "", bad
	}
	b, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil {
		return "", bad
	}
	if _, _, ok := parseIndexSuffix(string(b)); !ok {
		return "", bad
	}
	return string(b), nil
}
