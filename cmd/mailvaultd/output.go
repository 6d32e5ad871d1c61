package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// output is where `get` writes a message: standard output, or a file that is
// kept only when the whole message reached it.
type output interface {
	io.Writer
	// commit makes what was written final.
	commit() error
	// abort removes what was written to a file; after commit it does
	// nothing.
	abort()
}

// streamOutput is standard output: nothing to commit or take back.
type streamOutput struct{ io.Writer }

func (streamOutput) commit() error { return nil }
func (streamOutput) abort()        {}

// fileOutput is `get -o FILE`: a file created new with mode 0600, never
// through a symbolic link. With -f an existing FILE is replaced by a
// temporary file in the same directory renamed over it at commit, so FILE
// is never opened (a symbolic link there is replaced, not followed) and
// never holds a partial message.
type fileOutput struct {
	f    *os.File
	path string
	tmp  string // with -f: the file renamed over path at commit
	done bool
}

// openFileOutput opens path for `get -o`; replace is -f.
func openFileOutput(path string, replace bool) (*fileOutput, error) {
	if !replace {
		// O_EXCL refuses any existing name, a symbolic link (dangling or
		// not) included; O_NOFOLLOW says so again for the reader.
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
		if errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("%s exists; pass -f to replace it", path)
		}
		if err != nil {
			return nil, err
		}
		return &fileOutput{f: f, path: path}, nil
	}
	if st, err := os.Lstat(path); err == nil && st.IsDir() {
		return nil, fmt.Errorf("%s is a directory", path)
	}
	// CreateTemp creates with O_EXCL and mode 0600.
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return nil, err
	}
	return &fileOutput{f: f, path: path, tmp: f.Name()}, nil
}

func (o *fileOutput) Write(p []byte) (int, error) { return o.f.Write(p) }

func (o *fileOutput) commit() error {
	err := o.f.Sync()
	if cerr := o.f.Close(); err == nil {
		err = cerr
	}
	if err == nil && o.tmp != "" {
		err = os.Rename(o.tmp, o.path)
	}
	if err != nil {
		o.remove()
		return err
	}
	o.done = true
	return nil
}

func (o *fileOutput) abort() {
	if o.done {
		return
	}
	o.f.Close()
	o.remove()
}

// remove takes back the file this output created (the temporary file with
// -f, else path itself, which O_EXCL made ours).
func (o *fileOutput) remove() {
	if o.tmp != "" {
		os.Remove(o.tmp)
		return
	}
	os.Remove(o.path)
}
