package supply

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// snapshots are private, read-only copies of verified server trees, made
// by hashing while copying, so that what runs is byte for byte what the
// lock pins however the original changes after the check. One snapshot per
// pinned identity lives as long as the Launcher.
type snapshots struct {
	base string
	mu   sync.Mutex
	dirs map[string]*snapshot // identity digest -> snapshot
}

type snapshot struct {
	dir   string
	npm   string            // copy of the npm root ("" if none)
	files map[string]string // original path -> copy
}

// systemPath reports whether p lies under a directory only root may write
// on a normal system (the sandbox mounts these read-only anyway).
func systemPath(p string) bool {
	for _, s := range []string{"/usr/", "/bin/", "/sbin/", "/lib/", "/lib64/", "/lib32/", "/opt/"} {
		if strings.HasPrefix(p, s) {
			return true
		}
	}
	return false
}

// defaultSnapshotBase is /dev/shm where it is a writable directory (a
// tmpfs: creating thousands of small files there is several times faster
// than on a disk), else the system temp dir.
func defaultSnapshotBase() string {
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		if f, err := os.CreateTemp("/dev/shm", ".warden-probe-*"); err == nil {
			name := f.Name()
			f.Close()
			os.Remove(name)
			return "/dev/shm"
		}
	}
	return os.TempDir()
}

// maxSnapshotCommandBytes bounds a command copied into a snapshot; a larger
// one is run in place.
const maxSnapshotCommandBytes = 256 << 20

// get returns the snapshot of pinned, making it on first use.
func (s *snapshots) get(pinned *Identity) (*snapshot, error) {
	b, err := json.Marshal(pinned)
	if err != nil {
		return nil, err
	}
	h := sha256.Sum256(b)
	key := hex.EncodeToString(h[:])
	s.mu.Lock()
	defer s.mu.Unlock()
	if sn, ok := s.dirs[key]; ok {
		if _, err := os.Stat(sn.dir); err == nil {
			return sn, nil
		}
	}
	sn, err := s.make(pinned)
	if err != nil {
		return nil, err
	}
	if s.dirs == nil {
		s.dirs = map[string]*snapshot{}
	}
	s.dirs[key] = sn
	return sn, nil
}

func (s *snapshots) make(pinned *Identity) (*snapshot, error) {
	base := s.base
	if base == "" {
		base = defaultSnapshotBase()
	}
	dir, err := os.MkdirTemp(base, "warden-supply-")
	if err != nil {
		return nil, fmt.Errorf("making a snapshot: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			removeTree(dir)
		}
	}()
	sn := &snapshot{dir: dir, files: map[string]string{}}
	c := &copier{dirs: map[string]bool{}}
	if n := pinned.NPM; n != nil {
		sn.npm = filepath.Join(dir, "npm")
		for _, k := range sortedKeys(n.Packages) {
			p := n.Packages[k]
			src, dst := filepath.Join(n.Root, filepath.FromSlash(k)), filepath.Join(sn.npm, filepath.FromSlash(k))
			for _, f := range sortedKeys(p.Files) {
				if err := c.copyPinned(filepath.Join(src, filepath.FromSlash(f)), filepath.Join(dst, filepath.FromSlash(f)), p.Files[f]); err != nil {
					return nil, fmt.Errorf("snapshot of %s: %w", k, err)
				}
			}
		}
	}
	for i, f := range pinned.Files {
		if f.Role == "command" && systemPath(f.Path) {
			continue
		}
		if fi, err := os.Stat(f.Path); err != nil || f.Role == "command" && fi.Size() > maxSnapshotCommandBytes {
			continue
		}
		dst := filepath.Join(dir, "files", fmt.Sprint(i), filepath.Base(f.Path))
		if err := c.copyPinned(f.Path, dst, f.SHA256); err != nil {
			return nil, fmt.Errorf("snapshot of %s: %w", f.Path, err)
		}
		sn.files[f.Path] = dst
	}
	if err := sealTree(dir); err != nil {
		return nil, err
	}
	ok = true
	return sn, nil
}

// copier copies files into a snapshot, creating each directory once.
type copier struct {
	dirs map[string]bool
	buf  []byte
}

// copyPinned copies src to dst, hashing what it copies, and fails unless
// the copy has the pinned digest (or, for a link, target). The copy is
// created with its final, read-only mode.
func (c *copier) copyPinned(src, dst, want string) error {
	if d := filepath.Dir(dst); !c.dirs[d] {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
		c.dirs[d] = true
	}
	if c.buf == nil {
		c.buf = make([]byte, 128<<10)
	}
	if t, ok := strings.CutPrefix(want, "symlink:"); ok {
		got, err := os.Readlink(src)
		if err != nil || filepath.ToSlash(got) != t {
			return fmt.Errorf("%s: link changed since it was verified", src)
		}
		return os.Symlink(filepath.FromSlash(t), dst)
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", src)
	}
	mode := os.FileMode(0o444)
	if fi.Mode()&0o111 != 0 {
		mode = 0o555
	}
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, mode)
	if err != nil {
		return err
	}
	h := sha256.New()
	_, err = io.CopyBuffer(io.MultiWriter(out, h), io.LimitReader(in, maxPinnedFileBytes+1), c.buf)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("copying %s: %w", src, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		return fmt.Errorf("%s changed since it was verified", src)
	}
	return nil
}

// sealTree makes a snapshot read-only: directories 0555 (the top 0711, so
// that a sandbox's unprivileged user can reach what it is shown but not
// list the others), files as copied.
func sealTree(dir string) error {
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && p != dir {
			return os.Chmod(p, 0o555)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sealing the snapshot: %w", err)
	}
	return os.Chmod(dir, 0o711)
}

// removeTree removes a sealed snapshot.
func removeTree(dir string) {
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			_ = os.Chmod(p, 0o700)
		}
		return nil
	})
	_ = os.RemoveAll(dir)
}

func (s *snapshots) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, sn := range s.dirs {
		removeTree(sn.dir)
		delete(s.dirs, k)
	}
}

// rewrite points a server's command and arguments into the snapshot.
func (sn *snapshot) rewrite(pinned *Identity, run *StdioRun) {
	if c, ok := sn.files[run.Command]; ok {
		run.Command = c
	}
	for i, a := range run.Args {
		p, ok := scriptArg(a, run.Dir)
		if !ok {
			continue
		}
		if c, ok := sn.files[p]; ok {
			run.Args[i] = c
			continue
		}
		if n := pinned.NPM; n != nil && sn.npm != "" {
			if rel, err := filepath.Rel(n.Root, p); err == nil && !strings.HasPrefix(rel, "..") {
				run.Args[i] = filepath.Join(sn.npm, rel)
			}
		}
	}
}

// readOnly is what the sandbox must show: the snapshot, and a command run
// in place.
func (sn *snapshot) readOnly(run *StdioRun) []string {
	out := []string{sn.dir}
	if !strings.HasPrefix(run.Command, sn.dir+string(filepath.Separator)) {
		out = append(out, run.Command)
	}
	return out
}

// StdioRun is the part of a stdio upstream's configuration a snapshot
// rewrites.
type StdioRun struct {
	Command string
	Args    []string
	Dir     string
}
