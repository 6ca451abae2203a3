package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/warden-run/warden/posture"
	"github.com/warden-run/warden/sandbox"
	"github.com/warden-run/warden/tier"
)

// Exit statuses of `warden assess`.
const (
	assessExitTarget = 1 // assessed, and --target is not met
	assessExitFailed = 2 // could not assess
)

func assessCmd(a *app) *cobra.Command {
	var target, format, framework, out string
	var noProbe bool
	cmd := &cobra.Command{
		Use:   "assess [--target foundation|advanced|optimized] [--format table|markdown|json|sarif|html|oscal] [--framework NAME]",
		Short: "Assess the deployment: the tier each phase reaches, from live checks",
		Long: `Assess the deployment in the data directory against Warden's controls
catalogue: eight phases (identity, access scoping, sandboxing, input controls,
output controls, memory safeguards, monitoring and response, supply chain and
governance), each with controls at three tiers. Every control is a check over
live state: the registered agents and the SVIDs issued to them, the open
grants, the active Cedar policy, warden.yaml as Warden loads it, the sandbox
mechanisms this host puts in force (an empty sandbox is launched to see), the
rule pack, the memory store (every entry verified), the audit log and
warden.lock. What an operator merely asserts earns nothing.

A phase reaches the highest tier whose controls, and those of every tier
below, all pass; the deployment's tier is the lowest any phase reaches. Each
failing control is printed with its evidence (the live values) and the change
that fixes it.

It reads only: it takes none of the locks a running 'warden serve' holds and
writes nothing to the data directory.

Formats: table (default), markdown, json (schema: posture/report.schema.json),
sarif (SARIF 2.1.0, one rule per control), html (one self-contained page),
oscal (OSCAL assessment results). --framework shows one framework's view: the
controls mapped to it, with their item ids. Frameworks: ` + strings.Join(posture.FrameworkKeys(), ", ") + `.

Exit status: 0 assessed (whatever the tier reached), 1 --target not met,
2 could not assess.`,
		Example: `  warden assess
  warden assess --target advanced --format sarif --out assess.sarif   # a CI gate
  warden assess --framework hipaa --format markdown
  warden assess --format oscal --out assessment-results.json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fail := func(err error) error { return exitError{code: assessExitFailed, err: err} }
			var want tier.Tier
			if target != "" {
				t, err := tier.Parse(target)
				if err != nil {
					return fail(fmt.Errorf("--target: %w", err))
				}
				want = t
			}
			if !validFormat(format) {
				return fail(fmt.Errorf("--format %q: want one of %s", format, strings.Join(posture.Formats(), ", ")))
			}
			o := posture.Options{Log: a.logger()}
			if noProbe {
				o.Probe = func(context.Context) (sandbox.Mechanisms, error) {
					return sandbox.Mechanisms{}, errors.New("--no-probe")
				}
			}
			r, err := posture.AssessDir(cmd.Context(), a.dataDir(), o)
			if err != nil {
				return fail(fmt.Errorf("assessing %s: %w", a.dir, err))
			}
			view, err := r.Filter(framework)
			if err != nil {
				return fail(fmt.Errorf("--framework: %w", err))
			}
			w := cmd.OutOrStdout()
			var f *os.File
			if out != "" {
				if f, err = os.Create(out); err != nil {
					return fail(err)
				}
				w = f
			}
			bw := bufio.NewWriter(w)
			err = view.Write(bw, format)
			if ferr := bw.Flush(); err == nil {
				err = ferr
			}
			if f != nil {
				if cerr := f.Close(); err == nil {
					err = cerr
				}
			}
			if err != nil {
				return fail(fmt.Errorf("writing the report: %w", err))
			}
			if want != 0 && !r.Meets(want) {
				var below []string
				for _, ph := range r.Phases {
					if ph.Reached < want {
						below = append(below, fmt.Sprintf("%s (%s)", ph.Phase.ID, posture.TierName(ph.Reached)))
					}
				}
				return exitError{code: assessExitTarget, err: fmt.Errorf("target %s not met: overall %s; below target: %s",
					want, posture.TierName(r.Overall), strings.Join(below, ", "))}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&target, "target", "", "exit 1 unless every phase reaches this tier: foundation, advanced or optimized")
	cmd.Flags().StringVar(&format, "format", "table", "output format: "+strings.Join(posture.Formats(), ", "))
	cmd.Flags().StringVar(&framework, "framework", "", "show one framework's view: "+strings.Join(posture.FrameworkKeys(), ", "))
	cmd.Flags().StringVar(&out, "out", "", "write the report to this file instead of standard output")
	cmd.Flags().BoolVar(&noProbe, "no-probe", false, "do not launch an empty sandbox to see the host's mechanisms; use the audit log's newest launch")
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return exitError{code: assessExitFailed, err: err} })
	return cmd
}

func validFormat(f string) bool {
	for _, x := range posture.Formats() {
		if f == x {
			return true
		}
	}
	return false
}
