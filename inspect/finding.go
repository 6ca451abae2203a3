package inspect

import (
	"fmt"
	"sort"
	"strconv"

	"github.com/warden-run/warden/events"
	"github.com/warden-run/warden/tier"
)

// Kind is the family of a finding.
type Kind string

// Finding kinds.
const (
	KindInjection Kind = "prompt_injection" // instructions smuggled into content the agent reads
	KindSecret    Kind = "secret"           // a credential in what flows out
	KindPII       Kind = "pii"              // personal data in what flows out
	KindExfil     Kind = "exfiltration"     // a channel that carries data out (URL, markup, script)
	KindVolume    Kind = "data_volume"      // the task's outbound data budget is exhausted
	KindFlow      Kind = "tainted_flow"     // untrusted content reaching a sensitive sink
	KindMalformed Kind = "malformed_input"  // input too large, too deep or not decodable
)

// Finding is one thing a control found.
type Finding struct {
	Kind Kind `json:"kind"`
	// Rule is the stable id of the rule, detector or check that found it.
	Rule   string  `json:"rule"`
	Reason string  `json:"reason"`
	Score  float64 `json:"score"` // confidence in [0,1]
	// Path is the JSON path of the argument ("$.body.to"), empty for plain text.
	Path       string `json:"path,omitempty"`
	Start, End int    `json:"-"` // byte offsets of the match in the scanned string
	// Excerpt shows where it was found; secrets and PII are masked.
	Excerpt string `json:"excerpt,omitempty"`
	// Heuristic marks findings from rules that can be evaded or mistaken
	// (the Advanced taint rule, the classifier); sound rules leave it false.
	Heuristic bool `json:"heuristic,omitempty"`
	// Source names the untrusted call a tainted value came from.
	Source string `json:"source,omitempty"`
	// Action is what the tier (and configuration) says to do about it.
	Action tier.FindingAction `json:"action"`
}

// Severity maps a finding to an OCSF severity.
func (f Finding) Severity() events.Severity {
	switch {
	case f.Kind == KindFlow || f.Kind == KindSecret && f.Score >= 0.9:
		return events.SeverityHigh
	case f.Score >= 0.9:
		return events.SeverityHigh
	case f.Score >= 0.6:
		return events.SeverityMedium
	default:
		return events.SeverityLow
	}
}

// EventContext is who and what a finding is about, for its event.
type EventContext struct {
	Agent, Task, Grant, Tool, Session, Request string
}

// Event renders the finding as an OCSF Detection Finding (2004).
func (f Finding) Event(c EventContext) events.Event {
	e := events.New(events.ClassDetectionFinding, events.ActivityCreate, "inspect")
	e.SeverityID = f.Severity()
	e.Message = f.Reason
	e.StatusCode = f.Rule
	e.Metadata.CorrelationUID = c.Task
	e.Metadata.Profiles = []string{"security_control"}
	e.FindingInfo = &events.FindingInfo{UID: e.Metadata.UID, Title: f.Reason, Types: []string{string(f.Kind)}}
	switch f.Action {
	case tier.ActionBlock:
		e.ActionID, e.DispositionID = events.ActionDenied, events.DispositionBlocked
	case tier.ActionRedact:
		e.ActionID, e.DispositionID = events.ActionAllowed, events.DispositionQuarantined
	default:
		e.ActionID, e.DispositionID = events.ActionAllowed, events.DispositionLogged
	}
	e.Policy = &events.Policy{UID: f.Rule, Name: string(f.Kind)}
	if c.Agent != "" {
		e.Actor = &events.Actor{User: &events.User{UID: c.Agent, Type: "agent"}}
		if c.Session != "" {
			e.Actor.Session = &events.Session{UID: c.Session}
		}
	}
	if c.Tool != "" {
		e.Resources = []events.Resource{{UID: c.Tool, Type: "tool"}}
	}
	attrs := map[string]string{
		"kind":   string(f.Kind),
		"score":  strconv.FormatFloat(f.Score, 'f', 3, 64),
		"action": string(f.Action),
	}
	if f.Path != "" {
		attrs["path"] = f.Path
	}
	if f.Excerpt != "" {
		attrs["excerpt"] = f.Excerpt
	}
	if f.Heuristic {
		attrs["heuristic"] = "true"
	}
	if f.Source != "" {
		attrs["source_call"] = f.Source
	}
	e.Warden = &events.Warden{Agent: c.Agent, Task: c.Task, Grant: c.Grant, Tool: c.Tool, Reason: f.Rule, Attrs: attrs}
	return e
}

// Facts flattens findings into simple values for a Cedar context:
//
//	inspect_findings      number of findings
//	inspect_max_score     highest score
//	inspect_kinds         sorted distinct kinds
//	inspect_rules         sorted distinct rule ids
//	inspect_<kind>        true when a finding of that kind is present
//	inspect_<kind>_score  highest score of that kind
//	inspect_block         true when any finding's action is block
func Facts(fs []Finding) map[string]any {
	m := map[string]any{"inspect_findings": int64(len(fs)), "inspect_max_score": 0.0, "inspect_block": false}
	kinds, rules := map[string]bool{}, map[string]bool{}
	max := 0.0
	for _, f := range fs {
		kinds[string(f.Kind)] = true
		rules[f.Rule] = true
		if f.Score > max {
			max = f.Score
		}
		k := "inspect_" + string(f.Kind)
		m[k] = true
		if s, _ := m[k+"_score"].(float64); f.Score > s {
			m[k+"_score"] = f.Score
		}
		if f.Action == tier.ActionBlock {
			m["inspect_block"] = true
		}
	}
	m["inspect_max_score"] = max
	m["inspect_kinds"] = sortedKeys(kinds)
	m["inspect_rules"] = sortedKeys(rules)
	return m
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// actionRank orders actions from least to most intrusive.
func actionRank(a tier.FindingAction) int {
	switch a {
	case tier.ActionLog:
		return 1
	case tier.ActionRedact:
		return 2
	case tier.ActionBlock:
		return 3
	}
	return 0
}

// stricter returns the more intrusive of two actions.
func stricter(a, b tier.FindingAction) tier.FindingAction {
	if actionRank(b) > actionRank(a) {
		return b
	}
	return a
}

// mask shows the first and last characters of a secret only.
func mask(s string) string {
	r := []rune(s)
	switch {
	case len(r) <= 4:
		return "****"
	case len(r) <= 12:
		return string(r[:1]) + "****" + string(r[len(r)-1:])
	}
	return string(r[:3]) + "****" + string(r[len(r)-2:]) + fmt.Sprintf(" (%d chars)", len(r))
}
