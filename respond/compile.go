package respond

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/operators"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/ext"

	"github.com/warden-run/warden/events"
)

// Correlation types (Sigma's names, plus new_value).
const (
	CorrEventCount = "event_count"
	CorrValueCount = "value_count"
	CorrValueSum   = "value_sum"
	CorrNewValue   = "new_value"
)

// Kind is the shape of a compiled rule.
type Kind string

// Rule kinds.
const (
	KindSingle     Kind = "single"
	KindEventCount Kind = CorrEventCount
	KindValueCount Kind = CorrValueCount
	KindValueSum   Kind = CorrValueSum
	KindNewValue   Kind = CorrNewValue
	KindSequence   Kind = "sequence"
)

// costLimit bounds the work one expression may do on one event; beyond it
// the evaluation stops with a runtime error (counted against the rule, the
// engine carries on).
const costLimit = 100_000

// Rule is a compiled rule.
type Rule struct {
	ID          string
	Title       string
	Description string
	Level       string
	Severity    events.Severity
	Tags        []string
	Kind        Kind
	Source      string
	// Playbook is the name of the playbook the actions came from, if any.
	Playbook string
	Actions  []Action

	idx       int    // position in the rule set
	hash      string // of the spec: persisted windows of a changed rule are dropped
	cond      *expr
	groupBy   []*expr
	field     *expr
	span      time.Duration
	threshold float64
	strict    bool
	steps     []*expr
	stepNames []string
	until     *expr
	suppress  time.Duration
	classes   []int64 // union of the classes any expression can match; nil: any
}

// Span is the rule's window (timespan or maxspan); 0 for single-event rules.
func (r *Rule) Span() time.Duration { return r.span }

// expr is one compiled CEL expression.
type expr struct {
	src     string
	prg     cel.Program
	ident   string  // a bare variable: read without evaluating
	classes []int64 // classes the expression can be true for; nil: any
}

// Playbook is a compiled playbook.
type Playbook struct {
	Name        string
	Description string
	Actions     []Action
}

// RuleSet is a compiled, immutable set of rules and playbooks.
type RuleSet struct {
	Rules     []*Rule
	Playbooks map[string]*Playbook
	byClass   map[int64][]*Rule
	anyClass  []*Rule
}

// newEnv is the CEL environment every rule expression is compiled in.
func newEnv() (*cel.Env, error) {
	opts := []cel.EnvOption{cel.OptionalTypes(), ext.Strings()}
	for _, f := range fieldDecls {
		opts = append(opts, cel.Variable(f.name, f.typ))
	}
	return cel.NewEnv(opts...)
}

