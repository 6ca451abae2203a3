package initproc

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// beginRoot runs in the init, inside the new user and mount namespaces: it
// starts the sandbox's root on a tmpfs at p.Root with the mounts every
// sandbox has and a fresh /proc. finishRoot completes it.
func beginRoot(p *Prep) error {
	if p.Root == "" || !filepath.IsAbs(p.Root) {
		return errors.New("no root directory to build on")
	}
	// Nothing done here may propagate back to the host's mounts.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("making mounts private: %w", err)
	}
	if err := unix.Mount("tmpfs", p.Root, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0755,size=8m"); err != nil {
		return fmt.Errorf("mounting the root tmpfs: %w", err)
	}
	for _, m := range p.Mounts {
		if err := applyMount(p.Root, m); err != nil {
			return err
		}
	}
	return mountProc(p.Root)
}

// finishRoot adds the launch's own mounts and files, pivots into the root
// and detaches the host's. Afterwards the root tmpfs itself is read-only;
// only the mounts marked RW (workspace, /tmp, /dev/shm, the profile's rw
// paths) are writable.
func finishRoot(root string, s *Spec) error {
	for _, m := range s.Mounts {
		if err := applyMount(root, m); err != nil {
			return err
		}
	}
	for i, f := range s.Files {
		if err := placeFile(root, f, i); err != nil {
			return err
		}
	}
	// pivot_root(".", ".") stacks the old root on top of the new one; the
	// lazy unmount then takes the host's whole tree out of this namespace.
	if err := unix.Chdir(root); err != nil {
		return fmt.Errorf("entering the new root: %w", err)
	}
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot_root: %w", err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detaching the host's root: %w", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return fmt.Errorf("entering the new root: %w", err)
	}
	// The root tmpfs and /dev become read-only (not recursively: the
	// writable mounts below them stay writable).
	for _, p := range []string{"/", "/dev"} {
		if _, err := os.Lstat(p); err != nil {
			continue
		}
		if err := setMountAttr(p, unix.MOUNT_ATTR_RDONLY|unix.MOUNT_ATTR_NOSUID, false); err != nil {
			return fmt.Errorf("making %s read-only: %w", p, err)
		}
	}
	return nil
}

func applyMount(root string, m Mount) error {
	dst, err := inRoot(root, m.Dst)
	if err != nil {
		return err
	}
	switch m.Kind {
	case MountSymlink:
		if err := mkdirInRoot(root, filepath.Dir(m.Dst)); err != nil {
			return err
		}
		if err := os.Symlink(m.Src, dst); err != nil {
			return fmt.Errorf("creating symlink %s in the sandbox: %w", m.Dst, err)
		}
	case MountCopy:
		b, err := readSmall(m.Src)
		if err != nil {
			return fmt.Errorf("copying %s into the sandbox: %w", m.Src, err)
		}
		if err := mkdirInRoot(root, filepath.Dir(m.Dst)); err != nil {
			return err
		}
		if err := os.WriteFile(dst, b, 0o644); err != nil {
			return fmt.Errorf("copying %s into the sandbox: %w", m.Src, err)
		}
	case MountTmpfs:
		if err := mkdirInRoot(root, m.Dst); err != nil {
			return err
		}
		if err := unix.Mount("tmpfs", dst, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, m.Data); err != nil {
			return fmt.Errorf("mounting tmpfs at %s: %w", m.Dst, err)
		}
	case MountBind:
		fi, err := os.Stat(m.Src)
		if err != nil {
			return fmt.Errorf("bind mount of %s: %w", m.Src, err)
		}
		if fi.IsDir() {
			err = mkdirInRoot(root, m.Dst)
		} else {
			err = mkfileInRoot(root, m.Dst)
		}
		if err != nil {
			return err
		}
		if err := unix.Mount(m.Src, dst, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("bind mount of %s: %w", m.Src, err)
		}
		attr := uint64(unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV)
		if !m.RW {
			attr |= unix.MOUNT_ATTR_RDONLY
		}
		if fi.Mode()&os.ModeDevice != 0 {
			attr &^= unix.MOUNT_ATTR_NODEV // /dev/null and friends must stay devices
			attr |= unix.MOUNT_ATTR_NOEXEC
		}
		if err := setMountAttr(dst, attr, true); err != nil {
			return fmt.Errorf("restricting the mount of %s: %w", m.Src, err)
		}
	default:
		return fmt.Errorf("unknown mount kind %q", m.Kind)
	}
	return nil
}

