package inspect

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/warden-run/warden/config"
	"github.com/warden-run/warden/events"
	"github.com/warden-run/warden/tier"
)

// HighConfidence is the injection score from which the Advanced tier's
// action applies; findings between the detector's threshold and this score
// are logged (and the session is tainted all the same). On the held-out
// ordinary text of docs/inspect.md 0.1% of pieces score this high.
const HighConfidence = 0.9

// Inspector is what the gateway calls: CheckOutbound on a tool call's
// arguments (pipeline stage 4) and CheckInbound on its result (stage 6).
// Build one per deployment (or per tier in use) with New; it is safe for
// concurrent use.
type Inspector struct {
	det     *Detector
	sc      *Scanner
	preset  tier.Preset
	actions map[Kind]tier.FindingAction
	allow   []string
	budget  int64
	maxScan int
}

// New builds an Inspector for a tier preset and the deployment's inspect
// settings. It refuses overrides looser than the tier.
func New(p tier.Preset, c config.Inspect) (*Inspector, error) {
	det, err := NewDetector(DetectorOptions{MaxBytes: c.MaxScanBytes})
	if err != nil {
		return nil, err
	}
	if c.InjectionThreshold > 0 {
		if c.InjectionThreshold > det.Threshold() {
			return nil, fmt.Errorf("inspect.injection_threshold %v is above the model's %v: that would loosen injection detection", c.InjectionThreshold, det.Threshold())
		}
		det.threshold = c.InjectionThreshold
	}
	sc, err := NewScanner(ScannerOptions{AllowSecrets: c.AllowSecrets, MaxBytes: c.MaxScanBytes})
	if err != nil {
		return nil, err
	}
	i := &Inspector{det: det, sc: sc, preset: p, allow: c.AllowHosts, budget: c.VolumeBudgetBytes, maxScan: c.MaxScanBytes}
	if i.maxScan <= 0 {
		i.maxScan = 4 << 20
	}
	if i.budget == 0 && p.Tier == tier.Optimized {
		i.budget = 16 << 20
	}
	exfil := tier.ActionLog
	if p.Tier >= tier.Advanced {
		exfil = tier.ActionBlock
	}
	i.actions = map[Kind]tier.FindingAction{
		KindInjection: p.InjectionAction,
		KindSecret:    p.SecretAction,
		KindPII:       p.PIIAction,
		KindExfil:     exfil,
		KindVolume:    tier.ActionBlock,
		KindFlow:      tier.ActionBlock,
		KindMalformed: tier.ActionBlock,
	}
	for k, v := range c.Actions {
		kind := map[string]Kind{"injection": KindInjection, "secret": KindSecret, "pii": KindPII, "exfiltration": KindExfil}[k]
		if kind == "" {
			return nil, fmt.Errorf("inspect.actions: unknown finding kind %q", k)
		}
		if actionRank(v) < actionRank(i.actions[kind]) {
			return nil, fmt.Errorf("inspect.actions.%s: %s is looser than the %s tier's %s", k, v, p.Tier, i.actions[kind])
		}
		i.actions[kind] = v
	}
	return i, nil
}

// Detector returns the injection detector.
func (i *Inspector) Detector() *Detector { return i.det }

// Scanner returns the DLP scanner.
func (i *Inspector) Scanner() *Scanner { return i.sc }

// VolumeBudgetBytes is the per-task outbound budget the gateway should give
// each task's VolumeBudget (0: unlimited).
func (i *Inspector) VolumeBudgetBytes() int64 { return i.budget }

// Result is the outcome of a check.
type Result struct {
	// Action is the strongest action of the findings: "" when nothing was
	// found, log (allow and record), redact (allow the redacted value) or
	// block (deny).
	Action   tier.FindingAction `json:"action,omitempty"`
	Findings []Finding          `json:"findings,omitempty"`
	// Rule and Reason explain a block: the deciding finding's rule id and text.
	Rule   string `json:"rule,omitempty"`
	Reason string `json:"reason,omitempty"`
	// RedactedArgs are the arguments with secrets/PII masked (outbound,
	// when Action is redact); RedactedContent the result with injected
	// spans removed (inbound, when Action is redact).
	RedactedArgs    any    `json:"-"`
	RedactedContent string `json:"-"`
	// Injection is the detector's verdict (inbound only).
	Injection *Verdict `json:"injection,omitempty"`
}

// Blocked reports whether the call must be denied.
func (r Result) Blocked() bool { return r.Action == tier.ActionBlock }

// Facts are the result's flat facts for the Cedar context (see Facts).
func (r Result) Facts() map[string]any { return Facts(r.Findings) }

// Events renders each finding as an OCSF Detection Finding.
func (r Result) Events(c EventContext) []events.Event {
	out := make([]events.Event, 0, len(r.Findings))
	for _, f := range r.Findings {
		out = append(out, f.Event(c))
	}
	return out
}

