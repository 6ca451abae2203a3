package grant

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"path"
	"slices"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// Entry is one permission of a grant's scope: a tool pattern, constraints
// on named arguments, and optionally its own call budget.
//
// Tool is a path.Match glob over tool ids "server.tool" (files.*, *.read_*).
// Each constraint is a JSON Schema fragment limited to the keywords
// allowedKeywords lists, plus two typed keywords that plain string matching
// gets wrong:
//
//	path_within: ["/data", ...]          the value is an absolute path that, once
//	                                     cleaned (/data/../etc is /etc), lies under one of them
//	url_host_in: ["api.example.com", "*.example.org"]
//	                                     the value is an http(s) URL whose parsed host is one
//	                                     of them (https://ok.example@evil.example is evil.example)
//
// An argument that is constrained must be present; arguments the entry does
// not name are not constrained by it.
type Entry struct {
	Tool   string                     `json:"tool"`
	Args   map[string]json.RawMessage `json:"args,omitempty"`
	Budget int                        `json:"budget,omitempty"`
}

// Scope is what a grant permits: a call is in scope when some entry's tool
// pattern matches the tool and all of that entry's constraints hold.
type Scope []Entry

// Limits on a scope, so that a grant stays small and cheap to check.
const (
	MaxEntries        = 64
	MaxArgsPerEntry   = 32
	MaxConstraintSize = 4 << 10
	maxPatternLen     = 256
)

// allowedKeywords are the JSON Schema keywords a constraint may use. $ref
// and friends are refused: a constraint never loads anything.
var allowedKeywords = map[string]bool{
	"type": true, "enum": true, "const": true, "pattern": true,
	"minimum": true, "maximum": true, "exclusiveMinimum": true, "exclusiveMaximum": true,
	"minLength": true, "maxLength": true, "items": true, "minItems": true, "maxItems": true,
	"description": true, "path_within": true, "url_host_in": true,
}

// compiledScope is a scope ready to check calls.
type compiledScope struct {
	entries []compiledEntry
}

type compiledEntry struct {
	tool   string
	budget int
	args   []compiledArg // sorted by name
}

type compiledArg struct {
	name   string
	schema *jsonschema.Schema
	fixed  bool // const, enum, path_within or url_host_in at the top level
}

// Fixed reports whether the entry pins argument name to a closed set of
// values (const, enum, path_within or url_host_in): the Optimized taint rule
// asks this of every argument of a sensitive call.
func (e *compiledEntry) Fixed(name string) bool {
	for _, a := range e.args {
		if a.name == name {
			return a.fixed
		}
	}
	return false
}

// compileScope checks a scope and compiles its constraints.
func compileScope(s Scope) (*compiledScope, error) {
	if len(s) == 0 {
		return nil, errorf(CodeInvalidInput, "scope is empty: a grant must allow at least one tool")
	}
	if len(s) > MaxEntries {
		return nil, errorf(CodeInvalidInput, "scope has %d entries; at most %d", len(s), MaxEntries)
	}
	cs := &compiledScope{entries: make([]compiledEntry, len(s))}
	for i, e := range s {
		if err := checkPattern(e.Tool); err != nil {
			return nil, wrapErr(CodeInvalidInput, err, "scope entry %d", i+1)
		}
		if e.Budget < 0 {
			return nil, errorf(CodeInvalidInput, "scope entry %d (%s): budget %d is negative", i+1, e.Tool, e.Budget)
		}
		if len(e.Args) > MaxArgsPerEntry {
			return nil, errorf(CodeInvalidInput, "scope entry %d (%s): %d constrained arguments; at most %d", i+1, e.Tool, len(e.Args), MaxArgsPerEntry)
		}
		ce := compiledEntry{tool: e.Tool, budget: e.Budget}
		names := make([]string, 0, len(e.Args))
		for n := range e.Args {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			sch, fixed, err := compileConstraint(n, e.Args[n])
			if err != nil {
				return nil, wrapErr(CodeInvalidInput, err, "scope entry %d (%s), argument %q", i+1, e.Tool, n)
			}
			ce.args = append(ce.args, compiledArg{name: n, schema: sch, fixed: fixed})
		}
		cs.entries[i] = ce
	}
	return cs, nil
}

