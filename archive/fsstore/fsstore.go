// Package fsstore is the archive.Store in a local directory.
//
// It stores objects; it never decrypts, never interprets keys beyond
// archive.ValidateKey and never knows the Vault's layout.
package fsstore

import (
	"bufio"
	"container/heap"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/mailvault/mailvaultd/archive"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Store is an archive.Store in a local directory.
//
// # Layout
//
//	<dir>/objects/<key>~   one file per object (mode 0600; directories 0700)
//	<dir>/tmp/             objects being written
//
// Each '/'-separated segment of a key is a directory, and the last one names
// the object file with a "~" appended. '~' cannot occur in a key, so an
// object "a" (file "a~") and the objects under "a/" (directory "a") never
// collide, as they do not in S3.
//
// An object file holds the object's bytes, then its metadata as a JSON
// object, then a 16-byte trailer: the metadata length (uint64, big endian)
// and the magic "mvobj\x00v1". Data and metadata are therefore committed by
// one atomic rename (or link): a reader sees both or neither. The one
// exception is an empty object without metadata (the Vault's index entries):
// its file is empty, so there is nothing in it to make durable.
//
// # Durability
//
// Commit writes the trailer, fsyncs the temporary file (unless it is empty),
// creates missing parent directories (syncing each new directory's parent),
// moves the file into place (rename, or link(2) for archive.IfAbsent, which fails if
// the name exists, so two concurrent committers of one key cannot both win)
// and syncs the object's directory. When Commit returns, the object's bytes,
// metadata and name survive a power cut.
//
// Directory syncs are shared: concurrent Commits into one directory (msg/,
// fp/ and all/ take every message) wait for one fsync of it that began
// after their rename, instead of running one each in turn (see syncDir).
//
// # Crashes
//
// A crash leaves at most orphaned files in tmp/. New removes those
// older than an hour: any younger one may belong to a writer still running
// (a large message arriving slowly), possibly in another process using the
// same directory.
//
// Empty directories left by Delete are not removed: removing them would race
// with a Commit creating an object in them.
type Store struct {
	dir     string
	objects string
	tmp     string
	dirs    dirSyncs
}

var (
	_ archive.Store  = (*Store)(nil)
	_ archive.Pinger = (*Store)(nil)
)

const (
	fsObjectSuffix = "~"
	fsTrailerMagic = "mvobj\x00v1"
	fsTrailerSize  = 16
	// fsMaxMetaBytes bounds the metadata read back from a file; what
	// archive.ValidateMetadata lets in encodes to far less.
	fsMaxMetaBytes = 64 << 10
	// fsOrphanAge is how old a temporary file must be for New to
	// remove it.
	fsOrphanAge = time.Hour
	// fsDefaultListLimit is the page size of a List with limit <= 0.
	fsDefaultListLimit = 1000
	// fsWriteBuffer batches the small writes of a sealed stream.
	fsWriteBuffer = 32 << 10
)

// New opens (creating it with mode 0700 if missing) the store in dir,
// and removes temporary files older than an hour that a crash left behind.
func New(dir string) (*Store, error) {
	if dir == "" {
		return nil, errors.New("archive: fs store: no directory given")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("archive: fs store %s: %w", dir, err)
	}
	s := &Store{dir: abs, objects: filepath.Join(abs, "objects"), tmp: filepath.Join(abs, "tmp")}
	for _, d := range []string{abs, s.objects, s.tmp} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("archive: fs store: %w", err)
		}
	}
	if err := s.removeOrphans(time.Now().Add(-fsOrphanAge)); err != nil {
		return nil, err
	}
	return s, nil
}

// removeOrphans removes temporary files last modified before cutoff.
func (s *Store) removeOrphans(cutoff time.Time) error {
	ents, err := os.ReadDir(s.tmp)
	if err != nil {
		return fmt.Errorf("archive: fs store: %w", err)
	}
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		info, err := e.Info()
		if err != nil || !info.ModTime().Before(cutoff) {
			continue
		}
		// Best effort: a file that cannot be removed now is tried again at
		// the next start.
		_ = os.Remove(filepath.Join(s.tmp, e.Name()))
	}
	return nil
}

