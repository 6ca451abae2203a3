package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/warden-run/warden/events"
	"github.com/warden-run/warden/respond"
)

func respondCmd(_ *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "respond",
		Short: "Validate and test detection rules and playbooks",
		Long: `Detection rules watch the event stream (decisions, findings, sandbox egress,
memory) and fire playbooks: revoke the task's grant, disable the agent, close
its sessions, kill its tool servers, hold its sensitive calls for approval,
snapshot memory, notify. Rules are YAML with CEL conditions, Sigma-style
correlation windows (event_count, value_count, value_sum, new_value) and
EQL-style sequences; see docs/respond.md.

warden serve loads the built-in pack, then the rule files in <data dir>/rules
(a rule with a built-in rule's id replaces it; enabled: false switches it
off). These commands work offline, on files.`,
	}
	cmd.AddCommand(respondValidateCmd(), respondTestCmd(), respondBuiltinCmd(), respondFieldsCmd())
	return cmd
}

// ruleSetFlags choose the layers a command compiles.
type ruleSetFlags struct {
	noBuiltin bool
}

func (f *ruleSetFlags) add(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&f.noBuiltin, "no-builtin", false, "compile the files alone, without the built-in pack (and its playbooks)")
}

// compile layers the files over the built-in pack (unless --no-builtin).
func (f *ruleSetFlags) compile(files []string) (*respond.RuleSet, int, error) {
	var layers [][]respond.Document
	builtin := 0
	if !f.noBuiltin {
		b, err := respond.Builtin()
		if err != nil {
			return nil, 0, fmt.Errorf("the built-in pack: %w", err)
		}
		layers = append(layers, b)
		for _, d := range b {
			if d.Rule != nil {
				builtin++
			}
		}
	}
	if len(files) > 0 {
		docs, err := respond.LoadFiles(files)
		if err != nil {
			return nil, 0, err
		}
		layers = append(layers, docs)
	}
	rs, err := respond.Compile(layers...)
	if err != nil {
		return nil, 0, fmt.Errorf("the rules are not valid:\n%w", err)
	}
	return rs, builtin, nil
}

