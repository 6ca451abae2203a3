package supply

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	"github.com/warden-run/warden/config"
)

// ErrFetchesAtLaunch refuses a server whose command downloads what it runs
// when it starts (npx -y, uvx, pnpm dlx, ...): nothing verified before the
// launch would be what runs.
var ErrFetchesAtLaunch = errors.New("the command fetches its package at launch")

// codeEnv are variables that change what code a process loads; their
// values are pinned in clear.
var codeEnvNames = []string{"NODE_OPTIONS", "NODE_PATH", "LD_PRELOAD", "LD_LIBRARY_PATH", "LD_AUDIT", "DYLD_INSERT_LIBRARIES",
	"PYTHONPATH", "PYTHONSTARTUP", "PYTHONHOME", "PERL5LIB", "PERL5OPT", "RUBYOPT", "RUBYLIB", "JAVA_TOOL_OPTIONS",
	"_JAVA_OPTIONS", "BASH_ENV", "ENV", "GIT_EXEC_PATH", "NPM_CONFIG_PREFIX"}

func isCodeEnv(k string) bool { return slicesContains(codeEnvNames, k) }

// maxPinnedFileBytes bounds one pinned file (a binary or a script).
const maxPinnedFileBytes = 1 << 30

// IdentityOf computes what an upstream is now: for stdio, the command
// resolved on PATH and hashed, every argument naming a script hashed, and
// the npm package a script belongs to pinned with its dependency closure;
// for HTTP and SSE, the URL. It refuses commands that fetch at launch.
func IdentityOf(u config.Upstream) (*Identity, error) {
	switch {
	case u.HTTP != nil:
		return &Identity{Transport: "http", URL: u.HTTP.URL}, nil
	case u.SSE != nil:
		return &Identity{Transport: "sse", URL: u.SSE.URL}, nil
	case u.Builtin != "":
		return &Identity{Transport: "builtin", Builtin: u.Builtin}, nil
	case u.Stdio == nil:
		return nil, errors.New("upstream has no transport")
	}
	s := u.Stdio
	if err := CheckFetcher(s.Command, s.Args); err != nil {
		return nil, err
	}
	id := &Identity{Transport: "stdio", Command: s.Command, Args: append([]string(nil), s.Args...), Dir: s.Dir}
	for _, k := range sortedKeys(s.Env) {
		if isCodeEnv(k) {
			if id.CodeEnv == nil {
				id.CodeEnv = map[string]string{}
			}
			id.CodeEnv[k] = s.Env[k]
		} else {
			id.EnvNames = append(id.EnvNames, k)
		}
	}
	cmdPath, err := resolveCommand(s.Command, s.Dir)
	if err != nil {
		return nil, err
	}
	d, err := hashFile(cmdPath)
	if err != nil {
		return nil, fmt.Errorf("pinning the command: %w", err)
	}
	id.Files = append(id.Files, FilePin{Role: "command", Path: cmdPath, SHA256: d})
	for _, a := range s.Args {
		p, ok := scriptArg(a, s.Dir)
		if !ok {
			continue
		}
		if pkgDir, root, name, ok := npmPackageOf(p); ok {
			if id.NPM == nil {
				if id.NPM, err = pinNPM(root, name, pkgDir); err != nil {
					return nil, err
				}
				continue
			}
			if id.NPM.Root == root {
				continue // another file of the same tree: covered
			}
		}
		d, err := hashFile(p)
		if err != nil {
			return nil, fmt.Errorf("pinning argument %s: %w", a, err)
		}
		id.Files = append(id.Files, FilePin{Role: "argument", Path: p, SHA256: d})
	}
	return id, nil
}