// checkPattern checks that p is a usable tool pattern.
func checkPattern(p string) error {
	if p == "" {
		return errors.New("tool pattern is empty")
	}
	if len(p) > maxPatternLen || !utf8.ValidString(p) || strings.ContainsAny(p, "/\\\x00") {
		return fmt.Errorf("tool pattern %q: at most %d bytes of UTF-8 without '/', '\\' or NUL", p, maxPatternLen)
	}
	if _, err := path.Match(p, ""); err != nil {
		return fmt.Errorf("tool pattern %q is not a valid glob: %w", p, err)
	}
	if !strings.ContainsAny(p, "*?[") && !strings.Contains(p, ".") {
		return fmt.Errorf("tool %q: tool ids are server.tool", p)
	}
	return nil
}

// compileConstraint compiles one argument's constraint and says whether it
// fixes the argument to a closed set of values.
func compileConstraint(name string, raw json.RawMessage) (*jsonschema.Schema, bool, error) {
	if name == "" || len(name) > 256 || !utf8.ValidString(name) {
		return nil, false, errors.New("argument name must be 1 to 256 bytes of UTF-8")
	}
	if len(raw) > MaxConstraintSize {
		return nil, false, fmt.Errorf("constraint is %d bytes; at most %d", len(raw), MaxConstraintSize)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return nil, false, fmt.Errorf("constraint is not JSON: %w", err)
	}
	if err := checkKeywords(doc, 0); err != nil {
		return nil, false, err
	}
	fixed := false
	for _, k := range []string{"const", "enum", "path_within", "url_host_in"} {
		if _, ok := doc.(map[string]any)[k]; ok {
			fixed = true
		}
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.UseLoader(refuseLoader{})
	c.RegisterVocabulary(constraintVocab)
	c.AssertVocabs()
	const loc = "mem://warden/constraint.json"
	if err := c.AddResource(loc, doc); err != nil {
		return nil, false, fmt.Errorf("constraint: %w", err)
	}
	sch, err := c.Compile(loc)
	if err != nil {
		return nil, false, fmt.Errorf("constraint is not a valid schema: %s", flatten(err))
	}
	return sch, fixed, nil
}

// checkKeywords walks a constraint and refuses keywords outside the allowed
// set, so that every constraint means what its reader thinks it means.
func checkKeywords(doc any, depth int) error {
	if depth > 4 {
		return errors.New("constraint nests items more than 4 deep")
	}
	obj, ok := doc.(map[string]any)
	if !ok {
		return errors.New("constraint must be a JSON object, e.g. {\"enum\": [\"a\", \"b\"]}")
	}
	if len(obj) == 0 {
		return errors.New("constraint is empty: say what the argument may be")
	}
	for k, v := range obj {
		if !allowedKeywords[k] {
			return fmt.Errorf("keyword %q is not allowed in a grant constraint (allowed: type, enum, const, pattern, minimum, maximum, exclusiveMinimum, exclusiveMaximum, minLength, maxLength, items, minItems, maxItems, path_within, url_host_in)", k)
		}
		switch k {
		case "items":
			if err := checkKeywords(v, depth+1); err != nil {
				return fmt.Errorf("items: %w", err)
			}
		case "pattern":
			if s, _ := v.(string); len(s) > 512 {
				return errors.New("pattern is longer than 512 bytes")
			}
		case "enum":
			if a, _ := v.([]any); len(a) > 256 {
				return errors.New("enum has more than 256 values")
			}
		}
	}
	return nil
}

type refuseLoader struct{}

func (refuseLoader) Load(u string) (any, error) {
	return nil, fmt.Errorf("a grant constraint may not load %s", u)
}

// checkArgs checks a call against the scope. args is the call's arguments
// decoded with jsonschema.UnmarshalJSON (numbers as json.Number). It returns
// the index of the first entry that permits the call.
func (cs *compiledScope) check(tool string, args map[string]any) (int, *Error) {
	var first *Error
	matched := false
	for i := range cs.entries {
		e := &cs.entries[i]
		if ok, _ := path.Match(e.tool, tool); !ok {
			continue
		}
		matched = true
		if err := e.checkArgs(args); err != nil {
			if first == nil {
				first = errorf(CodeConstraint, "%v (grant entry %s)", err, e.tool)
			}
			continue
		}
		return i, nil
	}
	if !matched {
		return -1, errorf(CodeToolNotGranted, "%s is not in this task's grant", tool)
	}
	return -1, first
}

func (e *compiledEntry) checkArgs(args map[string]any) error {
	for _, a := range e.args {
		v, ok := args[a.name]
		if !ok {
			return fmt.Errorf("argument %q is constrained by the grant and must be given", a.name)
		}
		if err := a.schema.Validate(v); err != nil {
			return fmt.Errorf("argument %q %s", a.name, flatten(err))
		}
	}
	return nil
}

var printer = message.NewPrinter(language.English)

// flatten turns a jsonschema error into one line naming the failed keyword.
func flatten(err error) string {
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return err.Error()
	}
	for len(ve.Causes) > 0 {
		ve = ve.Causes[0]
	}
	msg := ve.ErrorKind.LocalizedString(printer)
	if _, ok := ve.ErrorKind.(*kind.Schema); ok {
		return msg
	}
	if loc := strings.Join(ve.InstanceLocation, "/"); loc != "" {
		return "at " + loc + ": " + msg
	}
	return msg
}

