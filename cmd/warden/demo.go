package main

import (
	"fmt"
	"log/slog"
	"os"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/spf13/cobra"

	"github.com/warden-run/warden/internal/demo"
	"github.com/warden-run/warden/internal/demotools"
)

func demoCmd(a *app) *cobra.Command {
	var keep string
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run a whole Warden deployment with a well-behaved and a compromised agent",
		Long: `demo runs Warden's main job on embedded defaults, in one process, with no
network and no npm, at the Advanced tier: it starts the control plane and
the MCP gateway, pins and launches small tool servers (a mailbox, a file
store, a payments ledger, a malicious weather server, a reports server) as
stdio upstreams in their sandboxes, serves Warden's own memory, registers
and enrols an agent through the real API, grants it one task, and drives
scripted agents through the gateway: one that does its task, one that obeys
the prompt injection planted in the mailbox (and tries to poison memory),
and a later task that reads memory. It also shows a rug pull held back and a
tampered server refused, then verifies the audit log. It prints what was
allowed and what was denied, and why.

The data directory is temporary unless --keep DIR is given; Warden's own
logs are shown with --log-level.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			exe, err := os.Executable()
			if err != nil {
				return fmt.Errorf("finding the warden binary to launch the demo tools: %w", err)
			}
			log := a.logger()
			if !cmd.Flags().Changed("log-level") {
				// The narration is the output: what Warden logs (a tool held
				// back, a launch refused) it also tells. --log-level shows it.
				log = slog.New(slog.DiscardHandler)
			}
			_, err = demo.Run(cmd.Context(), cmd.OutOrStdout(), demo.Options{Exe: exe, Dir: keep, Log: log})
			return err
		},
	}
	cmd.Flags().StringVar(&keep, "keep", "", "use (and keep) this data directory instead of a temporary one")
	return cmd
}

// demoToolCmd serves one demo tool over stdio; the demo's gateway launches it.
func demoToolCmd() *cobra.Command {
	return &cobra.Command{
		Use:    "demo-tool NAME",
		Short:  "Serve a demo tool server over stdio (launched by warden demo)",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := demotools.New(args[0])
			if err != nil {
				return err
			}
			return s.Run(cmd.Context(), &mcp.StdioTransport{})
		},
	}
}
