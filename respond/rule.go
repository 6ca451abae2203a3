package respond

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// A rule file is YAML: one or more documents separated by ---, each a rule
// or a playbook (a document with a "playbook:" key and no "id"). The shapes follow Sigma
// correlation rules (correlation: type, group-by, timespan, condition) and
// Elastic EQL sequences (sequence: by, maxspan, steps, until); docs/respond.md
// maps a Sigma user's rules onto them.

// RuleSpec is a rule as written.
type RuleSpec struct {
	ID          string   `yaml:"id"`
	Title       string   `yaml:"title"`
	Description string   `yaml:"description"`
	Level       string   `yaml:"level"` // informational, low, medium, high, critical (Sigma's levels)
	Tags        []string `yaml:"tags"`
	// Enabled false switches a rule off (an operator's file can switch off
	// a built-in rule by repeating its id).
	Enabled *bool `yaml:"enabled"`

	// Condition selects the events the rule is about (CEL, boolean). Alone,
	// every matching event fires the rule; with Correlation, matching
	// events feed the window.
	Condition   string           `yaml:"condition"`
	Correlation *CorrelationSpec `yaml:"correlation"`
	Sequence    *SequenceSpec    `yaml:"sequence"`

	// Suppress quiets the rule for a group once it fired, for this long
	// (de-duplication of alerts); default: the window's timespan (or
	// maxspan), 0 for single-event rules. "0s" turns it off.
	Suppress string `yaml:"suppress"`

	// Playbook names the response; Actions lists it inline. Neither: the
	// rule only raises a finding.
	Playbook string       `yaml:"playbook"`
	Actions  []ActionSpec `yaml:"actions"`
}

// CorrelationSpec is a threshold over a sliding window, grouped by key
// (Sigma correlation rule types event_count, value_count, value_sum; and
// new_value, Elastic's new_terms rule: a value not seen for the group
// within the timespan).
type CorrelationSpec struct {
	Type      string         `yaml:"type"`
	GroupBy   []string       `yaml:"group-by"` // CEL expressions; a plain field name is one
	Timespan  string         `yaml:"timespan"`
	Condition *ThresholdSpec `yaml:"condition"`
	Field     string         `yaml:"field"` // value_count, value_sum, new_value: CEL expression (may also sit in condition.field)
}

// ThresholdSpec is Sigma's condition block: one comparison, and for
// value_count / value_sum the field.
type ThresholdSpec struct {
	GT    *float64 `yaml:"gt"`
	GTE   *float64 `yaml:"gte"`
	EQ    *float64 `yaml:"eq"`
	LT    *float64 `yaml:"lt"`
	LTE   *float64 `yaml:"lte"`
	Field string   `yaml:"field"`
}

// SequenceSpec is an ordered sequence (EQL: sequence by K with maxspan=S
// [A] [B] until [C]); Sigma's temporal_ordered.
type SequenceSpec struct {
	By      []string   `yaml:"by"`
	Maxspan string     `yaml:"maxspan"`
	Steps   []StepSpec `yaml:"steps"`
	Until   string     `yaml:"until"`
}

// StepSpec is one step of a sequence.
type StepSpec struct {
	Name      string `yaml:"name"`
	Condition string `yaml:"condition"`
}

// PlaybookSpec is a named, ordered list of actions.
type PlaybookSpec struct {
	Name        string       `yaml:"playbook"`
	Description string       `yaml:"description"`
	Actions     []ActionSpec `yaml:"actions"`
}

// ActionSpec is one action: a bare name (revoke_grant) or a mapping with
// options ({type: require_approval, for: 1h}).
type ActionSpec struct {
	Type string `yaml:"type"`
	// For bounds a require_approval: how long the agent's sensitive calls
	// need a human (default 1h).
	For string `yaml:"for"`
}

// UnmarshalYAML accepts a bare action name as well as a mapping.
func (a *ActionSpec) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		a.Type = n.Value
		return nil
	}
	type plain ActionSpec
	var p plain
	if err := decodeStrict(n, &p); err != nil {
		return err
	}
	*a = ActionSpec(p)
	return nil
}

