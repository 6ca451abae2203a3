package supply

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// LockVersion is the version of the warden.lock format this package reads
// and writes.
const LockVersion = 1

// Bounds on what a lock may hold: a lock beyond them is refused rather than
// read at unbounded cost.
const (
	MaxLockBytes       = 64 << 20
	MaxLockServers     = 1024
	MaxToolsPerServer  = 4096 // the gateway's own bound on one upstream
	MaxNPMPackages     = 8192
	MaxFilesPerPackage = 100_000
	maxNameLen         = 128
)

// Lock is warden.lock: per server, what it is (its identity: how it is
// launched or reached, and digests of what it runs) and what its tools are
// (digests of every part of their surface, and that surface itself for
// review). It is JSON, keys sorted, two-space indented, meant to be
// reviewed into version control.
type Lock struct {
	Version int                    `json:"version"`
	Servers map[string]*ServerLock `json:"servers"`
}

// ServerLock is one upstream in the lock.
type ServerLock struct {
	Identity Identity             `json:"identity"`
	Tools    map[string]*ToolLock `json:"tools"`
}

// ToolLock is one pinned tool.
type ToolLock struct {
	SHA256       ToolHashes     `json:"sha256"`
	Title        string         `json:"title,omitempty"`
	Description  string         `json:"description,omitempty"`
	InputSchema  jsontext.Value `json:"input_schema,omitempty"`
	OutputSchema jsontext.Value `json:"output_schema,omitempty"`
	Annotations  jsontext.Value `json:"annotations,omitempty"`
	// AcceptFindings lists description-scanner rule ids an operator has
	// reviewed and accepted for this tool (edited by hand); findings of
	// other rules still count.
	AcceptFindings []string `json:"accept_findings,omitempty"`
}

// Identity is what a server is: for stdio, its command line and digests of
// what it runs; for HTTP and SSE, its URL.
type Identity struct {
	Transport string `json:"transport"` // stdio, http, sse or builtin
	// Builtin names a server Warden runs in process (its code is Warden's).
	Builtin string   `json:"builtin,omitempty"`
	Command string   `json:"command,omitempty"`
	Args    []string `json:"args,omitempty"`
	Dir     string   `json:"dir,omitempty"`
	// EnvNames are the names of the variables the configuration sets (values
	// may be secrets and are not recorded), except CodeEnv's.
	EnvNames []string `json:"env_names,omitempty"`
	// CodeEnv records, in clear, variables that change what code runs
	// (NODE_OPTIONS, LD_PRELOAD, PYTHONPATH, ...).
	CodeEnv map[string]string `json:"code_env,omitempty"`
	URL     string            `json:"url,omitempty"`
	// Files pins the command's executable and every argument naming a file
	// outside an npm tree (scripts).
	Files []FilePin `json:"files,omitempty"`
	// NPM pins the npm package the server runs from, with its dependencies.
	NPM *NPMPin `json:"npm,omitempty"`
}

// FilePin is the SHA-256 digest of one file the server runs.
type FilePin struct {
	Role   string `json:"role"` // command or argument
	Path   string `json:"path"` // absolute, symlinks resolved
	SHA256 string `json:"sha256"`
}

// NPMPin is an installed npm package and its dependency closure.
type NPMPin struct {
	Name      string `json:"name"`
	Version   string `json:"version"`
	Integrity string `json:"integrity"` // the tarball's SRI digest (sha512-...) from the package-lock
	// Root is the directory holding node_modules (absolute).
	Root string `json:"root"`
	// Packages are keyed by their path below Root ("node_modules/zod"), the
	// server's own package included.
	Packages map[string]*NPMPackage `json:"packages"`
}

// NPMPackage is one installed package: its version and integrity as the
// package-lock records them, and the SHA-256 of every file it holds
// (nested node_modules excluded: they are packages of their own).
type NPMPackage struct {
	Version   string `json:"version"`
	Integrity string `json:"integrity,omitempty"`
	// Files maps a slash-separated path inside the package to its SHA-256
	// (hex), or to "symlink:<target>" for a symbolic link.
	Files map[string]string `json:"files"`
}

// NewLock returns an empty lock.
func NewLock() *Lock { return &Lock{Version: LockVersion, Servers: map[string]*ServerLock{}} }

// isDigest reports whether s is a SHA-256 digest in lowercase hex. (No
// package-level regular expressions: every process of the binary, a
// sandbox's init included, would compile them at start.)
func isDigest(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// validServerName is config's rule for upstream names.
func validServerName(s string) bool {
	if len(s) < 1 || len(s) > 63 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || i > 0 && (c == '_' || c == '-')) {
			return false
		}
	}
	return true
}

