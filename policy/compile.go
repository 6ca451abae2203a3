package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	cedar "github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/types"
	xast "github.com/cedar-policy/cedar-go/x/exp/ast"
	"github.com/cedar-policy/cedar-go/x/exp/schema/resolved"
	"github.com/cedar-policy/cedar-go/x/exp/schema/validate"
)

// Limits on what Compile accepts.
const (
	MaxSourceBytes = 4 << 20 // size of a policy file
	MaxPolicies    = 20_000  // policies in one set
	maxIDBytes     = 128     // length of an @id
	maxProblems    = 100     // problems reported before giving up
)

// Annotations Warden reads.
const (
	// AnnotationID names a policy: @id("no-egress-when-tainted"). Without it
	// a policy's id is its position, FILE:LINE.
	AnnotationID = "id"
	// AnnotationReason is the human-readable reason given when the policy
	// decides: @reason("egress is forbidden once the session is tainted").
	AnnotationReason = "reason"
)

// Effect is a policy's effect.
type Effect string

// Effects.
const (
	Permit Effect = "permit"
	Forbid Effect = "forbid"
)

// Info describes one policy of a set.
type Info struct {
	ID       string `json:"id"`
	Effect   Effect `json:"effect"`
	Position string `json:"position"` // FILE:LINE:COLUMN
	Reason   string `json:"reason,omitempty"`
}

type compiled struct {
	Info
	policy *cedar.Policy
	ast    *xast.Policy
	msg    string // the message of a decision this policy makes
}

// Set is a compiled, validated policy set: one policy file. It is immutable
// and safe for concurrent use.
type Set struct {
	name       string
	source     []byte
	digest     string
	policies   []compiled
	byID       map[string]int32
	idx        index
	scratch    sync.Pool // *candidates
	converters sync.Pool // *argsConverter
}

// Name returns the file name the set was compiled from.
func (s *Set) Name() string { return s.name }

// Digest returns the hex SHA-256 of the set's source.
func (s *Set) Digest() string { return s.digest }

// Source returns the set's source text.
func (s *Set) Source() []byte { return append([]byte(nil), s.source...) }

// Len returns the number of policies.
func (s *Set) Len() int { return len(s.policies) }

// Policies describes the policies in file order.
func (s *Set) Policies() []Info {
	out := make([]Info, len(s.policies))
	for i, p := range s.policies {
		out[i] = p.Info
	}
	return out
}

// Problem is one thing wrong with a policy file.
type Problem struct {
	File   string `json:"file"`
	Line   int    `json:"line,omitempty"`
	Column int    `json:"column,omitempty"`
	Policy string `json:"policy,omitempty"` // the policy's id, when the problem is in one
	Msg    string `json:"message"`
}

func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Line > 0 {
		fmt.Fprintf(&b, ":%d:%d", p.Line, p.Column)
	}
	b.WriteString(": ")
	if p.Policy != "" {
		fmt.Fprintf(&b, "policy %q: ", p.Policy)
	}
	b.WriteString(p.Msg)
	return b.String()
}

// CompileError is a policy file that cannot be used, with every problem
// found in it (up to a limit).
type CompileError struct {
	Problems []Problem
}

func (e *CompileError) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

func problem(file string, pos cedar.Position, id, msg string) Problem {
	return Problem{File: file, Line: pos.Line, Column: pos.Column, Policy: id, Msg: msg}
}

// cedar-go reports parse errors as "parse error at <input>:LINE:COL MSG".
var parseErrRE = regexp.MustCompile(`parse error at <input>:(\d+):(\d+) (.*)$`)

func parseProblem(file string, err error) Problem {
	msg := strings.TrimPrefix(err.Error(), "parser error: ")
	if m := parseErrRE.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		col, _ := strconv.Atoi(m[2])
		return Problem{File: file, Line: line, Column: col, Msg: "syntax error: " + m[3]}
	}
	return Problem{File: file, Msg: "syntax error: " + msg}
}

