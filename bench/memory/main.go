// Command memory is the agent-memory benchmark. In one run on this machine
// it measures the per-call latency (p50, p99) of knowledge-graph writes
// (create_entities, add_observations) and reads (search_nodes, read_graph on
// a graph of a few hundred entities) against the plain npm
// @modelcontextprotocol/server-memory and against Warden's memory server
// (every write signed, chained and recorded in a real audit log; every read
// verified), both over stdio, so that the transport is the same; and the
// time `warden memory verify` takes over a store of 100,000 entries, each
// stage on its own, with the signature cache cold.
//
//	go run ./bench/memory [-calls 500] [-warmup 50] [-rounds 5] [-entities 300] \
//	    [-targets server-memory,warden,warden-sync] [-verify-entries 100000] [-verify-namespaces 100]
//
// Run it from the repository: it finds testdata/npm from the working
// directory (`make deps` installs it). Warden's memory server runs in a
// child process, this binary re-executed with -serve-warden.
package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"github.com/warden-run/warden/bench/internal/machine"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/warden-run/warden/audit"
	"github.com/warden-run/warden/config"
	"github.com/warden-run/warden/inspect"
	"github.com/warden-run/warden/internal/mcptest"
	"github.com/warden-run/warden/memory"
	"github.com/warden-run/warden/store"
	"github.com/warden-run/warden/tier"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "bench/memory:", err)
		os.Exit(1)
	}
}

// options are the command's flags.
type options struct {
	calls, warmup, rounds, entities int
	verifyEntries, verifyNamespaces int
	targets                         []string

	serveWarden string // internal: serve Warden's memory over stdio with its data in this directory
	auditMode   string // internal: the child's audit durability
}

// Targets, in the order columns are printed; the first is the baseline.
var allTargets = []string{"server-memory", "warden", "warden-sync"}

func parseOptions(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("memory", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&o.calls, "calls", 500, "measured calls per operation per target")
	fs.IntVar(&o.warmup, "warmup", 50, "warm-up calls per operation per target")
	fs.IntVar(&o.rounds, "rounds", 5, "split each operation's calls into this many rounds, alternating targets")
	fs.IntVar(&o.entities, "entities", 300, "entities in the graph before the reads (3 observations each, a chain of relations)")
	fs.IntVar(&o.verifyEntries, "verify-entries", 100000, "entries in the store whose verification is timed (0: skip)")
	fs.IntVar(&o.verifyNamespaces, "verify-namespaces", 100, "namespaces they are spread over")
	only := fs.String("targets", strings.Join(allTargets, ","), "comma-separated targets, from: "+strings.Join(allTargets, ", ")+" (empty: verification only)")
	fs.StringVar(&o.serveWarden, "serve-warden", "", "internal: serve Warden's memory over stdio, its data in this directory")
	fs.StringVar(&o.auditMode, "audit-mode", "async", "internal: the served memory's audit log durability (async|sync)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if o.serveWarden != "" {
		if o.auditMode != string(tier.AuditAsync) && o.auditMode != string(tier.AuditSync) {
			return nil, fmt.Errorf("-audit-mode %q: want async or sync", o.auditMode)
		}
		return o, nil
	}
	if o.calls < 1 || o.warmup < 0 || o.rounds < 1 || o.rounds > o.calls || o.entities < 50 {
		return nil, errors.New("-calls and -rounds must be at least 1 (rounds at most calls), -warmup at least 0, -entities at least 50")
	}
	if o.verifyEntries < 0 || o.verifyEntries > 0 && (o.verifyNamespaces < 1 || o.verifyNamespaces > o.verifyEntries) {
		return nil, errors.New("-verify-entries must be 0 or more, spread over 1 to that many -verify-namespaces")
	}
	for _, s := range strings.Split(*only, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if !slices.Contains(allTargets, s) {
			return nil, fmt.Errorf("-targets: unknown target %q (have %s)", s, strings.Join(allTargets, ", "))
		}
	}
	for _, s := range allTargets {
		if slices.Contains(strings.Split(*only, ","), s) {
			o.targets = append(o.targets, s)
		}
	}
	if len(o.targets) == 0 && o.verifyEntries == 0 {
		return nil, errors.New("nothing to measure: no -targets and -verify-entries 0")
	}
	return o, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseOptions(args, stderr)
	if err != nil {
		return err
	}
	if o.serveWarden != "" {
		return serveWarden(ctx, o.serveWarden, tier.AuditMode(o.auditMode))
	}
	fmt.Fprintf(stdout, "memory benchmark: %s %s/%s, %d CPUs (%s), load average %s\n",
		runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), machine.CPUModel(), machine.LoadAvg())
	if len(o.targets) > 0 {
		if err := latency(ctx, o, stdout, stderr); err != nil {
			return err
		}
	}
	if o.verifyEntries > 0 {
		if err := verification(ctx, o, stdout); err != nil {
			return fmt.Errorf("verification: %w", err)
		}
	}
	fmt.Fprintf(stdout, "load average at the end: %s\n", machine.LoadAvg())
	return nil
}

