package policy

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/cedar-policy/cedar-go/types"
)

// Cedar entity types of the schema.
const (
	TypeAgent    types.EntityType = "Agent"
	TypeGroup    types.EntityType = "Group"
	TypeServer   types.EntityType = "Server"
	TypeTool     types.EntityType = "Tool"
	TypeTask     types.EntityType = "Task"
	TypeResource types.EntityType = "Resource"
	TypePrompt   types.EntityType = "Prompt"
	TypeMemory   types.EntityType = "Memory"
	typeAction   types.EntityType = "Action"
)

// Action is what the principal asks to do: one of the schema's actions.
type Action string

// The schema's actions.
const (
	Call     Action = "call"     // call a Tool
	Read     Action = "read"     // read a Resource, Prompt or Memory namespace
	Write    Action = "write"    // write a Resource or Memory namespace
	Delegate Action = "delegate" // hand the task to another Agent
)

func (a Action) uid() types.EntityUID { return types.NewEntityUID(typeAction, types.String(a)) }

// accepts reports whether the schema lets action a apply to a target of type t.
func (a Action) accepts(t types.EntityType) bool {
	switch a {
	case Call:
		return t == TypeTool
	case Read:
		return t == TypeResource || t == TypePrompt || t == TypeMemory
	case Write:
		return t == TypeResource || t == TypeMemory
	case Delegate:
		return t == TypeAgent
	}
	return false
}

// Risk labels of a tool, set by the operator in warden.yaml.
const (
	LabelReads           = "reads"
	LabelWrites          = "writes"
	LabelEgress          = "egress"
	LabelDestructive     = "destructive"
	LabelUntrustedOutput = "untrusted_output"
)

// AllLabels lists every risk label. A tool with no labels set carries them all.
func AllLabels() []string {
	return []string{LabelReads, LabelWrites, LabelEgress, LabelDestructive, LabelUntrustedOutput}
}

func knownLabel(l string) bool {
	switch l {
	case LabelReads, LabelWrites, LabelEgress, LabelDestructive, LabelUntrustedOutput:
		return true
	}
	return false
}

// maxIDLen bounds every id and attribute string in a request.
const maxIDLen = 1024

// Agent is the principal of every decision (and the target of a delegation).
type Agent struct {
	Name     string // the entity id: Agent::"<name>"
	SPIFFEID string
	Owner    string
	Model    string
	Tier     string
	Groups   []string          // Group entities the agent is in
	Labels   map[string]string // Cedar tags
}

// Tool is an upstream MCP tool, Tool::"<server>.<name>", in Server::"<server>".
type Tool struct {
	Server string
	Name   string
	// Labels are the tool's risk labels. None set means all five: labels
	// fail closed.
	Labels []string
}

// ID returns the tool's id, server.tool.
func (t Tool) ID() string { return t.Server + "." + t.Name }

// Resource is an MCP resource, Resource::"<uri>", in Server::"<server>".
type Resource struct {
	Server string
	URI    string
}

// Prompt is an MCP prompt, Prompt::"<server>.<name>", in Server::"<server>".
type Prompt struct {
	Server string
	Name   string
}

// Memory is a memory namespace, Memory::"<namespace>". Namespaces are
// '/'-separated and a namespace is in each of its prefixes: Memory::"a/b/c"
// is in Memory::"a/b" and Memory::"a".
type Memory struct {
	Namespace string
}

// Target is what an action is done to: a Tool (call), a Resource, Prompt or
// Memory (read, write) or an Agent (delegate).
type Target interface {
	// entity returns the target as a Cedar entity and the entities it is in.
	entity() (types.Entity, error)
}

// normTarget turns a pointer target into its value, refusing nil ones.
func normTarget(t Target) (Target, error) {
	var isNil bool
	switch v := t.(type) {
	case nil:
		return nil, errors.New("no target")
	case *Tool:
		if isNil = v == nil; !isNil {
			return *v, nil
		}
	case *Resource:
		if isNil = v == nil; !isNil {
			return *v, nil
		}
	case *Prompt:
		if isNil = v == nil; !isNil {
			return *v, nil
		}
	case *Memory:
		if isNil = v == nil; !isNil {
			return *v, nil
		}
	case *Agent:
		if isNil = v == nil; !isNil {
			return *v, nil
		}
	}
	if isNil {
		return nil, errors.New("nil target")
	}
	return t, nil
}