// path is the file of key, which must have passed archive.ValidateKey.
func (s *Store) path(key string) string {
	return filepath.Join(s.objects, filepath.FromSlash(key)) + fsObjectSuffix
}

// Ping checks that the store's directory is there and writable.
func (s *Store) Ping(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if st, err := os.Stat(s.objects); err != nil || !st.IsDir() {
		return fmt.Errorf("archive: fs store %s: objects directory missing", s.dir)
	}
	f, err := os.CreateTemp(s.tmp, "ping-*")
	if err != nil {
		return fmt.Errorf("archive: fs store %s not writable: %w", s.dir, err)
	}
	name := f.Name()
	f.Close()
	if err := os.Remove(name); err != nil {
		return fmt.Errorf("archive: fs store %s: %w", s.dir, err)
	}
	return nil
}

// Create starts writing key into a temporary file.
func (s *Store) Create(ctx context.Context, key string) (archive.ObjectWriter, error) {
	if err := archive.ValidateKey(key); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("archive: create %s: %w", key, err)
	}
	f, err := os.CreateTemp(s.tmp, "obj-*") // mode 0600
	if err != nil {
		return nil, fmt.Errorf("archive: create %s: %w", key, err)
	}
	return &fsWriter{s: s, key: key, f: f}, nil
}

// fsWriteBuffers are the write buffers of objects being written, reused: a
// message takes six objects, most of them a few bytes or none, and a buffer
// each would be most of what a delivery allocates.
var fsWriteBuffers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, fsWriteBuffer) }}

var errWriterFinished = errors.New("archive: object already committed or aborted")

// fsWriter is an object being written to a temporary file. Like any
// io.Writer it is not safe for concurrent use.
type fsWriter struct {
	s    *Store
	key  string
	f    *os.File
	bw   *bufio.Writer // from fsWriteBuffers at the first write; nil after
	n    int64         // bytes written
	done bool
}

// buffer returns the writer's buffer, taking one from the pool if needed.
func (w *fsWriter) buffer() *bufio.Writer {
	if w.bw == nil {
		w.bw = fsWriteBuffers.Get().(*bufio.Writer)
		w.bw.Reset(w.f)
	}
	return w.bw
}

// releaseBuffer gives the buffer back (its content is dropped).
func (w *fsWriter) releaseBuffer() {
	if w.bw != nil {
		w.bw.Reset(nil)
		fsWriteBuffers.Put(w.bw)
		w.bw = nil
	}
}

func (w *fsWriter) Write(p []byte) (int, error) {
	if w.done {
		return 0, errWriterFinished
	}
	n, err := w.buffer().Write(p)
	w.n += int64(n)
	if err != nil {
		return n, fmt.Errorf("archive: write %s: %w", w.key, err)
	}
	return n, nil
}

// Commit appends the metadata and trailer, syncs, and moves the file into
// place. Whatever it returns, the temporary file is gone afterwards.
func (w *fsWriter) Commit(ctx context.Context, meta map[string]string, ifAbsent bool) (err error) {
	if w.done {
		return fmt.Errorf("archive: commit %s: %w", w.key, errWriterFinished)
	}
	w.done = true
	tmpName := w.f.Name()
	defer func() {
		w.releaseBuffer()
		if err != nil {
			w.f.Close()
			os.Remove(tmpName)
			err = fmt.Errorf("archive: commit %s: %w", w.key, err)
		}
	}()
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := archive.ValidateMetadata(meta); err != nil {
		return err
	}
	// An empty object without metadata stays an empty file: no data to
	// sync, only its name (the directory sync below).
	if w.n > 0 || len(meta) > 0 {
		if err := w.writeTrailer(meta); err != nil {
			return err
		}
		if err := w.f.Sync(); err != nil {
			return err
		}
	}
	if err := w.f.Close(); err != nil {
		return err
	}
	final := w.s.path(w.key)
	if err := w.s.makeParents(w.key); err != nil {
		return err
	}
	if ifAbsent {
		// link(2) fails if final exists: atomic against a concurrent
		// committer, unlike a check followed by a rename.
		if err := os.Link(tmpName, final); err != nil {
			if errors.Is(err, fs.ErrExist) {
				return archive.ErrExists
			}
			return err
		}
		// The object is in place; a leftover temporary name is only an
		// orphan for the next start to remove.
		_ = os.Remove(tmpName)
	} else if err := os.Rename(tmpName, final); err != nil {
		return err
	}
	return w.s.syncDir(filepath.Dir(final))
}