// serveWarden is the child: Warden's memory server as a deployment builds
// it (a real store and audit log, the injection detector for quarantine),
// served over stdio.
func serveWarden(ctx context.Context, dir string, mode tier.AuditMode) error {
	db, err := store.Open(ctx, filepath.Join(dir, "warden.db"))
	if err != nil {
		return err
	}
	defer db.Close()
	akey, err := audit.EnsureKey(filepath.Join(dir, "checkpoint.key"))
	if err != nil {
		return err
	}
	quiet := slog.New(slog.DiscardHandler)
	log, err := audit.Open(ctx, filepath.Join(dir, "audit"), audit.Options{Key: akey, Origin: "bench.test/warden/audit", Mode: mode, Logger: quiet})
	if err != nil {
		return err
	}
	defer log.Close(context.Background())
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	st, err := memory.OpenStore(ctx, memory.StoreOptions{DB: db, Key: key, Events: log})
	if err != nil {
		return err
	}
	insp, err := inspect.New(tier.For(tier.Foundation), config.Inspect{})
	if err != nil {
		return err
	}
	srv, err := memory.NewServer(memory.Options{Store: st, Detector: insp.Detector(), Events: log, Log: quiet})
	if err != nil {
		return err
	}
	return srv.MCP().Run(ctx, &mcp.StdioTransport{})
}

// target is one memory server under measurement, over stdio.
type target struct {
	name    string
	label   string
	session *mcp.ClientSession
	calls   int // for unique call ids
	n       map[string]int
	lat     map[string][]time.Duration
}

// ops are the measured operations, in the order they run: reads on the
// populated graph first, then the writes that grow it.
var ops = []string{"search_nodes", "read_graph", "create_entities", "add_observations"}

// searchTags is how many distinct tags the entities' observations carry: a
// search for one matches entities/searchTags entities.
const searchTags = 50

// args returns the i-th call's arguments of op.
func args(op string, i, entities int) map[string]any {
	switch op {
	case "search_nodes":
		return map[string]any{"query": fmt.Sprintf("tag-%02d", i%searchTags)}
	case "read_graph":
		return map[string]any{}
	case "create_entities":
		return map[string]any{"entities": []map[string]any{{"name": fmt.Sprintf("new-%d", i), "entityType": "note",
			"observations": []string{fmt.Sprintf("written in the write phase, call %d", i)}}}}
	case "add_observations":
		return map[string]any{"observations": []map[string]any{{"entityName": fmt.Sprintf("entity-%d", i%entities),
			"contents": []string{fmt.Sprintf("observation %d, added later", i)}}}}
	}
	panic("unknown op " + op)
}

// call makes one tool call as the bench agent. Both servers get the same
// _meta (the gateway's caller context, which Warden's needs and the npm
// server ignores), so that the bytes on the wire match.
func (t *target) call(ctx context.Context, tool string, args map[string]any) (*mcp.CallToolResult, error) {
	t.calls++
	c := memory.Caller{Agent: "spiffe://bench.test/agent/bench", Name: "bench", Task: "t_bench", Session: "s_bench", Call: fmt.Sprintf("c%d", t.calls)}
	r, err := t.session.CallTool(ctx, &mcp.CallToolParams{Name: tool, Arguments: args, Meta: mcp.Meta{memory.MetaCaller: c}})
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", t.name, tool, err)
	}
	if r.IsError {
		return nil, fmt.Errorf("%s %s: %s", t.name, tool, text(r))
	}
	return r, nil
}

