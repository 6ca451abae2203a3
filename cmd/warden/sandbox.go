package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/warden-run/warden/config"
	"github.com/warden-run/warden/events"
	"github.com/warden-run/warden/sandbox"
	"github.com/warden-run/warden/tier"
)

func sandboxCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "sandbox",
		Short: "Run commands confined, and check what this host can confine with",
		Long: `Warden confines the tool servers it launches, and any command given to
"warden sandbox run", with Linux namespaces, a minimal read-only root,
Landlock, seccomp and resource limits; network access leaves only through
Warden's allow-list proxy. Profiles are defined under sandbox.profiles in
warden.yaml; the default profile needs no configuration.`,
	}
	cmd.AddCommand(sandboxRunCmd(a), sandboxCheckCmd(a))
	return cmd
}

// sandboxSetup loads what a sandbox command needs from the data directory,
// which is optional: without one, only the default profile exists.
type sandboxSetup struct {
	cfg  *config.Config // nil without a data directory
	sink events.Sink
	done func()
}

func (a *app) sandboxSetup() (*sandboxSetup, error) {
	s := &sandboxSetup{sink: events.Discard{}, done: func() {}}
	cfg, err := config.Load(a.dataDir().Config())
	if errors.Is(err, fs.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, err
	}
	s.cfg = cfg
	j, err := events.OpenJSONL(a.dataDir().Path(cfg.Events.JSONL))
	if err != nil {
		return nil, err
	}
	s.sink, s.done = j, func() { _ = j.Close() }
	return s, nil
}

// tierFor is --tier, else the configuration's tier, else advanced: without
// configuration a missing mechanism refuses rather than warns.
func (s *sandboxSetup) tierFor(flag string) (tier.Tier, error) {
	if flag != "" {
		return tier.Parse(flag)
	}
	if s.cfg != nil {
		return s.cfg.Tier, nil
	}
	return tier.Advanced, nil
}

