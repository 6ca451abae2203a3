package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/warden-run/warden/controlplane"
	"github.com/warden-run/warden/policy"
)

func policyCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "policy",
		Short: "Validate, test, apply and list organisation policies (Cedar)",
		Long: `Organisation policies are Cedar policies that every call must satisfy on top
of its task grant; a forbid overrides every permit. They are written against
Warden's schema (warden policy schema) and described in docs/policy.md.

validate, test and schema work offline on files; apply and list act on the
policy store in the data directory's database.`,
	}
	cmd.AddCommand(
		policyValidateCmd(),
		policyTestCmd(),
		policySchemaCmd(),
		policyApplyCmd(a),
		policyListCmd(a),
	)
	return cmd
}

// readPolicyFile reads and compiles a policy file; problems come back as one
// error listing each with its FILE:LINE:COLUMN. The set is named by the
// file's base name, as `apply` stores it, so that position ids (FILE:LINE)
// are the same offline and in the store.
func readPolicyFile(path string) (*policy.Set, error) {
	src, err := readLimited(path, policy.MaxSourceBytes)
	if err != nil {
		return nil, err
	}
	set, err := policy.Compile(filepath.Base(path), src)
	if err != nil {
		var ce *policy.CompileError
		if errors.As(err, &ce) {
			return nil, fmt.Errorf("%s is not a valid policy set (%d problems):\n%w", path, len(ce.Problems), err)
		}
		return nil, err
	}
	return set, nil
}

// readLimited reads a file of at most limit bytes.
func readLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	return b, nil
}

func policyValidateCmd() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "validate FILE",
		Short: "Check a policy file's syntax and validate it against Warden's schema",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			set, err := readPolicyFile(args[0])
			if err != nil {
				return err
			}
			if output == "json" {
				return printJSON(cmd.OutOrStdout(), map[string]any{
					"file": args[0], "sha256": set.Digest(), "policies": set.Policies(),
				})
			}
			permits, forbids := 0, 0
			for _, p := range set.Policies() {
				if p.Effect == policy.Forbid {
					forbids++
				} else {
					permits++
				}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: valid: %d policies (%d permit, %d forbid), sha256 %s\n",
				args[0], set.Len(), permits, forbids, set.Digest())
			return nil
		},
	}
	outputFlag(cmd, &output)
	return cmd
}

func policySchemaCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "schema",
		Short: "Print the Cedar schema policies are validated against",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := cmd.OutOrStdout().Write(policy.Schema())
			return err
		},
	}
}

// policyCases is a test file for `warden policy test`.
type policyCases struct {
	// Agents and tools named by the cases.
	Agents map[string]caseAgent `yaml:"agents"`
	Tools  map[string][]string  `yaml:"tools"` // tool id -> risk labels
	Cases  []policyCase         `yaml:"cases"`
}

type caseAgent struct {
	Name     string            `yaml:"name"`
	SPIFFEID string            `yaml:"spiffe_id"`
	Owner    string            `yaml:"owner"`
	Model    string            `yaml:"model"`
	Tier     string            `yaml:"tier"`
	Groups   []string          `yaml:"groups"`
	Labels   map[string]string `yaml:"labels"`
}

// agentRef is an agent named in agents:, or described inline.
type agentRef struct {
	name   string
	inline *caseAgent
}

func (r *agentRef) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		return n.Decode(&r.name)
	}
	r.inline = &caseAgent{}
	return n.Decode(r.inline)
}

// toolRef is a tool id (labels from tools:), or {id, labels}.
type toolRef struct {
	ID     string   `yaml:"id"`
	Labels []string `yaml:"labels"`
	inline bool
}

func (r *toolRef) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		return n.Decode(&r.ID)
	}
	type plain toolRef
	r.inline = true
	return n.Decode((*plain)(r))
}

type policyCase struct {
	Name   string   `yaml:"name"`
	Agent  agentRef `yaml:"agent"`
	Action string   `yaml:"action"` // default: call for a tool, delegate for delegate_to
	// The target: exactly one.
	Tool     *toolRef `yaml:"tool"`
	Resource *struct {
		Server string `yaml:"server"`
		URI    string `yaml:"uri"`
	} `yaml:"resource"`
	Prompt     string    `yaml:"prompt"` // server.prompt
	Memory     string    `yaml:"memory"` // namespace
	DelegateTo *agentRef `yaml:"delegate_to"`

	Task struct {
		ID        string   `yaml:"id"`
		Intent    string   `yaml:"intent"`
		Requester string   `yaml:"requester"`
		Ancestors []string `yaml:"ancestors"`
	} `yaml:"task"`
	Args    any `yaml:"args"`
	Session struct {
		ID           string   `yaml:"id"`
		Tainted      bool     `yaml:"tainted"`
		Findings     []string `yaml:"findings"`
		TaintSources []string `yaml:"taint_sources"`
	} `yaml:"session"`
	// Precheck asks the mint-time question instead: is the call forbidden
	// whatever its arguments and session?
	Precheck bool `yaml:"precheck"`

	Expect   string   `yaml:"expect"`   // allow or deny
	Code     string   `yaml:"code"`     // optional: the decision code
	Policies []string `yaml:"policies"` // optional: the ids of the policies that decided
}

