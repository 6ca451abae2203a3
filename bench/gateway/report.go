package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Targets the design sets (docs/benchmarks.md and ../shared/design.md,
// "Performance targets").
const (
	targetChecksP50   = 100 * time.Microsecond // Warden's checks over the pass-through, async audit
	targetChecksP99   = 500 * time.Microsecond
	targetSyncExtra   = 100 * time.Microsecond // sync audit: fsync p50 plus this
	targetBridgeRatio = 0.5                    // Warden adds less than half of what a bridge adds
	mcpproxyGoRPS     = 145.0                  // mcpproxy-go at c=8, measured by us and cited
)

// summary is the median over rounds of one target at one concurrency.
type summary struct {
	p50, p99 time.Duration
	rps      float64
	cpu      time.Duration // the proxy process's CPU per call; 0: not measured
	ok       bool
}

type report struct {
	o           *options
	rows        []*row
	fsync       time.Duration
	fsyncErr    error
	notMeasured map[string]string
}

func newReport(o *options, rows []*row, fsync time.Duration, fsyncErr error, notMeasured map[string]string) *report {
	return &report{o: o, rows: rows, fsync: fsync, fsyncErr: fsyncErr, notMeasured: notMeasured}
}

func (r *row) summary(c int) summary {
	ps := r.phases[c]
	if r.err != nil || len(ps) == 0 {
		return summary{}
	}
	p50 := make([]time.Duration, len(ps))
	p99 := make([]time.Duration, len(ps))
	cpu := make([]time.Duration, len(ps))
	rps := make([]float64, len(ps))
	for i, p := range ps {
		p50[i], p99[i], cpu[i], rps[i] = p.p50, p.p99, p.cpu, p.rps
	}
	slices.Sort(p50)
	slices.Sort(p99)
	slices.Sort(cpu)
	slices.Sort(rps)
	return summary{p50: p50[len(p50)/2], p99: p99[len(p99)/2], cpu: cpu[len(cpu)/2], rps: rps[len(rps)/2], ok: true}
}

func (rep *report) find(key string) *row {
	for _, r := range rep.rows {
		if r.key == key {
			return r
		}
	}
	return nil
}

func (rep *report) get(key string, c int) summary {
	if r := rep.find(key); r != nil {
		return r.summary(c)
	}
	return summary{}
}

func ms(d time.Duration) string { return fmt.Sprintf("%.3f ms", float64(d)/float64(time.Millisecond)) }

func signedMS(d time.Duration) string {
	return fmt.Sprintf("%+.3f ms", float64(d)/float64(time.Millisecond))
}

func (rep *report) print(w io.Writer) {
	fmt.Fprintln(w)
	if rep.o.markdown {
		rep.printMarkdown(w)
	} else {
		rep.printText(w)
	}
	fmt.Fprintln(w)
	rep.printChecks(w)
}

func (rep *report) cells(r *row, c int) []string {
	name := r.t.Name()
	if r.err != nil {
		return []string{name, r.t.Front(), "", fmt.Sprint(c), "error: " + oneLine(r.err.Error()), "", "", "", "", ""}
	}
	s := r.summary(c)
	d := rep.get("direct", c)
	addP50, addP99 := "—", "—"
	if d.ok && r.key != "direct" {
		addP50, addP99 = signedMS(s.p50-d.p50), signedMS(s.p99-d.p99)
	}
	cpu := "—"
	if s.cpu > 0 {
		cpu = us(s.cpu)
	}
	return []string{name, r.t.Front(), r.protocol, fmt.Sprint(c), ms(s.p50), ms(s.p99), fmt.Sprintf("%.0f", s.rps), cpu, addP50, addP99}
}

func us(d time.Duration) string { return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond)) }

var headers = []string{"target", "front", "protocol", "c", "p50", "p99", "calls/s", "proxy CPU/call", "added p50", "added p99"}

func (rep *report) printText(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(headers, "\t"))
	for _, c := range rep.o.concurrency {
		for _, r := range rep.rows {
			fmt.Fprintln(tw, strings.Join(rep.cells(r, c), "\t"))
		}
		for _, k := range sortedKeys(rep.notMeasured) {
			fmt.Fprintf(tw, "%s\tstreamable HTTP + mTLS\t\t%d\t%s\t\t\t\t\t\n", k, c, rep.notMeasured[k])
		}
	}
	_ = tw.Flush()
	fmt.Fprintln(w, "added = over direct stdio at the same concurrency; proxy CPU/call = the proxy process's own CPU time (user + system, its children excluded) per measured call")
}

func (rep *report) printMarkdown(w io.Writer) {
	fmt.Fprintf(w, "| %s |\n", strings.Join(headers, " | "))
	fmt.Fprintf(w, "|%s\n", strings.Repeat(" --- |", len(headers)))
	for _, c := range rep.o.concurrency {
		for _, r := range rep.rows {
			fmt.Fprintf(w, "| %s |\n", strings.Join(rep.cells(r, c), " | "))
		}
		for _, k := range sortedKeys(rep.notMeasured) {
			fmt.Fprintf(w, "| %s | streamable HTTP + mTLS | | %d | %s | | | | | |\n", k, c, rep.notMeasured[k])
		}
	}
}