// next makes op's next call, timed when lat is not nil.
func (t *target) next(ctx context.Context, op string, entities int, timed bool) error {
	i := t.n[op]
	t.n[op]++
	start := time.Now()
	_, err := t.call(ctx, op, args(op, i, entities))
	if timed {
		t.lat[op] = append(t.lat[op], time.Since(start))
	}
	return err
}

func text(r *mcp.CallToolResult) string {
	var b strings.Builder
	for _, c := range r.Content {
		if t, ok := c.(*mcp.TextContent); ok {
			b.WriteString(t.Text)
		}
	}
	return b.String()
}

// graphSize parses a read's answer: how many entities and relations.
func graphSize(r *mcp.CallToolResult) (int, int, error) {
	var g struct {
		Entities  []json.RawMessage `json:"entities"`
		Relations []json.RawMessage `json:"relations"`
	}
	for _, c := range r.Content {
		if t, ok := c.(*mcp.TextContent); ok {
			if err := json.Unmarshal([]byte(t.Text), &g); err != nil {
				return 0, 0, fmt.Errorf("the answer is not a graph: %w", err)
			}
			return len(g.Entities), len(g.Relations), nil
		}
	}
	return 0, 0, errors.New("the answer holds no text")
}

// start launches a target's server and connects to it.
func start(ctx context.Context, name string, m *mcptest.Modules, tmp string, stderr io.Writer) (*target, error) {
	var cmd *exec.Cmd
	label := name
	switch name {
	case "server-memory":
		c, err := m.Memory(filepath.Join(tmp, "server-memory.jsonl"))
		if err != nil {
			return nil, err
		}
		cmd = c.Cmd(ctx)
		v, _ := m.PackageVersion(mcptest.PkgMemory)
		label = "server-memory " + v
		stderr = dropLines{w: stderr, text: "running on stdio"} // its greeting
	case "warden", "warden-sync":
		exe, err := os.Executable()
		if err != nil {
			return nil, err
		}
		mode := map[string]string{"warden": "async", "warden-sync": "sync"}[name]
		dir := filepath.Join(tmp, name)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
		cmd = exec.CommandContext(ctx, exe, "-serve-warden", dir, "-audit-mode", mode)
		label = "warden (audit " + mode + ")"
	}
	cmd.Stderr = stderr
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "bench-memory", Version: "1"}, nil).Connect(ctx, &mcp.CommandTransport{Command: cmd}, nil)
	if err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	return &target{name: name, label: label, session: cs, n: map[string]int{}, lat: map[string][]time.Duration{}}, nil
}

// populate writes the graph the reads run on: entities one per call, as an
// agent records facts, and a chain of relations in a few calls.
func (t *target) populate(ctx context.Context, entities int) error {
	for i := range entities {
		if _, err := t.call(ctx, "create_entities", map[string]any{"entities": []map[string]any{{
			"name": fmt.Sprintf("entity-%d", i), "entityType": "customer",
			"observations": []string{fmt.Sprintf("entity-%d signed up in 2025", i), fmt.Sprintf("tag-%02d", i%searchTags),
				fmt.Sprintf("prefers email; account manager is entity-%d", (i*7)%entities)}}}}); err != nil {
			return err
		}
	}
	for from := 1; from < entities; from += 50 {
		var rs []map[string]any
		for i := from; i < min(from+50, entities); i++ {
			rs = append(rs, map[string]any{"from": fmt.Sprintf("entity-%d", i), "to": fmt.Sprintf("entity-%d", i-1), "relationType": "refers"})
		}
		if _, err := t.call(ctx, "create_relations", map[string]any{"relations": rs}); err != nil {
			return err
		}
	}
	r, err := t.call(ctx, "read_graph", map[string]any{})
	if err != nil {
		return err
	}
	ne, nr, err := graphSize(r)
	if err != nil {
		return fmt.Errorf("%s: %w", t.name, err)
	}
	if ne != entities || nr != entities-1 {
		return fmt.Errorf("%s: the populated graph has %d entities and %d relations, want %d and %d", t.name, ne, nr, entities, entities-1)
	}
	r, err = t.call(ctx, "search_nodes", args("search_nodes", 7, entities))
	if err != nil {
		return err
	}
	if ne, _, err = graphSize(r); err != nil || ne != entities/searchTags {
		return fmt.Errorf("%s: a search found %d entities (%v), want %d", t.name, ne, err, entities/searchTags)
	}
	return nil
}