func loadCases(path string) (*policyCases, error) {
	b, err := readLimited(path, 16<<20)
	if err != nil {
		return nil, err
	}
	var pc policyCases
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&pc); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(pc.Cases) == 0 {
		return nil, fmt.Errorf("%s: no cases", path)
	}
	return &pc, nil
}

func (pc *policyCases) agent(r agentRef) (policy.Agent, error) {
	ca := r.inline
	name := r.name
	if ca == nil {
		a, ok := pc.Agents[r.name]
		if !ok {
			return policy.Agent{}, fmt.Errorf("agent %q is not described under agents:", r.name)
		}
		ca = &a
	} else {
		name = ca.Name
	}
	if ca.Name != "" {
		name = ca.Name
	}
	return policy.Agent{
		Name: name, SPIFFEID: ca.SPIFFEID, Owner: ca.Owner, Model: ca.Model, Tier: ca.Tier,
		Groups: ca.Groups, Labels: ca.Labels,
	}, nil
}

func (pc *policyCases) tool(r toolRef) (policy.Tool, error) {
	server, name, ok := strings.Cut(r.ID, ".")
	if !ok || server == "" || name == "" {
		return policy.Tool{}, fmt.Errorf("tool %q: want SERVER.TOOL", r.ID)
	}
	labels := r.Labels
	if !r.inline {
		labels = pc.Tools[r.ID] // none described: all five, as at run time
	}
	return policy.Tool{Server: server, Name: name, Labels: labels}, nil
}

// request turns a case into a policy request.
func (pc *policyCases) request(c policyCase) (policy.Request, error) {
	var req policy.Request
	agent, err := pc.agent(c.Agent)
	if err != nil {
		return req, err
	}
	req.Agent = agent
	targets := 0
	action := policy.Action(c.Action)
	if c.Tool != nil {
		targets++
		if req.Target, err = pc.tool(*c.Tool); err != nil {
			return req, err
		}
		if action == "" {
			action = policy.Call
		}
	}
	if c.Resource != nil {
		targets++
		req.Target = policy.Resource{Server: c.Resource.Server, URI: c.Resource.URI}
	}
	if c.Prompt != "" {
		targets++
		server, name, ok := strings.Cut(c.Prompt, ".")
		if !ok {
			return req, fmt.Errorf("prompt %q: want SERVER.PROMPT", c.Prompt)
		}
		req.Target = policy.Prompt{Server: server, Name: name}
	}
	if c.Memory != "" {
		targets++
		req.Target = policy.Memory{Namespace: c.Memory}
	}
	if c.DelegateTo != nil {
		targets++
		if req.Target, err = pc.agent(*c.DelegateTo); err != nil {
			return req, err
		}
		if action == "" {
			action = policy.Delegate
		}
	}
	if targets != 1 {
		return req, fmt.Errorf("give exactly one of tool, resource, prompt, memory, delegate_to (got %d)", targets)
	}
	if action == "" {
		return req, errors.New("no action: give action: read or write")
	}
	req.Action = action
	req.Task = policy.Task{ID: c.Task.ID, Intent: c.Task.Intent, Requester: c.Task.Requester, Ancestors: c.Task.Ancestors}
	if req.Task.ID == "" {
		req.Task.ID = "test-task"
	}
	if c.Args != nil {
		if req.Args, err = json.Marshal(c.Args); err != nil {
			return req, fmt.Errorf("args: %w", err)
		}
	}
	req.Session = policy.Session{ID: c.Session.ID, Tainted: c.Session.Tainted, Findings: c.Session.Findings, TaintSources: c.Session.TaintSources}
	return req, nil
}

// check compares a decision with a case's expectations and returns what
// differs, or "".
func (c policyCase) check(d policy.Decision) string {
	var diffs []string
	if got := map[bool]string{true: "allow", false: "deny"}[d.Allow]; got != c.Expect {
		diffs = append(diffs, fmt.Sprintf("got %s, want %s", got, c.Expect))
	}
	if c.Code != "" && string(d.Code) != c.Code {
		diffs = append(diffs, fmt.Sprintf("code %s, want %s", d.Code, c.Code))
	}
	if c.Policies != nil && !slices.Equal(d.Policies(), c.Policies) {
		diffs = append(diffs, fmt.Sprintf("decided by %q, want %q", d.Policies(), c.Policies))
	}
	return strings.Join(diffs, "; ")
}