// printChecks prints the ratios the targets are stated in.
func (rep *report) printChecks(w io.Writer) {
	if rep.fsyncErr != nil {
		fmt.Fprintf(w, "fsync p50: %v\n", rep.fsyncErr)
	} else {
		fmt.Fprintf(w, "fsync p50 here (256-byte write + fsync, 200 times): %s; sync-audit target for Warden's checks: p50 < %s\n",
			ms(rep.fsync), ms(rep.fsync+targetSyncExtra))
	}
	for _, c := range rep.o.concurrency {
		fmt.Fprintf(w, "\nc=%d\n", c)
		d := rep.get("direct", c)
		if !d.ok {
			fmt.Fprintln(w, "  no direct stdio measurement: nothing to compare")
			continue
		}
		added := func(key string) (summary, time.Duration, time.Duration, bool) {
			s := rep.get(key, c)
			return s, s.p50 - d.p50, s.p99 - d.p99, s.ok
		}
		pt, ptP50, ptP99, ptOK := added("passthrough-http")
		_, sgP50, _, sgOK := added("supergateway")
		_, mpP50, _, mpOK := added("mcp-proxy")
		if _, p50, p99, ok := added("passthrough-stdio"); ok {
			fmt.Fprintf(w, "  go-sdk pass-through (stdio) adds p50 %s, p99 %s\n", signedMS(p50), signedMS(p99))
		}
		if ptOK {
			fmt.Fprintf(w, "  go-sdk pass-through (streamable HTTP) adds p50 %s, p99 %s; %.0f calls/s\n", signedMS(ptP50), signedMS(ptP99), pt.rps)
		}
		if js, p50, p99, ok := added("passthrough-http-json"); ok {
			fmt.Fprintf(w, "  go-sdk pass-through (streamable HTTP, JSON responses) adds p50 %s, p99 %s; %.0f calls/s\n", signedMS(p50), signedMS(p99), js.rps)
		}
		if sgOK {
			fmt.Fprintf(w, "  supergateway adds p50 %s\n", signedMS(sgP50))
		}
		if mpOK {
			fmt.Fprintf(w, "  mcp-proxy adds p50 %s\n", signedMS(mpP50))
		}
		if ptOK {
			if sgOK {
				fmt.Fprintf(w, "  (pass-through (HTTP) added / supergateway added = %s)\n", ratio(ptP50, sgP50))
			}
			if mpOK {
				fmt.Fprintf(w, "  (pass-through (HTTP) added / mcp-proxy added = %s)\n", ratio(ptP50, mpP50))
			}
		}
		for _, k := range []string{"warden", "warden-sync"} {
			wr := rep.find(k)
			if wr == nil {
				continue
			}
			ws, wP50, wP99, ok := added(k)
			if !ok {
				fmt.Fprintf(w, "  %s: not measured (%v)\n", wr.t.Name(), wr.err)
				continue
			}
			fmt.Fprintf(w, "  %s adds p50 %s, p99 %s over direct; %.0f calls/s\n", wr.t.Name(), signedMS(wP50), signedMS(wP99), ws.rps)
			if ptOK && ws.cpu > 0 && pt.cpu > 0 {
				fmt.Fprintf(w, "    CPU per call in the proxy process: %s, the pass-through's %s (checks: %+.0f µs)\n",
					us(ws.cpu), us(pt.cpu), float64(ws.cpu-pt.cpu)/float64(time.Microsecond))
			}
			if ptOK {
				cp50, cp99 := ws.p50-pt.p50, ws.p99-pt.p99
				if k == "warden" {
					fmt.Fprintf(w, "    checks (over the pass-through, streamable HTTP): p50 %s (target < %s: %s), p99 %s (target < %s: %s)\n",
						signedMS(cp50), ms(targetChecksP50), verdict(cp50 < targetChecksP50),
						signedMS(cp99), ms(targetChecksP99), verdict(cp99 < targetChecksP99))
				} else if rep.fsyncErr == nil {
					lim := rep.fsync + targetSyncExtra
					fmt.Fprintf(w, "    checks (over the pass-through, streamable HTTP): p50 %s (target < fsync p50 + 0.1 ms = %s: %s), p99 %s\n",
						signedMS(cp50), ms(lim), verdict(cp50 < lim), signedMS(cp99))
				}
			}
			if sgOK {
				fmt.Fprintf(w, "    added / supergateway added = %s (target < %.1f: %s)\n", ratio(wP50, sgP50), targetBridgeRatio, verdict(float64(wP50) < targetBridgeRatio*float64(sgP50)))
			}
			if mpOK {
				fmt.Fprintf(w, "    added / mcp-proxy added = %s (target < %.1f: %s)\n", ratio(wP50, mpP50), targetBridgeRatio, verdict(float64(wP50) < targetBridgeRatio*float64(mpP50)))
			}
			if c >= 8 {
				fmt.Fprintf(w, "    throughput %.0f calls/s (target >= 10 x mcpproxy-go's cited %.0f = %.0f: %s)\n",
					ws.rps, mcpproxyGoRPS, 10*mcpproxyGoRPS, verdict(ws.rps >= 10*mcpproxyGoRPS))
			}
		}
		for _, k := range sortedKeys(rep.notMeasured) {
			fmt.Fprintf(w, "  %s: %s\n", k, rep.notMeasured[k])
		}
	}
}

func ratio(a, b time.Duration) string {
	if b <= 0 {
		return "n/a (denominator not positive)"
	}
	return fmt.Sprintf("%.2f", float64(a)/float64(b))
}

func verdict(ok bool) string {
	if ok {
		return "PASS"
	}
	return "FAIL"
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 160 {
		s = s[:160] + "…"
	}
	return s
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
