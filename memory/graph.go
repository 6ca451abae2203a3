package memory

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Prov is the provenance of one piece of the graph: the entry that put it
// there.
type Prov struct {
	Entry     string    `json:"entry"` // ns#seq
	Hash      string    `json:"-"`
	Agent     string    `json:"agent"`
	Task      string    `json:"task,omitempty"`
	Trust     string    `json:"trust"`
	Sources   []string  `json:"sources,omitempty"`
	WrittenAt time.Time `json:"written_at"`
}

func provOf(e *Entry) Prov {
	return Prov{Entry: e.ID(), Hash: e.Hash, Agent: e.Agent, Task: e.Task, Trust: e.Trust, Sources: e.Sources, WrittenAt: time.Unix(0, e.WrittenAt).UTC()}
}

// Observation is one observation with its provenance.
type Observation struct {
	Text string
	Prov Prov
}

// Entity is a node of the knowledge graph.
type Entity struct {
	Name         string
	EntityType   string
	Observations []Observation
	Prov         Prov
}

// Relation is an edge of the knowledge graph.
type Relation struct {
	From, To, RelationType string
	Prov                   Prov
}

// Graph is a namespace's knowledge graph, rebuilt from its verified
// entries: every piece knows the entry that put it there.
type Graph struct {
	Entities  []*Entity
	Relations []*Relation
}

func (g *Graph) entity(name string) *Entity {
	for _, e := range g.Entities {
		if e.Name == name {
			return e
		}
	}
	return nil
}

func (g *Graph) hasRelation(r RelationArg) bool {
	return slices.ContainsFunc(g.Relations, func(x *Relation) bool {
		return x.From == r.From && x.To == r.To && x.RelationType == r.RelationType
	})
}

// The payloads of the knowledge-graph operations, as the tools take them.
type (
	EntityArg struct {
		Name         string   `json:"name"`
		EntityType   string   `json:"entityType"`
		Observations []string `json:"observations"`
	}
	RelationArg struct {
		From         string `json:"from"`
		To           string `json:"to"`
		RelationType string `json:"relationType"`
	}
	ObservationArg struct {
		EntityName string   `json:"entityName"`
		Contents   []string `json:"contents"`
	}
	DeletionArg struct {
		EntityName   string   `json:"entityName"`
		Observations []string `json:"observations"`
	}
	createEntities struct {
		Entities []EntityArg `json:"entities"`
	}
	createRelations struct {
		Relations []RelationArg `json:"relations"`
	}
	addObservations struct {
		Observations []ObservationArg `json:"observations"`
	}
	deleteEntities struct {
		EntityNames []string `json:"entityNames"`
	}
	deleteObservations struct {
		Deletions []DeletionArg `json:"deletions"`
	}
	deleteRelations struct {
		Relations []RelationArg `json:"relations"`
	}
	rollbackTo struct {
		To int64 `json:"to"`
	}
	releaseSeq struct {
		Seq int64 `json:"seq"`
	}
)

// Build replays entries (in order, all of one namespace) into the graph.
// Quarantined writes are left out unless released; rolled-back writes are
// left out (see Fates for which rollbacks and releases are in effect).
func Build(entries []Entry) *Graph {
	fates := Fates(entries)
	g := &Graph{}
	for i := range entries {
		e := &entries[i]
		f := fates[e.Seq]
		if f.UndoneBy != 0 || e.Status == Quarantined && f.ReleasedBy == 0 {
			continue
		}
		g.apply(e)
	}
	return g
}

// apply replays one entry with the semantics of server-memory.
func (g *Graph) apply(e *Entry) {
	p := provOf(e)
	switch e.Op {
	case OpCreateEntities:
		var a createEntities
		if json.Unmarshal(e.Payload, &a) != nil {
			return
		}
		for _, x := range a.Entities {
			if g.entity(x.Name) != nil {
				continue
			}
			ent := &Entity{Name: x.Name, EntityType: x.EntityType, Prov: p}
			for _, o := range x.Observations {
				ent.Observations = append(ent.Observations, Observation{Text: o, Prov: p})
			}
			g.Entities = append(g.Entities, ent)
		}
	case OpCreateRelations:
		var a createRelations
		if json.Unmarshal(e.Payload, &a) != nil {
			return
		}
		for _, r := range a.Relations {
			if !g.hasRelation(r) {
				g.Relations = append(g.Relations, &Relation{From: r.From, To: r.To, RelationType: r.RelationType, Prov: p})
			}
		}
	case OpAddObservations:
		var a addObservations
		if json.Unmarshal(e.Payload, &a) != nil {
			return
		}
		for _, o := range a.Observations {
			ent := g.entity(o.EntityName)
			if ent == nil {
				continue
			}
			for _, c := range o.Contents {
				if !slices.ContainsFunc(ent.Observations, func(x Observation) bool { return x.Text == c }) {
					ent.Observations = append(ent.Observations, Observation{Text: c, Prov: p})
				}
			}
		}
	case OpDeleteEntities:
		var a deleteEntities
		if json.Unmarshal(e.Payload, &a) != nil {
			return
		}
		g.Entities = slices.DeleteFunc(g.Entities, func(x *Entity) bool { return slices.Contains(a.EntityNames, x.Name) })
		g.Relations = slices.DeleteFunc(g.Relations, func(r *Relation) bool {
			return slices.Contains(a.EntityNames, r.From) || slices.Contains(a.EntityNames, r.To)
		})
	case OpDeleteObservations:
		var a deleteObservations
		if json.Unmarshal(e.Payload, &a) != nil {
			return
		}
		for _, d := range a.Deletions {
			if ent := g.entity(d.EntityName); ent != nil {
				ent.Observations = slices.DeleteFunc(ent.Observations, func(o Observation) bool { return slices.Contains(d.Observations, o.Text) })
			}
		}
	case OpDeleteRelations:
		var a deleteRelations
		if json.Unmarshal(e.Payload, &a) != nil {
			return
		}
		g.Relations = slices.DeleteFunc(g.Relations, func(r *Relation) bool {
			return slices.ContainsFunc(a.Relations, func(d RelationArg) bool {
				return r.From == d.From && r.To == d.To && r.RelationType == d.RelationType
			})
		})
	}
}