// CheckFetcher refuses launchers that download the package they run:
// npx (unless told never to install), bunx, pnpx, pnpm dlx, yarn dlx,
// npm exec, uvx, pipx run.
func CheckFetcher(command string, args []string) error {
	base := filepath.Base(command)
	sub := ""
	for _, a := range args {
		if !strings.HasPrefix(a, "-") {
			sub = a
			break
		}
	}
	hasFlag := func(fs ...string) bool {
		for _, a := range args {
			if slicesContains(fs, a) {
				return true
			}
		}
		return false
	}
	switch {
	case base == "npx":
		if hasFlag("--no-install", "--no", "--offline") {
			return fmt.Errorf("%w: npx resolves the package at launch even when told not to install; install it with npm ci and run `node <path to its entry point>`", ErrFetchesAtLaunch)
		}
		what := "an unpinned package (whatever the registry serves at launch)"
		if strings.Contains(strings.TrimPrefix(sub, "@"), "@") {
			what = "a package it downloads at launch, after any check Warden could make"
		}
		return fmt.Errorf("%w: npx runs %s; install it with npm ci (package-lock with integrity) and run `node <path to its entry point>`", ErrFetchesAtLaunch, what)
	case base == "bunx", base == "pnpx", base == "uvx":
		return fmt.Errorf("%w: %s downloads the package it runs; install it and run the installed entry point", ErrFetchesAtLaunch, base)
	case (base == "pnpm" || base == "yarn") && sub == "dlx", base == "npm" && (sub == "exec" || sub == "x"), base == "pipx" && sub == "run":
		return fmt.Errorf("%w: %s %s downloads the package it runs; install it and run the installed entry point", ErrFetchesAtLaunch, base, sub)
	}
	return nil
}

// resolveCommand finds the command as the launchers will (PATH, or
// relative to dir), absolute and with symlinks resolved.
func resolveCommand(command, dir string) (string, error) {
	p := command
	if !strings.Contains(command, "/") {
		var err error
		if p, err = exec.LookPath(command); err != nil {
			return "", fmt.Errorf("finding %s: %w", command, err)
		}
	} else if !filepath.IsAbs(p) && dir != "" {
		p = filepath.Join(dir, p)
	}
	return realFile(p)
}

func realFile(p string) (string, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	r, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return "", fmt.Errorf("resolving %s: %w", p, err)
	}
	fi, err := os.Stat(r)
	if err != nil {
		return "", err
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("%s is not a regular file", r)
	}
	return r, nil
}

// scriptArg reports whether a (a path containing '/' or ending in a script
// extension) names an existing regular file, and returns it resolved.
// Directories (a filesystem server's roots) are data, not code.
func scriptArg(a, dir string) (string, bool) {
	if a == "" || strings.HasPrefix(a, "-") {
		if i := strings.IndexByte(a, '='); i > 0 && strings.HasPrefix(a, "--") {
			a = a[i+1:] // --require=/path/x.js
		} else {
			return "", false
		}
	}
	ext := filepath.Ext(a)
	scriptExt := slicesContains([]string{".js", ".mjs", ".cjs", ".ts", ".mts", ".py", ".sh", ".rb", ".pl", ".php", ".jar"}, ext)
	if !strings.Contains(a, "/") && !scriptExt {
		return "", false
	}
	p := a
	if !filepath.IsAbs(p) && dir != "" {
		p = filepath.Join(dir, p)
	}
	fi, err := os.Stat(p)
	if err != nil || !fi.Mode().IsRegular() {
		return "", false
	}
	r, err := realFile(p)
	return r, err == nil
}

// hashFile returns a file's SHA-256 in hex.
func hashFile(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, io.LimitReader(f, maxPinnedFileBytes+1))
	if err != nil {
		return "", fmt.Errorf("hashing %s: %w", p, err)
	}
	if n > maxPinnedFileBytes {
		return "", fmt.Errorf("%s is larger than %d bytes", p, maxPinnedFileBytes)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// VerifyIdentity compares what an upstream is now with what the lock pins
// and says, when they differ, how.
func VerifyIdentity(pinned Identity, now Identity) error {
	parts, detail := identityDiff(pinned, now)
	if len(parts) == 0 {
		return nil
	}
	if len(detail) > 12 {
		detail = append(detail[:12], fmt.Sprintf("... and %d more", len(detail)-12))
	}
	return fmt.Errorf("differs from warden.lock (%s): %s", strings.Join(parts, ", "), strings.Join(detail, "; "))
}

// ReadOnlyPaths are the host paths a verified server reads its code from:
// its pinned files and its npm tree (the node_modules directory holding
// its package and dependencies), to be exposed read-only in its sandbox.
func (id Identity) ReadOnlyPaths() []string {
	var out []string
	for _, f := range id.Files {
		out = append(out, f.Path)
	}
	if id.NPM != nil {
		out = append(out, filepath.Join(id.NPM.Root, "node_modules"))
	}
	sort.Strings(out)
	return dedupe(out)
}
