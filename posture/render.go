package posture

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"

	"github.com/warden-run/warden/tier"
)

// ReportSchema is the JSON Schema (2020-12) of the JSON report.
//
//go:embed report.schema.json
var ReportSchema []byte

// Formats are the names Write accepts.
var formats = []string{"table", "markdown", "json", "sarif", "html", "oscal"}

// Formats returns the output formats Write accepts.
func Formats() []string { return append([]string(nil), formats...) }

// Write renders the report in a format: table, markdown, json, sarif,
// html or oscal.
func (r *Report) Write(w io.Writer, format string) error {
	switch format {
	case "table", "text", "":
		return r.Text(w)
	case "markdown", "md":
		return r.Markdown(w)
	case "json":
		return r.JSON(w)
	case "sarif":
		return r.SARIF(w)
	case "html":
		return r.HTML(w)
	case "oscal":
		return r.OSCAL(w)
	}
	return fmt.Errorf("unknown format %q: want one of %s", format, strings.Join(formats, ", "))
}

func (c ControlResult) label() string {
	switch c.Status {
	case Pass:
		return "pass"
	case NotReachable:
		return "NOT REACHABLE"
	}
	return "FAIL"
}

func (r *Report) counts(ph PhaseResult) (pass, total int) {
	for _, c := range ph.Controls {
		total++
		if c.Status == Pass {
			pass++
		}
	}
	return
}

// Text renders the report for a terminal: the tier each phase reaches,
// then each control that did not pass with its evidence and its fix.
func (r *Report) Text(w io.Writer) error {
	var b bytes.Buffer
	fmt.Fprintf(&b, "Warden assessment of %s (trust domain %s, tier %s in warden.yaml), %s\n", r.Deployment, r.TrustDomain, r.Configured, r.AssessedAt.Format(time.RFC3339))
	if r.Framework != "" {
		fmt.Fprintf(&b, "Framework view: %s (only the controls mapped to it)\n", r.Frameworks[0].Name)
	}
	b.WriteString("\n")
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PHASE\tTIER REACHED\tCONTROLS PASSING")
	for _, ph := range r.Phases {
		p, t := r.counts(ph)
		fmt.Fprintf(tw, "%s\t%s\t%d/%d\n", ph.Phase.Name, TierName(ph.Reached), p, t)
	}
	fmt.Fprintf(tw, "overall\t%s\t\n", TierName(r.Overall))
	tw.Flush()
	for _, ph := range r.Phases {
		for _, c := range ph.Controls {
			if c.Status == Pass {
				continue
			}
			fmt.Fprintf(&b, "\n%s [%s, %s] %s: %s\n", c.label(), c.Control.ID, c.Control.Tier, ph.Phase.Name, c.Control.Title)
			for _, e := range c.Evidence {
				fmt.Fprintf(&b, "    evidence: %s\n", e)
			}
			fmt.Fprintf(&b, "    fix: %s\n", c.Fix)
			if r.Framework != "" {
				fmt.Fprintf(&b, "    %s: %s\n", r.Framework, strings.Join(c.Control.Maps[r.Framework], ", "))
			}
		}
	}
	_, err := w.Write(b.Bytes())
	return err
}

// Markdown renders the report as Markdown.
func (r *Report) Markdown(w io.Writer) error {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# Warden assessment\n\n- deployment: `%s`\n- trust domain: `%s`\n- tier in warden.yaml: **%s**\n- assessed: %s\n- overall: **%s**\n",
		r.Deployment, r.TrustDomain, r.Configured, r.AssessedAt.Format(time.RFC3339), TierName(r.Overall))
	if r.Framework != "" {
		fmt.Fprintf(&b, "- framework view: %s\n", r.Frameworks[0].Name)
	}
	b.WriteString("\n| phase | tier reached | controls passing |\n|---|---|---|\n")
	for _, ph := range r.Phases {
		p, t := r.counts(ph)
		fmt.Fprintf(&b, "| %s | %s | %d/%d |\n", ph.Phase.Name, TierName(ph.Reached), p, t)
	}
	md := func(s string) string { return strings.ReplaceAll(s, "|", "\\|") }
	for _, ph := range r.Phases {
		fmt.Fprintf(&b, "\n## %s: %s\n\n| control | tier | status | title |\n|---|---|---|---|\n", ph.Phase.Name, TierName(ph.Reached))
		for _, c := range ph.Controls {
			fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", c.Control.ID, c.Control.Tier, c.label(), md(c.Control.Title))
		}
		for _, c := range ph.Controls {
			if c.Status == Pass {
				continue
			}
			fmt.Fprintf(&b, "\n### %s %s: %s\n\n", c.label(), c.Control.ID, c.Control.Title)
			for _, e := range c.Evidence {
				fmt.Fprintf(&b, "- %s\n", e)
			}
			fmt.Fprintf(&b, "\n**Fix:** %s\n\n**Maps to:** %s\n", c.Fix, r.mapText(c.Control))
		}
	}
	_, err := w.Write(b.Bytes())
	return err
}

