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
type entityCache[T any] struct {
	mu    sync.RWMutex
	m     map[string]*cached[T]
	equal func(a, b *T) bool
	clone func(T) T
	build func(T) (types.Entity, error)
}

type cached[T any] struct {
	from   T
	entity types.Entity
}

func (c *entityCache[T]) get(key string, v T) (types.Entity, error) {
	c.mu.RLock()
	ce := c.m[key]
	c.mu.RUnlock()
	if ce != nil && c.equal(&ce.from, &v) {
		return ce.entity, nil
	}
	ent, err := c.build(v)
	if err != nil {
		return types.Entity{}, err
	}
	ce = &cached[T]{from: c.clone(v), entity: ent}
	c.mu.Lock()
	if len(c.m) >= maxCached {
		clear(c.m)
	}
	c.m[key] = ce
	c.mu.Unlock()
	return ent, nil
}

// caches are an engine's entity caches. A nil *caches builds every entity
// afresh.
type caches struct {
	agents entityCache[Agent]
	tools  entityCache[Tool]
	tasks  entityCache[Task]
}

func newCaches() *caches {
	return &caches{
		agents: entityCache[Agent]{
			m: map[string]*cached[Agent]{},
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
		tools: entityCache[Tool]{
			m: map[string]*cached[Tool]{},
			equal: func(a, b *Tool) bool {
				return a.Server == b.Server && a.Name == b.Name && slices.Equal(a.Labels, b.Labels)
			},
			clone: func(t Tool) Tool {
				t.Labels = slices.Clone(t.Labels)
				return t
			},
			build: Tool.entity,
		},
		tasks: entityCache[Task]{
			m: map[string]*cached[Task]{},
			equal: func(a, b *Task) bool {
				return a.ID == b.ID && a.Intent == b.Intent && a.Requester == b.Requester && slices.Equal(a.Ancestors, b.Ancestors)
			},
			clone: func(t Task) Task {
				t.Ancestors = slices.Clone(t.Ancestors)
				return t
			},
			build: Task.entity,
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