// Search keeps the entities whose name, type or observations contain query
// (case-insensitively), and the relations touching them.
func (g *Graph) Search(query string) *Graph {
	q := strings.ToLower(query)
	out := &Graph{}
	names := map[string]bool{}
	for _, e := range g.Entities {
		if strings.Contains(strings.ToLower(e.Name), q) || strings.Contains(strings.ToLower(e.EntityType), q) ||
			slices.ContainsFunc(e.Observations, func(o Observation) bool { return strings.Contains(strings.ToLower(o.Text), q) }) {
			out.Entities = append(out.Entities, e)
			names[e.Name] = true
		}
	}
	out.Relations = g.touching(names)
	return out
}

// Open keeps the named entities and the relations touching them.
func (g *Graph) Open(names []string) *Graph {
	out := &Graph{}
	keep := map[string]bool{}
	for _, e := range g.Entities {
		if slices.Contains(names, e.Name) {
			out.Entities = append(out.Entities, e)
			keep[e.Name] = true
		}
	}
	out.Relations = g.touching(keep)
	return out
}

func (g *Graph) touching(names map[string]bool) []*Relation {
	var out []*Relation
	for _, r := range g.Relations {
		if names[r.From] || names[r.To] {
			out = append(out, r)
		}
	}
	return out
}

// Served is what one read returns, after untrusted pieces were withheld or
// marked.
type Served struct {
	Entities  []EntityArg   `json:"entities"`
	Relations []RelationArg `json:"relations"`
	// Untrusted lists the untrusted pieces served (marked), with their
	// provenance: reading them taints the session.
	Untrusted []Prov `json:"-"`
	// UntrustedText is the text of the untrusted pieces served: the
	// content that taints the reader, for the flow rules to match.
	UntrustedText []string `json:"-"`
	// Withheld counts the untrusted pieces left out.
	Withheld int `json:"-"`
	// Entries are the ids and hashes of every entry that contributed.
	Entries map[string]string `json:"-"`
}

// Serve renders the graph for an agent: trusted pieces as they are;
// untrusted ones left out (withhold) or served with their provenance in the
// text (mark).
func (g *Graph) Serve(withhold bool) *Served {
	s := &Served{Entities: []EntityArg{}, Relations: []RelationArg{}, Entries: map[string]string{}}
	seen := map[string]bool{}
	note := func(p Prov) bool {
		if p.Trust == Trusted {
			s.Entries[p.Entry] = p.Hash
			return true
		}
		if withhold {
			s.Withheld++
			return false
		}
		s.Entries[p.Entry] = p.Hash
		if !seen[p.Entry] {
			seen[p.Entry] = true
			s.Untrusted = append(s.Untrusted, p)
		}
		return true
	}
	kept := map[string]bool{}
	for _, e := range g.Entities {
		if !note(e.Prov) {
			continue
		}
		out := EntityArg{Name: e.Name, EntityType: e.EntityType, Observations: []string{}}
		if e.Prov.Trust != Trusted {
			s.UntrustedText = append(s.UntrustedText, e.Name+" "+e.EntityType)
			out.EntityType = mark(e.Prov) + e.EntityType
		}
		for _, o := range e.Observations {
			if !note(o.Prov) {
				continue
			}
			text := o.Text
			if o.Prov.Trust != Trusted {
				s.UntrustedText = append(s.UntrustedText, o.Text)
				text = mark(o.Prov) + text
			}
			out.Observations = append(out.Observations, text)
		}
		s.Entities = append(s.Entities, out)
		kept[e.Name] = true
	}
	for _, r := range g.Relations {
		if !kept[r.From] && !kept[r.To] || !note(r.Prov) {
			continue
		}
		rt := r.RelationType
		if r.Prov.Trust != Trusted {
			s.UntrustedText = append(s.UntrustedText, r.From+" "+r.RelationType+" "+r.To)
			rt = mark(r.Prov) + rt
		}
		s.Relations = append(s.Relations, RelationArg{From: r.From, To: r.To, RelationType: rt})
	}
	return s
}

// mark is the provenance prefix of an untrusted piece, so the model reading
// it knows where it came from.
func mark(p Prov) string {
	src := strings.Join(p.Sources, ", ")
	if src == "" {
		src = "untrusted content"
	}
	return fmt.Sprintf("[UNTRUSTED memory %s, written by %s after reading %s] ", p.Entry, p.Agent, src)
}
