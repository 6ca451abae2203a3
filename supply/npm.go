package supply

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// maxPackageLockBytes bounds a package-lock read.
const maxPackageLockBytes = 64 << 20

// npmPackageOf finds the installed npm package a file belongs to: the
// directory after the last node_modules/ in its path (with its @scope),
// the directory holding that node_modules, and the package's name.
func npmPackageOf(file string) (pkgDir, root, name string, ok bool) {
	p := filepath.ToSlash(file)
	i := strings.LastIndex(p, "/node_modules/")
	if i < 0 {
		return "", "", "", false
	}
	rest := p[i+len("/node_modules/"):]
	parts := strings.Split(rest, "/")
	if len(parts) < 2 {
		return "", "", "", false
	}
	name = parts[0]
	if strings.HasPrefix(name, "@") {
		if len(parts) < 3 {
			return "", "", "", false
		}
		name += "/" + parts[1]
	}
	// The outermost node_modules is the tree's root; nested ones belong to
	// packages inside it.
	first := strings.Index(p, "/node_modules/")
	root = filepath.FromSlash(p[:first])
	pkgDir = filepath.FromSlash(p[:i+len("/node_modules/")+len(name)])
	return pkgDir, root, name, true
}

// packageLock is the part of npm's package-lock.json (v2, v3) and hidden
// lockfile (node_modules/.package-lock.json) that pinning reads.
type packageLock struct {
	LockfileVersion int                         `json:"lockfileVersion"`
	Packages        map[string]packageLockEntry `json:"packages"`
}

type packageLockEntry struct {
	Version              string            `json:"version"`
	Integrity            string            `json:"integrity"`
	Link                 bool              `json:"link"`
	Dependencies         map[string]string `json:"dependencies"`
	OptionalDependencies map[string]string `json:"optionalDependencies"`
	PeerDependencies     map[string]string `json:"peerDependencies"`
}

// readPackageLock reads the hidden lockfile npm writes into node_modules
// (what is installed), else the project's package-lock.json.
func readPackageLock(root string) (*packageLock, string, error) {
	for _, p := range []string{filepath.Join(root, "node_modules", ".package-lock.json"), filepath.Join(root, "package-lock.json")} {
		f, err := os.Open(p)
		if err != nil {
			continue
		}
		b, err := io.ReadAll(io.LimitReader(f, maxPackageLockBytes+1))
		f.Close()
		if err != nil {
			return nil, p, fmt.Errorf("reading %s: %w", p, err)
		}
		if len(b) > maxPackageLockBytes {
			return nil, p, fmt.Errorf("%s is larger than %d bytes", p, maxPackageLockBytes)
		}
		var l packageLock
		if err := json.Unmarshal(b, &l); err != nil {
			return nil, p, fmt.Errorf("parsing %s: %w", p, err)
		}
		if l.LockfileVersion < 2 || l.Packages == nil {
			return nil, p, fmt.Errorf("%s: lockfile version %d has no \"packages\" map (npm 7 or later writes one)", p, l.LockfileVersion)
		}
		return &l, p, nil
	}
	return nil, "", fmt.Errorf("no package-lock in %s (node_modules/.package-lock.json or package-lock.json): install with npm ci", root)
}

// resolveDep finds where node would load dependency dep of the package at
// key from: key/node_modules/dep, then each enclosing node_modules.
func resolveDep(l *packageLock, key, dep string) (string, bool) {
	k := key
	for {
		cand := k + "/node_modules/" + dep
		if k == "" {
			cand = "node_modules/" + dep
		}
		if _, ok := l.Packages[cand]; ok {
			return cand, true
		}
		if k == "" {
			return "", false
		}
		i := strings.LastIndex(k, "/node_modules/")
		if i < 0 {
			k = ""
		} else {
			k = k[:i]
		}
	}
}

