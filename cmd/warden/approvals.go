package main

import (
	"context"
	"fmt"
	"github.com/warden-run/warden/controlplane"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/warden-run/warden/approval"
)

func approvalsCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "approvals",
		Short: "List, approve and deny tool calls held for a human",
		Long: `Some calls wait for a human: the sensitive calls of an agent a detection
playbook put under require_approval, destructive calls at the Optimized tier,
calls a control refers to a human. A held call waits (30 s by default); one
that times out stays open, and the identical retry goes through once approved.

An approval is bound to the exact call (tool and arguments, agent and task)
and releases it once. Only an operator identity (/admin/) may decide: these
commands use the operator credential in the data directory (or --creds).`,
	}
	var creds string
	cmd.PersistentFlags().StringVar(&creds, "creds", "", "operator credential directory (default <data dir>/admin)")
	cmd.AddCommand(approvalsListCmd(a, &creds), approvalsShowCmd(a, &creds), approvalsDecideCmd(a, &creds, true), approvalsDecideCmd(a, &creds, false))
	return cmd
}

func approvalsListCmd(a *app, creds *string) *cobra.Command {
	var status, output string
	var all bool
	var limit int
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List held calls (open ones by default)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			return a.withAdmin(cmd, *creds, func(ctx context.Context, c *controlplane.Client) error {
				if all {
					status = ""
				}
				as, err := c.Approvals(ctx, status, limit)
				if err != nil {
					return err
				}
				if output == "json" {
					return printJSON(cmd.OutOrStdout(), as)
				}
				if len(as) == 0 {
					fmt.Fprintln(cmd.OutOrStdout(), "no approvals")
					return nil
				}
				tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tSTATUS\tAGENT\tTOOL\tRULE\tEXPIRES\tARGUMENTS")
				for _, x := range as {
					args := x.Arguments
					if len(args) > 60 {
						args = args[:60] + "…"
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", x.ID, x.Status, x.Agent, x.Tool, orDash(x.Rule),
						x.ExpiresAt.Local().Format(time.RFC3339), args)
				}
				return tw.Flush()
			})
		},
	}
	cmd.Flags().StringVar(&status, "status", "pending", "pending, approved, used, denied or expired")
	cmd.Flags().BoolVar(&all, "all", false, "every status")
	cmd.Flags().IntVar(&limit, "limit", 100, "at most this many, newest first")
	outputFlag(cmd, &output)
	return cmd
}

func approvalsShowCmd(a *app, creds *string) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "show ID",
		Short: "Show a held call in full",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			return a.withAdmin(cmd, *creds, func(ctx context.Context, c *controlplane.Client) error {
				x, err := c.Approval(ctx, args[0])
				if err != nil {
					return err
				}
				if output == "json" {
					return printJSON(cmd.OutOrStdout(), x)
				}
				printApproval(cmd.OutOrStdout(), x)
				return nil
			})
		},
	}
	outputFlag(cmd, &output)
	return cmd
}

func approvalsDecideCmd(a *app, creds *string, approve bool) *cobra.Command {
	var note, output string
	use, short := "deny ID", "Refuse a held call"
	if approve {
		use, short = "approve ID", "Release a held call (this exact call, once)"
	}
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			return a.withAdmin(cmd, *creds, func(ctx context.Context, c *controlplane.Client) error {
				x, err := c.DecideApproval(ctx, args[0], approve, note)
				if err != nil {
					return err
				}
				if output == "json" {
					return printJSON(cmd.OutOrStdout(), x)
				}
				printApproval(cmd.OutOrStdout(), x)
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&note, "note", "", "why, for the record")
	outputFlag(cmd, &output)
	return cmd
}

func printApproval(w io.Writer, x *approval.Approval) {
	fmt.Fprintf(w, "approval %s: %s\n", x.ID, x.Status)
	fmt.Fprintf(w, "  agent     %s\n  task      %s\n  tool      %s\n  arguments %s\n", x.Agent, orDash(x.Task), x.Tool, x.Arguments)
	fmt.Fprintf(w, "  call hash %s\n  held by   %s: %s\n", x.CallHash, orDash(x.Rule), x.Reason)
	fmt.Fprintf(w, "  requested %s, expires %s\n", x.CreatedAt.Local().Format(time.RFC3339), x.ExpiresAt.Local().Format(time.RFC3339))
	if x.DecidedAt != nil {
		fmt.Fprintf(w, "  decided   %s by %s", x.DecidedAt.Local().Format(time.RFC3339), x.DecidedBy)
		if x.Note != "" {
			fmt.Fprintf(w, " (%s)", x.Note)
		}
		fmt.Fprintln(w)
	}
	if x.UsedAt != nil {
		fmt.Fprintf(w, "  used      %s\n", x.UsedAt.Local().Format(time.RFC3339))
	}
}