func policyTestCmd() *cobra.Command {
	var casesPath string
	cmd := &cobra.Command{
		Use:   "test FILE --cases CASES.yaml",
		Short: "Run a policy file against expected decisions",
		Long: `Decides every case of CASES.yaml with the policies of FILE and prints PASS or
FAIL per case; the exit status is non-zero if any case fails. See
examples/policy/cases.yaml for the format.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if casesPath == "" {
				return errors.New("--cases CASES.yaml is required")
			}
			set, err := readPolicyFile(args[0])
			if err != nil {
				return err
			}
			pc, err := loadCases(casesPath)
			if err != nil {
				return err
			}
			e := policy.NewEngine(set)
			out := cmd.OutOrStdout()
			failed := 0
			for i, c := range pc.Cases {
				name := c.Name
				if name == "" {
					name = fmt.Sprintf("case %d", i+1)
				}
				if c.Expect != "allow" && c.Expect != "deny" {
					failed++
					fmt.Fprintf(out, "FAIL  %s: expect: %q, want allow or deny\n", name, c.Expect)
					continue
				}
				req, err := pc.request(c)
				if err != nil {
					failed++
					fmt.Fprintf(out, "FAIL  %s: %v\n", name, err)
					continue
				}
				d := e.Decide(cmd.Context(), req)
				if c.Precheck {
					d = e.Precheck(cmd.Context(), req)
				}
				if diff := c.check(d); diff != "" {
					failed++
					fmt.Fprintf(out, "FAIL  %s: %s\n      %s\n", name, diff, d)
					continue
				}
				fmt.Fprintf(out, "PASS  %s\n", name)
			}
			fmt.Fprintf(out, "%d cases: %d passed, %d failed\n", len(pc.Cases), len(pc.Cases)-failed, failed)
			if failed > 0 {
				return exitError{code: 1, err: fmt.Errorf("%d of %d policy test cases failed", failed, len(pc.Cases))}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&casesPath, "cases", "", "YAML file of cases with their expected decisions")
	return cmd
}

func policyApplyCmd(a *app) *cobra.Command {
	var message, output, creds string
	cmd := &cobra.Command{
		Use:   "apply FILE",
		Short: "Store a policy file as a new version and make it active",
		Long: `Validates FILE and sends it to the running control plane, which stores it as
the next version of the organisation policy, active at once for every
decision. A file with any problem is refused and changes nothing.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			set, err := readPolicyFile(args[0])
			if err != nil {
				return err
			}
			return a.withAdmin(cmd, creds, func(ctx context.Context, c *controlplane.Client) error {
				v, err := c.ApplyPolicy(ctx, controlplane.PolicyRequest{Name: set.Name(), Source: string(set.Source()), Message: message})
				if err != nil {
					return err
				}
				if output == "json" {
					return printJSON(cmd.OutOrStdout(), v)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "applied %s as policy version %d (%d policies, sha256 %s); it is active\n",
					args[0], v.Version, v.Policies, v.Digest)
				return nil
			})
		},
	}
	cmd.Flags().StringVarP(&message, "message", "m", "", "a note on the change, kept with the version")
	cmd.Flags().StringVar(&creds, "creds", "", "operator credential directory (default <data dir>/admin)")
	outputFlag(cmd, &output)
	return cmd
}

func policyListCmd(a *app) *cobra.Command {
	var output, creds string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the stored policy versions, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			return a.withAdmin(cmd, creds, func(ctx context.Context, c *controlplane.Client) error {
				vs, err := c.ListPolicies(ctx)
				if err != nil {
					return err
				}
				if output == "json" {
					if vs == nil {
						vs = []policy.Version{}
					}
					return printJSON(cmd.OutOrStdout(), vs)
				}
				if len(vs) == 0 {
					fmt.Fprintln(cmd.OutOrStdout(), "no policy applied yet: every call is denied (policy_no_permit)")
					return nil
				}
				tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "VERSION\tACTIVE\tAPPLIED\tBY\tFILE\tPOLICIES\tSHA256\tMESSAGE")
				for _, v := range vs {
					active := ""
					if v.Active {
						active = "*"
					}
					fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", v.Version, active,
						v.AppliedAt.Local().Format(time.DateTime), v.AppliedBy, v.Name, v.Policies, v.Digest[:12], v.Message)
				}
				return tw.Flush()
			})
		},
	}
	cmd.Flags().StringVar(&creds, "creds", "", "operator credential directory (default <data dir>/admin)")
	outputFlag(cmd, &output)
	return cmd
}
