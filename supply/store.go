package supply

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/warden-run/warden/config"
)

// ErrNoLock reports that the lock file does not exist yet.
var ErrNoLock = errors.New("no warden.lock yet: run `warden tools lock`")

// Store is the lock file on disk: read (and re-read when the file changes)
// by the gateway, updated atomically by the operator's commands. Writers
// are serialised with an advisory lock on a sibling file, so two approvals
// cannot lose each other's change.
type Store struct {
	path string

	mu      sync.Mutex
	lock    *Lock
	err     error
	stamp   fileStamp
	checked time.Time
}

type fileStamp struct {
	ok    bool
	size  int64
	mtime time.Time
	ino   uint64
	ctime int64
}

func stampOf(fi os.FileInfo) fileStamp {
	s := fileStamp{ok: true, size: fi.Size(), mtime: fi.ModTime()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		s.ino = st.Ino
		s.ctime = st.Ctim.Sec*1e9 + st.Ctim.Nsec
	}
	return s
}

// NewStore returns the store of the lock at path. Nothing is read until
// Current.
func NewStore(path string) *Store { return &Store{path: path} }

// Path is the lock file's path.
func (s *Store) Path() string { return s.path }

// Current returns the lock as the file holds it now, re-reading it when it
// changed since the last call. A missing file is ErrNoLock; a malformed
// one is an error (and the caller fails closed).
func (s *Store) Current() (*Lock, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fi, err := os.Stat(s.path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			s.lock, s.err, s.stamp = nil, ErrNoLock, fileStamp{}
			return nil, ErrNoLock
		}
		return nil, fmt.Errorf("reading lock: %w", err)
	}
	st := stampOf(fi)
	if st == s.stamp && (s.lock != nil || s.err != nil) {
		return s.lock, s.err
	}
	s.lock, s.err = ReadLockFile(s.path)
	s.stamp = st
	return s.lock, s.err
}

// Changed reports whether the file differs from what Current last read.
func (s *Store) Changed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	fi, err := os.Stat(s.path)
	if err != nil {
		return s.stamp.ok
	}
	return stampOf(fi) != s.stamp
}

// Update applies fn to the current lock (a new one if there is none) and
// writes the result atomically, holding the writers' lock throughout. It
// returns the lock before and after. fn may refuse by returning an error,
// and nothing is written.
func (s *Store) Update(fn func(*Lock) error) (before, after *Lock, err error) {
	unlock, err := s.writerLock()
	if err != nil {
		return nil, nil, err
	}
	defer unlock()
	cur, err := ReadLockFile(s.path)
	switch {
	case err == nil:
	case errors.Is(err, fs.ErrNotExist):
		cur = NewLock()
	default:
		return nil, nil, err
	}
	before = cur
	b0, err := cur.Marshal()
	if err != nil {
		return nil, nil, err
	}
	next, err := ParseLock(bytes.NewReader(b0)) // a deep copy
	if err != nil {
		return nil, nil, err
	}
	if err := fn(next); err != nil {
		return nil, nil, err
	}
	if err := next.Validate(); err != nil {
		return nil, nil, fmt.Errorf("refusing to write an invalid lock: %w", err)
	}
	b, err := next.Marshal()
	if err != nil {
		return nil, nil, err
	}
	if err := config.WriteFileAtomic(s.path, b, 0o644); err != nil {
		return nil, nil, err
	}
	return before, next, nil
}

// writerLock takes an exclusive advisory lock on path + ".lock".
func (s *Store) writerLock() (func(), error) {
	f, err := os.OpenFile(s.path+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("locking %s for writing: %w", s.path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("locking %s for writing: %w", s.path, err)
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}
