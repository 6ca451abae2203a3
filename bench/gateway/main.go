// Command gateway is the MCP gateway benchmark: in one run on this machine
// it measures the latency (p50, p99) and throughput of one cheap tool call
// (server-everything's echo, protocol pinned to 2025-11-25) at concurrency 1
// and 8, after a warm-up, directly over stdio and through every proxy that
// can run here: a bare Go-SDK pass-through (the SDK's own floor, stdio and
// streamable HTTP fronts), supergateway 4.0.0 and mcp-proxy 6.7.19 from npm,
// and Warden with every check on (one it starts itself, or a running gateway
// given by -warden-url). It prints
// one table and the ratios the performance targets are stated in.
//
//	go run ./bench/gateway [-calls 2000] [-warmup 200] [-rounds 1] \
//	    [-warden-url URL -warden-creds DIR -warden-grant FILE [-warden-sync-url URL]]
//
// See bench/gateway/README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"github.com/warden-run/warden/bench/internal/machine"
	"io"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/warden-run/warden/internal/mcptest"
	"github.com/warden-run/warden/sandbox"
	"github.com/warden-run/warden/tier"
)

func main() {
	sandbox.MaybeInit() // a Warden child's sandboxed upstreams re-execute this binary as their init
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "bench/gateway:", err)
		os.Exit(1)
	}
}

// options are the command's flags.
type options struct {
	calls, warmup, rounds int
	concurrency           []int
	protocol              string
	message               string
	phaseTimeout          time.Duration
	targets               []string
	markdown              bool

	wardenURL, wardenSyncURL, wardenCreds, wardenGrant, wardenTool string
	serveWarden                                                    string

	servePassthrough string // internal: run as the pass-through child
}

// Target keys for -targets, in the order rows are printed. The default set
// leaves out passthrough-http-json (the SDK's JSON-response mode, measured no
// faster than its SSE responses here).
var (
	allTargets     = []string{"direct", "passthrough-stdio", "passthrough-http", "passthrough-http-json", "supergateway", "mcp-proxy", "warden", "warden-sync"}
	defaultTargets = []string{"direct", "passthrough-stdio", "passthrough-http", "supergateway", "mcp-proxy", "warden", "warden-sync"}
)

