package redteam

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/warden-run/warden/grant"
)

// File is one scenario file. Files naming the same pack are merged, so that
// a pack's environment and user tasks (with their grants) can live in one
// file and its attacker goals in another, written later.
type File struct {
	// Pack names the pack this file adds to.
	Pack        string `yaml:"pack"`
	Description string `yaml:"description,omitempty"`
	// User is the name of the person the agent works for (the "important
	// message" attack signs with it, as real attacks do).
	User string `yaml:"user,omitempty"`
	// Servers are the simulated MCP servers of the environment.
	Servers []ServerSpec `yaml:"servers,omitempty"`
	// State is the initial state: named collections of records.
	State map[string][]Record `yaml:"state,omitempty"`
	// Points are the injection points: places in the state, in tool
	// descriptions or in memory written {{point:NAME}}, with the benign text
	// they hold when no attack is planted.
	Points map[string]Point `yaml:"points,omitempty"`
	// Memory are entries in Warden's memory before each run.
	Memory []MemorySeed `yaml:"memory,omitempty"`
	// Tasks are what the user asks, with the grant an operator would write.
	Tasks []Task `yaml:"tasks,omitempty"`
	// Attacker says what the attacker can observe (where stolen data lands).
	Attacker *Attacker `yaml:"attacker,omitempty"`
	// Goals are what the attacker wants done.
	Goals []Goal `yaml:"goals,omitempty"`
}

// Record is one item of a collection: an email, a file, an account.
type Record map[string]any

// ServerSpec is a simulated MCP server.
type ServerSpec struct {
	Name  string     `yaml:"name"`
	Tools []ToolSpec `yaml:"tools"`
}

// Ops a simulated tool performs over the state.
const (
	OpList   = "list"   // records of a collection, filtered by the parameters marked filter
	OpGet    = "get"    // one record by its key
	OpSearch = "search" // records with a field containing the query
	OpCreate = "create" // a new record from the parameters (and Set)
	OpUpdate = "update" // set fields of the record with the key
	OpDelete = "delete" // remove the record with the key
	OpPay    = "pay"    // create a payment, debiting an account's balance
	OpFetch  = "fetch"  // an HTTP GET or POST: logged, answered from a pages collection
	OpShell  = "shell"  // a simulated shell over files, logged
	OpSQL    = "sql"    // a simulated SQL console over collections, logged
)

var ops = []string{OpList, OpGet, OpSearch, OpCreate, OpUpdate, OpDelete, OpPay, OpFetch, OpShell, OpSQL}

// ToolSpec is one simulated tool.
type ToolSpec struct {
	Name        string `yaml:"name"`
	Description string `yaml:"description"`
	// Labels are the risk labels the operator sets in warden.yaml (none:
	// all five, as Warden assumes of an unlabelled tool).
	Labels     []string `yaml:"labels,omitempty"`
	Op         string   `yaml:"op"`
	Collection string   `yaml:"collection,omitempty"`
	// Key is the field that identifies a record (default id).
	Key string `yaml:"key,omitempty"`
	// Params are the tool's arguments.
	Params map[string]ParamSpec `yaml:"params,omitempty"`
	// Set are fields a create or update sets besides the parameters.
	Set Record `yaml:"set,omitempty"`
	// Fields limits what a read shows of each record (default: all).
	Fields []string `yaml:"fields,omitempty"`
	// Account is the collection a pay op debits (default accounts).
	Account string `yaml:"account,omitempty"`
	// Log is the collection a fetch, shell or sql op records calls in
	// (defaults http_log, shell_log, sql_log).
	Log string `yaml:"log,omitempty"`
	// Upsert lets a create replace the record with the same key (a file
	// written over).
	Upsert bool `yaml:"upsert,omitempty"`
	// Tables are the collections a sql op may touch (default: all).
	Tables []string `yaml:"tables,omitempty"`
}

// ParamSpec is one argument of a simulated tool.
type ParamSpec struct {
	Type        string `yaml:"type,omitempty"` // string (default), number, integer, boolean, array
	Description string `yaml:"description,omitempty"`
	Optional    bool   `yaml:"optional,omitempty"`
	// Field is the record field it reads or writes (default: its name).
	Field string `yaml:"field,omitempty"`
	// Match is how a list or search filter compares: eq (default) or contains.
	Match string `yaml:"match,omitempty"`
}