// writeTrailer appends the metadata and the trailer and flushes the buffer.
func (w *fsWriter) writeTrailer(meta map[string]string) error {
	if meta == nil {
		meta = map[string]string{}
	}
	mb, err := json.Marshal(meta)
	if err != nil {
		return err
	}
	var trailer [fsTrailerSize]byte
	binary.BigEndian.PutUint64(trailer[:8], uint64(len(mb)))
	copy(trailer[8:], fsTrailerMagic)
	bw := w.buffer()
	if _, err := bw.Write(mb); err != nil {
		return err
	}
	if _, err := bw.Write(trailer[:]); err != nil {
		return err
	}
	return bw.Flush()
}

// Abort removes the temporary file. It is a no-op after Commit or Abort.
func (w *fsWriter) Abort() error {
	if w.done {
		return nil
	}
	w.done = true
	w.releaseBuffer()
	w.f.Close()
	if err := os.Remove(w.f.Name()); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("archive: abort %s: %w", w.key, err)
	}
	return nil
}

// makeParents creates the directories of key below objects/, syncing the
// parent of each one it creates so that the new entry is durable.
func (s *Store) makeParents(key string) error {
	segs := strings.Split(key, "/")
	dir := s.objects
	for _, seg := range segs[:len(segs)-1] {
		parent := dir
		dir = filepath.Join(dir, seg)
		err := os.Mkdir(dir, 0o700)
		switch {
		case err == nil:
			if err := s.syncDir(parent); err != nil {
				return err
			}
		case errors.Is(err, fs.ErrExist):
		default:
			return err
		}
	}
	return nil
}

// syncDir makes the entries dir holds when it is called durable: it returns
// once an fsync of dir that began after the call has completed.
//
// Concurrent callers share fsyncs (group commit). A caller that arrives while
// a sync of dir is running cannot count on it (it may have begun before the
// caller's rename), so it waits for that sync to end and then joins the next
// round together with everyone else who arrived meanwhile; the first of them
// runs it. However many commit into one directory at once, each waits for at
// most two fsyncs of it, and the disk sees about one per round instead of
// one per object.
func (s *Store) syncDir(dir string) error {
	d := s.dirs.acquire(dir)
	defer s.dirs.release(dir, d)
	d.mu.Lock()
	r := d.next
	if r == nil {
		r = &syncRound{done: make(chan struct{})}
		d.next = r
	}
	r.joined++
	for d.running && d.next == r {
		d.cond.Wait()
	}
	if r.started {
		d.mu.Unlock()
		<-r.done
		return r.err
	}
	r.started = true
	d.next = nil
	d.running = true
	d.mu.Unlock()

	r.err = fsyncDirHook(dir)
	close(r.done)

	d.mu.Lock()
	d.running = false
	d.cond.Broadcast()
	d.mu.Unlock()
	return r.err
}

// dirSyncs holds the sync state of the directories being synced.
type dirSyncs struct {
	mu sync.Mutex
	m  map[string]*dirSync
}

type dirSync struct {
	refs int // callers using it; under dirSyncs.mu

	mu      sync.Mutex
	cond    sync.Cond  // signalled when a round ends
	running bool       // a round's fsync is in progress
	next    *syncRound // the round that callers arriving now join
}