// ParseLock reads a lock, refusing anything malformed with a message that
// says where: unknown or duplicate keys, a version it does not know,
// digests that are not SHA-256, names a tool id cannot hold (non-ASCII
// names, which include Unicode confusables, among them), recorded text that
// does not match its digest, and more than the bounds above.
func ParseLock(r io.Reader) (*Lock, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxLockBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading lock: %w", err)
	}
	if len(b) > MaxLockBytes {
		return nil, fmt.Errorf("lock is larger than %d bytes", MaxLockBytes)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, errors.New("lock is empty")
	}
	var probe struct {
		Version int `json:"version"`
	}
	if err := json.Unmarshal(b, &probe); err != nil {
		return nil, fmt.Errorf("parsing lock: %w", err)
	}
	if probe.Version != LockVersion {
		return nil, fmt.Errorf("lock format version %d: this Warden reads version %d", probe.Version, LockVersion)
	}
	l := &Lock{}
	if err := json.Unmarshal(b, l, json.RejectUnknownMembers(true)); err != nil {
		return nil, fmt.Errorf("parsing lock: %w", err)
	}
	if err := l.Validate(); err != nil {
		return nil, err
	}
	return l, nil
}

// Validate checks a lock's contents (ParseLock calls it).
func (l *Lock) Validate() error {
	if l.Version != LockVersion {
		return fmt.Errorf("lock format version %d: want %d", l.Version, LockVersion)
	}
	if len(l.Servers) > MaxLockServers {
		return fmt.Errorf("lock lists %d servers; at most %d", len(l.Servers), MaxLockServers)
	}
	var errs []error
	for _, name := range sortedKeys(l.Servers) {
		s := l.Servers[name]
		where := "servers." + name
		if !validServerName(name) {
			errs = append(errs, fmt.Errorf("%s: server name must be lowercase letters, digits, '-' or '_'", quoteName(where)))
			continue
		}
		if s == nil {
			errs = append(errs, fmt.Errorf("%s: null", where))
			continue
		}
		if err := s.Identity.validate(where + ".identity"); err != nil {
			errs = append(errs, err)
		}
		if len(s.Tools) > MaxToolsPerServer {
			errs = append(errs, fmt.Errorf("%s: %d tools; at most %d", where, len(s.Tools), MaxToolsPerServer))
			continue
		}
		for _, tn := range sortedKeys(s.Tools) {
			if err := validateTool(where+".tools", tn, s.Tools[tn]); err != nil {
				errs = append(errs, err)
			}
		}
		if len(errs) > 20 {
			errs = append(errs, errors.New("(more errors not shown)"))
			break
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("invalid lock: %w", errors.Join(errs...))
	}
	return nil
}

// checkToolName refuses a name that cannot be a tool id's second part: the
// gateway serves only ASCII letters, digits, '_', '-' and '.', so a name
// with a Unicode look-alike (Cyrillic 'а' for Latin 'a') is refused here
// with the character named.
func checkToolName(n string) error {
	if n == "" || len(n) > maxNameLen {
		return fmt.Errorf("tool name must be 1 to %d bytes", maxNameLen)
	}
	if !utf8.ValidString(n) {
		return errors.New("tool name is not valid UTF-8")
	}
	for _, r := range n {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' || r == '.' {
			continue
		}
		if like, ok := confusableASCII(r); ok {
			return fmt.Errorf("tool name %q holds %U, which looks like %q: only ASCII letters, digits, '_', '-' and '.' are allowed", n, r, like)
		}
		return fmt.Errorf("tool name %q holds %U: only ASCII letters, digits, '_', '-' and '.' are allowed", n, r)
	}
	return nil
}

func validateTool(where, name string, t *ToolLock) error {
	if err := checkToolName(name); err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	where += "." + name
	if t == nil {
		return fmt.Errorf("%s: null", where)
	}
	h := t.SHA256
	for _, d := range []struct{ n, v string }{
		{"name", h.Name}, {"title", h.Title}, {"description", h.Description},
		{"input_schema", h.InputSchema}, {"output_schema", h.OutputSchema}, {"annotations", h.Annotations},
	} {
		if !isDigest(d.v) {
			return fmt.Errorf("%s.sha256.%s: want 64 lowercase hex digits", where, d.n)
		}
	}
	if sum(name) != h.Name {
		return fmt.Errorf("%s.sha256.name does not match the name", where)
	}
	if t.Title != "" && sum(t.Title) != h.Title {
		return fmt.Errorf("%s: title does not match sha256.title (edited by hand?)", where)
	}
	if t.Description != "" && sum(t.Description) != h.Description {
		return fmt.Errorf("%s: description does not match sha256.description (edited by hand?)", where)
	}
	for _, v := range []struct {
		n    string
		v    jsontext.Value
		want string
	}{{"input_schema", t.InputSchema, h.InputSchema}, {"output_schema", t.OutputSchema, h.OutputSchema}, {"annotations", t.Annotations, h.Annotations}} {
		if len(v.v) == 0 {
			continue
		}
		c, err := canonical(v.v)
		if err != nil {
			return fmt.Errorf("%s.%s: %w", where, v.n, err)
		}
		if sum(string(c)) != v.want {
			return fmt.Errorf("%s: %s does not match sha256.%s (edited by hand?)", where, v.n, v.n)
		}
	}
	for _, r := range t.AcceptFindings {
		if r == "" || len(r) > 64 {
			return fmt.Errorf("%s.accept_findings: %q is not a rule id", where, r)
		}
	}
	return nil
}