func (i *Inspector) finish(r *Result) {
	for k := range r.Findings {
		f := &r.Findings[k]
		if f.Action == "" {
			f.Action = i.actions[f.Kind]
			// Low-confidence findings are logged; blocking needs confidence.
			if f.Action == tier.ActionBlock && f.Score < 0.6 && f.Kind != KindFlow {
				f.Action = tier.ActionLog
			}
		}
		if actionRank(f.Action) > actionRank(r.Action) {
			r.Action = f.Action
			r.Rule, r.Reason = f.Rule, f.Reason
		}
	}
	if r.Action == "" && len(r.Findings) > 0 {
		r.Action = tier.ActionLog
	}
}

// Outbound is a tool call about to be forwarded.
type Outbound struct {
	Tool   string
	Labels []string // the tool's risk labels; none means all five
	// Args are the call's arguments: decoded JSON (map[string]any, ...)
	// or raw JSON (json.RawMessage, []byte).
	Args any
	// Egress is the task's allow-list; the deployment's allow_hosts are added.
	Egress EgressPolicy
	// Budget is the task's data-volume budget (nil: none).
	Budget *VolumeBudget
	// Session is the session's taint record (nil: no flow rule applies).
	Session *Session
	// Fixed reports whether the grant fixes a top-level argument; nil: none is.
	Fixed func(arg string) bool
	// Flow overrides the tier's flow rule (an agent at a higher tier); "" uses the preset's.
	Flow tier.FlowRule
}

// CheckOutbound inspects a call's arguments for secrets, PII and
// exfiltration channels, charges the data-volume budget, and applies the
// tier's taint flow rule. It fails closed: arguments too large or too deep
// to read whole are blocked.
func (i *Inspector) CheckOutbound(ctx context.Context, c Outbound) Result {
	var r Result
	args, err := FlattenArgs(c.Args, ArgLimits{MaxBytes: i.maxScan})
	if err != nil {
		r.Findings = append(r.Findings, Finding{Kind: KindMalformed, Rule: "args_unreadable", Reason: err.Error(), Score: 1})
		i.finish(&r)
		return r
	}
	if ctx.Err() != nil {
		r.Findings = append(r.Findings, Finding{Kind: KindMalformed, Rule: "cancelled", Reason: "inspection cancelled: " + ctx.Err().Error(), Score: 1})
		i.finish(&r)
		return r
	}
	pol := c.Egress
	pol.Allow = append(append([]string(nil), pol.Allow...), i.allow...)
	if i.preset.Tier == tier.Optimized {
		pol.DenyUnlisted = true
	}
	var total int64
	reserved := false
	for _, a := range args {
		total += int64(len(a.Value))
		fs := i.sc.Scan(a.Value, a.Path)
		if c.Fixed != nil && c.Fixed(TopLevelArg(a.Path)) {
			// Personal data in an argument the grant fixes (an IBAN, an
			// address, a phone number named in the task) was chosen by the
			// operator for this tool: recorded, never masked, or the call
			// would carry out something else than what was granted. Secrets
			// stay under the tier's action wherever they are.
			for k := range fs {
				if fs[k].Kind == KindPII {
					fs[k].Action = tier.ActionLog
					fs[k].Reason += " (in an argument the grant fixes: logged, not masked)"
				}
			}
		}
		r.Findings = append(r.Findings, fs...)
		if hasLabel(c.Labels, LabelEgress, LabelWrites) || pol.DenyUnlisted || len(c.Egress.Allow) > 0 {
			r.Findings = append(r.Findings, i.sc.ScanExfil(a.Value, a.Path, pol)...)
		}
	}
	if c.Budget != nil && hasLabel(c.Labels, LabelEgress, LabelWrites) {
		ok, err := c.Budget.Reserve(total)
		reserved = ok && err == nil
		if !reserved {
			r.Findings = append(r.Findings, Finding{Kind: KindVolume, Rule: "volume_budget", Score: 1,
				Reason: fmt.Sprintf("task data-volume budget exhausted: %d bytes requested, %d of %d used", total, c.Budget.Used(), c.Budget.Limit())})
		}
	}
	flow := c.Flow
	if flow == "" {
		flow = i.preset.Flow
	}
	fd := CheckFlow(flow, c.Session, c.Labels, args, c.Fixed)
	for _, f := range fd.Findings {
		f.Action = tier.ActionLog // matches recorded under a rule that did not decide
		if !fd.Allow && f.Rule == fd.Rule {
			f.Action = tier.ActionBlock
		}
		r.Findings = append(r.Findings, f)
	}
	i.finish(&r)
	if r.Action == tier.ActionBlock && reserved {
		c.Budget.Release(total) // not forwarded: give the bytes back
	}
	if r.Action == tier.ActionRedact {
		var ok bool
		if r.RedactedArgs, ok = redactArgs(c.Args, r.Findings); !ok {
			// Fail closed: what cannot be redacted is not sent.
			r.Action, r.RedactedArgs = tier.ActionBlock, nil
			r.Rule, r.Reason = "redaction_failed", "a value that must be redacted could not be (a map key, or arguments that are not JSON); the call is blocked instead"
		}
	}
	return r
}

