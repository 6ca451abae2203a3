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
network and no npm, at the Advanced tier with detection and response on, as
` + "`warden serve`" + ` runs: it starts the control plane and the MCP gateway, pins
(warden.lock) and launches small tool servers in their sandboxes (a mailbox,
a file store, a payments ledger, a malicious weather server, a reports
server), serves Warden's own memory, registers and enrols an agent through
the real API, and drives scripted agents through the gateway: one that does
its task; the same agent, compromised by a prompt injection in its mailbox,
whose attempts are refused and whose task detection contains in
milliseconds; a quieter memory poisoning, refused, quarantined or marked
untrusted, with an operator approving held calls; a later task that reads
memory and is not steered; a rug pull held back and a tampered server
refused. It then verifies the audit log and assesses the deployment
(warden assess). It prints what was allowed and what was denied, and why.

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
