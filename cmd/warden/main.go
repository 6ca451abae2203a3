// Command warden is Warden's single binary: the control plane, the gateway and
// the operator's and agent's command-line tools. Each command group lives in
// its own file and is added in newRoot.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/warden-run/warden/config"
	"github.com/warden-run/warden/sandbox"
)

func main() {
	sandbox.MaybeInit() // a sandbox's init re-executes this binary: it must run before anything else
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRoot().ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "warden:", err)
		var ec exitCoder
		if errors.As(err, &ec) {
			os.Exit(ec.ExitCode())
		}
		os.Exit(1)
	}
}

// exitCoder is an error that asks for a specific exit status.
type exitCoder interface{ ExitCode() int }

// exitError carries an exit status with its message.
type exitError struct {
	code int
	err  error
}

func (e exitError) Error() string { return e.err.Error() }
func (e exitError) Unwrap() error { return e.err }
func (e exitError) ExitCode() int { return e.code }

// app holds what every command shares: the global flags.
type app struct {
	dir          string // data directory
	controlPlane string // control-plane URL override
	logLevel     string
}

func (a *app) dataDir() config.Dir { return config.Dir(a.dir) }

func newRoot() *cobra.Command {
	a := &app{}
	root := &cobra.Command{
		Use:   "warden",
		Short: "Warden: a zero-trust runtime for AI agents",
		Long: `Warden gives every AI agent a verifiable identity, a short-lived grant per task,
a sandbox for its tools, inspection of everything it reads and sends, memory
that cannot be silently poisoned, and containment at machine speed.

The data directory (--dir, or $WARDEN_HOME, or ./.warden) holds the
configuration (warden.yaml), the database, the keys and the operator credential.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&a.dir, "dir", config.DefaultDir(), "data directory (default $WARDEN_HOME or ./.warden)")
	root.PersistentFlags().StringVar(&a.controlPlane, "control-plane", "", "control-plane URL (default: from the credential or the data directory's warden.yaml)")
	root.PersistentFlags().StringVar(&a.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	root.AddCommand(
		sandboxCmd(a),
		versionCmd(),
		inspectCmd(a),
		initCmd(a),
		serveCmd(a),
		agentCmd(a),
		adminCmd(a),
		taskCmd(a),
		authorizeCmd(a),
		demoCmd(a),
		mcpCmd(a),
		demoToolCmd(),
		auditCmd(a),
		policyCmd(a),
		respondCmd(a),
		approvalsCmd(a),
		toolsCmd(a),
		scanCmd(a),
		memoryCmd(a),
		redteamCmd(a),
		assessCmd(a),
	)
	return root
}

func versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print Warden's version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintln(cmd.OutOrStdout(), "warden", version)
			return nil
		},
	}
}

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"