func (r *Report) mapText(c Control) string {
	var parts []string
	for _, k := range frameworkOrder {
		ids := c.Maps[k]
		if len(ids) == 0 || (r.Framework != "" && k != r.Framework) {
			continue
		}
		s := k + " " + strings.Join(ids, ", ")
		if f := r.catalogue.Frameworks[k]; f != nil && f.Stages != nil {
			s += " (stage " + f.Stages[c.Tier.String()] + ")"
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, "; ")
}

// jsonReport is the JSON shape (report.schema.json).
type jsonReport struct {
	Format      string         `json:"format"`
	Deployment  string         `json:"deployment"`
	TrustDomain string         `json:"trust_domain"`
	Configured  string         `json:"configured_tier"`
	Overall     string         `json:"overall"`
	AssessedAt  string         `json:"assessed_at"`
	Framework   string         `json:"framework,omitempty"`
	Sandbox     string         `json:"sandbox_mechanisms_from,omitempty"`
	Phases      []jsonPhase    `json:"phases"`
	Frameworks  []jsonFramewrk `json:"frameworks"`
}

type jsonPhase struct {
	ID       string        `json:"id"`
	Name     string        `json:"name"`
	Reached  string        `json:"reached"`
	Controls []jsonControl `json:"controls"`
}

type jsonControl struct {
	ID       string              `json:"id"`
	Tier     string              `json:"tier"`
	Title    string              `json:"title"`
	Check    string              `json:"check"`
	Status   Status              `json:"status"`
	Evidence []string            `json:"evidence"`
	Fix      string              `json:"fix,omitempty"`
	Maps     map[string][]string `json:"maps"`
}

type jsonFramewrk struct {
	Key     string `json:"key"`
	Name    string `json:"name"`
	Source  string `json:"source"`
	License string `json:"license"`
}

// JSON renders the report as JSON (see ReportSchema).
func (r *Report) JSON(w io.Writer) error {
	out := jsonReport{Format: "warden-assessment/v1", Deployment: r.Deployment, TrustDomain: r.TrustDomain,
		Configured: r.Configured.String(), Overall: TierName(r.Overall), AssessedAt: r.AssessedAt.Format(time.RFC3339),
		Framework: r.Framework, Sandbox: r.sandboxFrom}
	for _, ph := range r.Phases {
		jp := jsonPhase{ID: ph.Phase.ID, Name: ph.Phase.Name, Reached: TierName(ph.Reached), Controls: []jsonControl{}}
		for _, c := range ph.Controls {
			maps := c.Control.Maps
			if r.Framework != "" {
				maps = map[string][]string{r.Framework: maps[r.Framework]}
			}
			ev := c.Evidence
			if ev == nil {
				ev = []string{}
			}
			jp.Controls = append(jp.Controls, jsonControl{ID: c.Control.ID, Tier: c.Control.Tier.String(), Title: c.Control.Title,
				Check: c.Control.Check, Status: c.Status, Evidence: ev, Fix: c.Fix, Maps: maps})
		}
		out.Phases = append(out.Phases, jp)
	}
	for _, f := range r.Frameworks {
		out.Frameworks = append(out.Frameworks, jsonFramewrk{Key: f.Key, Name: f.Name, Source: f.Source, License: f.License})
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

const informationURI = "https://github.com/warden-run/warden/blob/main/docs/assess.md"

// SARIF renders the report as a SARIF 2.1.0 log: one rule per control, one
// result per control (kind pass, fail or review), located at warden.yaml.
func (r *Report) SARIF(w io.Writer) error {
	type msg struct {
		Text string `json:"text"`
	}
	type rule struct {
		ID         string         `json:"id"`
		Name       string         `json:"name"`
		Short      msg            `json:"shortDescription"`
		Help       msg            `json:"help"`
		HelpURI    string         `json:"helpUri"`
		Properties map[string]any `json:"properties"`
	}
	type result struct {
		RuleID     string           `json:"ruleId"`
		RuleIndex  int              `json:"ruleIndex"`
		Kind       string           `json:"kind"`
		Level      string           `json:"level"`
		Message    msg              `json:"message"`
		Locations  []map[string]any `json:"locations"`
		Properties map[string]any   `json:"properties"`
	}
	var rules []rule
	var results []result
	for _, ph := range r.Phases {
		for _, c := range ph.Controls {
			var tags []string
			for _, k := range frameworkOrder {
				for _, id := range c.Control.Maps[k] {
					tags = append(tags, k+":"+id)
				}
			}
			rules = append(rules, rule{ID: c.Control.ID, Name: strings.ReplaceAll(c.Control.Check, "_", "-"), Short: msg{c.Control.Title},
				Help: msg{c.Control.Fix}, HelpURI: informationURI,
				Properties: map[string]any{"tags": tags, "phase": ph.Phase.ID, "tier": c.Control.Tier.String()}})
			res := result{RuleID: c.Control.ID, RuleIndex: len(rules) - 1, Kind: "pass", Level: "none",
				Locations:  []map[string]any{{"physicalLocation": map[string]any{"artifactLocation": map[string]any{"uri": "warden.yaml", "uriBaseId": "WARDEN_HOME"}}}},
				Properties: map[string]any{"evidence": nonNil(c.Evidence), "status": string(c.Status)}}
			text := c.Control.Title + ": passes. " + strings.Join(c.Evidence, "; ")
			switch c.Status {
			case Fail:
				res.Kind, res.Level = "fail", "error"
				text = c.Control.Title + ": FAILS. " + strings.Join(c.Evidence, "; ") + ". Fix: " + c.Fix
			case NotReachable:
				res.Kind, res.Level = "review", "warning"
				text = c.Control.Title + ": not reachable in this version. " + c.Fix
			}
			res.Message = msg{text}
			results = append(results, res)
		}
	}
	phases := map[string]string{}
	for _, ph := range r.Phases {
		phases[ph.Phase.ID] = TierName(ph.Reached)
	}
	log := map[string]any{
		"$schema": "https://json.schemastore.org/sarif-2.1.0.json",
		"version": "2.1.0",
		"runs": []any{map[string]any{
			"tool":               map[string]any{"driver": map[string]any{"name": "warden-assess", "informationUri": informationURI, "rules": rules}},
			"originalUriBaseIds": map[string]any{"WARDEN_HOME": map[string]any{"uri": fileURI(r.Deployment)}},
			"invocations":        []any{map[string]any{"executionSuccessful": true, "endTimeUtc": r.AssessedAt.Format(time.RFC3339)}},
			"results":            results,
			"properties":         map[string]any{"overall": TierName(r.Overall), "phases": phases, "configured_tier": r.Configured.String()},
		}},
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(log)
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// fileURI renders a directory as a file URI ending in a slash.
func fileURI(dir string) string {
	if !strings.HasPrefix(dir, "/") {
		dir = "/" + dir
	}
	return "file://" + strings.TrimSuffix(dir, "/") + "/"
}

// oscalNS qualifies Warden's OSCAL property names.
const oscalNS = "https://github.com/warden-run/warden/ns/oscal"

// OSCAL renders the report as an OSCAL assessment-results document (OSCAL
// 1.0.4): one result; one observation per control with the live evidence;
// one finding per control targeting it, satisfied or not.
func (r *Report) OSCAL(w io.Writer) error {
	at := r.AssessedAt.UTC().Truncate(time.Second).Format(time.RFC3339)
	seed := r.Deployment + "|" + at + "|" + r.Framework
	id := func(parts ...string) string {
		return uuid.NewSHA1(uuid.NameSpaceURL, []byte(seed+"|"+strings.Join(parts, "|"))).String()
	}
	prop := func(name, value string) map[string]any {
		return map[string]any{"name": name, "ns": oscalNS, "value": value}
	}
	var include []any
	var observations, findings []any
	for _, ph := range r.Phases {
		for _, c := range ph.Controls {
			include = append(include, map[string]any{"control-id": c.Control.ID})
			oid := id("observation", c.Control.ID)
			var evidence []any
			for _, e := range c.Evidence {
				evidence = append(evidence, map[string]any{"description": e})
			}
			if len(evidence) == 0 {
				evidence = append(evidence, map[string]any{"description": "no evidence recorded"})
			}
			observations = append(observations, map[string]any{
				"uuid": oid, "title": c.Control.ID + " " + c.Control.Check,
				"description": "Live check " + c.Control.Check + " over the deployment's state.",
				"methods":     []string{"TEST"}, "types": []string{"control-objective"},
				"relevant-evidence": evidence, "collected": at,
			})
			state := "satisfied"
			if c.Status != Pass {
				state = "not-satisfied"
			}
			props := []any{prop("phase", ph.Phase.ID), prop("tier", c.Control.Tier.String()), prop("status", string(c.Status))}
			for _, k := range frameworkOrder {
				if ids := c.Control.Maps[k]; len(ids) > 0 && (r.Framework == "" || r.Framework == k) {
					props = append(props, prop("maps-"+k, strings.Join(ids, ", ")))
				}
			}
			f := map[string]any{
				"uuid": id("finding", c.Control.ID), "title": c.Control.Title,
				"description": fmt.Sprintf("%s (%s, %s tier): %s.", c.Control.ID, ph.Phase.Name, c.Control.Tier, c.Status),
				"props":       props,
				"target": map[string]any{"type": "objective-id", "target-id": c.Control.ID,
					"status": map[string]any{"state": state}},
				"related-observations": []any{map[string]any{"observation-uuid": oid}},
			}
			if c.Fix != "" {
				f["remarks"] = "Fix: " + c.Fix
			}
			findings = append(findings, f)
		}
	}
	var rprops []any
	for _, ph := range r.Phases {
		rprops = append(rprops, prop("tier-reached-"+ph.Phase.ID, TierName(ph.Reached)))
	}
	rprops = append(rprops, prop("tier-reached-overall", TierName(r.Overall)))
	doc := map[string]any{"assessment-results": map[string]any{
		"uuid": id("assessment-results"),
		"metadata": map[string]any{
			"title":         "Warden assessment of " + r.Deployment,
			"last-modified": at, "version": at, "oscal-version": "1.0.4",
			"props": []any{prop("trust-domain", r.TrustDomain), prop("configured-tier", r.Configured.String())},
		},
		"import-ap": map[string]any{"href": "#warden-controls-catalogue",
			"remarks": "No separate assessment plan: the plan is Warden's controls catalogue (posture/catalogue.yaml), run in full."},
		"results": []any{map[string]any{
			"uuid": id("result"), "title": "Live checks of the Warden deployment",
			"description": "Each control's check evaluated over the deployment's live state; a phase reaches the highest tier whose controls, and those below, all pass.",
			"start":       at, "end": at, "props": rprops,
			"reviewed-controls": map[string]any{"control-selections": []any{map[string]any{"include-controls": include}}},
			"observations":      observations,
			"findings":          findings,
		}},
	}}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(doc)
}

//go:embed report.html.tmpl
var htmlTemplate string

// HTML renders the report as one self-contained HTML page (no external
// resources).
func (r *Report) HTML(w io.Writer) error {
	t, err := template.New("report").Funcs(template.FuncMap{
		"tier":   TierName,
		"maps":   r.mapText,
		"counts": func(ph PhaseResult) string { p, t := r.counts(ph); return fmt.Sprintf("%d/%d", p, t) },
		"time":   func(t time.Time) string { return t.Format(time.RFC3339) },
		"cls": func(t tier.Tier) string {
			return "t-" + TierName(t)
		},
	}).Parse(htmlTemplate)
	if err != nil {
		return err
	}
	return t.Execute(w, r)
}