func parseOptions(args []string, stderr io.Writer) (*options, []string, error) {
	o := &options{}
	fs := flag.NewFlagSet("gateway", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&o.calls, "calls", 2000, "measured calls per target per concurrency")
	fs.IntVar(&o.warmup, "warmup", 200, "warm-up calls before each measurement")
	fs.IntVar(&o.rounds, "rounds", 1, "repeat every target this many times, interleaved, and report medians")
	conc := fs.String("concurrency", "1,8", "comma-separated concurrency levels (calls in flight on one session)")
	fs.StringVar(&o.protocol, "protocol", "2025-11-25", "MCP protocol version the clients pin")
	fs.StringVar(&o.message, "message", "warden-bench", "echo's message argument")
	fs.DurationVar(&o.phaseTimeout, "phase-timeout", 5*time.Minute, "limit for one warm-up plus measurement")
	only := fs.String("targets", strings.Join(defaultTargets, ","), "comma-separated targets to run, from: "+strings.Join(allTargets, ", "))
	fs.BoolVar(&o.markdown, "markdown", false, "print the table as Markdown (for docs/benchmarks.md)")
	fs.StringVar(&o.wardenURL, "warden-url", "", "streamable HTTP endpoint of a running Warden gateway with every check on and the audit log in async mode")
	fs.StringVar(&o.wardenSyncURL, "warden-sync-url", "", "the same, for a gateway with the audit log in sync mode (optional)")
	fs.StringVar(&o.wardenCreds, "warden-creds", "", "agent credential directory (svid.key, svid.pem, bundle.pem) for mTLS to the gateway")
	fs.StringVar(&o.wardenGrant, "warden-grant", "", "file holding the task grant sent in the Warden-Grant header")
	fs.StringVar(&o.wardenTool, "warden-tool", "everything.echo", "the echo tool's namespaced id behind the gateway")
	fs.StringVar(&o.servePassthrough, "serve-passthrough", "", "internal: serve the Go-SDK pass-through on this front (stdio|http|http-json) for the upstream after --")
	fs.StringVar(&o.serveWarden, "serve-warden", "", "internal: run a whole Warden deployment with the audit log in this mode (async|sync)")
	if err := fs.Parse(args); err != nil {
		return nil, nil, err
	}
	if o.servePassthrough != "" || o.serveWarden != "" {
		return o, fs.Args(), nil
	}
	if fs.NArg() > 0 {
		return nil, nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if o.calls < 1 || o.warmup < 0 || o.rounds < 1 {
		return nil, nil, errors.New("-calls and -rounds must be at least 1, -warmup at least 0")
	}
	for _, s := range strings.Split(*conc, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 || n > 1024 {
			return nil, nil, fmt.Errorf("-concurrency: %q is not a number in 1..1024", s)
		}
		if !slices.Contains(o.concurrency, n) {
			o.concurrency = append(o.concurrency, n)
		}
	}
	var picked []string
	for _, s := range strings.Split(*only, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if !slices.Contains(allTargets, s) {
			return nil, nil, fmt.Errorf("-targets: unknown target %q (have %s)", s, strings.Join(allTargets, ", "))
		}
		picked = append(picked, s)
	}
	for _, s := range allTargets { // table order, whatever the flag's order
		if slices.Contains(picked, s) {
			o.targets = append(o.targets, s)
		}
	}
	if len(o.targets) == 0 {
		return nil, nil, errors.New("-targets: none given")
	}
	if (o.wardenURL != "" || o.wardenSyncURL != "") && (o.wardenCreds == "" || o.wardenGrant == "") {
		return nil, nil, errors.New("-warden-url and -warden-sync-url need -warden-creds and -warden-grant")
	}
	return o, nil, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, rest, err := parseOptions(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if o.servePassthrough != "" {
		return runPassthroughMode(ctx, passthroughFront(o.servePassthrough), rest, o.protocol, stdout)
	}
	if o.serveWarden != "" {
		return runWardenMode(ctx, tier.AuditMode(o.serveWarden), os.Stdin, stdout)
	}

	modules, err := mcptest.Find(ctx, ".")
	if err != nil {
		return fmt.Errorf("%w (run from the repository, after `make deps`)", err)
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("locating this program for the pass-through child: %w", err)
	}
	env := &benchEnv{
		modules:  modules,
		protocol: o.protocol,
		self:     self,
		client:   mcp.NewClient(&mcp.Implementation{Name: "warden-bench", Version: "1"}, nil),
	}

	var rows []*row
	notMeasured := map[string]string{}
	for _, key := range o.targets {
		var t target
		switch key {
		case "direct":
			t = directTarget{}
		case "passthrough-stdio":
			t = passthroughTarget{front: frontStdio}
		case "passthrough-http":
			t = passthroughTarget{front: frontHTTP}
		case "passthrough-http-json":
			t = passthroughTarget{front: frontHTTPJSON}
		case "supergateway":
			t = bridgeTarget{kind: mcptest.Supergateway, version: "4.0.0"}
		case "mcp-proxy":
			t = bridgeTarget{kind: mcptest.MCPProxy, version: "6.7.19"}
		case "warden", "warden-sync":
			mode, url := tier.AuditAsync, o.wardenURL
			if key == "warden-sync" {
				mode, url = tier.AuditSync, o.wardenSyncURL
			}
			if url != "" {
				t = wardenTarget{label: "audit " + string(mode), url: url, credsDir: o.wardenCreds, grantFile: o.wardenGrant, tool: o.wardenTool}
				break
			}
			// No running gateway given: start one, measured in this run.
			wt, stop, err := startWardenHere(mode, env)
			if err != nil {
				return fmt.Errorf("starting Warden (audit %s): %w", mode, err)
			}
			defer stop()
			t = wt
		}
		rows = append(rows, &row{key: key, t: t, phases: map[int][]phase{}})
	}

	fsync, fsyncErr := fsyncP50(".", 200)
	printHeader(stdout, o, modules)

	for round := range o.rounds {
		for _, r := range rows {
			if r.err != nil {
				continue
			}
			fmt.Fprintf(stderr, "round %d/%d: %s (%s)\n", round+1, o.rounds, r.t.Name(), r.t.Front())
			if err := measureTarget(ctx, env, o, r); err != nil {
				r.err = err
				fmt.Fprintf(stderr, "  %s: %v\n", r.t.Name(), err)
			}
			if r.stopErr != nil {
				fmt.Fprintf(stderr, "  %s: stopping: %v\n", r.t.Name(), r.stopErr)
				r.stopErr = nil
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
		}
	}

	rep := newReport(o, rows, fsync, fsyncErr, notMeasured)
	rep.print(stdout)
	return nil
}

// row is one target's measurements across rounds.
type row struct {
	key      string
	t        target
	protocol string // negotiated with the client
	phases   map[int][]phase
	err      error
	stopErr  error // how stopping the target last failed, reported only
}

// phase is one measurement at one concurrency.
type phase struct {
	p50, p99 time.Duration
	rps      float64
	cpu      time.Duration // the proxy process's CPU time per call; 0: not measured
}

func measureTarget(ctx context.Context, env *benchEnv, o *options, r *row) (err error) {
	sctx, cancel := context.WithTimeout(ctx, time.Minute)
	conn, err := r.t.Start(sctx, env)
	cancel()
	if err != nil {
		return err
	}
	defer func() {
		// A server killed after its stdin closed is not a failed measurement.
		if serr := conn.stop(); serr != nil && err == nil {
			r.stopErr = serr
		}
	}()
	if ir := conn.session.InitializeResult(); ir != nil {
		r.protocol = ir.ProtocolVersion
	}
	for _, c := range o.concurrency {
		pctx, cancel := context.WithTimeout(ctx, o.phaseTimeout)
		p, err := measurePhase(pctx, conn, c, o.calls, o.warmup, o.message)
		cancel()
		if err != nil {
			return fmt.Errorf("c=%d: %w", c, err)
		}
		r.phases[c] = append(r.phases[c], p)
	}
	return nil
}

// measurePhase warms up with warmup calls, then makes n calls with c in
// flight at a time, and returns their latency percentiles and rate.
func measurePhase(ctx context.Context, conn *targetConn, c, n, warmup int, message string) (phase, error) {
	params := &mcp.CallToolParams{Name: conn.tool, Arguments: map[string]any{"message": message}}
	want := "Echo: " + message
	if err := callMany(ctx, conn.session, params, want, c, warmup, nil); err != nil {
		return phase{}, fmt.Errorf("warm-up: %w", err)
	}
	lat := make([]time.Duration, n)
	cpu0, cpuErr := processCPU(conn.pid)
	start := time.Now()
	if err := callMany(ctx, conn.session, params, want, c, n, lat); err != nil {
		return phase{}, err
	}
	wall := time.Since(start)
	p := phase{
		p50: machine.Percentile(lat, 50),
		p99: machine.Percentile(lat, 99),
		rps: float64(n) / wall.Seconds(),
	}
	if cpu1, err := processCPU(conn.pid); err == nil && cpuErr == nil {
		p.cpu = (cpu1 - cpu0) / time.Duration(n)
	}
	return p, nil
}

// processCPU is pid's CPU time so far; an error for no process.
func processCPU(pid int) (time.Duration, error) {
	if pid <= 0 {
		return 0, errors.New("no process")
	}
	return machine.ProcessCPU(pid)
}

// callMany makes n calls from c goroutines sharing one session; lat, when
// not nil, receives each call's latency. The first failure stops the rest.
func callMany(ctx context.Context, cs *mcp.ClientSession, params *mcp.CallToolParams, want string, c, n int, lat []time.Duration) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(c, max(n, 1)) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				t0 := time.Now()
				res, err := cs.CallTool(ctx, params)
				d := time.Since(t0)
				if err == nil {
					err = checkEcho(res, want)
				}
				if err != nil {
					cancel(fmt.Errorf("call %d: %w", i, err))
					return
				}
				if lat != nil {
					lat[i] = d
				}
			}
		})
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

func checkEcho(res *mcp.CallToolResult, want string) error {
	if res == nil {
		return errors.New("no result")
	}
	var text strings.Builder
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			text.WriteString(tc.Text)
		}
	}
	if res.IsError {
		return fmt.Errorf("tool error: %s", text.String())
	}
	if !strings.Contains(text.String(), want) {
		return fmt.Errorf("echo answered %q, want %q", text.String(), want)
	}
	return nil
}

func printHeader(w io.Writer, o *options, m *mcptest.Modules) {
	ver := func(pkg string) string {
		v, err := m.PackageVersion(pkg)
		if err != nil {
			return "?"
		}
		return v
	}
	fmt.Fprintf(w, "MCP gateway benchmark: server-everything %s echo, protocol %s pinned by the client\n", ver(mcptest.PkgEverything), o.protocol)
	fmt.Fprintf(w, "%s %s/%s, %d CPUs (%s), node %s; %d calls per target per concurrency after %d warm-up, %d round(s)\n",
		runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), machine.CPUModel(), m.NodeVersion(), o.calls, o.warmup, o.rounds)
}