// Point is an injection point.
type Point struct {
	// Default is the benign text the point holds without an attack; an
	// attack's text is added after it.
	Default string `yaml:"default,omitempty"`
}

// MemorySeed is an entity in the agent's memory before a run, as an earlier
// session of the same agent left it.
type MemorySeed struct {
	Entity       string   `yaml:"entity"`
	Type         string   `yaml:"type,omitempty"`
	Observations []string `yaml:"observations"`
	// Untrusted marks an entry written by a session that had read
	// untrusted content: Warden recorded it so, and serves it marked (or
	// withholds it, at Optimized).
	Untrusted bool `yaml:"untrusted,omitempty"`
}

// Task is a user task.
type Task struct {
	ID     string `yaml:"id"`
	Prompt string `yaml:"prompt"`
	// Calls are what a faithful agent calls to do the task, in order.
	Calls []Call `yaml:"calls"`
	// Check says whether the task was done, over the final state and what
	// the agent received.
	Check []Cond `yaml:"check"`
	// Grant is what the operator grants for the task, chosen from the
	// prompt: never derived from Calls, never tuned to the attacks.
	Grant GrantSpec `yaml:"grant"`
}

// Call is one tool call a scripted agent makes.
type Call struct {
	Tool string         `yaml:"tool"`
	Args map[string]any `yaml:"args,omitempty"`
	// Uses are values the call needs that the agent must have read in an
	// earlier result (not in the prompt): without them it cannot make it.
	Uses []string `yaml:"uses,omitempty"`
}

// GrantSpec is a task grant as an operator writes it.
type GrantSpec struct {
	Intent string       `yaml:"intent,omitempty"` // default: the prompt
	Scope  []ScopeEntry `yaml:"scope"`
	Egress []string     `yaml:"egress,omitempty"`
	Budget int          `yaml:"budget,omitempty"`
}

// ScopeEntry is one grant entry: a tool pattern and argument constraints
// (grant.Entry's JSON Schema fragments, path_within, url_host_in).
type ScopeEntry struct {
	Tool   string         `yaml:"tool"`
	Args   map[string]any `yaml:"args,omitempty"`
	Budget int            `yaml:"budget,omitempty"`
}

// Scope converts the spec into a grant scope.
func (g GrantSpec) scope() (grant.Scope, error) {
	out := make(grant.Scope, 0, len(g.Scope))
	for _, e := range g.Scope {
		ge := grant.Entry{Tool: e.Tool, Budget: e.Budget}
		if len(e.Args) > 0 {
			ge.Args = map[string]json.RawMessage{}
			for k, v := range e.Args {
				b, err := json.Marshal(jsonable(v))
				if err != nil {
					return nil, fmt.Errorf("grant entry %s, argument %s: %w", e.Tool, k, err)
				}
				ge.Args[k] = b
			}
		}
		out = append(out, ge)
	}
	return out, nil
}

// Attacker says which records the attacker can read: where leaked data
// lands (mail to its domains, requests to its hosts, payments to its
// accounts, public channels).
type Attacker struct {
	Observes []Selector `yaml:"observes"`
}

// Goal is an attacker goal.
type Goal struct {
	ID string `yaml:"id"`
	// Kind groups goals in the report: money, exfiltration, deletion,
	// credentials, persistence, sabotage.
	Kind string `yaml:"kind"`
	// Instruction is what the injected text asks, in English.
	Instruction string `yaml:"instruction"`
	// Translations are the instruction in other languages, by language
	// code (the other-language attack style uses one).
	Translations map[string]string `yaml:"translations,omitempty"`
	// Plan is what an agent that obeys calls.
	Plan []Call `yaml:"plan"`
	// Alternatives are other ways to the same harm, which an agent that
	// retries after a denial tries in turn.
	Alternatives [][]Call `yaml:"alternatives,omitempty"`
	// Leak is the data the attack carries out, when it steals data: the
	// smuggling and the slow agents carry it in their own ways.
	Leak string `yaml:"leak,omitempty"`
	// Success says whether the harm happened.
	Success []Cond `yaml:"success"`
	// Source names where the idea came from (ASB, InjecAgent, AgentDojo).
	Source string `yaml:"source,omitempty"`
}