// setMountAttr adds mount attributes (never clears any, so attributes the
// host locked stay set).
func setMountAttr(path string, set uint64, recursive bool) error {
	flags := uint(unix.AT_SYMLINK_NOFOLLOW)
	if recursive {
		flags |= unix.AT_RECURSIVE
	}
	return unix.MountSetattr(unix.AT_FDCWD, path, flags, &unix.MountAttr{Attr_set: set})
}

// mountProc mounts a procfs for the sandbox's PID namespace, showing only
// process directories where the kernel supports it.
func mountProc(root string) error {
	if err := mkdirInRoot(root, "/proc"); err != nil {
		return err
	}
	dst := filepath.Join(root, "proc")
	flags := uintptr(unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC)
	if err := unix.Mount("proc", dst, "proc", flags, "subset=pid"); err == nil {
		return nil
	}
	if err := unix.Mount("proc", dst, "proc", flags, ""); err != nil {
		return fmt.Errorf("mounting /proc: %w", err)
	}
	return nil
}

// inRoot maps a sandbox path to where it is being built.
func inRoot(root, p string) (string, error) {
	if !filepath.IsAbs(p) || filepath.Clean(p) != p {
		return "", fmt.Errorf("sandbox path %q is not absolute and clean", p)
	}
	return filepath.Join(root, p), nil
}

// mkdirInRoot creates p (a sandbox path) and its parents under root,
// refusing to pass through a symlink, so that no mount point is ever created
// outside the root being built.
func mkdirInRoot(root, p string) error {
	cur := root
	for _, c := range strings.Split(strings.TrimPrefix(p, "/"), "/") {
		if c == "" {
			continue
		}
		cur = filepath.Join(cur, c)
		fi, err := os.Lstat(cur)
		switch {
		case errors.Is(err, os.ErrNotExist):
			if err := os.Mkdir(cur, 0o755); err != nil {
				return fmt.Errorf("creating %s in the sandbox: %w", p, err)
			}
		case err != nil:
			return fmt.Errorf("creating %s in the sandbox: %w", p, err)
		case fi.Mode()&os.ModeSymlink != 0:
			return fmt.Errorf("creating %s in the sandbox: %s is a symlink", p, strings.TrimPrefix(cur, root))
		case !fi.IsDir():
			return fmt.Errorf("creating %s in the sandbox: %s is not a directory", p, strings.TrimPrefix(cur, root))
		}
	}
	return nil
}

// mkfileInRoot creates an empty file at p to bind a file over.
func mkfileInRoot(root, p string) error {
	if err := mkdirInRoot(root, filepath.Dir(p)); err != nil {
		return err
	}
	dst := filepath.Join(root, p)
	fd, err := unix.Open(dst, unix.O_CREAT|unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return fmt.Errorf("creating %s in the sandbox: %w", p, err)
	}
	return unix.Close(fd)
}

// placeFile writes a generated file (/etc/hosts, /etc/passwd, ...) into the
// root. Where the profile exposes a host directory read-only at its place
// (a profile with /etc), the file is written beside the root and bound over
// the host's file, so the sandbox never sees the host's version.
func placeFile(root string, f File, i int) error {
	p, err := inRoot(root, f.Path)
	if err != nil {
		return err
	}
	if err := mkdirInRoot(root, filepath.Dir(f.Path)); err == nil {
		if err := os.WriteFile(p, []byte(f.Data), 0o644); err == nil {
			return nil
		} else if !errors.Is(err, unix.EROFS) && !errors.Is(err, unix.EACCES) && !errors.Is(err, unix.EPERM) {
			return fmt.Errorf("writing %s in the sandbox: %w", f.Path, err)
		}
	}
	gen := fmt.Sprintf("/run/warden/files/%d", i)
	if err := mkdirInRoot(root, filepath.Dir(gen)); err != nil {
		return err
	}
	src := filepath.Join(root, gen)
	if err := os.WriteFile(src, []byte(f.Data), 0o644); err != nil {
		return fmt.Errorf("writing %s in the sandbox: %w", f.Path, err)
	}
	if _, err := os.Lstat(p); err != nil {
		// Nowhere to bind it: the exposed host directory lacks the file.
		return nil
	}
	if err := unix.Mount(src, p, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("placing %s in the sandbox: %w", f.Path, err)
	}
	return setMountAttr(p, unix.MOUNT_ATTR_RDONLY|unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV, false)
}

// readSmall reads a regular file of at most 1 MiB.
func readSmall(p string) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() || fi.Size() > 1<<20 {
		return nil, errors.New("not a regular file of at most 1 MiB")
	}
	return io.ReadAll(io.LimitReader(f, 1<<20))
}
