package policy

import (
	"maps"
	"slices"
	"sync"

	"github.com/cedar-policy/cedar-go/types"
)

// maxCached bounds each entity cache; a full cache is emptied and refilled.
const maxCached = 8192

// entityCache remembers the Cedar entities built for the agents, tools and
// tasks an engine has seen: a gateway asks about the same few again and
// again, and building an entity (records, sets, maps) costs more than
// evaluating the policies that apply. An entry is used only if the whole
// description it was built from equals the one asked about, so a changed
// attribute is never answered with a stale entity; entries hold their own
// copy of that description, so a caller changing its slices or maps
// afterwards cannot change them.
type entityCache[T, V any] struct {
	mu    sync.RWMutex
	m     map[string]*cached[T, V]
	equal func(a, b *T) bool
	clone func(T) T
	build func(T) (V, error)
}

type cached[T, V any] struct {
	from  T
	value V
}

func (c *entityCache[T, V]) get(key string, v T) (V, error) {
	c.mu.RLock()
	ce := c.m[key]
	c.mu.RUnlock()
	if ce != nil && c.equal(&ce.from, &v) {
		return ce.value, nil
	}
	val, err := c.build(v)
	if err != nil {
		var zero V
		return zero, err
	}
	ce = &cached[T, V]{from: c.clone(v), value: val}
	c.mu.Lock()
	if len(c.m) >= maxCached {
		clear(c.m)
	}
	c.m[key] = ce
	c.mu.Unlock()
	return val, nil
}

// caches are an engine's entity caches (and one for session records, which
// change far less often than calls are made). A nil *caches builds every
// value afresh.
type caches struct {
	agents   entityCache[Agent, types.Entity]
	tools    entityCache[Tool, types.Entity]
	tasks    entityCache[Task, types.Entity]
	sessions entityCache[Session, types.Record]
}

func newCaches() *caches {
	return &caches{
		agents: entityCache[Agent, types.Entity]{
			m: map[string]*cached[Agent, types.Entity]{},
			equal: func(a, b *Agent) bool {
				return a.Name == b.Name && a.SPIFFEID == b.SPIFFEID && a.Owner == b.Owner && a.Model == b.Model &&
					a.Tier == b.Tier && slices.Equal(a.Groups, b.Groups) && maps.Equal(a.Labels, b.Labels)
			},
			clone: func(a Agent) Agent {
				a.Groups, a.Labels = slices.Clone(a.Groups), maps.Clone(a.Labels)
				return a
			},
			build: Agent.entity,
		},
		tools: entityCache[Tool, types.Entity]{
			m: map[string]*cached[Tool, types.Entity]{},
			equal: func(a, b *Tool) bool {
				return a.Server == b.Server && a.Name == b.Name && slices.Equal(a.Labels, b.Labels)
			},
			clone: func(t Tool) Tool {
				t.Labels = slices.Clone(t.Labels)
				return t
			},
			build: Tool.entity,
		},
		tasks: entityCache[Task, types.Entity]{
			m: map[string]*cached[Task, types.Entity]{},
			equal: func(a, b *Task) bool {
				return a.ID == b.ID && a.Intent == b.Intent && a.Requester == b.Requester && slices.Equal(a.Ancestors, b.Ancestors)
			},
			clone: func(t Task) Task {
				t.Ancestors = slices.Clone(t.Ancestors)
				return t
			},
			build: Task.entity,
		},
		sessions: entityCache[Session, types.Record]{
			m: map[string]*cached[Session, types.Record]{},
			equal: func(a, b *Session) bool {
				return a.ID == b.ID && a.Tainted == b.Tainted &&
					slices.Equal(a.Findings, b.Findings) && slices.Equal(a.TaintSources, b.TaintSources)
			},
			clone: func(s Session) Session {
				s.Findings, s.TaintSources = slices.Clone(s.Findings), slices.Clone(s.TaintSources)
				return s
			},
			build: Session.record,
		},
	}
}

func (c *caches) agent(a Agent) (types.Entity, error) {
	if c == nil {
		return a.entity()
	}
	return c.agents.get(a.Name, a)
}

func (c *caches) target(t Target) (types.Entity, error) {
	if tool, ok := t.(Tool); ok && c != nil {
		return c.tools.get(tool.ID(), tool)
	}
	return t.entity()
}

func (c *caches) task(t Task) (types.Entity, error) {
	if c == nil {
		return t.entity()
	}
	return c.tasks.get(t.ID, t)
}

func (c *caches) session(s Session) (types.Record, error) {
	if c == nil {
		return s.record()
	}
	return c.sessions.get(s.ID, s)
}