// Compile builds a rule set from layers of parsed documents: the built-in
// pack first, then operators' files. Within a layer an id (or playbook
// name) may appear once; a later layer replaces an earlier one's rule or
// playbook of the same id, and enabled: false removes it. Every error is
// reported, not only the first.
func Compile(layers ...[]Document) (*RuleSet, error) {
	env, err := newEnv()
	if err != nil {
		return nil, fmt.Errorf("building the rule environment: %w", err)
	}
	specs := map[string]*RuleSpec{}
	srcs := map[string]string{}
	pbs := map[string]*PlaybookSpec{}
	var order []string
	var errs []error
	for _, layer := range layers {
		seenR, seenP := map[string]string{}, map[string]string{}
		for _, d := range layer {
			switch {
			case d.Rule != nil:
				if prev, dup := seenR[d.Rule.ID]; dup {
					errs = append(errs, fmt.Errorf("%s: rule %q is already defined at %s", d.Source, d.Rule.ID, prev))
					continue
				}
				seenR[d.Rule.ID] = d.Source
				if _, had := specs[d.Rule.ID]; !had {
					order = append(order, d.Rule.ID)
				}
				specs[d.Rule.ID], srcs[d.Rule.ID] = d.Rule, d.Source
			case d.Playbook != nil:
				if prev, dup := seenP[d.Playbook.Name]; dup {
					errs = append(errs, fmt.Errorf("%s: playbook %q is already defined at %s", d.Source, d.Playbook.Name, prev))
					continue
				}
				seenP[d.Playbook.Name] = d.Source
				pbs[d.Playbook.Name] = d.Playbook
			}
		}
	}
	rs := &RuleSet{Playbooks: map[string]*Playbook{}, byClass: map[int64][]*Rule{}}
	for name, p := range pbs {
		acts, err := compileActions(p.Actions)
		if err != nil {
			errs = append(errs, fmt.Errorf("playbook %q: %w", name, err))
			continue
		}
		rs.Playbooks[name] = &Playbook{Name: name, Description: p.Description, Actions: acts}
	}
	for _, id := range order {
		spec := specs[id]
		if spec.Enabled != nil && !*spec.Enabled {
			continue
		}
		r, err := compileRule(env, spec, rs.Playbooks)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: rule %q: %w", srcs[id], id, err))
			continue
		}
		r.Source = srcs[id]
		r.idx = len(rs.Rules)
		rs.Rules = append(rs.Rules, r)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	// Per class, the rules an event of that class may concern, in rule
	// order; classes no rule names get the rules that name none.
	for _, r := range rs.Rules {
		if r.classes == nil {
			rs.anyClass = append(rs.anyClass, r)
			continue
		}
		for _, c := range r.classes {
			rs.byClass[c] = nil
		}
	}
	for c := range rs.byClass {
		var list []*Rule
		for _, r := range rs.Rules {
			if r.classes == nil || slices.Contains(r.classes, c) {
				list = append(list, r)
			}
		}
		rs.byClass[c] = list
	}
	return rs, nil
}

// candidates returns the rules an event of this class may concern, in
// rule order.
func (rs *RuleSet) candidates(class int64) []*Rule {
	if l, ok := rs.byClass[class]; ok {
		return l
	}
	return rs.anyClass
}

// Rule returns the rule with the id.
func (rs *RuleSet) Rule(id string) *Rule {
	for _, r := range rs.Rules {
		if r.ID == id {
			return r
		}
	}
	return nil
}

func compileRule(env *cel.Env, s *RuleSpec, pbs map[string]*Playbook) (*Rule, error) {
	r := &Rule{ID: s.ID, Title: s.Title, Description: s.Description, Level: s.Level, Severity: events.Severity(levels[s.Level]),
		Tags: s.Tags, Kind: KindSingle}
	if r.Title == "" {
		r.Title = s.ID
	}
	b, _ := json.Marshal(s)
	h := sha256.Sum256(b)
	r.hash = hex.EncodeToString(h[:8])
	var err error
	if s.Condition != "" {
		if r.cond, err = compileExpr(env, "condition", s.Condition, cel.BoolType); err != nil {
			return nil, err
		}
	}
	switch {
	case s.Correlation != nil:
		c := s.Correlation
		r.Kind = Kind(c.Type)
		if r.span, err = positiveSpan("timespan", c.Timespan); err != nil {
			return nil, err
		}
		if r.groupBy, err = compileKeys(env, "group-by", c.GroupBy); err != nil {
			return nil, err
		}
		if c.Field != "" {
			if r.field, err = compileExpr(env, "field", c.Field, nil); err != nil {
				return nil, err
			}
		}
		if c.Condition != nil && c.Type != CorrNewValue {
			r.threshold, r.strict = c.Condition.threshold(), c.Condition.strict()
		}
		if c.Type == CorrValueCount && r.threshold > maxDistinct {
			return nil, fmt.Errorf("value_count: threshold above %d distinct values is not supported", maxDistinct)
		}
	case s.Sequence != nil:
		q := s.Sequence
		r.Kind = KindSequence
		if r.span, err = positiveSpan("maxspan", q.Maxspan); err != nil {
			return nil, err
		}
		if r.groupBy, err = compileKeys(env, "by", q.By); err != nil {
			return nil, err
		}
		for i, st := range q.Steps {
			e, err := compileExpr(env, fmt.Sprintf("step %d", i+1), st.Condition, cel.BoolType)
			if err != nil {
				return nil, err
			}
			r.steps = append(r.steps, e)
			name := st.Name
			if name == "" {
				name = strconv.Itoa(i + 1)
			}
			r.stepNames = append(r.stepNames, name)
		}
		if q.Until != "" {
			if r.until, err = compileExpr(env, "until", q.Until, cel.BoolType); err != nil {
				return nil, err
			}
		}
	}
	r.suppress = r.span
	if r.Kind == KindNewValue {
		r.suppress = 0 // each new value is news
	}
	if s.Suppress != "" {
		if r.suppress, err = ParseSpan(s.Suppress); err != nil {
			return nil, fmt.Errorf("suppress: %w", err)
		}
	}
	switch {
	case s.Playbook != "":
		p, ok := pbs[s.Playbook]
		if !ok {
			return nil, fmt.Errorf("playbook %q is not defined", s.Playbook)
		}
		r.Playbook, r.Actions = p.Name, p.Actions
	default:
		if r.Actions, err = compileActions(s.Actions); err != nil {
			return nil, err
		}
	}
	r.classes = ruleClasses(r)
	return r, nil
}

