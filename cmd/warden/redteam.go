package main

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/warden-run/warden/redteam"
)

func redteamCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "redteam",
		Short: "Measure what a hijacked agent could still do under your grants, policy and tier",
		Long: `redteam plays scripted worst-case compromised agents through the real gateway
against simulated tool environments that Warden serves as MCP servers, and
reports attack success and lost utility. The built-in packs cover a
workspace (mail, calendar, drive), banking, team chat, travel booking,
customer records and devops (shell, database, cloud); --scenarios adds your
own, and --policy measures your own Cedar policy. See docs/redteam.md.`,
	}
	cmd.AddCommand(redteamRunCmd(a), redteamListCmd(), redteamValidateCmd())
	return cmd
}

// loadPacks reads the built-in packs (unless builtin is false) and the
// scenario files or directories given.
func loadPacks(builtin bool, paths []string, only []string) ([]*redteam.Pack, error) {
	files := map[string][]byte{}
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		if !fi.IsDir() {
			b, err := os.ReadFile(p)
			if err != nil {
				return nil, err
			}
			files[p] = b
			continue
		}
		found, err := redteam.LoadFS(os.DirFS(p), ".")
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		for n, b := range found {
			files[filepath.Join(p, n)] = b
		}
	}
	var packs []*redteam.Pack
	if builtin {
		b, err := redteam.Builtin()
		if err != nil {
			return nil, err
		}
		packs = append(packs, b...)
	}
	if len(files) > 0 {
		own, err := redteam.ParseFiles(files)
		if err != nil {
			return nil, err
		}
		packs = append(packs, own...)
	}
	if len(only) > 0 {
		var out []*redteam.Pack
		for _, p := range packs {
			if slices.Contains(only, p.Name) {
				out = append(out, p)
			}
		}
		for _, o := range only {
			if !slices.ContainsFunc(out, func(p *redteam.Pack) bool { return p.Name == o }) {
				return nil, fmt.Errorf("no pack %q (see warden redteam list)", o)
			}
		}
		packs = out
	}
	if len(packs) == 0 {
		return nil, fmt.Errorf("no packs to run: give --scenarios, or leave --builtin on")
	}
	return packs, nil
}

func splitList(v []string) []string {
	var out []string
	for _, s := range v {
		for _, x := range strings.Split(s, ",") {
			if x = strings.TrimSpace(x); x != "" {
				out = append(out, x)
			}
		}
	}
	return out
}

func redteamRunCmd(a *app) *cobra.Command {
	var packs, tiers, agents, scenarios []string
	var format, policyFile, jsonOut string
	var builtin, progress bool
	var workers, maxTasks, maxGoals int
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run the red team and print the results",
		Long: `run starts, for each tier, a whole Warden deployment in a temporary directory
(control-plane services, one gateway per worker on loopback, the simulated
environments as streamable-HTTP MCP servers), and plays every agent variant
through every (user task, attacker goal) pair of the packs, and every task
without attack. It needs no data directory and touches no network.

Tiers: foundation, advanced, optimized, and off (Warden's checks off: a grant
of every tool, a permit-all policy, no inspection or taint; the sanity check,
where attacks should nearly all succeed).`,
		Example: `  warden redteam run
  warden redteam run --pack banking --tier optimized --format json
  warden redteam run --scenarios ./my-scenarios --policy ./org.cedar --tier advanced`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ps, err := loadPacks(builtin, scenarios, splitList(packs))
			if err != nil {
				return err
			}
			o := redteam.Options{Packs: ps, Tiers: splitList(tiers), Agents: splitList(agents), Workers: workers,
				MaxTasks: maxTasks, MaxGoals: maxGoals, Log: a.logger()}
			if !cmd.Flags().Changed("log-level") {
				o.Log = slog.New(slog.DiscardHandler) // the report is the output
			}
			if policyFile != "" {
				b, err := os.ReadFile(policyFile)
				if err != nil {
					return err
				}
				o.Policy, o.PolicyName = string(b), policyFile
			}
			if progress {
				o.Progress = func(t string, done, total int) {
					if done%500 == 0 || done == total {
						fmt.Fprintf(cmd.ErrOrStderr(), "%s: %d/%d runs\n", t, done, total)
					}
				}
			}
			switch format {
			case "table", "json", "html":
			default:
				return fmt.Errorf("--format %q: want table, json or html", format)
			}
			rep, err := redteam.Run(cmd.Context(), o)
			if err != nil {
				return err
			}
			if jsonOut != "" {
				f, err := os.Create(jsonOut)
				if err != nil {
					return err
				}
				if err := rep.WriteJSON(f); err != nil {
					f.Close()
					return err
				}
				if err := f.Close(); err != nil {
					return err
				}
			}
			out := cmd.OutOrStdout()
			switch format {
			case "json":
				return rep.WriteJSON(out)
			case "html":
				return rep.WriteHTML(out)
			}
			return rep.WriteTable(out)
		},
	}
	f := cmd.Flags()
	f.StringSliceVar(&packs, "pack", nil, "run only these packs (repeat or comma-separate)")
	f.StringSliceVar(&tiers, "tier", []string{"foundation", "advanced", "optimized"}, "tiers to run at: off, foundation, advanced, optimized")
	f.StringSliceVar(&agents, "agent", nil, "agent variants (default all): "+strings.Join(redteam.Agents, ", "))
	f.StringSliceVar(&scenarios, "scenarios", nil, "your own scenario files or directories of them")
	f.BoolVar(&builtin, "builtin", true, "include the built-in packs")
	f.StringVar(&policyFile, "policy", "", "organisation policy (Cedar) to measure instead of the built-in permit-calls policy")
	f.StringVar(&format, "format", "table", "output: table, json or html")
	f.IntVar(&workers, "workers", 8, "pairs run at once per tier (one gateway each)")
	f.IntVar(&maxTasks, "max-tasks", 0, "take only the first N tasks of each pack")
	f.IntVar(&maxGoals, "max-goals", 0, "take only the first N goals of each pack")
	f.BoolVar(&progress, "progress", false, "report progress on stderr")
	f.StringVar(&jsonOut, "json-out", "", "also write the JSON report to this file")
	return cmd
}