// constrains reports whether an entry of the scope that matches tool
// constrains its arguments: only then does checking the call need them
// decoded.
func (cs *compiledScope) constrains(tool string) bool {
	for i := range cs.entries {
		e := &cs.entries[i]
		if len(e.args) == 0 {
			continue
		}
		if ok, _ := path.Match(e.tool, tool); ok {
			return true
		}
	}
	return false
}

// checkArgsObject refuses the arguments decodeArgs refuses, without
// decoding them when they are one valid JSON object (json.Valid's scanner
// is the decoder's); anything else goes to decodeArgs, for its error.
func checkArgsObject(raw []byte) *Error {
	if t := bytes.TrimSpace(raw); len(t) > 0 && t[0] == '{' && json.Valid(t) {
		return nil
	}
	_, err := decodeArgs(raw)
	return err
}

// decodeArgs parses a call's arguments (a JSON object, or empty) for checking.
func decodeArgs(raw []byte) (map[string]any, *Error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return map[string]any{}, nil
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return nil, wrapErr(CodeArgsInvalid, err, "arguments are not valid JSON")
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, errorf(CodeArgsInvalid, "arguments must be a JSON object, got %T", v)
	}
	return m, nil
}

// --- the typed keywords: path_within and url_host_in ---

const vocabURL = "https://warden.dev/vocab/grant-constraints"