// syncRound is one fsync of a directory and the callers waiting for it.
type syncRound struct {
	joined  int           // callers waiting for it; under dirSync.mu
	started bool          // under dirSync.mu
	done    chan struct{} // closed when err is set
	err     error
}

func (ds *dirSyncs) acquire(dir string) *dirSync {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	if ds.m == nil {
		ds.m = make(map[string]*dirSync)
	}
	d := ds.m[dir]
	if d == nil {
		d = &dirSync{}
		d.cond.L = &d.mu
		ds.m[dir] = d
	}
	d.refs++
	return d
}

func (ds *dirSyncs) release(dir string, d *dirSync) {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	if d.refs--; d.refs == 0 {
		delete(ds.m, dir)
	}
}

// fsyncDirHook is fsyncDir; tests count and hold its calls.
var fsyncDirHook = fsyncDir

// fsyncDir fsyncs the directory dir.
func fsyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOTSUP) {
		return err
	}
	return nil
}

// fsObject is what the trailer of an object file says.
type fsObject struct {
	size     int64 // object bytes
	metaLen  int64
	bare     bool // an empty file: an empty object without metadata
	modified time.Time
}

// openObject opens the file of key (valid) and reads its trailer.
func (s *Store) openObject(key string) (*os.File, fsObject, error) {
	return openObjectFile(s.path(key))
}

func openObjectFile(path string) (*os.File, fsObject, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fsObject{}, archive.ErrNotFound
		}
		return nil, fsObject{}, err
	}
	obj, err := readTrailer(f)
	if err != nil {
		f.Close()
		return nil, fsObject{}, err
	}
	return f, obj, nil
}

func readTrailer(f *os.File) (fsObject, error) {
	st, err := f.Stat()
	if err != nil {
		return fsObject{}, err
	}
	total := st.Size()
	if st.Mode().IsRegular() && total == 0 {
		// An empty object without metadata (see Commit).
		return fsObject{bare: true, modified: st.ModTime()}, nil
	}
	if !st.Mode().IsRegular() || total < fsTrailerSize {
		return fsObject{}, fmt.Errorf("corrupt object file %s: no trailer", f.Name())
	}
	var t [fsTrailerSize]byte
	if _, err := f.ReadAt(t[:], total-fsTrailerSize); err != nil {
		return fsObject{}, err
	}
	if string(t[8:]) != fsTrailerMagic {
		return fsObject{}, fmt.Errorf("corrupt object file %s: bad trailer", f.Name())
	}
	metaLen := binary.BigEndian.Uint64(t[:8])
	if metaLen > fsMaxMetaBytes || int64(metaLen) > total-fsTrailerSize {
		return fsObject{}, fmt.Errorf("corrupt object file %s: metadata length %d", f.Name(), metaLen)
	}
	return fsObject{size: total - fsTrailerSize - int64(metaLen), metaLen: int64(metaLen), modified: st.ModTime()}, nil
}

// Get reads n bytes of key from off (n < 0: to the end). A range that
// reaches past the end returns what exists; one that starts at or past the
// end returns no bytes.
func (s *Store) Get(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	if err := archive.ValidateKey(key); err != nil {
		return nil, err
	}
	if off < 0 {
		return nil, fmt.Errorf("archive: get %s: negative offset %d", key, off)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("archive: get %s: %w", key, err)
	}
	f, obj, err := s.openObject(key)
	if err != nil {
		return nil, wrapKeyErr("get", key, err)
	}
	off = min(off, obj.size)
	length := obj.size - off
	if n >= 0 && n < length {
		length = n
	}
	return &fileSection{SectionReader: io.NewSectionReader(f, off, length), f: f}, nil
}

// fileSection reads a section of an open file and closes it.
type fileSection struct {
	*io.SectionReader
	f *os.File
}

func (r *fileSection) Close() error { return r.f.Close() }