// Compile parses the Cedar policy file src (reported as name), gives each
// policy its id, validates every policy against Warden's schema and indexes
// the set for decisions. Every problem found is reported in a *CompileError.
//
// Validation is cedar-go's strict validator, with one exception: arguments
// differ from tool to tool, so the schema cannot declare them, and a
// condition's conjuncts (the parts joined by &&) that read context.args are
// not type-checked; the entity types and actions they name still are. Such a
// conjunct that meets an argument of an unexpected type at decision time is
// an evaluation error, which denies.
func Compile(name string, src []byte) (*Set, error) {
	fail := func(p ...Problem) error { return &CompileError{Problems: p} }
	if len(src) > MaxSourceBytes {
		return nil, fail(Problem{File: name, Msg: fmt.Sprintf("file is %d bytes; at most %d", len(src), MaxSourceBytes)})
	}
	if !utf8.Valid(src) {
		return nil, fail(Problem{File: name, Line: invalidUTF8Line(src), Msg: "file is not valid UTF-8"})
	}
	list, err := cedar.NewPolicyListFromBytes(name, src)
	if err != nil {
		return nil, fail(parseProblem(name, err))
	}
	if len(list) > MaxPolicies {
		return nil, fail(Problem{File: name, Msg: fmt.Sprintf("file has %d policies; at most %d", len(list), MaxPolicies)})
	}
	sch, err := resolveSchema()
	if err != nil {
		return nil, fmt.Errorf("compiling %s: %w", name, err)
	}
	v := validate.New(sch)

	var problems []Problem
	add := func(p Problem) {
		if len(problems) < maxProblems {
			problems = append(problems, p)
		}
	}
	set := &Set{name: name, source: append([]byte(nil), src...), policies: make([]compiled, 0, len(list))}
	sum := sha256.Sum256(src)
	set.digest = hex.EncodeToString(sum[:])

	ids := make(map[string]cedar.Position, len(list))
	for _, p := range list {
		pos := p.Position()
		ann := p.Annotations()
		id, explicit := string(ann[AnnotationID]), false
		if _, ok := ann[AnnotationID]; ok {
			explicit = true
			if err := checkID(id); err != nil {
				add(problem(name, pos, "", "@id: "+err.Error()))
			}
		} else {
			id = fmt.Sprintf("%s:%d", name, pos.Line)
			if _, dup := ids[id]; dup {
				id = fmt.Sprintf("%s:%d:%d", name, pos.Line, pos.Column)
			}
		}
		if prev, dup := ids[id]; dup {
			what := "@id"
			if !explicit {
				what = "position id"
			}
			add(problem(name, pos, id, fmt.Sprintf("%s %q is already used by the policy at %d:%d", what, id, prev.Line, prev.Column)))
		}
		ids[id] = pos
		reason := string(ann[AnnotationReason])
		if len(reason) > 1024 {
			add(problem(name, pos, id, "@reason is longer than 1024 bytes"))
		}

		a := (*xast.Policy)(p.AST())
		for _, msg := range validatePolicy(v, sch, id, a) {
			add(problem(name, pos, id, msg))
		}
		eff := Permit
		if p.Effect() == cedar.Forbid {
			eff = Forbid
		}
		set.policies = append(set.policies, compiled{
			Info: Info{
				ID:       id,
				Effect:   eff,
				Position: fmt.Sprintf("%s:%d:%d", name, pos.Line, pos.Column),
				Reason:   reason,
			},
			policy: p,
			ast:    a,
			msg:    decidedMessage(eff, id, reason),
		})
	}
	if len(problems) > 0 {
		return nil, fail(problems...)
	}
	set.byID = make(map[string]int32, len(set.policies))
	for i, p := range set.policies {
		set.byID[p.ID] = int32(i)
	}
	set.idx = buildIndex(set.policies)
	return set, nil
}

func decidedMessage(eff Effect, id, reason string) string {
	switch {
	case reason != "":
		return reason
	case eff == Forbid:
		return fmt.Sprintf("forbidden by policy %q", id)
	}
	return fmt.Sprintf("permitted by policy %q", id)
}

func checkID(id string) error {
	if id == "" {
		return errors.New("empty")
	}
	if len(id) > maxIDBytes {
		return fmt.Errorf("%d bytes long; at most %d", len(id), maxIDBytes)
	}
	for _, r := range id {
		if !unicode.IsPrint(r) {
			return fmt.Errorf("contains the unprintable character %U", r)
		}
	}
	return nil
}