// decodeStrict decodes a node refusing unknown keys.
func decodeStrict(n *yaml.Node, v any) error {
	b, err := yaml.Marshal(n)
	if err != nil {
		return err
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	return dec.Decode(v)
}

// Limits on rule files, so that a hostile or broken file cannot exhaust the
// process that loads it.
const (
	maxFileBytes  = 1 << 20
	maxDocuments  = 1000
	maxExprBytes  = 4096
	maxSteps      = 16
	maxGroupBy    = 8
	maxActions    = 16
	maxThreshold  = 1e12
	maxSpan       = 30 * 24 * time.Hour
	maxIDLength   = 128
	maxTextLength = 4096
)

var idRe = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]*$`)

// Document is one parsed YAML document: a rule or a playbook.
type Document struct {
	Source   string // file name, document index
	Rule     *RuleSpec
	Playbook *PlaybookSpec
}

// ParseFile parses a rule file: YAML documents, each a rule or a playbook,
// checked for shape (not yet compiled). Unknown keys are errors: a typo in
// a rule must not silently disable part of it.
func ParseFile(name string, data []byte) (docs []Document, err error) {
	defer func() {
		// The YAML decoder is not ours: whatever it does with a hostile
		// input, a rule file never takes the process down.
		if r := recover(); r != nil {
			docs, err = nil, fmt.Errorf("%s: unparseable: %v", name, r)
		}
	}()
	if len(data) > maxFileBytes {
		return nil, fmt.Errorf("%s: larger than %d bytes", name, maxFileBytes)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for i := 0; ; i++ {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", name, i+1, err)
		}
		if i >= maxDocuments {
			return nil, fmt.Errorf("%s: more than %d documents", name, maxDocuments)
		}
		if n.Kind == 0 || (n.Kind == yaml.DocumentNode && len(n.Content) == 0) {
			continue // empty document
		}
		root := &n
		if root.Kind == yaml.DocumentNode {
			root = root.Content[0]
		}
		if root.Kind != yaml.MappingNode {
			return nil, fmt.Errorf("%s: document %d: want a mapping (a rule or a playbook)", name, i+1)
		}
		src := fmt.Sprintf("%s#%d", name, i+1)
		if !hasKey(root, "id") && hasKey(root, "playbook") {
			var p PlaybookSpec
			if err := decodeStrict(root, &p); err != nil {
				return nil, fmt.Errorf("%s: playbook: %w", src, err)
			}
			if err := p.check(); err != nil {
				return nil, fmt.Errorf("%s: playbook %q: %w", src, p.Name, err)
			}
			docs = append(docs, Document{Source: src, Playbook: &p})
			continue
		}
		var r RuleSpec
		if err := decodeStrict(root, &r); err != nil {
			return nil, fmt.Errorf("%s: rule: %w", src, err)
		}
		if err := r.check(); err != nil {
			return nil, fmt.Errorf("%s: rule %q: %w", src, r.ID, err)
		}
		docs = append(docs, Document{Source: src, Rule: &r})
	}
	return docs, nil
}

func hasKey(m *yaml.Node, k string) bool {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == k {
			return true
		}
	}
	return false
}

// levels maps Sigma levels to OCSF severities.
var levels = map[string]int{"informational": 1, "low": 2, "medium": 3, "high": 4, "critical": 5}

func (r *RuleSpec) check() error {
	if r.ID == "" {
		return errors.New("id: required")
	}
	if len(r.ID) > maxIDLength || !idRe.MatchString(r.ID) {
		return fmt.Errorf("id %q: lower-case letters, digits, '_', '-', '.', at most %d characters", r.ID, maxIDLength)
	}
	if len(r.Title) > maxTextLength || len(r.Description) > maxTextLength {
		return fmt.Errorf("title and description: at most %d characters", maxTextLength)
	}
	if r.Level == "" {
		r.Level = "medium"
	}
	if _, ok := levels[r.Level]; !ok {
		return fmt.Errorf("level %q: want informational, low, medium, high or critical", r.Level)
	}
	if len(r.Tags) > 32 {
		return errors.New("tags: at most 32")
	}
	switch {
	case r.Sequence != nil && r.Condition != "":
		return errors.New("a sequence rule puts its conditions in its steps, not in condition")
	case r.Sequence != nil && r.Correlation != nil:
		return errors.New("give either a correlation or a sequence, not both")
	case r.Sequence == nil && r.Condition == "":
		return errors.New("condition: required (or a sequence)")
	}
	if err := checkExpr("condition", r.Condition); err != nil {
		return err
	}
	if c := r.Correlation; c != nil {
		if err := c.check(); err != nil {
			return fmt.Errorf("correlation: %w", err)
		}
	}
	if s := r.Sequence; s != nil {
		if err := s.check(); err != nil {
			return fmt.Errorf("sequence: %w", err)
		}
	}
	if r.Suppress != "" {
		if _, err := ParseSpan(r.Suppress); err != nil {
			return fmt.Errorf("suppress: %w", err)
		}
	}
	if r.Playbook != "" && len(r.Actions) > 0 {
		return errors.New("give either a playbook or actions, not both")
	}
	return checkActions(r.Actions)
}

func (c *CorrelationSpec) check() error {
	switch c.Type {
	case CorrEventCount, CorrValueCount, CorrValueSum, CorrNewValue:
	case "temporal", "temporal_ordered":
		return fmt.Errorf("type %s: write it as a sequence (sequence: by, maxspan, steps); see docs/respond.md", c.Type)
	case "value_avg", "value_percentile", "value_median":
		return fmt.Errorf("type %s is not supported: use event_count, value_count, value_sum or new_value", c.Type)
	default:
		return fmt.Errorf("type %q: want event_count, value_count, value_sum or new_value", c.Type)
	}
	if len(c.GroupBy) > maxGroupBy {
		return fmt.Errorf("group-by: at most %d keys", maxGroupBy)
	}
	for _, g := range c.GroupBy {
		if err := checkExpr("group-by", g); err != nil {
			return err
		}
	}
	if c.Timespan == "" {
		return errors.New("timespan: required")
	}
	if _, err := ParseSpan(c.Timespan); err != nil {
		return fmt.Errorf("timespan: %w", err)
	}
	field := c.Field
	if c.Condition != nil && c.Condition.Field != "" {
		if field != "" && field != c.Condition.Field {
			return errors.New("field is given twice, differently")
		}
		field = c.Condition.Field
	}
	c.Field = field
	switch c.Type {
	case CorrValueCount, CorrValueSum, CorrNewValue:
		if field == "" {
			return fmt.Errorf("%s needs a field (the value counted, summed or remembered)", c.Type)
		}
		if err := checkExpr("field", field); err != nil {
			return err
		}
	default:
		if field != "" {
			return fmt.Errorf("%s takes no field", c.Type)
		}
	}
	if c.Type == CorrNewValue {
		if c.Condition != nil && c.Condition.op() != "" {
			return errors.New("new_value takes no threshold: it fires on a value the group has not shown within the timespan")
		}
		return nil
	}
	if c.Condition == nil {
		return errors.New("condition: required (e.g. {gte: 5})")
	}
	return c.Condition.check()
}

func (t *ThresholdSpec) op() string {
	n := 0
	op := ""
	for name, v := range map[string]*float64{"gt": t.GT, "gte": t.GTE, "eq": t.EQ, "lt": t.LT, "lte": t.LTE} {
		if v != nil {
			n++
			op = name
		}
	}
	if n > 1 {
		return "several"
	}
	return op
}

func (t *ThresholdSpec) check() error {
	switch t.op() {
	case "":
		return errors.New("condition: give one of gt, gte, eq")
	case "several":
		return errors.New("condition: give exactly one comparison")
	case "lt", "lte":
		return errors.New("condition: lt and lte (absence of activity) are not supported: a window fires on the event that crosses a threshold, so use gt, gte or eq")
	}
	v := t.threshold()
	if v <= 0 || v > maxThreshold || v != v {
		return fmt.Errorf("condition: threshold must be positive and at most %g", float64(maxThreshold))
	}
	return nil
}

// threshold returns the value the window must reach: gt n is reached at
// anything above n; eq behaves as gte (a growing window crosses it once).
func (t *ThresholdSpec) threshold() float64 {
	switch {
	case t.GT != nil:
		return *t.GT
	case t.GTE != nil:
		return *t.GTE
	case t.EQ != nil:
		return *t.EQ
	}
	return 0
}

func (t *ThresholdSpec) strict() bool { return t.GT != nil }

func (s *SequenceSpec) check() error {
	if len(s.Steps) < 2 {
		return errors.New("steps: at least two (a single step is a plain condition)")
	}
	if len(s.Steps) > maxSteps {
		return fmt.Errorf("steps: at most %d", maxSteps)
	}
	if len(s.By) > maxGroupBy {
		return fmt.Errorf("by: at most %d keys", maxGroupBy)
	}
	for _, b := range s.By {
		if err := checkExpr("by", b); err != nil {
			return err
		}
	}
	if s.Maxspan == "" {
		return errors.New("maxspan: required")
	}
	if _, err := ParseSpan(s.Maxspan); err != nil {
		return fmt.Errorf("maxspan: %w", err)
	}
	for i, st := range s.Steps {
		if st.Condition == "" {
			return fmt.Errorf("step %d: condition required", i+1)
		}
		if err := checkExpr(fmt.Sprintf("step %d", i+1), st.Condition); err != nil {
			return err
		}
	}
	return checkExpr("until", s.Until)
}

func (p *PlaybookSpec) check() error {
	if p.Name == "" || len(p.Name) > maxIDLength || !idRe.MatchString(p.Name) {
		return fmt.Errorf("playbook name %q: lower-case letters, digits, '_', '-', '.'", p.Name)
	}
	if len(p.Actions) == 0 {
		return errors.New("actions: at least one")
	}
	return checkActions(p.Actions)
}

func checkActions(as []ActionSpec) error {
	if len(as) > maxActions {
		return fmt.Errorf("actions: at most %d", maxActions)
	}
	seen := map[string]bool{}
	for _, a := range as {
		if !knownAction(ActionType(a.Type)) {
			return fmt.Errorf("action %q: want one of %s", a.Type, strings.Join(actionNames(), ", "))
		}
		if seen[a.Type] {
			return fmt.Errorf("action %s is listed twice", a.Type)
		}
		seen[a.Type] = true
		if a.For != "" {
			if ActionType(a.Type) != ActRequireApproval {
				return fmt.Errorf("action %s takes no 'for'", a.Type)
			}
			if _, err := ParseSpan(a.For); err != nil {
				return fmt.Errorf("action %s: for: %w", a.Type, err)
			}
		}
	}
	return nil
}

func checkExpr(what, s string) error {
	if len(s) > maxExprBytes {
		return fmt.Errorf("%s: expression longer than %d bytes", what, maxExprBytes)
	}
	return nil
}

// ParseSpan parses a duration as Sigma writes them (30s, 5m, 1h, 7d) or as
// Go does (1h30m). It must be positive and at most 30 days.
func ParseSpan(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	var d time.Duration
	var err error
	if n, ok := strings.CutSuffix(s, "d"); ok && n != "" {
		var days int
		days, err = strconv.Atoi(n)
		if err == nil && (days < 0 || days > 30) {
			return 0, fmt.Errorf("%q: want between 0 and 30d", s)
		}
		d = time.Duration(days) * 24 * time.Hour
	} else {
		d, err = time.ParseDuration(s)
	}
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration (30s, 5m, 1h, 7d)", s)
	}
	if d < 0 || d > maxSpan {
		return 0, fmt.Errorf("%q: want between 0 and 30d", s)
	}
	return d, nil
}