// Head returns the size and metadata of key.
func (s *Store) Head(ctx context.Context, key string) (archive.ObjectInfo, error) {
	if err := archive.ValidateKey(key); err != nil {
		return archive.ObjectInfo{}, err
	}
	if err := ctx.Err(); err != nil {
		return archive.ObjectInfo{}, fmt.Errorf("archive: head %s: %w", key, err)
	}
	f, obj, err := s.openObject(key)
	if err != nil {
		return archive.ObjectInfo{}, wrapKeyErr("head", key, err)
	}
	defer f.Close()
	meta := map[string]string{}
	if obj.bare {
		return archive.ObjectInfo{Key: key, Size: obj.size, Metadata: meta, Modified: obj.modified}, nil
	}
	mb := make([]byte, obj.metaLen)
	if _, err := f.ReadAt(mb, obj.size); err != nil {
		return archive.ObjectInfo{}, fmt.Errorf("archive: head %s: %w", key, err)
	}
	if err := json.Unmarshal(mb, &meta); err != nil {
		return archive.ObjectInfo{}, fmt.Errorf("archive: head %s: corrupt metadata: %w", key, err)
	}
	if meta == nil { // the JSON was "null"
		meta = map[string]string{}
	}
	return archive.ObjectInfo{Key: key, Size: obj.size, Metadata: meta, Modified: obj.modified}, nil
}

// Delete removes key; a missing key is not an error.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := archive.ValidateKey(key); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("archive: delete %s: %w", key, err)
	}
	p := s.path(key)
	if err := os.Remove(p); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("archive: delete %s: %w", key, err)
	}
	if err := s.syncDir(filepath.Dir(p)); err != nil {
		return fmt.Errorf("archive: delete %s: %w", key, err)
	}
	return nil
}

// wrapKeyErr keeps archive.ErrNotFound bare (it says all there is to say) and names
// the operation and key on anything else.
func wrapKeyErr(op, key string, err error) error {
	if errors.Is(err, archive.ErrNotFound) {
		return archive.ErrNotFound
	}
	return fmt.Errorf("archive: %s %s: %w", op, key, err)
}

// List returns up to limit keys under prefix that sort after startAfter, in
// ascending order, with their sizes (limit <= 0: 1000). It returns fewer
// than limit only when no more keys match.
//
// It walks the directories in key order. In each directory it keeps only the
// smallest names it still needs (a bounded heap), so memory grows with the
// page, not with the directory or the tree; a directory with more matching
// names than the page is read again from where the page stopped if the page
// is not full yet.
func (s *Store) List(ctx context.Context, prefix, startAfter string, limit int) ([]archive.ObjectInfo, error) {
	if err := archive.ValidatePrefix(prefix); err != nil {
		return nil, err
	}
	if limit <= 0 {
		limit = fsDefaultListLimit
	}
	dirPart, namePart := "", prefix
	if i := strings.LastIndexByte(prefix, '/'); i >= 0 {
		dirPart, namePart = prefix[:i+1], prefix[i+1:]
	}
	root := s.objects
	if dirPart != "" {
		root = filepath.Join(s.objects, filepath.FromSlash(strings.TrimSuffix(dirPart, "/")))
	}
	l := &fsLister{ctx: ctx, startAfter: startAfter, limit: limit}
	if err := l.walk(root, dirPart, namePart); err != nil {
		return nil, fmt.Errorf("archive: list %q: %w", prefix, err)
	}
	return l.out, nil
}

type fsLister struct {
	ctx        context.Context
	startAfter string
	limit      int
	out        []archive.ObjectInfo
}

// fsEntry is a directory entry seen as part of the key space: a file is the
// key prefix+seg, a directory holds the keys under prefix+seg+"/", and
// sortName places both in key order among their siblings.
type fsEntry struct {
	seg      string
	sortName string
	dir      bool
}

