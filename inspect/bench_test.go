package inspect

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/warden-run/warden/config"
	"github.com/warden-run/warden/tier"
)

// benchText builds ordinary English text of n bytes (documentation-like).
func benchText(n int) string {
	para := "The gateway forwards each tool call to the upstream server after checking the grant, the policy and the arguments. " +
		"Results flow back through the inbound inspection, which scores them for injected instructions and records taint. " +
		"Configuration lives in warden.yaml; see the documentation for the available settings and their defaults.\n\n"
	var b strings.Builder
	for b.Len() < n {
		b.WriteString(para)
	}
	return b.String()[:n]
}

func BenchmarkDetect8KB(b *testing.B) {
	d, err := NewDetector(DetectorOptions{})
	if err != nil {
		b.Fatal(err)
	}
	text := benchText(8 << 10)
	b.SetBytes(int64(len(text)))
	b.ReportAllocs()
	for b.Loop() {
		d.Detect(text)
	}
}

// BenchmarkDetectDevTest scores the texts of dev_test.jsonl (labels unused),
// the mix of short prompts and longer documents the accuracy figures use.
func BenchmarkDetectDevTest(b *testing.B) {
	rows := loadRows(b, "dev_test.jsonl")
	d, err := NewDetector(DetectorOptions{})
	if err != nil {
		b.Fatal(err)
	}
	var n int64
	for _, r := range rows {
		n += int64(len(r.Text))
	}
	b.SetBytes(n)
	b.ReportAllocs()
	// The machine is shared and its speed moves from second to second:
	// besides the mean, report the median pass, which a few slow passes
	// do not move.
	var passes []time.Duration
	for b.Loop() {
		t0 := time.Now()
		for _, r := range rows {
			d.Detect(r.Text)
		}
		passes = append(passes, time.Since(t0))
	}
	slices.Sort(passes)
	b.ReportMetric(float64(n)/passes[len(passes)/2].Seconds()/1e6, "median-MB/s")
}

// BenchmarkDetect8KBLatency reports the p50 and p99 latency of one 8 KB
// detection (the design's target: p99 under 1 ms).
func BenchmarkDetect8KBLatency(b *testing.B) {
	d, err := NewDetector(DetectorOptions{})
	if err != nil {
		b.Fatal(err)
	}
	text := benchText(8 << 10)
	var lat []time.Duration
	for b.Loop() {
		t0 := time.Now()
		d.Detect(text)
		lat = append(lat, time.Since(t0))
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}

// outboundArgs is a typical tool call: an e-mail with a 2 KB body.
func outboundArgs() map[string]any {
	return map[string]any{
		"to":      "ops@corp.example",
		"subject": "Weekly status",
		"body":    benchText(2 << 10),
	}
}

// BenchmarkDLPScan is the secret and PII scan of a 2 KB argument value.
func BenchmarkDLPScan(b *testing.B) {
	s, err := NewScanner(ScannerOptions{})
	if err != nil {
		b.Fatal(err)
	}
	text := benchText(2 << 10)
	b.SetBytes(int64(len(text)))
	b.ReportAllocs()
	for b.Loop() {
		s.Scan(text, "$.body")
	}
}

// BenchmarkCheckOutbound is the whole outbound check of one call at the
// Optimized tier (DLP, exfiltration, budget, sound flow rule on a tainted
// session).
func BenchmarkCheckOutbound(b *testing.B) {
	i, err := New(tier.For(tier.Optimized), config.Inspect{AllowHosts: []string{"corp.example"}})
	if err != nil {
		b.Fatal(err)
	}
	s := NewSession(TaintLimits{})
	s.Ingest(TaintSource{CallID: "c1", Tool: "web.fetch"}, benchText(8<<10))
	args := outboundArgs()
	ctx := context.Background()
	fixed := func(string) bool { return true }
	var lat []time.Duration
	b.ReportAllocs()
	for b.Loop() {
		t0 := time.Now()
		i.CheckOutbound(ctx, Outbound{Tool: "mail.send", Labels: []string{LabelEgress}, Args: args, Session: s, Fixed: fixed})
		lat = append(lat, time.Since(t0))
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}

// BenchmarkCheckInbound is the inbound check of a 2 KB tool result.
func BenchmarkCheckInbound(b *testing.B) {
	i, err := New(tier.For(tier.Advanced), config.Inspect{})
	if err != nil {
		b.Fatal(err)
	}
	s := NewSession(TaintLimits{})
	content := benchText(2 << 10)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		i.CheckInbound(ctx, Inbound{Tool: "web.fetch", CallID: "c", Labels: []string{LabelUntrustedOutput}, Content: content, Session: s})
	}
}

// BenchmarkDetectShort is one short prompt: the per-call cost.
func BenchmarkDetectShort(b *testing.B) {
	d, err := NewDetector(DetectorOptions{})
	if err != nil {
		b.Fatal(err)
	}
	text := "Can you summarise the attached quarterly report and list the three largest cost items?"
	b.SetBytes(int64(len(text)))
	b.ReportAllocs()
	for b.Loop() {
		d.Detect(text)
	}
}