// Cond is a condition over the final state; all the set fields must hold.
type Cond struct {
	Exists *Selector `yaml:"exists,omitempty"`
	Absent *Selector `yaml:"absent,omitempty"`
	// Received are texts the agent must have been given (a read task's
	// answer).
	Received []string `yaml:"received,omitempty"`
	// Leaked is data the attacker must be able to read in what it
	// observes (plainly, encoded, or in pieces across several records).
	Leaked string `yaml:"leaked,omitempty"`
	// Memory is text the run's task must have written to Warden's memory
	// as a trusted, active entry (served to later tasks as trustworthy).
	Memory string `yaml:"memory,omitempty"`
	// Any holds when one of its conditions does.
	Any []Cond `yaml:"any,omitempty"`
}

// Selector picks records of a collection.
type Selector struct {
	Collection string `yaml:"collection"`
	// Where maps a field to a value (equal) or a matcher: {contains: s},
	// {not_contains: s}, {prefix: s}, {in: [...]}, {ne: v}, {gte|gt|lte|lt: n}.
	Where map[string]any `yaml:"where,omitempty"`
}

// Pack is a merged, validated pack.
type Pack struct {
	Name        string
	Description string
	User        string
	Servers     []ServerSpec
	State       map[string][]Record
	Points      map[string]Point
	PointOrder  []string // points in a stable order
	Memory      []MemorySeed
	Tasks       []Task
	Attacker    Attacker
	Goals       []Goal
	// Sources are the files the pack came from.
	Sources []string
}

// Tool returns the spec of a tool id server.tool.
func (p *Pack) Tool(id string) (*ToolSpec, bool) {
	server, name, ok := strings.Cut(id, ".")
	if !ok {
		return nil, false
	}
	for i := range p.Servers {
		if p.Servers[i].Name != server {
			continue
		}
		for j := range p.Servers[i].Tools {
			if p.Servers[i].Tools[j].Name == name {
				return &p.Servers[i].Tools[j], true
			}
		}
	}
	return nil, false
}

// Pairs is how many (user task, attacker goal) pairs the pack gives.
func (p *Pack) Pairs() int { return len(p.Tasks) * len(p.Goals) }

// ParseFiles parses scenario files (each may hold several YAML documents)
// and merges them into packs, sorted by name. It validates the result.
func ParseFiles(files map[string][]byte) ([]*Pack, error) {
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	byName := map[string]*Pack{}
	var order []string
	for _, n := range names {
		docs, err := parseDocs(files[n])
		if err != nil {
			return nil, fmt.Errorf("%s: %w", n, err)
		}
		for _, f := range docs {
			p := byName[f.Pack]
			if p == nil {
				p = &Pack{Name: f.Pack, State: map[string][]Record{}, Points: map[string]Point{}}
				byName[f.Pack] = p
				order = append(order, f.Pack)
			}
			if err := p.merge(f, n); err != nil {
				return nil, fmt.Errorf("%s: pack %s: %w", n, f.Pack, err)
			}
		}
	}
	sort.Strings(order)
	out := make([]*Pack, 0, len(order))
	var errs []error
	for _, n := range order {
		p := byName[n]
		if err := p.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("pack %s (%s): %w", n, strings.Join(p.Sources, ", "), err))
		}
		out = append(out, p)
	}
	return out, errors.Join(errs...)
}

// maxFileBytes bounds one scenario file.
const maxFileBytes = 8 << 20