// Task is the task a request is made within. Ancestors are the ids of the
// tasks it was delegated from, parent first.
type Task struct {
	ID        string
	Intent    string
	Requester string
	Ancestors []string
}

// Session holds the facts the gateway has gathered about the agent's live
// session.
type Session struct {
	ID           string
	Tainted      bool     // it has ingested untrusted content
	Findings     []string // kinds of findings raised in it
	TaintSources []string // ids of the tools whose untrusted output it ingested
}

func checkString(what, s string, required bool) error {
	if required && s == "" {
		return fmt.Errorf("%s is empty", what)
	}
	if len(s) > maxIDLen {
		return fmt.Errorf("%s is %d bytes long; at most %d", what, len(s), maxIDLen)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("%s is not valid UTF-8", what)
	}
	return nil
}

func checkStrings(what string, ss []string) error {
	if len(ss) > 256 {
		return fmt.Errorf("%s has %d entries; at most 256", what, len(ss))
	}
	for _, s := range ss {
		if err := checkString(what, s, true); err != nil {
			return err
		}
	}
	return nil
}

func stringSet(ss []string) types.Set {
	vs := make([]types.Value, len(ss))
	for i, s := range ss {
		vs[i] = types.String(s)
	}
	return types.NewSet(vs...)
}

func (a Agent) uid() types.EntityUID { return types.NewEntityUID(TypeAgent, types.String(a.Name)) }

func (a Agent) entity() (types.Entity, error) {
	if err := errors.Join(
		checkString("agent name", a.Name, true),
		checkString("agent SPIFFE ID", a.SPIFFEID, false),
		checkString("agent owner", a.Owner, false),
		checkString("agent model", a.Model, false),
		checkString("agent tier", a.Tier, false),
		checkStrings("agent groups", a.Groups),
	); err != nil {
		return types.Entity{}, err
	}
	if len(a.Labels) > 256 {
		return types.Entity{}, fmt.Errorf("agent has %d labels; at most 256", len(a.Labels))
	}
	var tags types.Record
	if len(a.Labels) > 0 {
		m := make(types.RecordMap, len(a.Labels))
		for k, v := range a.Labels {
			if err := errors.Join(checkString("agent label key", k, true), checkString("agent label value", v, false)); err != nil {
				return types.Entity{}, err
			}
			m[types.String(k)] = types.String(v)
		}
		tags = types.NewRecord(m)
	}
	return types.Entity{
		UID:     a.uid(),
		Parents: types.NewEntityUIDSet(groupUIDs(a.Groups)...),
		Attributes: types.NewRecord(types.RecordMap{
			"spiffe_id": types.String(a.SPIFFEID),
			"name":      types.String(a.Name),
			"owner":     types.String(a.Owner),
			"model":     types.String(a.Model),
			"tier":      types.String(a.Tier),
		}),
		Tags: tags,
	}, nil
}

func groupUIDs(groups []string) []types.EntityUID {
	uids := make([]types.EntityUID, len(groups))
	for i, g := range groups {
		uids[i] = types.NewEntityUID(TypeGroup, types.String(g))
	}
	return uids
}

func serverUID(s string) types.EntityUID { return types.NewEntityUID(TypeServer, types.String(s)) }

// checkID checks the strings that make the tool's id.
func (t Tool) checkID() error {
	return errors.Join(
		checkString("tool server", t.Server, true),
		checkString("tool name", t.Name, true),
	)
}

func (t Tool) entity() (types.Entity, error) {
	if err := t.checkID(); err != nil {
		return types.Entity{}, err
	}
	labels := t.Labels
	if len(labels) == 0 {
		labels = AllLabels()
	}
	for _, l := range labels {
		if !knownLabel(l) {
			return types.Entity{}, fmt.Errorf("tool %s has unknown risk label %q (want one of %s)", t.ID(), l, strings.Join(AllLabels(), ", "))
		}
	}
	return types.Entity{
		UID:     types.NewEntityUID(TypeTool, types.String(t.ID())),
		Parents: types.NewEntityUIDSet(serverUID(t.Server)),
		Attributes: types.NewRecord(types.RecordMap{
			"server": types.String(t.Server),
			"name":   types.String(t.Name),
			"labels": stringSet(labels),
		}),
	}, nil
}