// pinNPM pins the package name installed under root and its dependency
// closure: version and integrity from the package-lock, and the SHA-256 of
// every file.
func pinNPM(root, name, pkgDir string) (*NPMPin, error) {
	l, lockPath, err := readPackageLock(root)
	if err != nil {
		return nil, fmt.Errorf("pinning npm package %s: %w", name, err)
	}
	rel, err := filepath.Rel(root, pkgDir)
	if err != nil {
		return nil, err
	}
	top := filepath.ToSlash(rel)
	own, ok := l.Packages[top]
	if !ok {
		return nil, fmt.Errorf("pinning npm package %s: %s does not list %s", name, lockPath, top)
	}
	pin := &NPMPin{Name: name, Version: own.Version, Integrity: own.Integrity, Root: root, Packages: map[string]*NPMPackage{}}
	queue := []string{top}
	for len(queue) > 0 {
		k := queue[0]
		queue = queue[1:]
		if _, done := pin.Packages[k]; done {
			continue
		}
		if len(pin.Packages) >= MaxNPMPackages {
			return nil, fmt.Errorf("pinning npm package %s: more than %d packages", name, MaxNPMPackages)
		}
		e := l.Packages[k]
		if e.Link {
			return nil, fmt.Errorf("pinning npm package %s: %s is a link (workspace or npm link), which is not pinned: install a real copy", name, k)
		}
		dir := filepath.Join(root, filepath.FromSlash(k))
		if err := checkInstalledVersion(dir, k, e.Version); err != nil {
			return nil, fmt.Errorf("pinning npm package %s: %w", name, err)
		}
		files, err := hashTree(dir)
		if err != nil {
			return nil, fmt.Errorf("pinning npm package %s: %w", name, err)
		}
		pin.Packages[k] = &NPMPackage{Version: e.Version, Integrity: e.Integrity, Files: files}
		for _, deps := range []struct {
			m        map[string]string
			required bool
		}{{e.Dependencies, true}, {e.OptionalDependencies, false}, {e.PeerDependencies, false}} {
			for _, dep := range sortedKeys(deps.m) {
				dk, ok := resolveDep(l, k, dep)
				if !ok {
					if deps.required {
						return nil, fmt.Errorf("pinning npm package %s: dependency %s of %s is not installed", name, dep, k)
					}
					continue
				}
				queue = append(queue, dk)
			}
		}
	}
	return pin, nil
}

// checkInstalledVersion compares the installed package.json's version with
// the package-lock's.
func checkInstalledVersion(dir, key, want string) error {
	b, err := os.ReadFile(filepath.Join(dir, "package.json"))
	if err != nil {
		return fmt.Errorf("%s is in the package-lock but not installed: %w", key, err)
	}
	var m struct {
		Version string `json:"version"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("%s/package.json: %w", key, err)
	}
	if m.Version != want {
		return fmt.Errorf("%s: installed version %s, package-lock says %s", key, m.Version, want)
	}
	return nil
}

// hashTree hashes every file below dir, except nested node_modules (their
// packages are pinned on their own), recording symbolic links by target.
// A link that leaves dir is refused.
func hashTree(dir string) (map[string]string, error) {
	out := map[string]string{}
	buf := make([]byte, 64<<10)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == dir {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if d.Name() == "node_modules" {
				return filepath.SkipDir
			}
			return nil
		}
		if len(out) >= MaxFilesPerPackage {
			return fmt.Errorf("%s: more than %d files", dir, MaxFilesPerPackage)
		}
		switch t := d.Type(); {
		case t&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			if filepath.IsAbs(target) || strings.HasPrefix(path.Clean(path.Join(path.Dir(rel), filepath.ToSlash(target))), "../") {
				return fmt.Errorf("%s: symbolic link to %s leaves the package", p, target)
			}
			out[rel] = "symlink:" + filepath.ToSlash(target)
		case t.IsRegular():
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			h := sha256.New()
			_, err = io.CopyBuffer(h, f, buf)
			f.Close()
			if err != nil {
				return fmt.Errorf("hashing %s: %w", p, err)
			}
			out[rel] = hex.EncodeToString(h.Sum(nil))
		default:
			return fmt.Errorf("%s: not a regular file, directory or link (%v)", p, t)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
