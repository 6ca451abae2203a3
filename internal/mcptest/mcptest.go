// Package mcptest holds test helpers shared by Warden's integration tests and
// benchmarks: it finds the real MCP servers, bridges and the TypeScript SDK
// client that testdata/npm pins (installed by scripts/test-deps.sh, which
// `make deps` and `make test` run), says how to launch each one without
// fetching anything at run time, and starts the HTTP bridges (supergateway,
// mcp-proxy) in front of a stdio server.
//
// It is never used by Warden itself: nothing outside tests, benchmarks and
// bench/ may import it.
package mcptest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// ErrNotInstalled reports that testdata/npm/node_modules (or Node.js itself)
// is missing: run `make deps`.
var ErrNotInstalled = errors.New("npm test dependencies not installed: run `make deps` (scripts/test-deps.sh)")

// Package names in testdata/npm/package.json.
const (
	PkgEverything = "@modelcontextprotocol/server-everything"
	PkgFilesystem = "@modelcontextprotocol/server-filesystem"
	PkgMemory     = "@modelcontextprotocol/server-memory"
	PkgSDK        = "@modelcontextprotocol/sdk"
	PkgSupergate  = "supergateway"
	PkgMCPProxy   = "mcp-proxy"
)

// minNodeMajor is the oldest Node.js major version the pinned packages run on.
const minNodeMajor = 20

// Command is how to start a process: an absolute program path, its
// arguments, and extra environment (KEY=VALUE) added to the caller's.
type Command struct {
	Path string
	Args []string
	Env  []string
}

// Cmd returns an exec.Cmd for c bound to ctx, with c.Env appended to the
// current environment.
func (c Command) Cmd(ctx context.Context) *exec.Cmd {
	cmd := exec.CommandContext(ctx, c.Path, c.Args...)
	if len(c.Env) > 0 {
		cmd.Env = append(os.Environ(), c.Env...)
	}
	return cmd
}

// ShellLine is c's program and arguments as one POSIX shell command line
// (each word single-quoted), for tools that take a command as a string, such
// as supergateway's --stdio. c.Env is not part of it.
func (c Command) ShellLine() string {
	words := make([]string, 0, 1+len(c.Args))
	words = append(words, shellQuote(c.Path))
	for _, a := range c.Args {
		words = append(words, shellQuote(a))
	}
	return strings.Join(words, " ")
}

func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./=:@,+", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// Modules is an installed testdata/npm tree and the node binary that runs it.
type Modules struct {
	// Dir is the absolute path of testdata/npm.
	Dir string
	// Node is the absolute path of the node binary.
	Node string
}

// Find locates testdata/npm from dir or the nearest ancestor of dir holding
// go.mod, checks that `npm ci` has populated node_modules and that node (20
// or later) is on PATH. The error wraps ErrNotInstalled when something is
// missing.
func Find(ctx context.Context, dir string) (*Modules, error) {
	root, err := moduleRoot(dir)
	if err != nil {
		return nil, err
	}
	npmDir := filepath.Join(root, "testdata", "npm")
	marker := filepath.Join(npmDir, "node_modules", ".package-lock.json")
	if _, err := os.Stat(marker); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%s missing: %w", filepath.Join(npmDir, "node_modules"), ErrNotInstalled)
		}
		return nil, fmt.Errorf("checking %s: %w", marker, err)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		return nil, fmt.Errorf("node not on PATH (%v): %w", err, ErrNotInstalled)
	}
	if node, err = filepath.Abs(node); err != nil {
		return nil, fmt.Errorf("node path: %w", err)
	}
	if err := checkNodeVersion(ctx, node); err != nil {
		return nil, err
	}
	return &Modules{Dir: npmDir, Node: node}, nil
}

func moduleRoot(dir string) (string, error) {
	d, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("module root: %w", err)
	}
	for {
		if fi, err := os.Stat(filepath.Join(d, "go.mod")); err == nil && !fi.IsDir() {
			return d, nil
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", fmt.Errorf("no go.mod in %s or any parent", dir)
		}
		d = parent
	}
}

func checkNodeVersion(ctx context.Context, node string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, node, "--version").Output()
	if err != nil {
		return fmt.Errorf("%s --version: %w", node, err)
	}
	v := strings.TrimPrefix(strings.TrimSpace(string(out)), "v")
	major, _, _ := strings.Cut(v, ".")
	n, err := strconv.Atoi(major)
	if err != nil {
		return fmt.Errorf("node version %q: %w", v, err)
	}
	if n < minNodeMajor {
		return fmt.Errorf("node %s is older than %d: %w", v, minNodeMajor, ErrNotInstalled)
	}
	return nil
}

// NodeModules is the absolute path of testdata/npm/node_modules.
func (m *Modules) NodeModules() string { return filepath.Join(m.Dir, "node_modules") }

// NodeVersion is what `node --version` prints, or "?" when it cannot run.
func (m *Modules) NodeVersion() string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := (Command{Path: m.Node, Args: []string{"--version"}}).Cmd(ctx).Output()
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(out))
}

