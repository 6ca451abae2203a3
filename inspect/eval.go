package inspect

import (
	"context"
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/warden-run/warden/inspect/internal/corpus"
)

// EvalRow is one labelled example (the data sets' JSONL rows).
type EvalRow struct {
	ID     string `json:"id"`
	Text   string `json:"text"`
	Label  int    `json:"label"` // 1 attack, 0 benign
	Source string `json:"source"`
	Lang   string `json:"lang"`
	// Category is the data sets' category, such as "indirect:persuasion";
	// the part before the colon is its Group.
	Category string `json:"category"`
}

// Group is the part of the row's category before its colon. For
// CyberSecEval's attacks it says where the attack arrives: "direct" is the
// user's own message, judged against a system prompt the row does not
// carry; "indirect" is an instruction inside content the model reads, as
// tool results are, which is the boundary the gateway inspects. For BIPIA
// it is the kind of content (email, table, code).
func (r EvalRow) Group() string {
	v, _, _ := strings.Cut(r.Category, ":")
	return v
}

// Counts are confusion counts with the rates derived from them.
type Counts struct {
	TP, FN, FP, TN int
}

// Recall is TP/(TP+FN).
func (c Counts) Recall() float64 { return ratio(c.TP, c.TP+c.FN) }

// FPR is FP/(FP+TN).
func (c Counts) FPR() float64 { return ratio(c.FP, c.FP+c.TN) }

// Precision is TP/(TP+FP).
func (c Counts) Precision() float64 { return ratio(c.TP, c.TP+c.FP) }

// F1 is the harmonic mean of precision and recall.
func (c Counts) F1() float64 {
	p, r := c.Precision(), c.Recall()
	if p+r == 0 {
		return 0
	}
	return 2 * p * r / (p + r)
}

func ratio(a, b int) float64 {
	if b == 0 {
		return math.NaN()
	}
	return float64(a) / float64(b)
}

func (c *Counts) add(label int, flagged bool) {
	switch {
	case label == 1 && flagged:
		c.TP++
	case label == 1:
		c.FN++
	case flagged:
		c.FP++
	default:
		c.TN++
	}
}

// EvalReport is the result of evaluating the detector on a data set.
type EvalReport struct {
	Rows       int
	Threshold  float64
	Overall    Counts
	BySource   map[string]*Counts
	ByLang     map[string]*Counts
	ByCategory map[string]*Counts // by EvalRow.Group, for rows that have one
	// The design's headline figures.
	EnglishRecall         float64 // attacks with lang "en"
	EnglishIndirectRecall float64 // English attacks whose Group is "indirect"
	MultilingualRecall    float64 // attacks in other languages
	BenignFPR             float64 // benign rows other than NotInject
	NotInjectFPR          float64 // NotInject rows
	// Recall at the threshold where the false-positive rate over benign rows
	// other than NotInject is at most 1% and 0.1%.
	RecallAt1pct, RecallAt01pct float64
	Bytes                       int64
	Elapsed                     time.Duration // the median timed pass over every row
	Passes                      int           // timed passes
	MBPerSec                    float64       // one goroutine, the median pass
	Misses, FalsePositives      []EvalRow
}

// Timed passes of Evaluate: at least minPasses and minTiming, at most
// maxPasses.
const (
	minPasses = 5
	maxPasses = 50
	minTiming = 500 * time.Millisecond
)