// Inbound is a result flowing back to the agent.
type Inbound struct {
	Tool    string
	CallID  string
	Labels  []string // the tool's risk labels; none means all five
	Content string   // the result's text content (all text parts joined)
	Session *Session // taint record updated when the tool returns untrusted content
}

// CheckInbound scores a result for prompt injection and, when the tool's
// output is untrusted, records it in the session's taint record (whatever
// the verdict: a missed injection is exactly what taint must still catch).
func (i *Inspector) CheckInbound(ctx context.Context, c Inbound) Result {
	var r Result
	if c.Session != nil && hasLabel(c.Labels, LabelUntrustedOutput) {
		c.Session.Ingest(TaintSource{CallID: c.CallID, Tool: c.Tool}, c.Content)
	}
	if ctx.Err() != nil {
		r.Findings = append(r.Findings, Finding{Kind: KindMalformed, Rule: "cancelled", Reason: "inspection cancelled: " + ctx.Err().Error(), Score: 1})
		i.finish(&r)
		return r
	}
	v := i.det.Detect(c.Content)
	r.Injection = &v
	if v.Truncated {
		r.Findings = append(r.Findings, Finding{Kind: KindMalformed, Rule: "content_too_large", Score: 1,
			Reason: fmt.Sprintf("result longer than the %d bytes the detector reads", i.det.maxBytes), Action: stricter(tier.ActionLog, i.actions[KindInjection])})
	}
	if v.Injection {
		f := Finding{Kind: KindInjection, Rule: "prompt_injection", Score: v.Score, Heuristic: true,
			Reason: "prompt injection suspected: " + strings.Join(v.Reasons, "; ")}
		// Advanced acts on high-confidence findings only and logs the rest;
		// Optimized acts on every finding above the threshold.
		if i.preset.Tier < tier.Optimized && v.Score < HighConfidence {
			f.Action = tier.ActionLog
		}
		if len(v.Spans) > 0 {
			f.Start, f.End, f.Excerpt = v.Spans[0].Start, v.Spans[0].End, cutString(v.Spans[0].Text, 120)
			for _, s := range v.Spans {
				if s.Rule != "classifier" {
					f.Rule = "prompt_injection/" + s.Rule
					break
				}
			}
		}
		r.Findings = append(r.Findings, f)
	}
	i.finish(&r)
	if r.Action == tier.ActionRedact && v.Injection {
		r.RedactedContent = redactSpans(c.Content, v.Spans, "[removed by Warden: suspected prompt injection]")
	}
	return r
}

// redactSpans replaces spans (sorted or not, possibly overlapping) with marker.
func redactSpans(s string, spans []Span, marker string) string {
	type iv struct{ a, b int }
	var ivs []iv
	for _, sp := range spans {
		if sp.Start < sp.End && sp.End <= len(s) {
			ivs = append(ivs, iv{sp.Start, sp.End})
		}
	}
	if len(ivs) == 0 {
		return marker
	}
	// sort and merge
	for i := 1; i < len(ivs); i++ {
		for j := i; j > 0 && ivs[j].a < ivs[j-1].a; j-- {
			ivs[j], ivs[j-1] = ivs[j-1], ivs[j]
		}
	}
	var b strings.Builder
	pos := 0
	for _, v := range ivs {
		if v.a < pos {
			if v.b > pos {
				pos = v.b
			}
			continue
		}
		b.WriteString(s[pos:v.a])
		b.WriteString(marker)
		pos = v.b
	}
	b.WriteString(s[pos:])
	return b.String()
}

// redactArgs returns a copy of the arguments with the findings' spans of
// each string leaf masked, and whether every span to redact was applied
// (false for spans in map keys, in JSON nested inside a string, or in
// arguments it cannot rebuild: the caller then blocks).
func redactArgs(v any, fs []Finding) (any, bool) {
	byPath := map[string][]Span{}
	for _, f := range fs {
		if f.Action == tier.ActionRedact && f.Path != "" && f.End > f.Start {
			byPath[f.Path] = append(byPath[f.Path], Span{Start: f.Start, End: f.End})
		}
	}
	applied := 0
	var walk func(v any, path string) any
	walk = func(v any, path string) any {
		switch x := v.(type) {
		case map[string]any:
			m := make(map[string]any, len(x))
			for k, e := range x {
				m[k] = walk(e, path+"."+pathKey(k))
			}
			return m
		case []any:
			a := make([]any, len(x))
			for i, e := range x {
				a[i] = walk(e, fmt.Sprintf("%s[%d]", path, i))
			}
			return a
		case string:
			if sp := byPath[path]; len(sp) > 0 {
				applied++
				return redactSpans(x, sp, "[REDACTED]")
			}
			return x
		default:
			return x
		}
	}
	var out any
	switch x := v.(type) {
	case map[string]any, []any, string:
		out = walk(v, "$")
	case json.RawMessage, []byte:
		var b []byte
		if r, ok := x.(json.RawMessage); ok {
			b = r
		} else {
			b = x.([]byte)
		}
		var decoded any
		if dec(string(b), &decoded) != nil {
			return nil, false
		}
		out = walk(decoded, "$")
	default:
		return nil, false
	}
	return out, applied == len(byPath)
}
