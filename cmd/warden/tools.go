package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/spf13/cobra"

	"github.com/warden-run/warden/config"
	"github.com/warden-run/warden/gateway"
	"github.com/warden-run/warden/internal/setup"
	"github.com/warden-run/warden/supply"
)

func toolsCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "tools",
		Short: "Pin upstream tools in warden.lock, review changes, approve them",
		Long: `warden.lock (in the data directory unless supply.lock says otherwise) pins,
per upstream server, what it is (its command and a digest of every file it
runs, its npm package with its dependencies, or its URL) and what its tools
are (digests of name, description, schemas and annotations). The gateway
holds back every tool that differs from the lock, or is new, until it is
approved, and refuses to launch a server whose files differ.

lock, diff and approve connect to the configured upstreams themselves
(stdio servers in their sandbox, after checking that they do not fetch at
launch), so the tools they see are those of the code they pin.`,
	}
	var noSandbox bool
	cmd.PersistentFlags().BoolVar(&noSandbox, "no-sandbox", false, "launch stdio servers as plain processes (default: in their sandbox)")

	lock := &cobra.Command{
		Use:   "lock",
		Short: "Connect to every configured upstream and write warden.lock",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.withListing(cmd, nil, noSandbox, func(d *setup.Deployment, st *supply.Store, l *listing) error {
				out := cmd.OutOrStdout()
				if err := l.complete(); err != nil {
					return err
				}
				old, _ := st.Current()
				_, after, err := st.Update(func(lk *supply.Lock) error {
					*lk = *supply.NewLock()
					for _, name := range l.order {
						if _, err := supply.ApproveIn(lk, name, "", l.tools[name], l.ids[name]); err != nil {
							return err
						}
					}
					return nil
				})
				if err != nil {
					return err
				}
				for _, name := range l.order {
					ch, _ := supply.Diff(old, name, l.tools[name], l.ids[name])
					fmt.Fprintf(out, "%s: %d tools pinned", name, len(after.Servers[name].Tools))
					if old != nil {
						fmt.Fprintf(out, " (%d changes from the previous lock)", len(ch))
					}
					fmt.Fprintln(out)
				}
				printFindings(out, l.findings, supply.SeverityMedium)
				fmt.Fprintf(out, "wrote %s: review it, then commit it\n", st.Path())
				return nil
			})
		},
	}

	diff := &cobra.Command{
		Use:   "diff [SERVER[.TOOL]]",
		Short: "Show how the upstreams differ from warden.lock (exit status 1 if they do)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			server, tool := "", ""
			if len(args) == 1 {
				server, tool, _ = strings.Cut(args[0], ".")
			}
			var only []string
			if server != "" {
				only = []string{server}
			}
			return a.withListing(cmd, only, noSandbox, func(_ *setup.Deployment, st *supply.Store, l *listing) error {
				lk, err := st.Current()
				if err != nil && err != supply.ErrNoLock {
					return err
				}
				n := 0
				for _, name := range l.order {
					if l.errs[name] != nil {
						fmt.Fprintf(cmd.OutOrStdout(), "! %s: %v\n", name, l.errs[name])
						n++
						continue
					}
					ch, err := supply.Diff(lk, name, l.tools[name], l.ids[name])
					if err != nil {
						return err
					}
					if tool != "" {
						ch = slices.DeleteFunc(ch, func(c supply.Change) bool { return c.Tool != tool })
					}
					if len(ch) > 0 {
						supply.RenderDiff(cmd.OutOrStdout(), ch)
					}
					n += len(ch)
				}
				if n == 0 {
					fmt.Fprintln(cmd.OutOrStdout(), "no changes: the upstreams match warden.lock")
					return nil
				}
				return exitError{1, fmt.Errorf("%d differences from %s", n, st.Path())}
			})
		},
	}

	var dryRun bool
	approve := &cobra.Command{
		Use:   "approve SERVER[.TOOL]",
		Short: "Show what changed and pin it in warden.lock (a whole server also re-pins its files)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			server, tool, _ := strings.Cut(args[0], ".")
			return a.withListing(cmd, []string{server}, noSandbox, func(_ *setup.Deployment, st *supply.Store, l *listing) error {
				if err := l.complete(); err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				var id *supply.Identity
				if tool == "" {
					id = l.ids[server]
				}
				lk, err := st.Current()
				if err != nil && err != supply.ErrNoLock {
					return err
				}
				ch, err := supply.Diff(lk, server, l.tools[server], id)
				if err != nil {
					return err
				}
				if tool != "" {
					ch = slices.DeleteFunc(ch, func(c supply.Change) bool { return c.Tool != tool })
				}
				supply.RenderDiff(out, ch)
				printFindings(out, l.findingsOf(server, tool), supply.SeverityMedium)
				if dryRun || len(ch) == 0 {
					return nil
				}
				approved, err := supply.Approve(st, server, tool, l.tools[server], id)
				if err != nil {
					return err
				}
				fmt.Fprintf(out, "approved %d changes in %s; a running gateway picks them up within seconds\n", len(approved), st.Path())
				return nil
			})
		},
	}
	approve.Flags().BoolVar(&dryRun, "dry-run", false, "show the diff only")

	var output string
	status := &cobra.Command{
		Use:   "status",
		Short: "Summarise warden.lock (without connecting to anything)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			cfg, err := config.Load(a.dataDir().Config())
			if err != nil {
				return err
			}
			st := supply.NewStore(cfg.Supply.LockPath(a.dataDir()))
			lk, err := st.Current()
			if err != nil {
				return err
			}
			if output == "json" {
				return printJSON(cmd.OutOrStdout(), lk)
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "%s (format %d)\n", st.Path(), lk.Version)
			for _, u := range cfg.Gateway.Upstreams {
				sl := lk.Servers[u.Name]
				if sl == nil {
					fmt.Fprintf(out, "  %-16s NOT PINNED: its tools are held back (warden tools approve %s)\n", u.Name, u.Name)
					continue
				}
				what := sl.Identity.Transport
				if n := sl.Identity.NPM; n != nil {
					what = fmt.Sprintf("npm %s@%s, %d packages", n.Name, n.Version, len(n.Packages))
				} else if sl.Identity.URL != "" {
					what += " " + sl.Identity.URL
				}
				fmt.Fprintf(out, "  %-16s %3d tools  %s\n", u.Name, len(sl.Tools), what)
			}
			return nil
		},
	}
	outputFlag(status, &output)
	cmd.AddCommand(lock, diff, approve, status)
	return cmd
}

