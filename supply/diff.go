package supply

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Change kinds.
const (
	ChangeAdded    = "added"    // listed, not in the lock
	ChangeRemoved  = "removed"  // in the lock, no longer listed
	ChangeModified = "changed"  // listed with a surface that differs from the lock
	ChangeIdentity = "identity" // the server's identity differs from the lock
)

// Change is one difference between the lock and what a server offers now.
type Change struct {
	Server string    `json:"server"`
	Tool   string    `json:"tool,omitempty"`
	Kind   string    `json:"kind"`
	Parts  []string  `json:"parts,omitempty"` // what changed: description, input schema, ...; for identity: the fields
	Old    *ToolLock `json:"-"`
	New    *ToolLock `json:"-"`
	// Detail is a human-readable account (identity changes).
	Detail []string `json:"detail,omitempty"`
}

// Diff compares server's entry in the lock with the tools it lists now and
// (when id is not nil) the identity it has now. Changes are sorted by tool.
func Diff(l *Lock, server string, listed []*mcp.Tool, id *Identity) ([]Change, error) {
	var sl *ServerLock
	if l != nil {
		sl = l.Servers[server]
	}
	var out []Change
	if id != nil {
		if sl == nil {
			out = append(out, Change{Server: server, Kind: ChangeIdentity, Parts: []string{"new server"}, Detail: describeIdentity(*id)})
		} else if parts, detail := identityDiff(sl.Identity, *id); len(parts) > 0 {
			out = append(out, Change{Server: server, Kind: ChangeIdentity, Parts: parts, Detail: detail})
		}
	}
	seen := map[string]bool{}
	for _, t := range listed {
		if t == nil || seen[t.Name] {
			continue
		}
		seen[t.Name] = true
		s, err := SurfaceOf(t)
		if err != nil {
			return nil, err
		}
		cur := toolLockOf(s)
		var old *ToolLock
		if sl != nil {
			old = sl.Tools[t.Name]
		}
		switch {
		case old == nil:
			out = append(out, Change{Server: server, Tool: t.Name, Kind: ChangeAdded, New: cur})
		case old.SHA256 != cur.SHA256:
			out = append(out, Change{Server: server, Tool: t.Name, Kind: ChangeModified, Parts: old.SHA256.changed(cur.SHA256), Old: old, New: cur})
		}
	}
	if sl != nil {
		for _, n := range sortedKeys(sl.Tools) {
			if !seen[n] {
				out = append(out, Change{Server: server, Tool: n, Kind: ChangeRemoved, Old: sl.Tools[n]})
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Tool < out[j].Tool })
	return out, nil
}

func toolLockOf(s Surface) *ToolLock {
	l := NewLock()
	l.PinTool("x", s)
	return l.Servers["x"].Tools[s.Name]
}

// RenderDiff writes changes for a reader: what changed, and a line diff of
// descriptions and schemas where the lock holds the old text.
func RenderDiff(w io.Writer, changes []Change) {
	if len(changes) == 0 {
		fmt.Fprintln(w, "no changes")
		return
	}
	for _, c := range changes {
		id := c.Server
		if c.Tool != "" {
			id += "." + c.Tool
		}
		switch c.Kind {
		case ChangeIdentity:
			fmt.Fprintf(w, "~ %s: server identity changed (%s)\n", id, strings.Join(c.Parts, ", "))
			for _, d := range c.Detail {
				fmt.Fprintf(w, "    %s\n", d)
			}
		case ChangeAdded:
			fmt.Fprintf(w, "+ %s: new tool\n", id)
			lineDiff(w, "description", "", c.New.Description)
			lineDiff(w, "input schema", "", pretty(c.New.InputSchema))
		case ChangeRemoved:
			fmt.Fprintf(w, "- %s: no longer listed\n", id)
		case ChangeModified:
			fmt.Fprintf(w, "~ %s: changed (%s)\n", id, strings.Join(c.Parts, ", "))
			for _, p := range c.Parts {
				switch p {
				case "title":
					lineDiff(w, p, c.Old.Title, c.New.Title)
				case "description":
					lineDiff(w, p, c.Old.Description, c.New.Description)
				case "input schema":
					lineDiff(w, p, pretty(c.Old.InputSchema), pretty(c.New.InputSchema))
				case "output schema":
					lineDiff(w, p, pretty(c.Old.OutputSchema), pretty(c.New.OutputSchema))
				case "annotations":
					lineDiff(w, p, pretty(c.Old.Annotations), pretty(c.New.Annotations))
				}
			}
		}
	}
}

func pretty(v []byte) string {
	if len(v) == 0 {
		return ""
	}
	var b bytes.Buffer
	if json.Indent(&b, v, "", "  ") != nil {
		return string(v)
	}
	return b.String()
}

// maxDiffLines bounds the line diff (quadratic in the lines).
const maxDiffLines = 2000

// lineDiff writes a line diff of a and b under a heading, indented.
func lineDiff(w io.Writer, what, a, b string) {
	if a == b {
		return
	}
	fmt.Fprintf(w, "    %s:\n", what)
	al, bl := splitLines(a), splitLines(b)
	if len(al) > maxDiffLines || len(bl) > maxDiffLines {
		fmt.Fprintf(w, "      (too long to diff: %d -> %d lines, sha256 %s -> %s)\n", len(al), len(bl), sum(a)[:12], sum(b)[:12])
		return
	}
	// Longest common subsequence, then walk it.
	n, m := len(al), len(bl)
	dp := make([][]int32, n+1)
	for i := range dp {
		dp[i] = make([]int32, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if al[i] == bl[j] {
				dp[i][j] = dp[i+1][j+1] + 1
			} else {
				dp[i][j] = max(dp[i+1][j], dp[i][j+1])
			}
		}
	}
	i, j := 0, 0
	for i < n || j < m {
		switch {
		case i < n && j < m && al[i] == bl[j]:
			fmt.Fprintf(w, "        %s\n", visible(al[i]))
			i, j = i+1, j+1
		case j < m && (i == n || dp[i][j+1] >= dp[i+1][j]):
			fmt.Fprintf(w, "      + %s\n", visible(bl[j]))
			j++
		default:
			fmt.Fprintf(w, "      - %s\n", visible(al[i]))
			i++
		}
	}
}

func splitLines(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// describeIdentity lists an identity's fields for a reader.
func describeIdentity(id Identity) []string {
	var out []string
	switch id.Transport {
	case "stdio":
		out = append(out, fmt.Sprintf("command: %s %s", id.Command, strings.Join(id.Args, " ")))
	case "builtin":
		out = append(out, "builtin: "+id.Builtin)
	default:
		out = append(out, fmt.Sprintf("%s: %s", id.Transport, id.URL))
	}
	for _, f := range id.Files {
		out = append(out, fmt.Sprintf("%s %s sha256:%s", f.Role, f.Path, f.SHA256[:16]))
	}
	if n := id.NPM; n != nil {
		files := 0
		for _, p := range n.Packages {
			files += len(p.Files)
		}
		out = append(out, fmt.Sprintf("npm %s@%s (%s), %d packages, %d files", n.Name, n.Version, shortIntegrity(n.Integrity), len(n.Packages), files))
	}
	return out
}

func shortIntegrity(s string) string {
	if len(s) > 24 {
		return s[:24] + "…"
	}
	if s == "" {
		return "no integrity recorded"
	}
	return s
}

// identityDiff lists what differs between two identities.
func identityDiff(a, b Identity) (parts, detail []string) {
	add := func(p, d string) {
		parts = append(parts, p)
		detail = append(detail, d)
	}
	if a.Transport != b.Transport || a.URL != b.URL || a.Builtin != b.Builtin {
		add("endpoint", fmt.Sprintf("%s %s%s -> %s %s%s", a.Transport, a.URL, a.Builtin, b.Transport, b.URL, b.Builtin))
	}
	if a.Command != b.Command || strings.Join(a.Args, "\x00") != strings.Join(b.Args, "\x00") || a.Dir != b.Dir {
		add("command", fmt.Sprintf("%s %s -> %s %s", a.Command, strings.Join(a.Args, " "), b.Command, strings.Join(b.Args, " ")))
	}
	if strings.Join(a.EnvNames, ",") != strings.Join(b.EnvNames, ",") || fmt.Sprint(a.CodeEnv) != fmt.Sprint(b.CodeEnv) {
		add("environment", fmt.Sprintf("variables %v %v -> %v %v", a.EnvNames, a.CodeEnv, b.EnvNames, b.CodeEnv))
	}
	af, bf := map[string]FilePin{}, map[string]FilePin{}
	for _, f := range a.Files {
		af[f.Role+" "+f.Path] = f
	}
	for _, f := range b.Files {
		bf[f.Role+" "+f.Path] = f
	}
	for _, k := range sortedKeys(bf) {
		if o, ok := af[k]; !ok {
			add("files", "pinned file added: "+k)
		} else if o.SHA256 != bf[k].SHA256 {
			add("files", fmt.Sprintf("%s: sha256 %s -> %s", k, o.SHA256[:16], bf[k].SHA256[:16]))
		}
	}
	for _, k := range sortedKeys(af) {
		if _, ok := bf[k]; !ok {
			add("files", "pinned file removed: "+k)
		}
	}
	switch {
	case a.NPM == nil && b.NPM == nil:
	case a.NPM == nil || b.NPM == nil:
		add("npm", "npm package added or removed")
	default:
		for _, d := range npmDiff(a.NPM, b.NPM, 20) {
			add("npm", d)
		}
	}
	return dedupe(parts), detail
}

// npmDiff describes how two pinned npm trees differ, naming at most limit
// files.
func npmDiff(a, b *NPMPin, limit int) []string {
	var out []string
	if a.Name != b.Name || a.Version != b.Version {
		out = append(out, fmt.Sprintf("package %s@%s -> %s@%s", a.Name, a.Version, b.Name, b.Version))
	}
	if a.Integrity != b.Integrity {
		out = append(out, fmt.Sprintf("tarball integrity %s -> %s", shortIntegrity(a.Integrity), shortIntegrity(b.Integrity)))
	}
	if a.Root != b.Root {
		out = append(out, fmt.Sprintf("installed at %s -> %s", a.Root, b.Root))
	}
	n := 0
	note := func(s string) {
		if n < limit {
			out = append(out, s)
		}
		n++
	}
	for _, k := range sortedKeys(b.Packages) {
		pb, pa := b.Packages[k], a.Packages[k]
		if pa == nil {
			note(fmt.Sprintf("%s@%s: new dependency", k, pb.Version))
			continue
		}
		if pa.Version != pb.Version || pa.Integrity != pb.Integrity {
			note(fmt.Sprintf("%s: %s -> %s", k, pa.Version, pb.Version))
		}
		for _, f := range sortedKeys(pb.Files) {
			if da, ok := pa.Files[f]; !ok {
				note(fmt.Sprintf("%s/%s: file added", k, f))
			} else if da != pb.Files[f] {
				note(fmt.Sprintf("%s/%s: file changed", k, f))
			}
		}
		for _, f := range sortedKeys(pa.Files) {
			if _, ok := pb.Files[f]; !ok {
				note(fmt.Sprintf("%s/%s: file removed", k, f))
			}
		}
	}
	for _, k := range sortedKeys(a.Packages) {
		if b.Packages[k] == nil {
			note(k + ": dependency removed")
		}
	}
	if n > limit {
		out = append(out, fmt.Sprintf("... and %d more differences", n-limit))
	}
	return out
}

func dedupe(s []string) []string {
	var out []string
	for _, x := range s {
		if len(out) == 0 || out[len(out)-1] != x {
			out = append(out, x)
		}
	}
	return out
}

// Approve pins what server offers now into the lock held by store: every
// listed tool (tool empty) or one tool, and, when id is not nil, the
// server's identity. Tools the server no longer lists are dropped from the
// lock when the whole server is approved. It returns the changes it
// approved. The update is atomic (see Store.Update).
func Approve(store *Store, server, tool string, listed []*mcp.Tool, id *Identity) ([]Change, error) {
	var approved []Change
	_, _, err := store.Update(func(l *Lock) error {
		var err error
		approved, err = ApproveIn(l, server, tool, listed, id)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("approving %s: %w", server, err)
	}
	return approved, nil
}

// ApproveIn is Approve on a lock in memory.
func ApproveIn(l *Lock, server, tool string, listed []*mcp.Tool, id *Identity) ([]Change, error) {
	if !validServerName(server) {
		return nil, fmt.Errorf("server name %q: lowercase letters, digits, '-' or '_'", server)
	}
	if tool != "" {
		if err := checkToolName(tool); err != nil {
			return nil, err
		}
	}
	changes, err := Diff(l, server, listed, id)
	if err != nil {
		return nil, err
	}
	if tool != "" {
		var keep []Change
		for _, c := range changes {
			if c.Tool == tool {
				keep = append(keep, c)
			}
		}
		if len(keep) == 0 {
			found := false
			for _, t := range listed {
				found = found || t.Name == tool
			}
			if !found {
				return nil, fmt.Errorf("%s does not list a tool %q", server, tool)
			}
		}
		changes = keep
		if l.Servers[server] == nil {
			return nil, fmt.Errorf("server %s is not in the lock yet: approve the whole server first", server)
		}
	}
	sl := l.server(server)
	if id != nil && tool == "" {
		sl.Identity = *id
	}
	for _, c := range changes {
		switch c.Kind {
		case ChangeAdded, ChangeModified:
			for _, t := range listed {
				if t.Name == c.Tool {
					s, err := SurfaceOf(t)
					if err != nil {
						return nil, err
					}
					l.PinTool(server, s)
				}
			}
		case ChangeRemoved:
			if tool == "" {
				delete(sl.Tools, c.Tool)
			}
		}
	}
	return changes, nil
}