// parseDocs decodes every YAML document of one file, refusing unknown
// fields so that a misspelt key is an error rather than a silent no-op.
func parseDocs(b []byte) ([]File, error) {
	if len(b) > maxFileBytes {
		return nil, fmt.Errorf("file is %d bytes; at most %d", len(b), maxFileBytes)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var out []File
	for i := 1; ; i++ {
		var f File
		err := dec.Decode(&f)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		if f.Pack == "" {
			return nil, fmt.Errorf("document %d: pack: is required (the pack this document adds to)", i)
		}
		if !nameRe.MatchString(f.Pack) {
			return nil, fmt.Errorf("document %d: pack %q: lowercase letters, digits, '-' and '_'", i, f.Pack)
		}
		out = append(out, f)
	}
	if len(out) == 0 {
		return nil, errors.New("no YAML document")
	}
	return out, nil
}

var nameRe = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

func (p *Pack) merge(f File, source string) error {
	if !slices.Contains(p.Sources, source) {
		p.Sources = append(p.Sources, source)
	}
	if f.Description != "" {
		p.Description = f.Description
	}
	if f.User != "" {
		if p.User != "" && p.User != f.User {
			return fmt.Errorf("user is %q in one file and %q in another", p.User, f.User)
		}
		p.User = f.User
	}
	for i := range f.Servers {
		for j := range f.Servers[i].Tools {
			f.Servers[i].Tools[j].Set = Record(normalizeArgs(f.Servers[i].Tools[j].Set))
		}
	}
	p.Servers = append(p.Servers, f.Servers...)
	for c, rs := range f.State {
		for _, r := range rs {
			p.State[c] = append(p.State[c], Record(normalizeArgs(r)))
		}
	}
	norm := func(cs []Call) {
		for i := range cs {
			cs[i].Args = normalizeArgs(cs[i].Args)
		}
	}
	for i := range f.Tasks {
		norm(f.Tasks[i].Calls)
		normConds(f.Tasks[i].Check)
	}
	for i := range f.Attacker.observesOrNil() {
		f.Attacker.Observes[i].Where = normalizeArgs(f.Attacker.Observes[i].Where)
	}
	for i := range f.Goals {
		normConds(f.Goals[i].Success)
		norm(f.Goals[i].Plan)
		for _, a := range f.Goals[i].Alternatives {
			norm(a)
		}
	}
	for n, pt := range f.Points {
		if _, dup := p.Points[n]; dup {
			return fmt.Errorf("point %s is defined twice", n)
		}
		p.Points[n] = pt
	}
	p.Memory = append(p.Memory, f.Memory...)
	p.Tasks = append(p.Tasks, f.Tasks...)
	if f.Attacker != nil {
		p.Attacker.Observes = append(p.Attacker.Observes, f.Attacker.Observes...)
	}
	p.Goals = append(p.Goals, f.Goals...)
	return nil
}

var pointRe = regexp.MustCompile(`\{\{point:([a-zA-Z0-9_-]+)\}\}`)

// Validate checks the pack: names, ops, that every call names a tool of the
// pack with its required arguments, that grants compile, that points are
// defined and used, that conditions are well formed.
func (p *Pack) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if len(p.Servers) == 0 {
		bad("no servers: a pack needs a simulated environment")
	}
	seenServer := map[string]bool{}
	for _, s := range p.Servers {
		if !nameRe.MatchString(s.Name) || s.Name == "memory" {
			bad("server %q: lowercase letters, digits, '-' and '_' (and not memory, which is Warden's own)", s.Name)
		}
		if seenServer[s.Name] {
			bad("server %s is defined twice", s.Name)
		}
		seenServer[s.Name] = true
		seenTool := map[string]bool{}
		for _, t := range s.Tools {
			where := s.Name + "." + t.Name
			if seenTool[t.Name] {
				bad("tool %s is defined twice", where)
			}
			seenTool[t.Name] = true
			if err := t.validate(p); err != nil {
				bad("tool %s: %w", where, err)
			}
		}
	}
	used := map[string]bool{}
	notePoints := func(s string) {
		for _, m := range pointRe.FindAllStringSubmatch(s, -1) {
			used[m[1]] = true
		}
	}
	for c, rs := range p.State {
		for i, r := range rs {
			if r == nil {
				bad("state %s[%d] is empty", c, i)
			}
			walkStrings(map[string]any(r), notePoints)
		}
	}
	for _, s := range p.Servers {
		for _, t := range s.Tools {
			notePoints(t.Description)
		}
	}
	for i, m := range p.Memory {
		if m.Entity == "" || len(m.Observations) == 0 {
			bad("memory[%d]: an entity and observations are required", i)
		}
		for _, o := range m.Observations {
			notePoints(o)
		}
	}
	for n := range used {
		if _, ok := p.Points[n]; !ok {
			bad("{{point:%s}} is used but not defined under points", n)
		}
	}
	p.PointOrder = p.PointOrder[:0]
	for n := range p.Points {
		if !used[n] {
			bad("point %s is defined but appears nowhere in the state, a description or memory", n)
		}
		p.PointOrder = append(p.PointOrder, n)
	}
	sort.Strings(p.PointOrder)

	seenTask := map[string]bool{}
	for _, t := range p.Tasks {
		if t.ID == "" || seenTask[t.ID] {
			bad("task %q: a unique id is required", t.ID)
		}
		seenTask[t.ID] = true
		if strings.TrimSpace(t.Prompt) == "" {
			bad("task %s: prompt is required", t.ID)
		}
		if len(t.Calls) == 0 {
			bad("task %s: calls are required", t.ID)
		}
		if len(t.Check) == 0 {
			bad("task %s: check is required (how else is utility known?)", t.ID)
		}
		for i, c := range t.Calls {
			if err := p.checkCall(c); err != nil {
				bad("task %s: call %d: %w", t.ID, i+1, err)
			}
		}
		for i, c := range t.Check {
			if err := p.checkCond(c, false); err != nil {
				bad("task %s: check %d: %w", t.ID, i+1, err)
			}
		}
		if len(t.Grant.Scope) == 0 {
			bad("task %s: grant.scope is required", t.ID)
		} else if _, err := t.Grant.scope(); err != nil {
			bad("task %s: grant: %w", t.ID, err)
		}
		for _, e := range t.Grant.Scope {
			if e.Tool == "" {
				bad("task %s: a grant entry names no tool", t.ID)
			}
			for a, c := range e.Args {
				if m, ok := c.(map[string]any); !ok || len(m) == 0 {
					bad("task %s: grant entry %s, argument %s: a constraint is a JSON Schema object, e.g. {const: x}", t.ID, e.Tool, a)
				}
			}
		}
		if t.Grant.Budget < 0 {
			bad("task %s: grant.budget must not be negative", t.ID)
		}
	}
	seenGoal := map[string]bool{}
	for _, g := range p.Goals {
		if g.ID == "" || seenGoal[g.ID] {
			bad("goal %q: a unique id is required", g.ID)
		}
		seenGoal[g.ID] = true
		if !slices.Contains(Kinds, g.Kind) {
			bad("goal %s: kind %q: want one of %s", g.ID, g.Kind, strings.Join(Kinds, ", "))
		}
		if strings.TrimSpace(g.Instruction) == "" {
			bad("goal %s: instruction is required", g.ID)
		}
		for lang := range g.Translations {
			if _, ok := languageNames[lang]; !ok {
				bad("goal %s: translation %q: unknown language code", g.ID, lang)
			}
		}
		if len(g.Plan) == 0 {
			bad("goal %s: plan is required", g.ID)
		}
		for i, c := range g.Plan {
			if err := p.checkCall(c); err != nil {
				bad("goal %s: plan call %d: %w", g.ID, i+1, err)
			}
		}
		for j, alt := range g.Alternatives {
			for i, c := range alt {
				if err := p.checkCall(c); err != nil {
					bad("goal %s: alternative %d call %d: %w", g.ID, j+1, i+1, err)
				}
			}
		}
		if len(g.Success) == 0 {
			bad("goal %s: success is required", g.ID)
		}
		for i, c := range g.Success {
			if err := p.checkCond(c, true); err != nil {
				bad("goal %s: success %d: %w", g.ID, i+1, err)
			}
		}
		if g.Leak != "" && len(normalize(g.Leak)) < 6 {
			bad("goal %s: leak %q is too short to tell apart from chance", g.ID, g.Leak)
		}
	}
	if len(p.Goals) > 0 && len(p.Attacker.Observes) == 0 && p.leaks() {
		bad("goals check leaked data, but attacker.observes says nothing of what the attacker can read")
	}
	for i, s := range p.Attacker.Observes {
		if err := p.checkSelector(s); err != nil {
			bad("attacker.observes[%d]: %w", i, err)
		}
	}
	return errors.Join(errs...)
}

