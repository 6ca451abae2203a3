package memory

import (
	"slices"
	"sync"
)

// graphCache keeps, per namespace, the graph built from its verified
// entries, so that a read does not decode and replay every entry again.
// It is consulted only after Load has re-read and re-verified every stored
// entry of the namespace (the cache saves the replay, never the
// verification), and only when Load found no problem: then the chain is
// whole, so the last entry's hash fixes every entry before it, and the
// cached graph is exactly Build of those entries. Entries after the cached
// ones are applied to a copy; a rollback or release among them, which can
// change what earlier entries mean, rebuilds from scratch. Cached graphs
// are never modified: readers share them.
type graphCache struct {
	mu sync.Mutex
	ns map[string]*cachedGraph
}

type cachedGraph struct {
	n        int    // entries the graph was built from
	seq      int64  // the last one's seq
	hash     string // and hash
	graph    *Graph
	released map[int64]bool // seqs released by release entries among them
}

// build returns Build(entries), entries being what Load returned for ns
// (whole: no problem found) or not.
func (c *graphCache) build(ns string, entries []Entry, whole bool) *Graph {
	c.mu.Lock()
	old := c.ns[ns]
	c.mu.Unlock()
	if !whole || len(entries) == 0 {
		c.forget(ns)
		return Build(entries)
	}
	var next *cachedGraph
	if old != nil && len(entries) >= old.n && entries[old.n-1].Seq == old.seq && entries[old.n-1].Hash == old.hash {
		if len(entries) == old.n {
			return old.graph
		}
		next = old.extend(entries[old.n:])
	}
	if next == nil {
		next = &cachedGraph{graph: Build(entries), released: releasedIn(entries)}
	}
	last := &entries[len(entries)-1]
	next.n, next.seq, next.hash = len(entries), last.Seq, last.Hash
	c.mu.Lock()
	if c.ns == nil {
		c.ns = map[string]*cachedGraph{}
	}
	if cur := c.ns[ns]; cur == nil || cur.n <= next.n {
		c.ns[ns] = next
	}
	c.mu.Unlock()
	return next.graph
}

func (c *graphCache) forget(ns string) {
	c.mu.Lock()
	delete(c.ns, ns)
	c.mu.Unlock()
}

// extend applies entries after the cached ones to a copy of the graph, as
// Build would; nil when one of them is a rollback or a release.
func (g *cachedGraph) extend(more []Entry) *cachedGraph {
	for i := range more {
		if more[i].Op == OpRollback || more[i].Op == OpRelease {
			return nil
		}
	}
	out := &cachedGraph{graph: g.graph.clone(), released: g.released}
	for i := range more {
		e := &more[i]
		if e.Status == Quarantined && !g.released[e.Seq] {
			continue
		}
		out.graph.apply(e)
	}
	return out
}

// releasedIn is the released set Build computes.
func releasedIn(entries []Entry) map[int64]bool {
	out := map[int64]bool{}
	for seq, f := range Fates(entries) {
		if f.ReleasedBy != 0 {
			out[seq] = true
		}
	}
	return out
}

// clone copies what apply modifies: the lists of entities and relations,
// and each entity's observations.
func (g *Graph) clone() *Graph {
	out := &Graph{Entities: make([]*Entity, len(g.Entities)), Relations: slices.Clone(g.Relations)}
	for i, e := range g.Entities {
		c := *e
		c.Observations = slices.Clone(e.Observations)
		out.Entities[i] = &c
	}
	return out
}