var constraintVocab = func() *jsonschema.Vocabulary {
	meta, err := jsonschema.UnmarshalJSON(strings.NewReader(`{
		"properties": {
			"path_within": {"type": "array", "minItems": 1, "maxItems": 64, "items": {"type": "string", "pattern": "^/", "maxLength": 1024}},
			"url_host_in": {"type": "array", "minItems": 1, "maxItems": 256, "items": {"type": "string", "minLength": 1, "maxLength": 253}}
		}
	}`))
	if err != nil {
		panic(err) // a constant document
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource(vocabURL, meta); err != nil {
		panic(err)
	}
	return &jsonschema.Vocabulary{URL: vocabURL, Schema: c.MustCompile(vocabURL), Compile: compileTyped}
}()

type typedConstraint struct {
	pathWithin []string // cleaned roots
	hostIn     []string // lowercased host names; "*.x" matches subdomains of x
}

func compileTyped(_ *jsonschema.CompilerContext, obj map[string]any) (jsonschema.SchemaExt, error) {
	var tc typedConstraint
	if v, ok := obj["path_within"]; ok {
		for _, p := range v.([]any) {
			s := p.(string)
			if strings.ContainsRune(s, 0) {
				return nil, errors.New("path_within: a root contains NUL")
			}
			tc.pathWithin = append(tc.pathWithin, path.Clean(s))
		}
	}
	if v, ok := obj["url_host_in"]; ok {
		for _, h := range v.([]any) {
			s := strings.ToLower(strings.TrimSuffix(h.(string), "."))
			base := strings.TrimPrefix(s, "*.")
			if base == "" || strings.ContainsAny(base, "*/:@?#[]\\ ") {
				return nil, fmt.Errorf("url_host_in: %q is not a host name (use api.example.com or *.example.com)", h)
			}
			tc.hostIn = append(tc.hostIn, s)
		}
	}
	if tc.pathWithin == nil && tc.hostIn == nil {
		return nil, nil
	}
	return &tc, nil
}

// typedError is a failed typed constraint.
type typedError struct {
	keyword, msg string
}

func (e *typedError) KeywordPath() []string                   { return []string{e.keyword} }
func (e *typedError) LocalizedString(*message.Printer) string { return e.msg }

// Validate implements jsonschema.SchemaExt. Unlike most JSON Schema
// keywords, the typed ones fail closed on a value of the wrong type.
func (tc *typedConstraint) Validate(ctx *jsonschema.ValidatorContext, v any) {
	if tc.pathWithin != nil {
		if msg := checkPathWithin(v, tc.pathWithin); msg != "" {
			ctx.AddError(&typedError{"path_within", msg})
		}
	}
	if tc.hostIn != nil {
		if msg := checkHostIn(v, tc.hostIn); msg != "" {
			ctx.AddError(&typedError{"url_host_in", msg})
		}
	}
}

// checkPathWithin checks lexically, after cleaning, that v is an absolute
// path under one of roots. Symbolic links are the sandbox's to confine: the
// gateway does not see the tool's filesystem.
func checkPathWithin(v any, roots []string) string {
	s, ok := v.(string)
	if !ok {
		return fmt.Sprintf("must be a path string, got %s", jsonType(v))
	}
	if strings.ContainsRune(s, 0) {
		return "path contains NUL"
	}
	if !strings.HasPrefix(s, "/") {
		return fmt.Sprintf("path %q is not absolute; give a path under %s", s, strings.Join(roots, " or "))
	}
	p := path.Clean(s)
	for _, r := range roots {
		if p == r || r == "/" || strings.HasPrefix(p, r+"/") {
			return ""
		}
	}
	return fmt.Sprintf("path %q resolves to %s, outside %s", s, p, strings.Join(roots, " and "))
}

// checkHostIn parses v as an http(s) URL and checks its host.
func checkHostIn(v any, hosts []string) string {
	s, ok := v.(string)
	if !ok {
		return fmt.Sprintf("must be a URL string, got %s", jsonType(v))
	}
	if strings.ContainsAny(s, "\\ \t\r\n\x00") {
		return fmt.Sprintf("URL %q contains a backslash, space or control character", s)
	}
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Sprintf("is not a URL: %v", err)
	}
	if u.Scheme != "https" && u.Scheme != "http" {
		return fmt.Sprintf("URL %q: scheme must be http or https", s)
	}
	host := strings.ToLower(strings.TrimSuffix(u.Hostname(), "."))
	if host == "" {
		return fmt.Sprintf("URL %q has no host", s)
	}
	for _, h := range hosts {
		if h == host || strings.HasPrefix(h, "*.") && strings.HasSuffix(host, h[1:]) {
			return ""
		}
	}
	return fmt.Sprintf("URL host %q is not one of %s", host, strings.Join(hosts, ", "))
}

