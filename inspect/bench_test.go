package inspect

import (
	"strings"
	"testing"
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
	for b.Loop() {
		for _, r := range rows {
			d.Detect(r.Text)
		}
	}
}