// Evaluate scores every row on one goroutine (so MB/s is per core). The
// first pass gives the scores; throughput is the median of the timed
// passes after it (at least five, and half a second), since a single pass
// over a few megabytes takes milliseconds, a fraction of which a busy
// machine's other work or the first pass's cold caches can take.
func Evaluate(ctx context.Context, d *Detector, rows []EvalRow) (*EvalReport, error) {
	r := &EvalReport{Rows: len(rows), Threshold: d.Threshold(), BySource: map[string]*Counts{}, ByLang: map[string]*Counts{}, ByCategory: map[string]*Counts{}}
	scores := make([]float64, len(rows))
	pass := func(score bool) error {
		for i, row := range rows {
			if i%256 == 0 {
				if err := ctx.Err(); err != nil {
					return fmt.Errorf("evaluation interrupted: %w", err)
				}
			}
			if v := d.Detect(row.Text); score {
				scores[i] = v.Score
			}
		}
		return nil
	}
	if err := pass(true); err != nil {
		return nil, err
	}
	for _, row := range rows {
		r.Bytes += int64(len(row.Text))
	}
	var times []time.Duration
	for total := time.Duration(0); len(times) < maxPasses && (len(times) < minPasses || total < minTiming); {
		start := time.Now()
		if err := pass(false); err != nil {
			return nil, err
		}
		el := time.Since(start)
		times = append(times, el)
		total += el
	}
	slices.Sort(times)
	r.Passes, r.Elapsed = len(times), times[len(times)/2]
	if r.Elapsed > 0 {
		r.MBPerSec = float64(r.Bytes) / 1e6 / r.Elapsed.Seconds()
	}
	var en, enIndirect, multi, ben, ni Counts
	var benignScores []float64
	var attackScores []float64
	for i, row := range rows {
		flagged := scores[i] >= r.Threshold
		r.Overall.add(row.Label, flagged)
		get(r.BySource, row.Source).add(row.Label, flagged)
		get(r.ByLang, row.Lang).add(row.Label, flagged)
		if g := row.Group(); g != "" {
			get(r.ByCategory, g).add(row.Label, flagged)
			if row.Label == 1 && row.Lang == "en" && g == "indirect" {
				enIndirect.add(1, flagged)
			}
		}
		switch {
		case row.Label == 1 && row.Lang == "en":
			en.add(1, flagged)
		case row.Label == 1:
			multi.add(1, flagged)
		case row.Source == "notinject":
			ni.add(0, flagged)
		default:
			ben.add(0, flagged)
		}
		if row.Label == 1 {
			attackScores = append(attackScores, scores[i])
			if !flagged {
				r.Misses = append(r.Misses, row)
			}
		} else {
			if row.Source != "notinject" {
				benignScores = append(benignScores, scores[i])
			}
			if flagged {
				r.FalsePositives = append(r.FalsePositives, row)
			}
		}
	}
	r.EnglishRecall, r.MultilingualRecall = en.Recall(), multi.Recall()
	r.EnglishIndirectRecall = enIndirect.Recall()
	r.BenignFPR, r.NotInjectFPR = ben.FPR(), ni.FPR()
	r.RecallAt1pct = recallAtFPR(attackScores, benignScores, 0.01)
	r.RecallAt01pct = recallAtFPR(attackScores, benignScores, 0.001)
	return r, nil
}

func get(m map[string]*Counts, k string) *Counts {
	if m[k] == nil {
		m[k] = &Counts{}
	}
	return m[k]
}

// recallAtFPR is the recall at the lowest threshold whose false-positive
// rate over benign is at most fpr.
func recallAtFPR(att, ben []float64, fpr float64) float64 {
	if len(att) == 0 || len(ben) == 0 {
		return math.NaN()
	}
	b := append([]float64(nil), ben...)
	sort.Sort(sort.Reverse(sort.Float64Slice(b)))
	allowed := int(math.Floor(fpr * float64(len(b))))
	// Threshold just above the (allowed+1)-th highest benign score.
	var t float64
	if allowed >= len(b) {
		t = math.Inf(-1)
	} else {
		t = math.Nextafter(b[allowed], math.Inf(1))
	}
	n := 0
	for _, s := range att {
		if s >= t {
			n++
		}
	}
	return float64(n) / float64(len(att))
}

func pct(v float64) string {
	if math.IsNaN(v) {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", 100*v)
}

// Print writes the report as text tables.
func (r *EvalReport) Print(w io.Writer) {
	fmt.Fprintf(w, "rows %d, threshold %.4f\n\n", r.Rows, r.Threshold)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "headline\tvalue\t")
	fmt.Fprintf(tw, "English recall\t%s\t\n", pct(r.EnglishRecall))
	fmt.Fprintf(tw, "English recall, indirect\t%s\t\n", pct(r.EnglishIndirectRecall))
	fmt.Fprintf(tw, "multilingual recall\t%s\t\n", pct(r.MultilingualRecall))
	fmt.Fprintf(tw, "FPR (benign, not NotInject)\t%s\t\n", pct(r.BenignFPR))
	fmt.Fprintf(tw, "NotInject FPR\t%s\t\n", pct(r.NotInjectFPR))
	fmt.Fprintf(tw, "recall at 1%% FPR\t%s\t\n", pct(r.RecallAt1pct))
	fmt.Fprintf(tw, "recall at 0.1%% FPR\t%s\t\n", pct(r.RecallAt01pct))
	fmt.Fprintf(tw, "throughput (1 core, median of %d passes)\t%.1f MB/s\t\n", r.Passes, r.MBPerSec)
	tw.Flush()
	fmt.Fprintln(w)
	table := func(title string, m map[string]*Counts) {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintf(tw, "%s\trows\tattacks\trecall\tFPR\tprecision\tF1\t\n", title)
		row := func(k string, c *Counts) {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%s\t%s\t\n", k, c.TP+c.FN+c.FP+c.TN, c.TP+c.FN, pct(c.Recall()), pct(c.FPR()), pct(c.Precision()), pct(c.F1()))
		}
		for _, k := range keys {
			row(k, m[k])
		}
		row("overall", &r.Overall)
		tw.Flush()
		fmt.Fprintln(w)
	}
	for _, t := range r.tables() {
		table(t.name, t.m)
	}
}