// listing is what the configured upstreams offer now.
type listing struct {
	order    []string
	ids      map[string]*supply.Identity
	tools    map[string][]*mcp.Tool
	errs     map[string]error
	findings []supply.Finding
}

// complete refuses a listing with upstreams that could not be pinned or
// listed.
func (l *listing) complete() error {
	var bad []string
	for _, n := range l.order {
		if l.errs[n] != nil {
			bad = append(bad, fmt.Sprintf("%s: %v", n, l.errs[n]))
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("nothing written; some upstreams could not be pinned:\n  %s", strings.Join(bad, "\n  "))
	}
	return nil
}

func (l *listing) findingsOf(server, tool string) []supply.Finding {
	var out []supply.Finding
	for _, f := range l.findings {
		if f.Server == server && (tool == "" || f.Tool == tool) {
			out = append(out, f)
		}
	}
	return out
}

// withListing opens the deployment, pins every configured upstream (or
// those named in only) as it is now, connects to them through a gateway
// whose launcher verifies against exactly those pins, lists their tools,
// and hands the result to fn.
func (a *app) withListing(cmd *cobra.Command, only []string, noSandbox bool, fn func(*setup.Deployment, *supply.Store, *listing) error) error {
	ctx := cmd.Context()
	d, err := setup.Open(ctx, a.dataDir(), a.logger())
	if err != nil {
		return err
	}
	defer d.Close()
	var ups []config.Upstream
	for _, u := range d.Config.Gateway.Upstreams {
		if len(only) == 0 || slices.Contains(only, u.Name) {
			ups = append(ups, u)
		}
	}
	if len(only) > 0 && len(ups) == 0 {
		return fmt.Errorf("no upstream %q in %s", only[0], d.Dir.Config())
	}
	d.Config.Gateway.Upstreams = ups
	l := &listing{ids: map[string]*supply.Identity{}, tools: map[string][]*mcp.Tool{}, errs: map[string]error{}}
	pins := map[string]*supply.Identity{}
	var connect []config.Upstream
	for _, u := range ups {
		l.order = append(l.order, u.Name)
		id, err := supply.IdentityOf(u)
		if err != nil {
			l.errs[u.Name] = err
			continue
		}
		l.ids[u.Name], pins[u.Name] = id, id
		connect = append(connect, u)
	}
	d.Config.Gateway.Upstreams = connect
	var launch gateway.Launcher
	if !noSandbox {
		if launch, err = d.SandboxLauncher(); err != nil {
			return err
		}
	}
	sup, err := d.NewSupplyPinnedTo(launch, pins)
	if err != nil {
		return err
	}
	gw, err := d.NewGatewayWith(sup.Launcher, nil)
	if err != nil {
		return err
	}
	sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	gw.Start(sctx)
	cancel()
	defer gw.Close()
	for _, t := range gw.Tools() {
		l.tools[t.Server] = append(l.tools[t.Server], t.Upstream)
	}
	var all []supply.Listed
	for _, u := range connect {
		if len(l.tools[u.Name]) == 0 {
			l.errs[u.Name] = fmt.Errorf("listed no tools (is it down? run with --log-level debug)")
		}
		all = append(all, supply.Listed{Server: u.Name, Tools: l.tools[u.Name]})
	}
	l.findings = sup.Scanner.Scan(all)
	st := supply.NewStore(d.Config.Supply.LockPath(d.Dir))
	return fn(d, st, l)
}

// printFindings lists the scanner's findings at or above min.
func printFindings(w io.Writer, fs []supply.Finding, min supply.Severity) {
	n := 0
	for _, f := range fs {
		if f.Severity < min {
			continue
		}
		if n == 0 {
			fmt.Fprintln(w, "findings:")
		}
		n++
		fmt.Fprintf(w, "  %-8s %s %s (%s): %s\n           %s\n", f.Severity, f.ID(), f.Rule, f.Field, f.Reason, f.Excerpt)
	}
}
