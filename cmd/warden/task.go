package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/warden-run/warden/config"
	"github.com/warden-run/warden/controlplane"
	"github.com/warden-run/warden/grant"
	"github.com/warden-run/warden/identity"
)

func taskCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "task",
		Short: "Open tasks and manage their grants",
		Long: `A task is one unit of work an agent does. Its grant is the only permission the
agent holds for it: which tools, with which argument constraints, for how many
calls, until when. Grants are checked on every call, revocable at once, and
only ever narrowed when delegated.

Operators use the credential in the data directory (or --creds); an agent
opens and completes its own tasks with its own credential (--creds DIR).`,
	}
	var creds string
	cmd.PersistentFlags().StringVar(&creds, "creds", "", "credential directory (default <data dir>/admin; an agent's own to act as the agent)")
	cmd.AddCommand(taskGrantCmd(a, &creds), taskListCmd(a, &creds), taskShowCmd(a, &creds), taskEndCmd(a, &creds, "complete"),
		taskEndCmd(a, &creds, "revoke"), taskDelegateCmd(a, &creds))
	return cmd
}

// scopeFlags are the flags that say what a grant allows.
type scopeFlags struct {
	allow     []string
	scopeFile string
}

func (f *scopeFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringArrayVar(&f.allow, "allow", nil, `a tool the task may call: TOOL or TOOL:CONSTRAINTS (repeatable), e.g.
  --allow 'search.*'
  --allow 'files.read_file:{"path": {"path_within": ["/data"]}}'
  --allow '{"tool": "payments.send", "args": {"to": {"const": "acct-42"}}, "budget": 3}'`)
	cmd.Flags().StringVar(&f.scopeFile, "scope", "", "a JSON file holding the whole scope (a list of entries)")
}

func (f *scopeFlags) scope() (grant.Scope, error) {
	var s grant.Scope
	if f.scopeFile != "" {
		b, err := os.ReadFile(f.scopeFile)
		if err != nil {
			return nil, fmt.Errorf("reading scope: %w", err)
		}
		dec := json.NewDecoder(strings.NewReader(string(b)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&s); err != nil {
			return nil, fmt.Errorf("%s: want a JSON list of {\"tool\", \"args\", \"budget\"}: %w", f.scopeFile, err)
		}
	}
	for _, a := range f.allow {
		e, err := parseAllow(a)
		if err != nil {
			return nil, err
		}
		s = append(s, e)
	}
	if len(s) == 0 {
		return nil, errors.New("say what the task may call with --allow (or --scope FILE)")
	}
	return s, nil
}

// parseAllow reads one --allow value: TOOL, TOOL:{constraints} or a whole
// entry as JSON.
func parseAllow(v string) (grant.Entry, error) {
	var e grant.Entry
	if strings.HasPrefix(strings.TrimSpace(v), "{") {
		dec := json.NewDecoder(strings.NewReader(v))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&e); err != nil {
			return e, fmt.Errorf("--allow %s: not a scope entry: %w", v, err)
		}
		return e, nil
	}
	tool, constraints, has := strings.Cut(v, ":")
	e.Tool = tool
	if has {
		if err := json.Unmarshal([]byte(constraints), &e.Args); err != nil {
			return e, fmt.Errorf("--allow %s: constraints after ':' must be a JSON object of argument -> constraint: %w", v, err)
		}
	}
	return e, nil
}

// printTaskResponse prints a new task, writing the grant to out if given.
func printTaskResponse(w io.Writer, resp *controlplane.TaskResponse, out, format string) error {
	if out != "" {
		if err := config.WriteFileAtomic(out, []byte(resp.Grant+"\n"), 0o600); err != nil {
			return err
		}
	}
	if format == "json" {
		return printJSON(w, resp)
	}
	t := resp.Task
	fmt.Fprintf(w, "task %s opened for %s\n", t.ID, t.Agent)
	fmt.Fprintf(w, "  expires %s, %d calls, delegation depth %d\n", t.ExpiresAt.Local().Format(time.RFC3339), t.Budget, t.Depth)
	for _, e := range t.Scope {
		fmt.Fprintf(w, "  allow %s\n", describeEntry(e))
	}
	if out != "" {
		fmt.Fprintf(w, "grant written to %s\n", out)
	} else {
		fmt.Fprintf(w, "grant: %s\n", resp.Grant)
	}
	return nil
}