func positiveSpan(what, s string) (time.Duration, error) {
	d, err := ParseSpan(s)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", what, err)
	}
	if d <= 0 {
		return 0, fmt.Errorf("%s: must be positive", what)
	}
	return d, nil
}

func compileKeys(env *cel.Env, what string, srcs []string) ([]*expr, error) {
	var out []*expr
	for _, s := range srcs {
		e, err := compileExpr(env, what, s, nil)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

func compileExpr(env *cel.Env, what, src string, want *cel.Type) (*expr, error) {
	a, iss := env.Compile(src)
	if iss != nil && iss.Err() != nil {
		return nil, fmt.Errorf("%s: %w", what, iss.Err())
	}
	if want != nil && !a.OutputType().IsExactType(want) {
		return nil, fmt.Errorf("%s: %q is of type %s, want %s", what, src, a.OutputType(), want)
	}
	popts := []cel.ProgramOption{cel.EvalOptions(cel.OptOptimize)}
	if len(ast.MatchDescendants(ast.NavigateAST(a.NativeRep()), ast.KindMatcher(ast.ComprehensionKind))) > 0 {
		// Only a comprehension (all, exists, map, filter) can make an
		// expression's work grow beyond its size times its inputs: bound
		// those; cost tracking would slow every other rule for nothing.
		popts = append(popts, cel.CostLimit(costLimit))
	}
	prg, err := env.Program(a, popts...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	e := &expr{src: src, prg: prg}
	root := a.NativeRep().Expr()
	if root.Kind() == ast.IdentKind {
		if fieldIndex(root.AsIdent()) >= 0 {
			e.ident = root.AsIdent()
		}
	}
	if want != nil {
		e.classes = classesOf(root)
	}
	return e, nil
}

// classesOf finds what the expression says about class_uid in its top-level
// conjunction (class_uid == N, class_uid in [N, M]), so that the engine can
// skip the expression for events of other classes without evaluating it.
// nil means it says nothing (any class).
func classesOf(e ast.Expr) []int64 {
	if e.Kind() != ast.CallKind {
		return nil
	}
	c := e.AsCall()
	args := c.Args()
	switch c.FunctionName() {
	case operators.LogicalAnd:
		if len(args) != 2 {
			return nil
		}
		a, b := classesOf(args[0]), classesOf(args[1])
		switch {
		case a == nil:
			return b
		case b == nil:
			return a
		}
		var both []int64
		for _, x := range a {
			if slices.Contains(b, x) {
				both = append(both, x)
			}
		}
		if both == nil {
			both = []int64{} // contradictory: no class
		}
		return both
	case operators.LogicalOr:
		if len(args) != 2 {
			return nil
		}
		a, b := classesOf(args[0]), classesOf(args[1])
		if a == nil || b == nil {
			return nil
		}
		return append(slices.Clone(a), b...)
	case operators.Equals:
		if len(args) != 2 {
			return nil
		}
		if n, ok := classLiteral(args[0], args[1]); ok {
			return []int64{n}
		}
		if n, ok := classLiteral(args[1], args[0]); ok {
			return []int64{n}
		}
	case operators.In:
		if len(args) != 2 || !isIdent(args[0], "class_uid") || args[1].Kind() != ast.ListKind {
			return nil
		}
		var out []int64
		for _, el := range args[1].AsList().Elements() {
			if el.Kind() != ast.LiteralKind {
				return nil
			}
			n, ok := el.AsLiteral().(types.Int)
			if !ok {
				return nil
			}
			out = append(out, int64(n))
		}
		if out == nil {
			out = []int64{}
		}
		return out
	}
	return nil
}

func isIdent(e ast.Expr, name string) bool { return e.Kind() == ast.IdentKind && e.AsIdent() == name }

func classLiteral(id, lit ast.Expr) (int64, bool) {
	if !isIdent(id, "class_uid") || lit.Kind() != ast.LiteralKind {
		return 0, false
	}
	n, ok := lit.AsLiteral().(types.Int)
	return int64(n), ok
}

// ruleClasses is the union of the classes the rule's selecting expressions
// can match; nil when any of them can match any class.
func ruleClasses(r *Rule) []int64 {
	sel := r.steps
	if r.cond != nil {
		sel = append([]*expr{r.cond}, sel...)
	}
	if r.until != nil {
		sel = append(sel, r.until)
	}
	var out []int64
	for _, e := range sel {
		if e.classes == nil {
			return nil
		}
		for _, c := range e.classes {
			if !slices.Contains(out, c) {
				out = append(out, c)
			}
		}
	}
	if out == nil {
		out = []int64{}
	}
	return out
}

// matches evaluates a boolean expression on the event. A runtime error is
// returned (the caller counts it against the rule) and never propagates.
func (e *expr) matches(a *activation) (bool, error) {
	if e.classes != nil && !slices.Contains(e.classes, int64(a.e.ClassUID)) {
		return false, nil
	}
	v, _, err := e.prg.Eval(a)
	if err != nil {
		return false, err
	}
	b, ok := v.(types.Bool)
	if !ok {
		return false, fmt.Errorf("%q evaluated to %s, not a bool", e.src, v.Type())
	}
	return bool(b), nil
}

// value evaluates an expression to a CEL value.
func (e *expr) value(a *activation) (ref.Val, error) {
	if e.ident != "" {
		v, _ := a.ResolveName(e.ident)
		return v.(ref.Val), nil
	}
	v, _, err := e.prg.Eval(a)
	if err != nil {
		return nil, err
	}
	return v, nil
}

// str evaluates an expression to a string (group keys, counted values).
func (e *expr) str(a *activation) (string, error) {
	v, err := e.value(a)
	if err != nil {
		return "", err
	}
	switch x := v.(type) {
	case types.String:
		return string(x), nil
	case types.Int:
		return strconv.FormatInt(int64(x), 10), nil
	case types.Uint:
		return strconv.FormatUint(uint64(x), 10), nil
	case types.Bool:
		return strconv.FormatBool(bool(x)), nil
	case types.Double:
		return strconv.FormatFloat(float64(x), 'g', -1, 64), nil
	}
	return fmt.Sprint(v.Value()), nil
}

// num evaluates an expression to a number (value_sum); a string must hold
// a number (attrs are strings).
func (e *expr) num(a *activation) (float64, error) {
	v, err := e.value(a)
	if err != nil {
		return 0, err
	}
	var f float64
	switch x := v.(type) {
	case types.Int:
		f = float64(x)
	case types.Uint:
		f = float64(x)
	case types.Double:
		f = float64(x)
	case types.String:
		f, err = strconv.ParseFloat(strings.TrimSpace(string(x)), 64)
		if err != nil {
			return 0, fmt.Errorf("%q: %q is not a number", e.src, string(x))
		}
	default:
		return 0, fmt.Errorf("%q evaluated to %s, not a number", e.src, v.Type())
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("%q is not a finite number", e.src)
	}
	return f, nil
}
