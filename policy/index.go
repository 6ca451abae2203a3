package policy

import (
	"iter"
	"slices"

	cedar "github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/types"
	xast "github.com/cedar-policy/cedar-go/x/exp/ast"
)

// The index partitions a policy set by scope so that a decision evaluates
// only the policies whose scope can match the request.
//
// A policy's scope constrains the principal, the action and the resource.
// Each constraint either names entities (== E, in E, is T in E, in [A, B])
// or does not (no constraint, or `is T` alone). A request can only match
// `== E` or `in E` if E is the request's entity or one of its ancestors, and
// `in [A, B]` (actions) if its action is A or B.
//
// Every policy is filed under exactly one dimension: among the dimensions in
// which it names entities, the one whose buckets are smallest (resource
// first on ties, then principal, then action); it is filed there under each
// entity it names. A policy that names no entity in any dimension goes to
// the global list. For a request, the candidates are the global list plus
// the buckets of the request's principal and its ancestors, its action, and
// its resource and its ancestors. A policy left out cannot match: the
// entities it names in its filing dimension are not among the request's.
// Cedar still evaluates each candidate's whole scope, so filing a policy
// under a bucket it does not match costs time, never correctness.
type index struct {
	global  []int32
	buckets [3]map[types.EntityUID][]int32
}

const (
	dimResource = iota
	dimPrincipal
	dimAction
)

// scopeKeys returns the entities a scope constraint names, or nil when it
// names none.
func scopeKeys(scope any) []types.EntityUID {
	switch s := scope.(type) {
	case xast.ScopeTypeEq:
		return []types.EntityUID{s.Entity}
	case xast.ScopeTypeIn:
		return []types.EntityUID{s.Entity}
	case xast.ScopeTypeIsIn:
		return []types.EntityUID{s.Entity}
	case xast.ScopeTypeInSet:
		if len(s.Entities) == 0 {
			return nil
		}
		return s.Entities
	}
	return nil
}

func policyKeys(p *xast.Policy) [3][]types.EntityUID {
	var k [3][]types.EntityUID
	k[dimResource] = scopeKeys(p.Resource)
	k[dimPrincipal] = scopeKeys(p.Principal)
	k[dimAction] = scopeKeys(p.Action)
	return k
}

func buildIndex(policies []compiled) index {
	var counts [3]map[types.EntityUID]int
	keys := make([][3][]types.EntityUID, len(policies))
	for d := range counts {
		counts[d] = map[types.EntityUID]int{}
	}
	for i, p := range policies {
		keys[i] = policyKeys(p.ast)
		for d, ks := range keys[i] {
			for _, k := range ks {
				counts[d][k]++
			}
		}
	}
	var ix index
	for d := range ix.buckets {
		ix.buckets[d] = map[types.EntityUID][]int32{}
	}
	for i := range policies {
		best, bestCost := -1, 0
		for d, ks := range keys[i] {
			if ks == nil {
				continue
			}
			cost := 0
			for _, k := range ks {
				cost += counts[d][k]
			}
			if best < 0 || cost < bestCost {
				best, bestCost = d, cost
			}
		}
		if best < 0 {
			ix.global = append(ix.global, int32(i))
			continue
		}
		for _, k := range keys[i][best] {
			b := ix.buckets[best][k]
			if len(b) == 0 || b[len(b)-1] != int32(i) { // a set may name an entity twice
				ix.buckets[best][k] = append(b, int32(i))
			}
		}
	}
	return ix
}

// candidates is the set of policies one decision evaluates. It implements
// cedar.PolicyIterator; it is pooled per Set.
type candidates struct {
	set *Set
	ids []int32
	all bool
}

func (c *candidates) All() iter.Seq2[cedar.PolicyID, *cedar.Policy] {
	return func(yield func(cedar.PolicyID, *cedar.Policy) bool) {
		if c.all {
			for i := range c.set.policies {
				p := &c.set.policies[i]
				if !yield(cedar.PolicyID(p.ID), p.policy) {
					return
				}
			}
			return
		}
		for _, i := range c.ids {
			p := &c.set.policies[i]
			if !yield(cedar.PolicyID(p.ID), p.policy) {
				return
			}
		}
	}
}

func (c *candidates) len() int {
	if c.all {
		return len(c.set.policies)
	}
	return len(c.ids)
}

// candidatesFor returns the policies that can apply to a request whose
// principal (with its ancestors), action and resource (with its ancestors)
// are given, in file order. With all set, it returns every policy: the
// unpartitioned evaluation the index must agree with. Release the result
// with release.
func (s *Set) candidatesFor(principal []types.EntityUID, action types.EntityUID, resource []types.EntityUID, all bool) *candidates {
	c, _ := s.scratch.Get().(*candidates)
	if c == nil {
		c = &candidates{}
	}
	c.set, c.all, c.ids = s, all, c.ids[:0]
	if all {
		return c
	}
	ix := &s.idx
	c.ids = append(c.ids, ix.global...)
	for _, k := range resource {
		c.ids = append(c.ids, ix.buckets[dimResource][k]...)
	}
	for _, k := range principal {
		c.ids = append(c.ids, ix.buckets[dimPrincipal][k]...)
	}
	c.ids = append(c.ids, ix.buckets[dimAction][action]...)
	slices.Sort(c.ids)
	c.ids = slices.Compact(c.ids)
	return c
}

func (s *Set) release(c *candidates) {
	if cap(c.ids) > 4096 {
		return
	}
	c.set = nil
	s.scratch.Put(c)
}