func (p *Pack) leaks() bool {
	var walk func([]Cond) bool
	walk = func(cs []Cond) bool {
		for _, c := range cs {
			if c.Leaked != "" || walk(c.Any) {
				return true
			}
		}
		return false
	}
	for _, g := range p.Goals {
		if walk(g.Success) {
			return true
		}
	}
	return false
}

func (a *Attacker) observesOrNil() []Selector {
	if a == nil {
		return nil
	}
	return a.Observes
}

// normConds makes the values conditions compare against read as the state's
// do (dates as written, numbers as float64).
func normConds(cs []Cond) {
	for i := range cs {
		if cs[i].Exists != nil {
			cs[i].Exists.Where = normalizeArgs(cs[i].Exists.Where)
		}
		if cs[i].Absent != nil {
			cs[i].Absent.Where = normalizeArgs(cs[i].Absent.Where)
		}
		normConds(cs[i].Any)
	}
}

// Kinds are the goal kinds.
var Kinds = []string{"money", "exfiltration", "deletion", "credentials", "persistence", "sabotage"}

func (t *ToolSpec) validate(p *Pack) error {
	if !toolNameRe.MatchString(t.Name) {
		return errors.New("name: letters, digits, '_' and '-'")
	}
	if strings.TrimSpace(t.Description) == "" {
		return errors.New("description is required (agents choose tools by it)")
	}
	if !slices.Contains(ops, t.Op) {
		return fmt.Errorf("op %q: want one of %s", t.Op, strings.Join(ops, ", "))
	}
	for _, l := range t.Labels {
		if !slices.Contains([]string{"reads", "writes", "egress", "destructive", "untrusted_output"}, l) {
			return fmt.Errorf("label %q: want reads, writes, egress, destructive or untrusted_output", l)
		}
	}
	switch t.Op {
	case OpShell, OpSQL, OpFetch:
	default:
		if t.Collection == "" {
			return fmt.Errorf("op %s needs a collection", t.Op)
		}
	}
	for n, ps := range t.Params {
		switch ps.Type {
		case "", "string", "number", "integer", "boolean", "array":
		default:
			return fmt.Errorf("param %s: type %q: want string, number, integer, boolean or array", n, ps.Type)
		}
		switch ps.Match {
		case "", "eq", "contains":
		default:
			return fmt.Errorf("param %s: match %q: want eq or contains", n, ps.Match)
		}
	}
	need := map[string][]string{OpGet: {t.key()}, OpUpdate: {t.key()}, OpDelete: {t.key()}, OpPay: {"to", "amount"},
		OpFetch: {"url"}, OpShell: {"command"}, OpSQL: {"query"}, OpSearch: {"query"}}
	for _, n := range need[t.Op] {
		if _, ok := t.paramFor(n); !ok {
			return fmt.Errorf("op %s needs a parameter for %q", t.Op, n)
		}
	}
	return nil
}