func invalidUTF8Line(src []byte) int {
	line := 1
	for len(src) > 0 {
		r, n := utf8.DecodeRune(src)
		if r == utf8.RuneError && n <= 1 {
			return line
		}
		if r == '\n' {
			line++
		}
		src = src[n:]
	}
	return 0
}

// validatePolicy validates one policy against the schema and returns its
// problems. Conjuncts that read context.args are taken out of the copy the
// type checker sees (arguments have no declared type); their entity literals
// are checked separately.
func validatePolicy(v *validate.Validator, sch *resolved.Schema, id string, p *xast.Policy) []string {
	checked := *p
	checked.Conditions = nil
	var argsParts []xast.IsNode
	for _, c := range p.Conditions {
		var keep []xast.IsNode
		for _, part := range conjuncts(c.Body, nil) {
			if readsArgs(part) {
				argsParts = append(argsParts, part)
				continue
			}
			keep = append(keep, part)
		}
		if len(keep) == 0 {
			continue
		}
		body := keep[0]
		for _, k := range keep[1:] {
			body = xast.NodeTypeAnd{BinaryNode: xast.BinaryNode{Left: body, Right: k}}
		}
		checked.Conditions = append(checked.Conditions, xast.ConditionType{Condition: c.Condition, Body: body})
	}
	var msgs []string
	if err := v.Policy(id, &checked); err != nil {
		prefix := "for policy `" + id + "`, "
		for _, line := range strings.Split(err.Error(), "\n") {
			if line = strings.TrimSpace(strings.TrimPrefix(line, prefix)); line != "" {
				msgs = append(msgs, line)
			}
		}
	}
	for _, part := range argsParts {
		msgs = append(msgs, checkLiterals(sch, part)...)
	}
	return msgs
}

// conjuncts flattens a && b && c into its parts.
func conjuncts(n xast.IsNode, dst []xast.IsNode) []xast.IsNode {
	if and, ok := n.(xast.NodeTypeAnd); ok {
		dst = conjuncts(and.Left, dst)
		return conjuncts(and.Right, dst)
	}
	return append(dst, n)
}

// readsArgs reports whether n reads context.args (or context["args"]).
func readsArgs(n xast.IsNode) bool {
	found := false
	xast.Inspect(xast.NewNode(n), func(n xast.IsNode) bool {
		if found {
			return false
		}
		if acc, ok := n.(xast.NodeTypeAccess); ok && acc.Value == "args" {
			if v, ok := acc.Arg.(xast.NodeTypeVariable); ok && v.Name == "context" {
				found = true
				return false
			}
		}
		return true
	})
	return found
}

// checkLiterals reports entity types and actions named in n that the schema
// does not declare.
func checkLiterals(sch *resolved.Schema, n xast.IsNode) []string {
	var msgs []string
	checkType := func(t types.EntityType) {
		if _, ok := sch.Entities[t]; ok {
			return
		}
		if _, ok := sch.Enums[t]; ok {
			return
		}
		if t == typeAction {
			return
		}
		msgs = append(msgs, fmt.Sprintf("unrecognized entity type `%s`", t))
	}
	checkValue := func(v types.Value) {
		uid, ok := v.(types.EntityUID)
		if !ok {
			return
		}
		if uid.Type == typeAction {
			if _, ok := sch.Actions[uid]; !ok {
				msgs = append(msgs, fmt.Sprintf("unrecognized action `%s`", uid))
			}
			return
		}
		checkType(uid.Type)
	}
	xast.Inspect(xast.NewNode(n), func(n xast.IsNode) bool {
		switch n := n.(type) {
		case xast.NodeValue:
			checkValue(n.Value)
			if s, ok := n.Value.(types.Set); ok {
				for e := range s.All() {
					checkValue(e)
				}
			}
		case xast.NodeTypeIs:
			checkType(n.EntityType)
		case xast.NodeTypeIsIn:
			checkType(n.EntityType)
		}
		return true
	})
	return msgs
}