func redteamListCmd() *cobra.Command {
	var scenarios []string
	var builtin bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the packs, with their tasks, goals and pairs",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ps, err := loadPacks(builtin, scenarios, nil)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "pack\ttasks\tgoals\tpairs\tservers\tdescription")
			var t, g, p int
			for _, pk := range ps {
				var servers []string
				for _, s := range pk.Servers {
					servers = append(servers, s.Name)
				}
				fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\t%s\n", pk.Name, len(pk.Tasks), len(pk.Goals), pk.Pairs(), strings.Join(servers, ","), pk.Description)
				t, g, p = t+len(pk.Tasks), g+len(pk.Goals), p+pk.Pairs()
			}
			fmt.Fprintf(tw, "total\t%d\t%d\t%d\t\t\n", t, g, p)
			if err := tw.Flush(); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "\nagents: %s\nattack styles: %s\ntiers: %s\n", strings.Join(redteam.Agents, ", "),
				strings.Join(redteam.Styles, ", "), strings.Join(redteam.Tiers, ", "))
			return nil
		},
	}
	cmd.Flags().StringSliceVar(&scenarios, "scenarios", nil, "your own scenario files or directories of them")
	cmd.Flags().BoolVar(&builtin, "builtin", true, "include the built-in packs")
	return cmd
}

func redteamValidateCmd() *cobra.Command {
	var builtin bool
	cmd := &cobra.Command{
		Use:   "validate [FILE|DIR...]",
		Short: "Check scenario files: format, and that each task and goal can be measured",
		Long: `validate parses scenario files and plays each task and goal straight against
its bare environment: a task's calls must make its check hold, a goal's plan
must make its success hold, no goal may already hold after a task done
faithfully, and every task must read an injection point. With no arguments
it checks the built-in packs.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			ps, err := loadPacks(builtin && len(args) == 0, args, nil)
			if err != nil {
				return err
			}
			var bad []string
			for _, p := range ps {
				if err := redteam.Check(p); err != nil {
					bad = append(bad, fmt.Sprintf("pack %s:\n%v", p.Name, err))
					continue
				}
				fmt.Fprintf(cmd.OutOrStdout(), "pack %s: %d tasks, %d goals, %d pairs: ok\n", p.Name, len(p.Tasks), len(p.Goals), p.Pairs())
			}
			if len(bad) > 0 {
				return exitError{code: 1, err: fmt.Errorf("%s", strings.Join(bad, "\n"))}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&builtin, "builtin", true, "check the built-in packs when no file is given")
	return cmd
}