func respondValidateCmd() *cobra.Command {
	var f ruleSetFlags
	var output string
	cmd := &cobra.Command{
		Use:   "validate [RULES...]",
		Short: "Parse and compile rule files (over the built-in pack) and list the rules",
		Long: `validate parses each file (a directory: its *.yaml and *.yml), compiles every
CEL expression once, checks windows, sequences, suppression and actions, and
reports every problem with its file and document. With no file it validates
the built-in pack.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			if f.noBuiltin && len(args) == 0 {
				return fmt.Errorf("--no-builtin needs rule files")
			}
			rs, builtin, err := f.compile(args)
			if err != nil {
				return err
			}
			type ruleView struct {
				ID       string   `json:"id"`
				Title    string   `json:"title"`
				Level    string   `json:"level"`
				Kind     string   `json:"kind"`
				Span     string   `json:"span,omitempty"`
				Playbook string   `json:"playbook,omitempty"`
				Actions  []string `json:"actions"`
				Source   string   `json:"source"`
			}
			var views []ruleView
			for _, r := range rs.Rules {
				v := ruleView{ID: r.ID, Title: r.Title, Level: r.Level, Kind: string(r.Kind), Playbook: r.Playbook, Source: r.Source, Actions: []string{}}
				if r.Span() > 0 {
					v.Span = r.Span().String()
				}
				for _, a := range r.Actions {
					v.Actions = append(v.Actions, string(a.Type))
				}
				views = append(views, v)
			}
			if output == "json" {
				return printJSON(cmd.OutOrStdout(), map[string]any{"rules": views, "playbooks": len(rs.Playbooks)})
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "valid: %d rules (%d built-in before overrides), %d playbooks\n", len(rs.Rules), builtin, len(rs.Playbooks))
			tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "RULE\tLEVEL\tKIND\tWINDOW\tRESPONSE\tSOURCE")
			for _, v := range views {
				resp := strings.Join(v.Actions, ",")
				if v.Playbook != "" {
					resp = v.Playbook + " (" + resp + ")"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", v.ID, v.Level, v.Kind, orDash(v.Span), orDash(resp), v.Source)
			}
			return tw.Flush()
		},
	}
	f.add(cmd)
	outputFlag(cmd, &output)
	return cmd
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func respondTestCmd() *cobra.Command {
	var f ruleSetFlags
	var eventsPath, output string
	var labels []string
	cmd := &cobra.Command{
		Use:   "test [RULES...] --events EVENTS.jsonl",
		Short: "Replay events through the rules and print what fires",
		Long: `test replays events, in file order and with their own times, through the
rules (the built-in pack, then the files) and prints every alert as it fires,
then a summary per rule. It takes no action. EVENTS is JSON lines: an event per
line (warden audit export --format ocsf, or a JSONL event log) or audit
records (warden audit export --format jsonl); "-" reads standard input.

Rules that look at a tool's risk labels see all five for every tool unless
--label gives them (repeatable): --label 'email.send=egress,writes'.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			if eventsPath == "" {
				return fmt.Errorf("say which events to replay with --events FILE")
			}
			rs, _, err := f.compile(args)
			if err != nil {
				return err
			}
			lab := map[string][]string{}
			for _, l := range labels {
				tool, ls, ok := strings.Cut(l, "=")
				if !ok || tool == "" {
					return fmt.Errorf("--label %q: want TOOL=label,label", l)
				}
				lab[tool] = strings.Split(ls, ",")
			}
			var in io.Reader = cmd.InOrStdin()
			if eventsPath != "-" {
				fh, err := os.Open(eventsPath)
				if err != nil {
					return fmt.Errorf("events: %w", err)
				}
				defer fh.Close()
				in = fh
			}
			w := cmd.OutOrStdout()
			enc := json.NewEncoder(w)
			onAlert := func(a respond.Alert, _ *events.Event) {
				if output == "json" {
					_ = enc.Encode(a)
					return
				}
				acts := make([]string, len(a.Actions))
				for i, x := range a.Actions {
					acts[i] = string(x.Type)
				}
				fmt.Fprintf(w, "%s  FIRE %s [%s] %s\n", a.Time.UTC().Format(time.RFC3339Nano), a.Rule, a.Level, a.Title)
				fmt.Fprintf(w, "    group %s  value %g  agent %s  task %s  tool %s\n", orDash(a.Key), a.Value, orDash(a.Agent), orDash(a.Task), orDash(a.Tool))
				fmt.Fprintf(w, "    trigger %s  actions %s\n", a.Trigger, orDash(strings.Join(acts, ",")))
			}
			st, err := respond.Replay(rs, in, func(t string) ([]string, bool) { l, ok := lab[t]; return l, ok }, onAlert)
			if err != nil {
				return err
			}
			if output == "json" {
				return nil
			}
			fmt.Fprintf(w, "\n%d events (%d duplicates, %d lines not events), %d alerts\n", st.Events, st.Duplicates, st.Malformed, st.Alerts)
			sort.SliceStable(st.Rules, func(i, j int) bool { return st.Rules[i].Fired > st.Rules[j].Fired })
			tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "RULE\tFIRED\tEVALUATED\tERRORS")
			for _, r := range st.Rules {
				fmt.Fprintf(tw, "%s\t%d\t%d\t%d\n", r.Rule, r.Fired, r.Evaluations, r.Errors)
			}
			return tw.Flush()
		},
	}
	f.add(cmd)
	cmd.Flags().StringVar(&eventsPath, "events", "", "events to replay, JSON lines (- for standard input)")
	cmd.Flags().StringArrayVar(&labels, "label", nil, "a tool's risk labels, TOOL=label,label (repeatable)")
	outputFlag(cmd, &output)
	return cmd
}

func respondBuiltinCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "builtin",
		Short: "Print the built-in rule pack and playbooks (YAML)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			src, err := respond.BuiltinSource()
			if err != nil {
				return err
			}
			names := make([]string, 0, len(src))
			for n := range src {
				names = append(names, n)
			}
			sort.Strings(names)
			w := cmd.OutOrStdout()
			for i, n := range names {
				if i > 0 {
					fmt.Fprintln(w, "---")
				}
				fmt.Fprintf(w, "# %s\n%s", n, src[n])
			}
			return nil
		},
	}
}

func respondFieldsCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "fields",
		Short: "List the event fields rule expressions may use",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "FIELD\tTYPE\tMEANING")
			for _, f := range respond.Fields() {
				fmt.Fprintf(tw, "%s\t%s\t%s\n", f.Name, f.Type, f.Doc)
			}
			return tw.Flush()
		},
	}
}
