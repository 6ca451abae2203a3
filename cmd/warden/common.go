package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/warden-run/warden/config"
	"github.com/warden-run/warden/controlplane"
	"github.com/warden-run/warden/credential"
)

// logger returns the process logger: text to stderr at the --log-level.
func (a *app) logger() *slog.Logger {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(a.logLevel)); err != nil {
		lvl = slog.LevelInfo
	}
	return a.loggerAt(lvl)
}

func (a *app) loggerAt(lvl slog.Level) *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
}

// initialised reports whether the data directory holds a configuration.
func (a *app) initialised() bool {
	_, err := os.Stat(a.dataDir().Config())
	return err == nil
}

// controlPlaneURL is --control-plane, else the credential's record, else the
// local configuration's listen address.
func (a *app) controlPlaneURL(cred *credential.Credential) (string, error) {
	if a.controlPlane != "" {
		return a.controlPlane, nil
	}
	if cred != nil && cred.Meta.ControlPlane != "" {
		return cred.Meta.ControlPlane, nil
	}
	cfg, err := config.Load(a.dataDir().Config())
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("no control plane address: pass --control-plane https://host:port (no data directory at %s)", a.dir)
		}
		return "", err
	}
	return "https://" + cfg.ControlPlane.Listen, nil
}

// adminClient is an API client authenticated with the operator credential
// in the data directory's admin/ (or --creds).
func (a *app) adminClient(credsDir string) (*controlplane.Client, error) {
	if credsDir == "" {
		credsDir = a.dataDir().Admin()
	}
	cred, err := credential.Load(credsDir)
	if err != nil {
		return nil, fmt.Errorf("loading operator credential: %w (run `warden init`, or pass --creds)", err)
	}
	if time.Now().After(cred.Chain[0].NotAfter) {
		return nil, fmt.Errorf("operator credential in %s expired at %s: issue a new one with `warden admin credentials`", credsDir, cred.Chain[0].NotAfter.Format(time.RFC3339))
	}
	url, err := a.controlPlaneURL(cred)
	if err != nil {
		return nil, err
	}
	return controlplane.NewClient(url, cred)
}

// requestContext bounds one CLI request to the control plane.
func requestContext(cmd *cobra.Command) (context.Context, context.CancelFunc) {
	return context.WithTimeout(cmd.Context(), 30*time.Second)
}

// printJSON writes v as indented JSON.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// outputFlag adds -o/--output text|json.
func outputFlag(cmd *cobra.Command, p *string) {
	cmd.Flags().StringVarP(p, "output", "o", "text", "output format: text or json")
}

func checkOutput(o string) error {
	if o != "text" && o != "json" {
		return fmt.Errorf("--output %q: want text or json", o)
	}
	return nil
}

// withAdmin runs fn with a control-plane client holding the operator
// credential in credsDir (the data directory's when empty) and a context
// bounding the request; the client is closed after.
func (a *app) withAdmin(cmd *cobra.Command, credsDir string, fn func(context.Context, *controlplane.Client) error) error {
	c, err := a.adminClient(credsDir)
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := requestContext(cmd)
	defer cancel()
	return fn(ctx, c)
}