type namedCounts struct {
	name string
	m    map[string]*Counts
}

// tables are the breakdowns Print and Markdown show; the category table
// only when the data has categories.
func (r *EvalReport) tables() []namedCounts {
	t := []namedCounts{{"source", r.BySource}, {"lang", r.ByLang}}
	if len(r.ByCategory) > 0 {
		t = append(t, namedCounts{"category", r.ByCategory})
	}
	return t
}

// Markdown renders the headline figures and the breakdown tables as
// Markdown.
func (r *EvalReport) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "| figure | value |\n|---|---|\n")
	fmt.Fprintf(&b, "| English recall | %s |\n| English recall, indirect | %s |\n| multilingual recall | %s |\n| FPR, benign other than NotInject | %s |\n| NotInject FPR | %s |\n| recall at 1%% FPR | %s |\n| recall at 0.1%% FPR | %s |\n| throughput, one core (median of %d passes) | %.1f MB/s |\n\n",
		pct(r.EnglishRecall), pct(r.EnglishIndirectRecall), pct(r.MultilingualRecall), pct(r.BenignFPR), pct(r.NotInjectFPR), pct(r.RecallAt1pct), pct(r.RecallAt01pct), r.Passes, r.MBPerSec)
	for _, t := range r.tables() {
		keys := make([]string, 0, len(t.m))
		for k := range t.m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		fmt.Fprintf(&b, "| %s | rows | attacks | recall | FPR | precision | F1 |\n|---|---:|---:|---:|---:|---:|---:|\n", t.name)
		for _, k := range append(keys, "overall") {
			c := t.m[k]
			if k == "overall" {
				c = &r.Overall
			}
			fmt.Fprintf(&b, "| %s | %d | %d | %s | %s | %s | %s |\n", k, c.TP+c.FN+c.FP+c.TN, c.TP+c.FN, pct(c.Recall()), pct(c.FPR()), pct(c.Precision()), pct(c.F1()))
		}
		b.WriteString("\n")
	}
	return b.String()
}

// ReadEvalRows reads a data set in the data sets' JSONL form, one row a
// line; blank lines are skipped, and a bad line or a label other than 0 or
// 1 is an error naming the line.
func ReadEvalRows(path string) ([]EvalRow, error) {
	rows, err := corpus.ReadJSONL(path)
	if err != nil {
		return nil, err
	}
	out := make([]EvalRow, len(rows))
	for i, r := range rows {
		out[i] = EvalRow{ID: r.ID, Text: r.Text, Label: r.Label, Source: r.Source, Lang: r.Lang, Category: r.Category}
	}
	return out, nil
}

// HeldOutBenign returns ordinary text never used in training (documentation,
// code, program messages and manual pages installed on this machine; see
// docs/inspect.md), labelled benign, for measuring false positives.
func HeldOutBenign(ctx context.Context) ([]EvalRow, error) {
	rows, err := corpus.HeldOutBenign(ctx, corpus.Options{})
	if err != nil {
		return nil, err
	}
	out := make([]EvalRow, 0, len(rows))
	for _, r := range rows {
		lang := r.Lang
		if i := strings.IndexAny(lang, "_@"); i > 0 {
			lang = lang[:i]
		}
		out = append(out, EvalRow{ID: r.ID, Text: r.Text, Label: 0, Source: r.Source, Lang: lang})
	}
	return out, nil
}

// ErrNoData says the project's shared data directory is absent.
var ErrNoData = corpus.ErrNoData

// DataDir finds the injection data sets: $WARDEN_DATA/injection, or
// ../shared/data/injection beside the module root above dir.
func DataDir(dir string) (string, error) { return corpus.DataDir(dir) }