func (r Resource) entity() (types.Entity, error) {
	if err := errors.Join(
		checkString("resource server", r.Server, true),
		checkString("resource URI", r.URI, true),
	); err != nil {
		return types.Entity{}, err
	}
	return types.Entity{
		UID:     types.NewEntityUID(TypeResource, types.String(r.URI)),
		Parents: types.NewEntityUIDSet(serverUID(r.Server)),
		Attributes: types.NewRecord(types.RecordMap{
			"server": types.String(r.Server),
			"uri":    types.String(r.URI),
		}),
	}, nil
}

func (p Prompt) entity() (types.Entity, error) {
	if err := errors.Join(
		checkString("prompt server", p.Server, true),
		checkString("prompt name", p.Name, true),
	); err != nil {
		return types.Entity{}, err
	}
	return types.Entity{
		UID:     types.NewEntityUID(TypePrompt, types.String(p.Server+"."+p.Name)),
		Parents: types.NewEntityUIDSet(serverUID(p.Server)),
		Attributes: types.NewRecord(types.RecordMap{
			"server": types.String(p.Server),
			"name":   types.String(p.Name),
		}),
	}, nil
}

func (m Memory) entity() (types.Entity, error) {
	if err := checkString("memory namespace", m.Namespace, true); err != nil {
		return types.Entity{}, err
	}
	var parents []types.EntityUID
	for i := len(m.Namespace) - 1; i > 0; i-- {
		if m.Namespace[i] == '/' {
			parents = append(parents, types.NewEntityUID(TypeMemory, types.String(m.Namespace[:i])))
		}
	}
	return types.Entity{
		UID:     types.NewEntityUID(TypeMemory, types.String(m.Namespace)),
		Parents: types.NewEntityUIDSet(parents...),
		Attributes: types.NewRecord(types.RecordMap{
			"namespace": types.String(m.Namespace),
		}),
	}, nil
}

func (t Task) entity() (types.Entity, error) {
	if err := errors.Join(
		checkString("task id", t.ID, true),
		checkString("task intent", t.Intent, false),
		checkString("task requester", t.Requester, false),
		checkStrings("task ancestors", t.Ancestors),
	); err != nil {
		return types.Entity{}, err
	}
	// Every ancestor is a direct parent, so `in` holds transitively without
	// the ancestors' own entities.
	parents := make([]types.EntityUID, len(t.Ancestors))
	for i, a := range t.Ancestors {
		parents[i] = types.NewEntityUID(TypeTask, types.String(a))
	}
	return types.Entity{
		UID:     types.NewEntityUID(TypeTask, types.String(t.ID)),
		Parents: types.NewEntityUIDSet(parents...),
		Attributes: types.NewRecord(types.RecordMap{
			"intent":    types.String(t.Intent),
			"requester": types.String(t.Requester),
		}),
	}, nil
}

func (s Session) record() (types.Record, error) {
	if err := errors.Join(
		checkString("session id", s.ID, false),
		checkStrings("session findings", s.Findings),
		checkStrings("session taint sources", s.TaintSources),
	); err != nil {
		return types.Record{}, err
	}
	return types.NewRecord(types.RecordMap{
		"id":            types.String(s.ID),
		"tainted":       types.Boolean(s.Tainted),
		"findings":      stringSet(s.Findings),
		"taint_sources": stringSet(s.TaintSources),
	}), nil
}

// entitySlice is the handful of entities one request needs. A linear search
// over three or four entities beats building a map per request.
type entitySlice []types.Entity

func (es entitySlice) Get(uid types.EntityUID) (types.Entity, bool) {
	for i := range es {
		if es[i].UID == uid {
			return es[i], true
		}
	}
	return types.Entity{}, false
}

// ancestors returns e's uid followed by its parents: the keys under which
// policies scoped to e (==, in) are indexed.
func ancestors(e types.Entity, dst []types.EntityUID) []types.EntityUID {
	dst = append(dst, e.UID)
	for p := range e.Parents.All() {
		dst = append(dst, p)
	}
	return dst
}