// walk appends the keys in dirPath (whose keys start with keyPrefix) whose
// names start with nameFilter, in key order, until the page is full.
func (l *fsLister) walk(dirPath, keyPrefix, nameFilter string) error {
	after, hasAfter := "", false
	for len(l.out) < l.limit {
		if err := l.ctx.Err(); err != nil {
			return err
		}
		ents, more, err := l.smallest(dirPath, keyPrefix, nameFilter, after, hasAfter, l.limit-len(l.out))
		if err != nil {
			return err
		}
		for _, e := range ents {
			key := keyPrefix + e.seg
			if e.dir {
				if err := l.walk(filepath.Join(dirPath, e.seg), key+"/", ""); err != nil {
					return err
				}
			} else {
				f, obj, err := openObjectFile(filepath.Join(dirPath, e.seg+fsObjectSuffix))
				if errors.Is(err, archive.ErrNotFound) {
					continue // deleted since the directory was read
				}
				if err != nil {
					return err
				}
				f.Close()
				l.out = append(l.out, archive.ObjectInfo{Key: key, Size: obj.size, Modified: obj.modified})
			}
			if len(l.out) >= l.limit {
				return nil
			}
		}
		if !more {
			return nil
		}
		after, hasAfter = ents[len(ents)-1].sortName, true
	}
	return nil
}

// smallest reads dirPath and returns, in key order, the k smallest entries
// that can hold keys after startAfter (and after the name after, if
// hasAfter), and whether there were more.
func (l *fsLister) smallest(dirPath, keyPrefix, nameFilter, after string, hasAfter bool, k int) ([]fsEntry, bool, error) {
	d, err := os.Open(dirPath)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, false, nil
		}
		return nil, false, err
	}
	defer d.Close()
	h := &fsEntryHeap{}
	more := false
	for {
		batch, rerr := d.ReadDir(256)
		for _, de := range batch {
			e, ok := entryOf(de)
			if !ok || !strings.HasPrefix(e.seg, nameFilter) {
				continue
			}
			if hasAfter && e.sortName <= after {
				continue
			}
			// A file key at or before startAfter is skipped; so is a
			// directory whose every key is (it sorts before startAfter and
			// is not a prefix of it).
			full := keyPrefix + e.sortName
			if full <= l.startAfter && !(e.dir && strings.HasPrefix(l.startAfter, full)) {
				continue
			}
			switch {
			case h.Len() < k:
				heap.Push(h, e)
			case e.sortName < (*h)[0].sortName:
				more = true
				(*h)[0] = e
				heap.Fix(h, 0)
			default:
				more = true
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return nil, false, rerr
		}
	}
	ents := []fsEntry(*h)
	slices.SortFunc(ents, func(a, b fsEntry) int { return strings.Compare(a.sortName, b.sortName) })
	return ents, more, nil
}

// entryOf maps a directory entry to the key space; anything else (symbolic
// links, stray files, names no key can produce) is ignored.
func entryOf(de fs.DirEntry) (fsEntry, bool) {
	name := de.Name()
	switch {
	case de.Type().IsRegular() && strings.HasSuffix(name, fsObjectSuffix):
		seg := strings.TrimSuffix(name, fsObjectSuffix)
		if archive.ValidateKey(seg) != nil || strings.Contains(seg, "/") {
			return fsEntry{}, false
		}
		return fsEntry{seg: seg, sortName: seg}, true
	case de.IsDir():
		if archive.ValidateKey(name) != nil {
			return fsEntry{}, false
		}
		return fsEntry{seg: name, sortName: name + "/", dir: true}, true
	}
	return fsEntry{}, false
}

// fsEntryHeap is a max-heap by sortName: its top is the entry to drop when a
// smaller one turns up.
type fsEntryHeap []fsEntry

func (h fsEntryHeap) Len() int           { return len(h) }
func (h fsEntryHeap) Less(i, j int) bool { return h[i].sortName > h[j].sortName }
func (h fsEntryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *fsEntryHeap) Push(x any)        { *h = append(*h, x.(fsEntry)) }
func (h *fsEntryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}
