package supply

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
)

// ScanReport is the result of scanning client configurations.
type ScanReport struct {
	Servers  []ScannedServer `json:"servers"`
	Findings []Finding       `json:"findings"`
}

// ScannedServer says what was done with one configured server.
type ScannedServer struct {
	ClientServer
	// Status: listed (its tools were scanned), not_launched (with the
	// reason), failed.
	Status string `json:"status"`
	Detail string `json:"detail,omitempty"`
	Tools  int    `json:"tools"`
}

// ruleText describes each rule for SARIF.
var ruleText = map[string]string{
	RuleHiddenTag: "Hidden instruction block addressed to the model", RuleHTMLComment: "HTML comment carrying text for the model",
	RuleOverride: "Instruction override", RuleConcealment: "Concealment from the user", RuleCoercion: "Instruction-like text",
	RuleSensitivePath: "Sensitive path", RuleSecretRequest: "Request for secrets", RuleSecretValue: "Embedded credential",
	RuleExfilURL: "Exfiltration URL", RuleURL: "URL", RuleMarkdownImage: "Markdown image URL", RuleEmailRedirect: "Message redirection",
	RuleShadowing: "Tool shadowing", RuleCrossReference: "Reference to another server's tool", RuleParamInstruction: "Instructions in a parameter description",
	RuleTagChars: "Unicode tag characters", RuleBidi: "Bidirectional control characters", RuleInvisible: "Invisible characters",
	RuleLongText: "Oversized text", RuleInjection: "Prompt injection (detector)", RuleNameNonASCII: "Non-ASCII tool name",
	RuleNameCollision: "Tool name collision", RuleNameConfusable: "Confusable tool name", RuleCombination: "Several poisoning signals",
	RuleUnpinnedLaunch: "Package fetched at launch", RuleCodeEnv: "Code-loading environment variable",
}

func sarifLevel(s Severity) string {
	switch {
	case s >= SeverityHigh:
		return "error"
	case s == SeverityMedium:
		return "warning"
	}
	return "note"
}

// WriteSARIF writes findings as a SARIF 2.1.0 log. source maps a server
// name to the configuration file that declares it.
func WriteSARIF(w io.Writer, fs []Finding, source func(server string) string, version string) error {
	type msg struct {
		Text string `json:"text"`
	}
	type rule struct {
		ID               string         `json:"id"`
		ShortDescription msg            `json:"shortDescription"`
		DefaultConfig    map[string]any `json:"defaultConfiguration,omitempty"`
	}
	used := map[string]Severity{}
	for _, f := range fs {
		used[f.Rule] = max(used[f.Rule], f.Severity)
	}
	ids := make([]string, 0, len(used))
	for id := range used {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var rules []rule
	for _, id := range ids {
		text := ruleText[id]
		if text == "" {
			text = id
		}
		rules = append(rules, rule{ID: id, ShortDescription: msg{text}, DefaultConfig: map[string]any{"level": sarifLevel(used[id])}})
	}
	results := make([]map[string]any, 0, len(fs))
	for _, f := range fs {
		loc := map[string]any{
			"logicalLocations": []map[string]any{{"fullyQualifiedName": f.ID() + "#" + f.Field, "kind": "member"}},
		}
		if src := source(f.Server); src != "" {
			loc["physicalLocation"] = map[string]any{"artifactLocation": map[string]any{"uri": src}}
		}
		results = append(results, map[string]any{
			"ruleId":    f.Rule,
			"level":     sarifLevel(f.Severity),
			"message":   msg{fmt.Sprintf("%s %s: %s", f.ID(), f.Field, f.Reason)},
			"locations": []any{loc},
			"properties": map[string]any{
				"severity": f.Severity.String(), "server": f.Server, "tool": f.Tool, "field": f.Field,
				"start": f.Start, "end": f.End, "excerpt": f.Excerpt,
			},
		})
	}
	log := map[string]any{
		"$schema": "https://json.schemastore.org/sarif-2.1.0.json",
		"version": "2.1.0",
		"runs": []any{map[string]any{
			"tool": map[string]any{"driver": map[string]any{
				"name": "warden-scan", "version": version, "informationUri": "https://github.com/warden-run/warden", "rules": rules,
			}},
			"results": results,
		}},
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(log)
}