func latency(ctx context.Context, o *options, stdout, stderr io.Writer) error {
	var m *mcptest.Modules
	if slices.Contains(o.targets, "server-memory") {
		var err error
		if m, err = mcptest.Find(ctx, "."); err != nil {
			return err
		}
	}
	tmp, err := os.MkdirTemp("", "bench-memory-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	var ts []*target
	defer func() {
		for _, t := range ts {
			t.session.Close()
		}
	}()
	for _, name := range o.targets {
		t, err := start(ctx, name, m, tmp, stderr)
		if err != nil {
			return err
		}
		ts = append(ts, t)
	}
	for _, t := range ts {
		if err := t.populate(ctx, o.entities); err != nil {
			return fmt.Errorf("populating: %w", err)
		}
	}
	if m != nil {
		fmt.Fprintf(stdout, "node %s; ", m.NodeVersion())
	}
	fmt.Fprintf(stdout, "%d calls per operation per target, sequential, after %d warm-up, in %d rounds alternating targets\n",
		o.calls, o.warmup, o.rounds)
	fmt.Fprintf(stdout, "graph before the reads: %d entities (3 observations each), %d relations; a search matches %d entities\n\n",
		o.entities, o.entities-1, o.entities/searchTags)
	for _, op := range ops {
		for _, t := range ts {
			for range o.warmup {
				if err := t.next(ctx, op, o.entities, false); err != nil {
					return err
				}
			}
		}
		for r := range o.rounds {
			n := o.calls / o.rounds
			if r < o.calls%o.rounds {
				n++
			}
			for _, t := range ts {
				for range n {
					if err := t.next(ctx, op, o.entities, true); err != nil {
						return err
					}
				}
			}
		}
	}
	printLatency(stdout, ts)
	before := o.entities + (o.entities+48)/50 // one entry per write call
	fmt.Fprintf(stdout, "\nadded: Warden's p50 minus server-memory's (ratio in parentheses). Warden's namespace holds %d entries during the reads\n", before)
	fmt.Fprintf(stdout, "and grows to %d during the writes (to %d entities); every call re-reads and re-hashes all of them, and records one audit event.\n",
		before+2*(o.warmup+o.calls), o.entities+o.warmup+o.calls)
	return nil
}

func printLatency(w io.Writer, ts []*target) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	head := "operation\t"
	for i, t := range ts {
		head += t.label + " p50\tp99\t"
		if i > 0 && ts[0].name == "server-memory" {
			head += "added\t"
		}
	}
	fmt.Fprintln(tw, head)
	for _, op := range ops {
		line := op + "\t"
		var base time.Duration
		for i, t := range ts {
			p50, p99 := machine.Percentile(t.lat[op], 50), machine.Percentile(t.lat[op], 99)
			line += fmt.Sprintf("%s\t%s\t", ms(p50), ms(p99))
			if i == 0 {
				base = p50
			} else if ts[0].name == "server-memory" {
				line += fmt.Sprintf("%+.2f ms (%.1fx)\t", float64(p50-base)/1e6, float64(p50)/float64(max(base, 1)))
			}
		}
		fmt.Fprintln(tw, line)
	}
	tw.Flush()
}

// dropLines writes what it is given except writes holding text.
type dropLines struct {
	w    io.Writer
	text string
}

func (d dropLines) Write(b []byte) (int, error) {
	if strings.Contains(string(b), d.text) {
		return len(b), nil
	}
	return d.w.Write(b)
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/1e6) }