func describeEntry(e grant.Entry) string {
	s := e.Tool
	if len(e.Args) > 0 {
		b, _ := json.Marshal(e.Args)
		s += " " + string(b)
	}
	if e.Budget > 0 {
		s += fmt.Sprintf(" (at most %d calls)", e.Budget)
	}
	return s
}

func taskGrantCmd(a *app, creds *string) *cobra.Command {
	var (
		req         controlplane.TaskRequest
		sf          scopeFlags
		ttl         time.Duration
		out, format string
	)
	cmd := &cobra.Command{
		Use:   "grant --agent NAME --intent TEXT --allow TOOL[:CONSTRAINTS]... [--ttl 15m] [--budget 50]",
		Short: "Open a task and mint its grant",
		Long: `grant opens a task for an agent and mints its grant: a signed token bound to
the agent's key, so that it is useless to anyone else. Tool patterns are
path.Match globs over server.tool ids; constraints are JSON Schema fragments
per argument (enum, const, pattern, minimum, maximum, maxLength, ...) plus
path_within and url_host_in, which parse before they compare. Tools that
policy forbids for the agent whatever the arguments are refused here.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(format); err != nil {
				return err
			}
			var err error
			if req.Allow, err = sf.scope(); err != nil {
				return err
			}
			if ttl > 0 {
				req.TTL = ttl.String()
			}
			return a.withAdmin(cmd, *creds, func(ctx context.Context, c *controlplane.Client) error {
				resp, err := c.OpenTask(ctx, req)
				if err != nil {
					return err
				}
				return printTaskResponse(cmd.OutOrStdout(), resp, out, format)
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&req.Agent, "agent", "", "the agent the task is for (an agent opening its own task may omit it)")
	f.StringVar(&req.Intent, "intent", "", "what the task is for (required)")
	f.DurationVar(&ttl, "ttl", 0, "lifetime (default 15m, at most the tier's ceiling)")
	f.IntVar(&req.Budget, "budget", 0, "calls the grant allows (default 100)")
	f.IntVar(&req.Delegation, "delegation", 0, "how many times it may be delegated")
	f.StringSliceVar(&req.Egress, "egress", nil, "host its arguments may point at (api.example.com, *.example.com; repeatable): inspection blocks any other")
	f.StringVar(&out, "out", "", "write the grant to this file (0600) instead of printing it")
	sf.add(cmd)
	outputFlag(cmd, &format)
	return cmd
}

func taskListCmd(a *app, creds *string) *cobra.Command {
	var agent, format string
	var open bool
	cmd := &cobra.Command{
		Use:   "list [--agent NAME] [--open]",
		Short: "List tasks, newest first (an agent sees its own)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(format); err != nil {
				return err
			}
			return a.withAdmin(cmd, *creds, func(ctx context.Context, c *controlplane.Client) error {
				tasks, err := c.ListTasks(ctx, agent, open)
				if err != nil {
					return err
				}
				if format == "json" {
					return printJSON(cmd.OutOrStdout(), tasks)
				}
				tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "TASK\tSTATUS\tAGENT\tCALLS\tEXPIRES\tPARENT\tINTENT")
				for _, t := range tasks {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%d/%d\t%s\t%s\t%s\n", t.ID, t.Status, agentName(t.Agent), t.Used, t.Budget,
						t.ExpiresAt.Local().Format(time.DateTime), t.Parent, t.Intent)
				}
				return tw.Flush()
			})
		},
	}
	cmd.Flags().StringVar(&agent, "agent", "", "only this agent's tasks")
	cmd.Flags().BoolVar(&open, "open", false, "only open tasks")
	outputFlag(cmd, &format)
	return cmd
}

func agentName(id string) string {
	if sid, err := spiffeid.FromString(id); err == nil {
		if _, name, err := identity.RoleOf(sid); err == nil {
			return name
		}
	}
	return id
}

func taskShowCmd(a *app, creds *string) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "show ID",
		Short: "Show a task and its scope",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(format); err != nil {
				return err
			}
			return a.withAdmin(cmd, *creds, func(ctx context.Context, c *controlplane.Client) error {
				t, err := c.GetTask(ctx, args[0])
				if err != nil {
					return err
				}
				if format == "json" {
					return printJSON(cmd.OutOrStdout(), t)
				}
				w := cmd.OutOrStdout()
				fmt.Fprintf(w, "task %s (%s", t.ID, t.Status)
				if t.StatusReason != "" {
					fmt.Fprintf(w, ": %s", t.StatusReason)
				}
				fmt.Fprintf(w, ")\n  agent %s\n  intent %s\n  requested by %s\n", t.Agent, t.Intent, t.Requester)
				if t.Parent != "" {
					fmt.Fprintf(w, "  delegated from %s\n", t.Parent)
				}
				fmt.Fprintf(w, "  %d of %d calls used, delegation depth %d, expires %s\n", t.Used, t.Budget, t.Depth, t.ExpiresAt.Local().Format(time.RFC3339))
				for _, e := range t.Scope {
					fmt.Fprintf(w, "  allow %s\n", describeEntry(e))
				}
				if len(t.Egress) > 0 {
					fmt.Fprintf(w, "  egress only to %s\n", strings.Join(t.Egress, ", "))
				}
				return nil
			})
		},
	}
	outputFlag(cmd, &format)
	return cmd
}

func taskEndCmd(a *app, creds *string, verb string) *cobra.Command {
	var reason string
	short := "Complete a task: its grant and every grant delegated from it end at once"
	if verb == "revoke" {
		short = "Revoke a task and every task delegated from it (operators)"
	}
	cmd := &cobra.Command{
		Use:   verb + " ID",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withAdmin(cmd, *creds, func(ctx context.Context, c *controlplane.Client) error {
				var (
					t   *grant.Task
					err error
				)
				if verb == "revoke" {
					t, err = c.RevokeTask(ctx, args[0], reason)
				} else {
					t, err = c.CompleteTask(ctx, args[0])
				}
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "task %s is %s\n", t.ID, t.Status)
				return nil
			})
		},
	}
	if verb == "revoke" {
		cmd.Flags().StringVar(&reason, "reason", "", "why (recorded)")
	}
	return cmd
}

func taskDelegateCmd(a *app, creds *string) *cobra.Command {
	var (
		req                    controlplane.DelegateRequest
		sf                     scopeFlags
		ttl                    time.Duration
		grantFile, out, format string
	)
	cmd := &cobra.Command{
		Use:   "delegate ID --creds DIR --grant FILE --to AGENT --intent TEXT --allow ...",
		Short: "Agent side: hand part of a task to another agent (only ever narrower)",
		Long: `delegate exchanges the parent grant the calling agent holds for a child grant
for another agent (RFC 8693 token-exchange semantics). The child names its
parent and records who delegated; every ancestor's constraints and budget are
checked together with the child's on every call, so a delegation can only
narrow. Tools the parent does not hold are refused.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(format); err != nil {
				return err
			}
			if *creds == "" || grantFile == "" || req.To == "" {
				return errors.New("--creds (the delegating agent's), --grant and --to are required")
			}
			tok, err := readGrant(grantFile)
			if err != nil {
				return err
			}
			req.Grant = tok
			if req.Allow, err = sf.scope(); err != nil {
				return err
			}
			if ttl > 0 {
				req.TTL = ttl.String()
			}
			return a.withAdmin(cmd, *creds, func(ctx context.Context, c *controlplane.Client) error {
				resp, err := c.DelegateTask(ctx, args[0], req)
				if err != nil {
					return err
				}
				return printTaskResponse(cmd.OutOrStdout(), resp, out, format)
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&grantFile, "grant", "", "file holding the parent grant")
	f.StringVar(&req.To, "to", "", "the agent to delegate to")
	f.StringVar(&req.Intent, "intent", "", "what the sub-task is for (required)")
	f.DurationVar(&ttl, "ttl", 0, "lifetime (cut to the parent's)")
	f.IntVar(&req.Budget, "budget", 0, "calls (at most what the parent has left)")
	f.IntVar(&req.Delegation, "delegation", 0, "how many more times it may be delegated")
	f.StringSliceVar(&req.Egress, "egress", nil, "host within the parent's egress allow-list (repeatable; none inherits the parent's)")
	f.StringVar(&out, "out", "", "write the child grant to this file (0600) instead of printing it")
	sf.add(cmd)
	outputFlag(cmd, &format)
	return cmd
}

func readGrant(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("reading grant: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

func authorizeCmd(a *app) *cobra.Command {
	var (
		req                 controlplane.AuthorizeRequest
		agent, grantFile    string
		args, creds, format string
	)
	cmd := &cobra.Command{
		Use:   "authorize --agent NAME --grant FILE --tool SERVER.TOOL [--args JSON] [--label L]...",
		Short: "Ask the decision point about one call, as if the agent made it over mTLS",
		Long: `authorize asks the control plane's decision point (POST /v1/authorize) whether
the agent may make this call under this grant: the grant (scope, constraints,
binding, revocation, budget) and organisation policy must both permit. It
prints the decision with every reason and the policies and grant entry that
decided. The call is counted against the grant's budget when allowed, and the
decision is recorded, exactly as a gateway's would be.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(format); err != nil {
				return err
			}
			if agent == "" || grantFile == "" || req.Tool == "" {
				return errors.New("--agent, --grant and --tool are required")
			}
			tok, err := readGrant(grantFile)
			if err != nil {
				return err
			}
			req.Grant = tok
			if args != "" {
				if !json.Valid([]byte(args)) {
					return fmt.Errorf("--args is not JSON: %s", args)
				}
				req.Arguments = json.RawMessage(args)
			}
			return a.withAdmin(cmd, creds, func(ctx context.Context, c *controlplane.Client) error {
				ag, err := c.GetAgent(ctx, agent)
				if err != nil {
					return err
				}
				req.Agent = ag.SPIFFEID
				req.Proof.MTLSThumbprint = ag.KeyThumbprint // as if the agent presented its enrolled key
				d, err := c.Authorize(ctx, req)
				if err != nil {
					return err
				}
				w := cmd.OutOrStdout()
				if format == "json" {
					if err := printJSON(w, d); err != nil {
						return err
					}
				} else {
					verdict := "ALLOW"
					if !d.Allow {
						verdict = "DENY"
					}
					fmt.Fprintf(w, "%s %s (%s)\n", verdict, req.Tool, d.Code)
					for _, r := range d.Reasons {
						fmt.Fprintf(w, "  %s %s: %s", r.Source, r.Code, r.Message)
						if r.Policy != "" {
							fmt.Fprintf(w, " [policy %s]", r.Policy)
						}
						fmt.Fprintln(w)
					}
				}
				if !d.Allow {
					return exitError{code: 1, err: fmt.Errorf("denied: %s", d.Code)}
				}
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&agent, "agent", "", "the agent's name")
	f.StringVar(&grantFile, "grant", "", "file holding the grant")
	f.StringVar(&req.Tool, "tool", "", "the tool, server.tool")
	f.StringVar(&args, "args", "", "the call's arguments as a JSON object")
	f.StringArrayVar(&req.Labels, "label", nil, "a risk label of the tool (reads, writes, egress, destructive, untrusted_output); none means all five")
	f.StringVar(&creds, "creds", "", "operator or gateway credential directory (default <data dir>/admin)")
	outputFlag(cmd, &format)
	return cmd
}