func (id Identity) validate(where string) error {
	switch id.Transport {
	case "stdio":
		if id.Command == "" {
			return fmt.Errorf("%s: stdio without a command", where)
		}
	case "http", "sse":
		if id.URL == "" {
			return fmt.Errorf("%s: %s without a url", where, id.Transport)
		}
	case "builtin":
		if id.Builtin == "" {
			return fmt.Errorf("%s: builtin without a name", where)
		}
	default:
		return fmt.Errorf("%s.transport %q: want stdio, http, sse or builtin", where, id.Transport)
	}
	for i, f := range id.Files {
		if !isDigest(f.SHA256) {
			return fmt.Errorf("%s.files[%d].sha256: want 64 lowercase hex digits", where, i)
		}
		if !filepath.IsAbs(f.Path) {
			return fmt.Errorf("%s.files[%d].path %q: want an absolute path", where, i, f.Path)
		}
		if f.Role != "command" && f.Role != "argument" {
			return fmt.Errorf("%s.files[%d].role %q: want command or argument", where, i, f.Role)
		}
	}
	if n := id.NPM; n != nil {
		w := where + ".npm"
		if n.Name == "" || n.Version == "" || !filepath.IsAbs(n.Root) {
			return fmt.Errorf("%s: name, version and an absolute root are required", w)
		}
		if n.Integrity != "" && !strings.HasPrefix(n.Integrity, "sha512-") && !strings.HasPrefix(n.Integrity, "sha1-") {
			return fmt.Errorf("%s.integrity %q: want an SRI digest (sha512-...)", w, n.Integrity)
		}
		if len(n.Packages) > MaxNPMPackages {
			return fmt.Errorf("%s: %d packages; at most %d", w, len(n.Packages), MaxNPMPackages)
		}
		if _, ok := n.Packages[npmKey(n.Name)]; !ok {
			return fmt.Errorf("%s.packages: the server's own package %s is missing", w, npmKey(n.Name))
		}
		for _, k := range sortedKeys(n.Packages) {
			p := n.Packages[k]
			if !strings.HasPrefix(k, "node_modules/") || strings.Contains(k, "..") || p == nil {
				return fmt.Errorf("%s.packages[%q]: want a node_modules/... path", w, k)
			}
			if len(p.Files) > MaxFilesPerPackage {
				return fmt.Errorf("%s.packages[%q]: %d files; at most %d", w, k, len(p.Files), MaxFilesPerPackage)
			}
			for f, d := range p.Files {
				if f == "" || strings.HasPrefix(f, "/") || strings.Contains("/"+f+"/", "/../") {
					return fmt.Errorf("%s.packages[%q].files: %q is not a relative path", w, k, f)
				}
				if !isDigest(d) && !strings.HasPrefix(d, "symlink:") {
					return fmt.Errorf("%s.packages[%q].files[%q]: want a SHA-256 digest or symlink:<target>", w, k, f)
				}
			}
		}
	}
	return nil
}

func quoteName(s string) string { return fmt.Sprintf("%q", s) }

// npmKey is the package-lock key of a top-level package.
func npmKey(name string) string { return "node_modules/" + name }

// Marshal renders the lock in its stable form: keys sorted, two-space
// indentation, a final newline.
func (l *Lock) Marshal() ([]byte, error) {
	b, err := json.Marshal(l, json.Deterministic(true), jsontext.WithIndent("  "), jsontext.EscapeForHTML(false))
	if err != nil {
		return nil, fmt.Errorf("encoding lock: %w", err)
	}
	return append(b, '\n'), nil
}

// Tool returns the pinned tool, if any.
func (l *Lock) Tool(server, tool string) (*ToolLock, bool) {
	s, ok := l.Servers[server]
	if !ok || s == nil {
		return nil, false
	}
	t, ok := s.Tools[tool]
	return t, ok && t != nil
}

// PinTool records tool (as listed) under server, replacing what was there.
func (l *Lock) PinTool(server string, s Surface) {
	sl := l.server(server)
	prev := sl.Tools[s.Name]
	t := &ToolLock{SHA256: s.Hashes(), Title: s.Title, Description: s.Description}
	if string(s.InputSchema) != "null" {
		t.InputSchema = s.InputSchema
	}
	if string(s.OutputSchema) != "null" {
		t.OutputSchema = s.OutputSchema
	}
	if string(s.Annotations) != "null" {
		t.Annotations = s.Annotations
	}
	if prev != nil {
		t.AcceptFindings = prev.AcceptFindings
	}
	sl.Tools[s.Name] = t
}

func (l *Lock) server(name string) *ServerLock {
	if l.Servers == nil {
		l.Servers = map[string]*ServerLock{}
	}
	sl := l.Servers[name]
	if sl == nil {
		sl = &ServerLock{Tools: map[string]*ToolLock{}}
		l.Servers[name] = sl
	}
	if sl.Tools == nil {
		sl.Tools = map[string]*ToolLock{}
	}
	return sl
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// ReadLockFile reads and parses the lock at path.
func ReadLockFile(path string) (*Lock, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading lock: %w", err)
	}
	defer f.Close()
	l, err := ParseLock(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return l, nil
}