func jsonType(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case json.Number, float64:
		return "a number"
	case string:
		return "a string"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

// covers reports whether every tool id matching child also matches parent:
// a sound (never too generous) test of glob inclusion. Each symbol of child
// must be absorbed by parent: a literal by the same literal, '?' or '*' (or
// a class containing it); '?' by '?' or '*'; '*' only by '*'; a class by an
// identical class, '?' or '*'.
func covers(parent, child string) bool {
	p, errP := symbols(parent)
	c, errC := symbols(child)
	if errP != nil || errC != nil {
		return false
	}
	// memo[i][j]: can p[i:] absorb c[j:]?
	memo := make(map[[2]int]bool)
	var absorb func(i, j int) bool
	absorb = func(i, j int) bool {
		key := [2]int{i, j}
		if v, ok := memo[key]; ok {
			return v
		}
		var r bool
		switch {
		case i == len(p):
			r = j == len(c)
		case p[i].kind == symStar:
			// '*' absorbs nothing more, or one more child symbol that
			// is not '/' (tool ids have none).
			r = absorb(i+1, j) || j < len(c) && absorb(i, j+1)
		case j == len(c):
			r = false
		default:
			r = p[i].absorbs(c[j]) && absorb(i+1, j+1)
		}
		memo[key] = r
		return r
	}
	return absorb(0, 0)
}

type symKind int

const (
	symLit symKind = iota
	symAny
	symStar
	symClass
)

type symbol struct {
	kind  symKind
	lit   rune
	class string // the raw class text, [..]
}

func (s symbol) absorbs(c symbol) bool {
	switch s.kind {
	case symStar:
		return true
	case symAny:
		return c.kind != symStar
	case symLit:
		return c.kind == symLit && c.lit == s.lit
	case symClass:
		if c.kind == symClass {
			return c.class == s.class
		}
		if c.kind == symLit {
			ok, _ := path.Match(s.class, string(c.lit))
			return ok
		}
	}
	return false
}

// symbols splits a glob into its symbols.
func symbols(g string) ([]symbol, error) {
	var out []symbol
	for i := 0; i < len(g); {
		r, size := utf8.DecodeRuneInString(g[i:])
		switch r {
		case '*':
			if len(out) == 0 || out[len(out)-1].kind != symStar {
				out = append(out, symbol{kind: symStar})
			}
		case '?':
			out = append(out, symbol{kind: symAny})
		case '[':
			end := strings.IndexByte(g[i+1:], ']')
			if end < 0 {
				return nil, path.ErrBadPattern
			}
			if end == 0 { // "[]...]": ']' first is literal in a class
				end = strings.IndexByte(g[i+2:], ']') + 1
				if end <= 0 {
					return nil, path.ErrBadPattern
				}
			}
			out = append(out, symbol{kind: symClass, class: g[i : i+end+2]})
			i += end + 2
			continue
		case '\\':
			if i+1 >= len(g) {
				return nil, path.ErrBadPattern
			}
			r, size = utf8.DecodeRuneInString(g[i+1:])
			out = append(out, symbol{kind: symLit, lit: r})
			i += 1 + size
			continue
		default:
			out = append(out, symbol{kind: symLit, lit: r})
		}
		i += size
	}
	return out, nil
}

// entryCoveredBy reports whether some parent entry's tool pattern covers
// child's: the delegation-time check that a child asks for no tool its
// parent lacks. (Argument constraints need no such check: every ancestor's
// are checked on every call.)
func entryCoveredBy(child Entry, parent Scope) bool {
	return slices.ContainsFunc(parent, func(p Entry) bool { return covers(p.Tool, child.Tool) })
}

// names reports whether some entry's tool pattern matches tool.
func (cs *compiledScope) names(tool string) bool {
	for i := range cs.entries {
		if ok, _ := path.Match(cs.entries[i].tool, tool); ok {
			return true
		}
	}
	return false
}

// Hosts lists the hosts the scope's url_host_in constraints name (at the
// top level of an argument, or on its items): the places the task was
// granted to reach, which inspection takes as the task's egress allow-list.
func (s Scope) Hosts() []string {
	var out []string
	for _, e := range s {
		for _, raw := range e.Args {
			var c struct {
				Hosts []string `json:"url_host_in"`
				Items *struct {
					Hosts []string `json:"url_host_in"`
				} `json:"items"`
			}
			if json.Unmarshal(raw, &c) != nil {
				continue
			}
			out = append(out, c.Hosts...)
			if c.Items != nil {
				out = append(out, c.Items.Hosts...)
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}