// PackageVersion reads the installed version of an npm package.
func (m *Modules) PackageVersion(pkg string) (string, error) {
	var meta struct {
		Version string `json:"version"`
	}
	if err := m.readPackageJSON(pkg, &meta); err != nil {
		return "", err
	}
	return meta.Version, nil
}

// Bin resolves the JavaScript entry point of pkg: its package.json "bin"
// (a string, or the entry named after the package, or the only entry), else
// "main". The result is an absolute path that exists; it is run with node,
// never through npx (which may fetch at launch).
func (m *Modules) Bin(pkg string) (string, error) {
	var meta struct {
		Name string          `json:"name"`
		Bin  json.RawMessage `json:"bin"`
		Main string          `json:"main"`
	}
	if err := m.readPackageJSON(pkg, &meta); err != nil {
		return "", err
	}
	rel, err := pickBin(meta.Name, meta.Bin, meta.Main)
	if err != nil {
		return "", fmt.Errorf("%s: %w", pkg, err)
	}
	pkgDir := filepath.Join(m.NodeModules(), filepath.FromSlash(pkg))
	p := filepath.Join(pkgDir, filepath.FromSlash(rel))
	if !strings.HasPrefix(p, pkgDir+string(filepath.Separator)) {
		return "", fmt.Errorf("%s: entry point %q leaves the package", pkg, rel)
	}
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("%s entry point: %w", pkg, err)
	}
	return p, nil
}

func pickBin(name string, raw json.RawMessage, main string) (string, error) {
	if len(bytes.TrimSpace(raw)) > 0 && !bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		var s string
		if err := json.Unmarshal(raw, &s); err == nil {
			if s == "" {
				return "", errors.New(`empty "bin"`)
			}
			return s, nil
		}
		var bins map[string]string
		if err := json.Unmarshal(raw, &bins); err != nil {
			return "", fmt.Errorf(`"bin" is neither a string nor an object: %w`, err)
		}
		base := name
		if i := strings.LastIndexByte(base, '/'); i >= 0 {
			base = base[i+1:]
		}
		if s, ok := bins[base]; ok && s != "" {
			return s, nil
		}
		if len(bins) == 1 {
			for _, s := range bins {
				if s != "" {
					return s, nil
				}
			}
		}
		if main == "" {
			return "", fmt.Errorf(`several "bin" entries and no "main"`)
		}
	}
	if main == "" {
		return "", errors.New(`no "bin" or "main"`)
	}
	return main, nil
}

func (m *Modules) readPackageJSON(pkg string, v any) error {
	if pkg == "" || strings.Contains(pkg, "..") || filepath.IsAbs(pkg) {
		return fmt.Errorf("bad package name %q", pkg)
	}
	p := filepath.Join(m.NodeModules(), filepath.FromSlash(pkg), "package.json")
	b, err := os.ReadFile(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("package %s: %w", pkg, ErrNotInstalled)
		}
		return fmt.Errorf("package %s: %w", pkg, err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	return nil
}

func (m *Modules) nodeCommand(pkg string, args ...string) (Command, error) {
	bin, err := m.Bin(pkg)
	if err != nil {
		return Command{}, err
	}
	return Command{Path: m.Node, Args: append([]string{bin}, args...)}, nil
}

// Everything is @modelcontextprotocol/server-everything over stdio.
func (m *Modules) Everything() (Command, error) {
	return m.nodeCommand(PkgEverything, "stdio")
}

// Filesystem is @modelcontextprotocol/server-filesystem over stdio, allowed
// to touch only the given root directories (at least one).
func (m *Modules) Filesystem(roots ...string) (Command, error) {
	if len(roots) == 0 {
		return Command{}, errors.New("server-filesystem needs at least one root directory")
	}
	abs := make([]string, len(roots))
	for i, r := range roots {
		a, err := filepath.Abs(r)
		if err != nil {
			return Command{}, fmt.Errorf("root %q: %w", r, err)
		}
		abs[i] = a
	}
	return m.nodeCommand(PkgFilesystem, abs...)
}

// Memory is @modelcontextprotocol/server-memory over stdio, keeping its
// knowledge graph in file (MEMORY_FILE_PATH).
func (m *Modules) Memory(file string) (Command, error) {
	if file == "" {
		return Command{}, errors.New("server-memory needs a file")
	}
	abs, err := filepath.Abs(file)
	if err != nil {
		return Command{}, fmt.Errorf("memory file: %w", err)
	}
	c, err := m.nodeCommand(PkgMemory)
	if err != nil {
		return Command{}, err
	}
	c.Env = []string{"MEMORY_FILE_PATH=" + abs}
	return c, nil
}

// ClientScript is the absolute path of testdata/npm/client.mjs, the
// TypeScript SDK client (see RunTSClient).
func (m *Modules) ClientScript() string { return filepath.Join(m.Dir, "client.mjs") }
