package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/spf13/cobra"

	"github.com/warden-run/warden/config"
	"github.com/warden-run/warden/events"
	"github.com/warden-run/warden/inspect"
	"github.com/warden-run/warden/sandbox"
	"github.com/warden-run/warden/supply"
)

func scanCmd(a *app) *cobra.Command {
	var output, failOn string
	var noLaunch, noSandbox bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "scan [CONFIG...]",
		Short: "Scan MCP client configurations and their servers' tools for poisoning, offline",
		Long: `scan reads MCP client configurations (Claude Desktop, Claude Code, Cursor,
VS Code; with no argument, those found in the home and working directories),
flags servers launched through a package fetcher (npx -y, uvx, ...), launches
each other stdio server locally in a sandbox without network to list its
tools, and runs the description scanner over every tool: hidden instructions,
invisible Unicode, shadowing of other tools, sensitive paths and secrets,
exfiltration URLs, instructions in parameter descriptions, name collisions.

Nothing goes over the network: servers reached by URL are not contacted, and
servers that would download their package are not launched. The exit status
is 1 when a finding is at or above --fail-on.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != "text" && output != "json" && output != "sarif" {
				return fmt.Errorf("--output %q: want text, json or sarif", output)
			}
			fail, err := supply.ParseSeverity(failOn)
			if err != nil {
				return fmt.Errorf("--fail-on: %w", err)
			}
			if len(args) == 0 {
				home, _ := os.UserHomeDir()
				cwd, _ := os.Getwd()
				if args = supply.DefaultClientConfigs(home, cwd); len(args) == 0 {
					return errors.New("no MCP client configuration found; name one")
				}
			}
			var servers []supply.ClientServer
			for _, p := range args {
				b, err := os.ReadFile(p)
				if err != nil {
					return fmt.Errorf("reading %s: %w", p, err)
				}
				s, err := supply.ParseClientConfig(p, b)
				if err != nil {
					return err
				}
				servers = append(servers, s...)
			}
			det, err := inspect.NewDetector(inspect.DetectorOptions{})
			if err != nil {
				return err
			}
			sc, err := supply.NewScanner(supply.ScannerOptions{Detector: det})
			if err != nil {
				return err
			}
			var sbx *sandbox.Launcher
			if !noLaunch && !noSandbox {
				if sbx, err = sandbox.New(sandbox.Options{Sink: discardSink{}, Logger: a.logger().With("component", "sandbox")}); err != nil {
					return err
				}
				defer sbx.Close()
			}
			rep := supply.ScanReport{}
			var listed []supply.Listed
			names := map[string]int{}
			source := map[string]string{}
			for _, s := range servers {
				// Two configurations may name servers alike: keep ids apart.
				if n := names[s.Name]; n > 0 {
					s.Name = fmt.Sprintf("%s~%d", s.Name, n+1)
				}
				names[s.Name]++
				source[s.Name] = s.Source
				rep.Findings = append(rep.Findings, supply.ConfigFindings(s)...)
				ss := supply.ScannedServer{ClientServer: s}
				switch {
				case s.Type != "stdio":
					ss.Status, ss.Detail = "not_launched", "reached over the network ("+s.URL+"): not contacted"
				case noLaunch:
					ss.Status, ss.Detail = "not_launched", "--no-launch"
				case supply.CheckFetcher(s.Command, s.Args) != nil:
					ss.Status, ss.Detail = "not_launched", "it downloads its package at launch"
				default:
					ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
					tools, err := listClientServer(ctx, sbx, s)
					cancel()
					if err != nil {
						ss.Status, ss.Detail = "failed", err.Error()
						break
					}
					ss.Status, ss.Tools = "listed", len(tools)
					listed = append(listed, supply.Listed{Server: s.Name, Tools: tools})
				}
				rep.Servers = append(rep.Servers, ss)
			}
			rep.Findings = append(rep.Findings, sc.Scan(listed)...)
			out := cmd.OutOrStdout()
			switch output {
			case "json":
				if err := printJSON(out, rep); err != nil {
					return err
				}
			case "sarif":
				if err := supply.WriteSARIF(out, rep.Findings, func(s string) string { return source[s] }, version); err != nil {
					return err
				}
			default:
				for _, s := range rep.Servers {
					fmt.Fprintf(out, "%-20s %-12s %3d tools  %s\n", s.Name, s.Status, s.Tools, s.Detail)
				}
				printFindings(out, rep.Findings, supply.SeverityLow)
			}
			if supply.Max(rep.Findings, nil) >= fail {
				return exitError{1, fmt.Errorf("findings at or above %s", fail)}
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text, json or sarif")
	cmd.Flags().StringVar(&failOn, "fail-on", "high", "exit 1 on a finding at or above this severity")
	cmd.Flags().BoolVar(&noLaunch, "no-launch", false, "do not launch stdio servers (check the configurations only)")
	cmd.Flags().BoolVar(&noSandbox, "no-sandbox", false, "launch stdio servers as plain processes (default: in a sandbox without network)")
	cmd.Flags().DurationVar(&timeout, "timeout", 60*time.Second, "time to start and list one server")
	return cmd
}

// listClientServer launches one stdio server (sandboxed without network
// when sbx is set, its code and the directories it names visible read-only)
// and lists its tools.
func listClientServer(ctx context.Context, sbx *sandbox.Launcher, s supply.ClientServer) ([]*mcp.Tool, error) {
	u := config.Upstream{Name: "scan", Stdio: &config.StdioUpstream{Command: s.Command, Args: s.Args, Env: s.Env, Dir: s.Cwd}}
	id, err := supply.IdentityOf(u)
	if err != nil {
		return nil, err
	}
	args := append([]string{id.Files[0].Path}, s.Args...)
	var t mcp.Transport
	if sbx != nil {
		prof := sandbox.DefaultProfile()
		prof.ReadOnly = id.ReadOnlyPaths()
		for _, a := range s.Args {
			if filepath.IsAbs(a) {
				if fi, err := os.Stat(a); err == nil && fi.IsDir() {
					prof.ReadOnly = append(prof.ReadOnly, filepath.Clean(a))
				}
			}
		}
		prof.Env = s.Env
		p, err := sbx.StartStdio(ctx, sandbox.Spec{Name: "scan", Profile: prof, Args: args, Stderr: io.Discard, Tool: s.Name})
		if err != nil {
			return nil, err
		}
		defer func() {
			p.Kill(sandbox.ExitSessionEnd, "scan done")
			// Wait returns once the sandbox (its cgroup, its scratch
			// directory) is removed; the command exits right after, and
			// without waiting every scanned server left its cgroups behind.
			p.Wait()
		}()
		t = &mcp.IOTransport{Reader: p.Stdout(), Writer: p.Stdin()}
	} else {
		c := exec.CommandContext(ctx, args[0], args[1:]...)
		c.Dir = s.Cwd
		c.Env = []string{"PATH=" + os.Getenv("PATH")}
		for k, v := range s.Env {
			c.Env = append(c.Env, k+"="+v)
		}
		t = &mcp.CommandTransport{Command: c}
	}
	cl := mcp.NewClient(&mcp.Implementation{Name: "warden-scan", Version: version}, nil)
	cs, err := cl.Connect(ctx, t, nil)
	if err != nil {
		return nil, fmt.Errorf("connecting: %w", err)
	}
	defer cs.Close()
	if cs.InitializeResult() == nil || cs.InitializeResult().Capabilities == nil || cs.InitializeResult().Capabilities.Tools == nil {
		return nil, nil
	}
	var tools []*mcp.Tool
	for tool, err := range cs.Tools(ctx, nil) {
		if err != nil {
			return nil, fmt.Errorf("listing tools: %w", err)
		}
		if len(tools) >= supply.MaxToolsPerServer {
			return nil, fmt.Errorf("more than %d tools", supply.MaxToolsPerServer)
		}
		tools = append(tools, tool)
	}
	return tools, nil
}

// discardSink drops the sandbox's events: a scan records nothing.
type discardSink struct{}

func (discardSink) Emit(context.Context, events.Event) error { return nil }