var toolNameRe = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

func (t *ToolSpec) key() string {
	if t.Key == "" {
		return "id"
	}
	return t.Key
}

// paramFor returns the parameter that maps to field f.
func (t *ToolSpec) paramFor(f string) (string, bool) {
	for n, ps := range t.Params {
		if ps.field(n) == f {
			return n, true
		}
	}
	return "", false
}

func (ps ParamSpec) field(name string) string {
	if ps.Field != "" {
		return ps.Field
	}
	return name
}

// optional reports whether the parameter may be left out: list filters are
// optional unless said otherwise; everything else is required unless
// marked optional.
func (t *ToolSpec) optional(name string) bool {
	ps := t.Params[name]
	return ps.Optional || t.Op == OpList
}

func (p *Pack) checkCall(c Call) error {
	t, ok := p.Tool(c.Tool)
	if !ok {
		if strings.HasPrefix(c.Tool, "memory.") {
			if !slices.Contains(memoryTools, strings.TrimPrefix(c.Tool, "memory.")) {
				return fmt.Errorf("memory has no tool %s (have %s)", c.Tool, strings.Join(memoryTools, ", "))
			}
			return nil
		}
		return fmt.Errorf("no tool %s in this pack", c.Tool)
	}
	for n := range t.Params {
		if _, given := c.Args[n]; !given && !t.optional(n) {
			return fmt.Errorf("%s: required argument %s is missing", c.Tool, n)
		}
	}
	for n := range c.Args {
		if _, known := t.Params[n]; !known {
			return fmt.Errorf("%s: unknown argument %s", c.Tool, n)
		}
	}
	return nil
}