func sandboxRunCmd(a *app) *cobra.Command {
	var (
		profile, workspace, tierFlag string
		timeout                      time.Duration
		env                          []string
		verbose                      bool
	)
	cmd := &cobra.Command{
		Use:   "run [--profile P] [--workspace DIR] -- CMD [ARGS...]",
		Short: "Run a command in a sandbox",
		Long: `Run a command in a sandbox. The default profile has no network, sees the
host's system directories read-only and nothing of the invoking user's home
or Warden's data directory, and works in a private, empty /workspace that is
removed afterwards (--workspace mounts a host directory there instead).
The command's exit status is warden's.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := a.sandboxSetup()
			if err != nil {
				return err
			}
			defer s.done()
			prof := sandbox.DefaultProfile()
			name := "default"
			if s.cfg != nil {
				if p, ok := s.cfg.Sandbox.Profile("default"); ok {
					prof = p
				}
			}
			if profile != "" && profile != "default" {
				if s.cfg == nil {
					return fmt.Errorf("profile %q: no warden.yaml in %s defines profiles", profile, a.dir)
				}
				p, ok := s.cfg.Sandbox.Profile(profile)
				if !ok {
					return fmt.Errorf("profile %q is not defined (profiles: %s)", profile, strings.Join(s.cfg.Sandbox.ProfileNames(), ", "))
				}
				prof, name = p, profile
			}
			if timeout > 0 {
				prof.Limits.WallClock = timeout
			}
			for _, kv := range env {
				k, v, ok := strings.Cut(kv, "=")
				if !ok {
					return fmt.Errorf("--env %q: want NAME=value", kv)
				}
				if prof.Env == nil {
					prof.Env = map[string]string{}
				} else {
					prof.Env = copyEnv(prof.Env)
				}
				prof.Env[k] = v
			}
			t, err := s.tierFor(tierFlag)
			if err != nil {
				return err
			}
			l, err := sandbox.New(sandbox.Options{Tier: t, Sink: s.sink, Logger: a.logger(), DataDir: a.dir})
			if err != nil {
				return err
			}
			defer l.Close()
			ex, p, err := l.Run(cmd.Context(), sandbox.Spec{
				Name: name, Profile: prof, Args: args, Workspace: workspace,
				Stdin: os.Stdin, Stdout: cmd.OutOrStdout(), Stderr: cmd.ErrOrStderr(),
			})
			if err != nil {
				return exitError{code: 125, err: err}
			}
			if verbose {
				printMechanisms(cmd.ErrOrStderr(), p.Mechanisms(), l.RequiredMechanisms())
				fmt.Fprintf(cmd.ErrOrStderr(), "sandbox %s: %s\n", p.ID(), ex)
			}
			if !ex.Success() {
				return exitError{code: ex.ExitCode(), err: fmt.Errorf("sandboxed command %s", ex)}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&profile, "profile", "", "sandbox profile from warden.yaml (default: the built-in default profile)")
	f.StringVar(&workspace, "workspace", "", "host directory to mount writable at /workspace (default: a private empty one)")
	f.StringVar(&tierFlag, "tier", "", "tier deciding whether a missing mechanism refuses (advanced, optimized) or warns (foundation); default: warden.yaml's, else advanced")
	f.DurationVar(&timeout, "timeout", 0, "kill the command after this long")
	f.StringArrayVarP(&env, "env", "e", nil, "NAME=value to set in the command's environment (repeatable); nothing is inherited")
	f.BoolVarP(&verbose, "verbose", "v", false, "print the mechanisms in force and how the command ended, on stderr")
	return cmd
}

func copyEnv(m map[string]string) map[string]string {
	out := make(map[string]string, len(m)+1)
	for k, v := range m {
		out[k] = v
	}
	return out
}

func sandboxCheckCmd(a *app) *cobra.Command {
	var tierFlag, output string
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Print which sandbox mechanisms this host supports",
		Long: `Build an empty sandbox with every mechanism attempted, print which were in
force, and say whether the tier would refuse to run tools here. The exit
status is 1 when it would.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			s, err := a.sandboxSetup()
			if err != nil {
				return err
			}
			defer s.done()
			t, err := s.tierFor(tierFlag)
			if err != nil {
				return err
			}
			required := sandbox.Required(tier.For(t))
			// The probe itself runs at Foundation so that it reports
			// rather than refuses.
			l, err := sandbox.New(sandbox.Options{Tier: tier.Foundation, Sink: s.sink, Logger: a.logger(), DataDir: a.dir})
			if err != nil {
				return err
			}
			defer l.Close()
			m, err := l.Check(cmd.Context())
			if err != nil {
				return fmt.Errorf("sandbox check: %w", err)
			}
			missing := m.Missing(required)
			if output == "json" {
				if err := printJSON(cmd.OutOrStdout(), map[string]any{
					"tier": t.String(), "mechanisms": m, "required": required, "missing_required": missing,
				}); err != nil {
					return err
				}
			} else {
				printMechanisms(cmd.OutOrStdout(), m, required)
				if len(missing) == 0 {
					fmt.Fprintf(cmd.OutOrStdout(), "\nAt tier %s, sandboxes can run here.\n", t)
				} else {
					fmt.Fprintf(cmd.OutOrStdout(), "\nAt tier %s, Warden would refuse to run sandboxes here: %s missing.\n", t, strings.Join(missing, ", "))
				}
			}
			if len(missing) > 0 {
				return exitError{code: 1, err: fmt.Errorf("required sandbox mechanisms missing: %s", strings.Join(missing, ", "))}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&tierFlag, "tier", "", "tier to judge against (default: warden.yaml's, else advanced)")
	outputFlag(cmd, &output)
	return cmd
}

func printMechanisms(out io.Writer, m sandbox.Mechanisms, required []string) {
	req := map[string]bool{}
	for _, r := range required {
		req[r] = true
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "MECHANISM\tIN FORCE\tREQUIRED\tDETAIL")
	for _, x := range m.List() {
		on, r := "no", ""
		if x.InForce {
			on = "yes"
		}
		if req[x.Name] {
			r = "required"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", x.Name, on, r, x.Detail)
	}
	_ = w.Flush()
	fmt.Fprintf(out, "Landlock ABI %d", m.LandlockABI)
	if m.UIDMap != "" {
		fmt.Fprintf(out, "; uid map %s (sandbox uid, host uid, count)", m.UIDMap)
	}
	fmt.Fprintln(out)
}
