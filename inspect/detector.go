package inspect

import (
	"cmp"
	_ "embed"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/warden-run/warden/inspect/internal/injection"
)

//go:embed model/injection.bin
var embeddedModel []byte

// Span is a part of the input that made the detector fire.
type Span struct {
	Start int    `json:"start"` // byte offsets in the input
	End   int    `json:"end"`
	Rule  string `json:"rule"` // rule id, or "classifier"
	Text  string `json:"text"` // the spanned text, cut to 200 bytes
}

// Verdict is the detector's answer for one text.
type Verdict struct {
	// Score is the calibrated probability-like score in [0,1] that the text
	// carries injected instructions.
	Score float64 `json:"score"`
	// Injection is Score >= Threshold.
	Injection bool    `json:"injection"`
	Threshold float64 `json:"threshold"`
	// Spans point at what triggered it: rule matches, and for the classifier
	// the sentence that contributed most.
	Spans []Span `json:"spans,omitempty"`
	// Reasons say in words why.
	Reasons []string `json:"reasons,omitempty"`
	// Signals are the normaliser's and decoder's observations (invisible
	// characters, homoglyphs, decoded base64 ...).
	Signals []string `json:"signals,omitempty"`
	// Truncated says the input was longer than the detector reads.
	Truncated bool `json:"truncated,omitempty"`
}

// DetectorOptions tune a Detector. Zero values take defaults.
type DetectorOptions struct {
	// Model is a model file (as written by the training command); nil uses
	// the embedded one.
	Model []byte
	// Threshold overrides the model's threshold.
	Threshold float64
	// MaxBytes bounds the input read (default 4 MiB); the rest is not
	// scored and the verdict says Truncated.
	MaxBytes int
}

// Detector is the prompt-injection detector. Build it once with
// NewDetector; it is safe for concurrent use.
type Detector struct {
	an        *injection.Analyzer
	m         *injection.Model
	dense     []float32 // model's dense weights in the analyzer's order
	threshold float64
	maxBytes  int
	pool      sync.Pool
}

// NewDetector loads the model and compiles the rules.
func NewDetector(o DetectorOptions) (*Detector, error) {
	b := o.Model
	if b == nil {
		b = embeddedModel
	}
	m, err := injection.Decode(b)
	if err != nil {
		return nil, fmt.Errorf("loading injection model: %w", err)
	}
	rs, err := injection.CompileRules(injection.DefaultRules())
	if err != nil {
		return nil, fmt.Errorf("compiling injection rules: %w", err)
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = 4 << 20
	}
	an := injection.NewAnalyzer(m.Meta.Features, rs, injection.Limits{MaxBytes: o.MaxBytes})
	d := &Detector{an: an, m: m, threshold: m.Meta.Threshold, maxBytes: o.MaxBytes}
	if o.Threshold > 0 {
		if o.Threshold >= 1 {
			return nil, fmt.Errorf("injection threshold %v: want a value in (0,1)", o.Threshold)
		}
		d.threshold = o.Threshold
	}
	byName := map[string]float32{}
	for i, n := range m.Meta.Dense {
		byName[n] = m.Dense[i]
	}
	for _, n := range an.DenseNames() {
		d.dense = append(d.dense, byName[n])
	}
	d.pool.New = func() any { return &injection.Analysis{} }
	return d, nil
}

// Threshold is the score at or above which text is flagged.
func (d *Detector) Threshold() float64 { return d.threshold }

// ModelInfo says how the model was trained.
func (d *Detector) ModelInfo() string { return d.m.Meta.Trained }

// Detect scores text. It never fails: any input gets a verdict in time
// proportional to its length (bounded by MaxBytes).
func (d *Detector) Detect(text string) Verdict {
	v := Verdict{Threshold: d.threshold}
	if len(text) > d.maxBytes {
		v.Truncated = true
	}
	an := d.pool.Get().(*injection.Analysis)
	defer d.pool.Put(an)
	d.an.AnalyzeScored(text, an, d.m.W)

	best := math.Inf(-1)
	bu, bc := 0, 0
	for ui := range an.Units {
		u := &an.Units[ui]
		for ci := range u.Chunks {
			if z := d.m.Raw(&u.Chunks[ci], d.dense); z > best {
				best, bu, bc = z, ui, ci
			}
		}
	}
	if len(an.Units) == 0 || math.IsInf(best, -1) {
		return v
	}
	v.Score = d.m.Calibrate(best)
	rules := d.an.Rules().Rules()
	for ui := range an.Units {
		for _, h := range an.Units[ui].Hits {
			if rules[h.Rule].Strong && v.Score < injection.StrongScore {
				v.Score = injection.StrongScore
			}
		}
	}
	v.Injection = v.Score >= d.threshold

	main := &an.Units[0]
	v.Signals = append(v.Signals, main.Norm.Flags.Names()...)
	for _, p := range an.Payloads {
		v.Signals = append(v.Signals, "decoded_"+p.Enc)
	}
	if main.Norm.Hidden != "" {
		v.Signals = append(v.Signals, "hidden_tag_text")
	}
	v.Signals = dedupe(v.Signals)

	// Spans need the offset map the fast path skipped.
	if main.Norm.S != "" && !main.Norm.Mapped() && (v.Injection || len(main.Hits) > 0) {
		hits, flags, hidden := main.Hits, main.Norm.Flags, main.Norm.Hidden
		main.Norm = d.an.Normalizer().Normalize(clip(text, d.maxBytes))
		main.Norm.Flags, main.Norm.Hidden = flags, hidden
		main.Hits = hits
	}
	seen := map[string]bool{}
	for ui := range an.Units {
		u := &an.Units[ui]
		for _, h := range u.Hits {
			r := rules[h.Rule]
			sp := d.span(text, an, u, h.Start, h.End, r.ID)
			v.Spans = append(v.Spans, sp)
			if !seen[r.ID] {
				seen[r.ID] = true
				reason := r.Reason
				if u.Src != injection.SrcText {
					reason += " (inside " + d.srcName(an, u) + ")"
				}
				v.Reasons = append(v.Reasons, reason)
			}
		}
	}
	if v.Injection {
		u := &an.Units[bu]
		c := u.Chunks[bc]
		s, e := hotSentence(u.Norm.S, c.Start, c.End, an.Sentences(&c))
		v.Spans = append(v.Spans, d.span(text, an, u, s, e, "classifier"))
		// What fmt.Sprintf("score %.2f at or above threshold %.2f") says,
		// built without fmt (every flagged text takes this path).
		reason := make([]byte, 0, 48)
		reason = append(reason, "score "...)
		reason = strconv.AppendFloat(reason, v.Score, 'f', 2, 64)
		reason = append(reason, " at or above threshold "...)
		reason = strconv.AppendFloat(reason, d.threshold, 'f', 2, 64)
		v.Reasons = append(v.Reasons, string(reason))
		if u.Src != injection.SrcText {
			v.Reasons = append(v.Reasons, "the instructions were hidden in "+d.srcName(an, u))
		}
	}
	slices.SortStableFunc(v.Spans, func(a, b Span) int { return cmp.Compare(a.Start, b.Start) })
	if len(v.Spans) > 16 {
		v.Spans = v.Spans[:16]
	}
	return v
}