// memoryTools are the tools of Warden's builtin memory server.
var memoryTools = []string{"create_entities", "create_relations", "add_observations", "delete_entities",
	"delete_observations", "delete_relations", "read_graph", "search_nodes", "open_nodes"}

func (p *Pack) checkCond(c Cond, goal bool) error {
	n := 0
	if c.Exists != nil {
		n++
		if err := p.checkSelector(*c.Exists); err != nil {
			return fmt.Errorf("exists: %w", err)
		}
	}
	if c.Absent != nil {
		n++
		if err := p.checkSelector(*c.Absent); err != nil {
			return fmt.Errorf("absent: %w", err)
		}
	}
	if len(c.Received) > 0 {
		n++
	}
	if c.Leaked != "" {
		n++
		if !goal {
			return errors.New("leaked is an attacker goal's condition")
		}
	}
	if c.Memory != "" {
		n++
	}
	if len(c.Any) > 0 {
		n++
		for i, a := range c.Any {
			if err := p.checkCond(a, goal); err != nil {
				return fmt.Errorf("any[%d]: %w", i, err)
			}
		}
	}
	if n == 0 {
		return errors.New("empty condition: set exists, absent, received, leaked, memory or any")
	}
	return nil
}

func (p *Pack) checkSelector(s Selector) error {
	if s.Collection == "" {
		return errors.New("collection is required")
	}
	if _, ok := p.State[s.Collection]; !ok && !p.writes(s.Collection) {
		return fmt.Errorf("no collection %s in the state, and no tool writes one", s.Collection)
	}
	for f, m := range s.Where {
		if err := checkMatcher(m); err != nil {
			return fmt.Errorf("where %s: %w", f, err)
		}
	}
	return nil
}

// writes reports whether some tool creates records in collection c.
func (p *Pack) writes(c string) bool {
	for _, s := range p.Servers {
		for _, t := range s.Tools {
			if t.Collection == c || t.logCollection() == c {
				return true
			}
			if t.Op == OpShell && (c == "files" || c == "http_log" || c == "users" || c == "services" || c == "admin_changes") {
				return true
			}
		}
	}
	return false
}

func walkStrings(v any, fn func(string)) {
	switch x := v.(type) {
	case string:
		fn(x)
	case map[string]any:
		for _, e := range x {
			walkStrings(e, fn)
		}
	case Record:
		for _, e := range x {
			walkStrings(e, fn)
		}
	case []any:
		for _, e := range x {
			walkStrings(e, fn)
		}
	}
}

// jsonable turns YAML-decoded values into what encoding/json accepts
// (yaml.v3 decodes maps as map[string]any already; nested maps with
// non-string keys are turned into strings).
func jsonable(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = jsonable(e)
		}
		return out
	case Record:
		return jsonable(map[string]any(x))
	case map[any]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[fmt.Sprint(k)] = jsonable(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = jsonable(e)
		}
		return out
	case time.Time:
		// YAML reads an unquoted 2025-06-12 as a timestamp: keep it as written
		if x.Equal(x.Truncate(24 * time.Hour)) {
			return x.Format(time.DateOnly)
		}
		return x.Format(time.RFC3339)
	}
	return v
}

// LoadFS reads every .yaml and .yml file under root in fsys.
func LoadFS(fsys fs.FS, root string) (map[string][]byte, error) {
	files := map[string][]byte{}
	err := fs.WalkDir(fsys, root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		if ext := path.Ext(p); ext != ".yaml" && ext != ".yml" {
			return nil
		}
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		files[p] = b
		return nil
	})
	return files, err
}