func (d *Detector) srcName(an *injection.Analysis, u *injection.Unit) string {
	switch u.Src {
	case injection.SrcPayload:
		return an.Payloads[u.Payload].Enc + "-encoded text"
	case injection.SrcHidden:
		return "invisible Unicode tag characters"
	}
	return "the text"
}

// span maps a range of a unit's normalised text back to the input.
func (d *Detector) span(input string, an *injection.Analysis, u *injection.Unit, s, e int, rule string) Span {
	var sp Span
	switch u.Src {
	case injection.SrcText:
		sp.Start, sp.End = u.Norm.Orig(s), u.Norm.Orig(e)
		if e > 0 && e <= len(u.Norm.S) {
			// Orig(e) points at the start of the character after the span's
			// last one in the input; map the last byte instead and step past it.
			last := u.Norm.Orig(e - 1)
			sp.End = last + 1
			for sp.End < len(input) && sp.End-last < 4 && !utf8RuneStart(input[sp.End]) {
				sp.End++
			}
		}
	case injection.SrcPayload:
		p := an.Payloads[u.Payload]
		sp.Start, sp.End = p.Start, p.End
	case injection.SrcHidden:
		// The instructions are the tag characters: from the first to the
		// last, so that redaction removes them and keeps the visible text
		// a reader (and the task) needs.
		sp.Start, sp.End = tagRun(input)
	default:
		sp.Start, sp.End = 0, len(input)
	}
	sp.Start = clamp(sp.Start, 0, len(input))
	sp.End = clamp(sp.End, sp.Start, len(input))
	sp.Rule = rule
	t := u.Norm.S[clamp(s, 0, len(u.Norm.S)):clamp(e, clamp(s, 0, len(u.Norm.S)), len(u.Norm.S))]
	sp.Text = cutString(t, 200)
	return sp
}

// tagRun returns the byte range from the first Unicode tag character
// (U+E0000 to U+E007F) in s to the end of the last; the whole of s when
// there is none.
func tagRun(s string) (start, end int) {
	start, end = -1, 0
	for i, r := range s {
		if r >= 0xE0000 && r <= 0xE007F {
			if start < 0 {
				start = i
			}
			end = i + utf8.RuneLen(r)
		}
	}
	if start < 0 {
		return 0, len(s)
	}
	return start, end
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

func utf8RuneStart(b byte) bool { return b&0xC0 != 0x80 }

func clamp(v, lo, hi int) int {
	if v < lo {
		return lo
	}
	if v > hi {
		return hi
	}
	return v
}

// cutString cuts s to at most n bytes at a rune boundary.
func cutString(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// hotSentence returns the sentence within [start,end) of s whose features
// weigh most towards injection: each sentence's weights summed and divided
// by the square root of their number, from the running sums the chunk was
// scored with (marks, relative to start). Text with nothing but blanks
// after its first sentence (most prompts) is returned whole.
func hotSentence(s string, start, end int, marks []injection.Sentence) (int, int) {
	bs, be := start, end
	if len(marks) > 0 && strings.TrimSpace(s[start+marks[0].End:end]) != "" {
		bw := math.Inf(-1)
		prev := injection.Sentence{}
		for _, m := range marks {
			// Blank sentences (a run of newlines) are no candidates.
			if seg := s[start+prev.End : start+m.End]; strings.TrimSpace(seg) != "" {
				w := float64(m.Sum - prev.Sum)
				if n := m.Count - prev.Count; n > 0 {
					w /= math.Sqrt(float64(n))
				}
				if w > bw {
					bs, be, bw = start+prev.End, start+m.End, w
				}
			}
			prev = m
		}
	}
	for bs < be && (s[bs] == ' ' || s[bs] == '\n') {
		bs++
	}
	return bs, be
}

func dedupe(s []string) []string {
	if len(s) < 2 {
		return s
	}
	seen := map[string]bool{}
	out := s[:0]
	for _, x := range s {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}
