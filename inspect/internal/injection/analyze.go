package injection

import (
	"github.com/warden-run/warden/inspect/internal/decode"
	"github.com/warden-run/warden/inspect/internal/textnorm"
)

// Source says where a scored piece of text came from.
type Source int

// Sources of scored text.
const (
	SrcText    Source = iota // the input itself
	SrcPayload               // an encoded payload decoded from the input
	SrcHidden                // text smuggled in Unicode tag characters
)

// Unit is one piece of text the detector scores: the input, or something
// decoded from it.
type Unit struct {
	Src     Source
	Payload int // index in Analysis.Payloads when Src is SrcPayload
	Norm    textnorm.Text
	Hits    []Hit
	Chunks  []Chunk
}

// Chunk is one scored window of a unit.
type Chunk struct {
	Start, End int      // byte offsets in the unit's normalised text
	Idx        []uint32 // hashed sparse features (repeats allowed); nil when fused
	Dense      []uint16 // indices of active dense features
	// Sum and Count are the fused dot product (AnalyzeScored): the sum of
	// the sparse weights and the number of features.
	Sum   int64
	Count int
	// marks are the chunk's sentences in Analysis.sentences (AnalyzeScored).
	marks [2]int
}

// Sentences returns the sentences of chunk c (of an AnalyzeScored
// analysis): where each ends, relative to the chunk's start, and the
// running sum and count of the chunk's features there (SentenceSums).
func (an *Analysis) Sentences(c *Chunk) []Sentence {
	return an.sentences[c.marks[0]:c.marks[1]]
}

// Analysis is everything the model scores for one input.
type Analysis struct {
	Payloads  []decode.Payload
	Units     []Unit
	buf       []uint32   // backing store of the chunks' sparse indices
	sentences []Sentence // backing store of the chunks' sentence marks
	trig      triggers   // the rules' scratch
}

// Limits bound the work per input.
type Limits struct {
	MaxBytes    int // input bytes analysed (the rest is reported as truncated by the caller)
	MaxHits     int // rule hits kept per unit
	MaxPayloads int
}

// Analyzer turns text into features. It is read-only after construction.
type Analyzer struct {
	cfg   FeatureConfig
	norm  *textnorm.Normalizer
	dec   *decode.Decoder
	rules *RuleSet
	lim   Limits
	// dense layout
	nRules int
}

// Dense feature layout after the rules.
const (
	denseFlags   = 8 // one per textnorm flag bit
	densePayload = 0 // offset after flags: "decoded payload"
	denseHidden  = 1 // "tag-character text"
	denseExtra   = 2
	denseLen     = 6 // length classes of a chunk
)

// NewAnalyzer builds an analyzer.
func NewAnalyzer(cfg FeatureConfig, rules *RuleSet, lim Limits) *Analyzer {
	if lim.MaxHits <= 0 {
		lim.MaxHits = 32
	}
	if lim.MaxPayloads <= 0 {
		lim.MaxPayloads = 16
	}
	return &Analyzer{
		cfg:    cfg,
		norm:   textnorm.New(),
		dec:    decode.New(decode.Limits{MaxPayloads: lim.MaxPayloads, MaxBytes: 256 << 10}),
		rules:  rules,
		lim:    lim,
		nRules: rules.Len(),
	}
}

// Config returns the feature configuration.
func (a *Analyzer) Config() FeatureConfig { return a.cfg }

// Rules returns the compiled rules.
func (a *Analyzer) Rules() *RuleSet { return a.rules }

// DenseNames names the dense features in order.
func (a *Analyzer) DenseNames() []string {
	var out []string
	for _, r := range a.rules.Rules() {
		out = append(out, "rule:"+r.ID)
	}
	for i := range denseFlags {
		names := textnorm.Flag(1 << i).Names()
		n := "flag:unused"
		if len(names) == 1 {
			n = "flag:" + names[0]
		}
		out = append(out, n)
	}
	out = append(out, "payload:decoded", "payload:hidden_tags")
	for _, n := range []string{"len:<32", "len:<64", "len:<128", "len:<256", "len:<512", "len:>=512"} {
		out = append(out, n)
	}
	return out
}

// lenBucket is the dense feature index of a chunk's length class.
func (a *Analyzer) lenBucket(n int) uint16 {
	b := 5
	for i, lim := range []int{32, 64, 128, 256, 512} {
		if n < lim {
			b = i
			break
		}
	}
	return uint16(a.nRules + denseFlags + denseExtra + b)
}

// NumDense is the number of dense features.
func (a *Analyzer) NumDense() int { return a.nRules + denseFlags + denseExtra + denseLen }

// Analyze normalises s, decodes payloads, matches rules and builds the
// chunk features. Sparse indices share one backing array per call.
func (a *Analyzer) Analyze(s string) *Analysis {
	an := &Analysis{}
	a.AnalyzeInto(s, an)
	return an
}

// AnalyzeInto is Analyze reusing an's storage.
func (a *Analyzer) AnalyzeInto(s string, an *Analysis) { a.analyze(s, an, nil) }

// AnalyzeScored is AnalyzeInto for inference: instead of storing sparse
// feature indices it sums the weights w over them (Chunk.Sum, Chunk.Count),
// and it skips the offset maps of decoded payloads.
func (a *Analyzer) AnalyzeScored(s string, an *Analysis, w []int8) { a.analyze(s, an, w) }

// Normalizer returns the text normaliser.
func (a *Analyzer) Normalizer() *textnorm.Normalizer { return a.norm }

func (a *Analyzer) analyze(s string, an *Analysis, w []int8) {
	an.Units = an.Units[:0]
	an.Payloads = an.Payloads[:0]
	an.buf = an.buf[:0]
	an.sentences = an.sentences[:0]
	if a.lim.MaxBytes > 0 && len(s) > a.lim.MaxBytes {
		s = s[:a.lim.MaxBytes]
	}
	// The input keeps its offset map (spans point into it); decoded
	// payloads do not need one.
	norm := a.norm.Normalize
	if w != nil {
		norm = a.norm.NormalizeUnmapped
	}
	n := a.norm.Normalize(s)
	a.addUnit(an, Unit{Src: SrcText, Norm: n}, 0, w)
	an.Payloads = a.dec.Find(s)
	for i, p := range an.Payloads {
		a.addUnit(an, Unit{Src: SrcPayload, Payload: i, Norm: norm(p.Text)}, a.nRules+denseFlags+densePayload, w)
	}
	if n.Hidden != "" {
		a.addUnit(an, Unit{Src: SrcHidden, Norm: norm(n.Hidden)}, a.nRules+denseFlags+denseHidden, w)
	}
}

func (a *Analyzer) addUnit(an *Analysis, u Unit, extra int, w []int8) {
	// A reused Analysis keeps the slices of the unit that last held this
	// slot, and of its chunks: refill them rather than allocate.
	if k := len(an.Units); k < cap(an.Units) {
		old := an.Units[:k+1][k]
		u.Hits, u.Chunks = old.Hits[:0], old.Chunks[:0]
	}
	u.Hits = a.rules.match(u.Norm.S, u.Norm.ASCII, &an.trig, u.Hits, a.lim.MaxHits)
	flags := u.Norm.Flags
	if len(an.Units) > 0 {
		flags |= an.Units[0].Norm.Flags
	}
	chunks := [][2]int{{0, len(u.Norm.S)}} // short text: one chunk, no allocation
	if len(u.Norm.S) > a.cfg.ChunkBytes {
		chunks = a.cfg.Chunks(u.Norm.S)
	}
	for _, c := range chunks {
		ch := Chunk{Start: c[0], End: c[1]}
		if j := len(u.Chunks); j < cap(u.Chunks) {
			ch.Dense = u.Chunks[:j+1][j].Dense[:0]
		}
		if w != nil {
			// The sentences' running sums come with the chunk's, so that
			// the hot sentence of a flagged chunk needs no second pass.
			start := len(an.sentences)
			an.sentences = a.cfg.SentenceSums(w, u.Norm.S[c[0]:c[1]], an.sentences)
			last := an.sentences[len(an.sentences)-1]
			ch.Sum, ch.Count, ch.marks = last.Sum, last.Count, [2]int{start, len(an.sentences)}
		} else {
			start := len(an.buf)
			an.buf = a.cfg.AppendFeatures(an.buf, u.Norm.S[c[0]:c[1]])
			ch.Idx = an.buf[start:len(an.buf):len(an.buf)]
		}
		var seen uint64
		for _, h := range u.Hits {
			if h.End > c[0] && h.Start < c[1] && seen&(1<<h.Rule) == 0 {
				seen |= 1 << h.Rule
				ch.Dense = append(ch.Dense, uint16(h.Rule))
			}
		}
		for i := range denseFlags {
			if flags&(1<<i) != 0 {
				ch.Dense = append(ch.Dense, uint16(a.nRules+i))
			}
		}
		if extra > 0 {
			ch.Dense = append(ch.Dense, uint16(extra))
		}
		ch.Dense = append(ch.Dense, a.lenBucket(c[1]-c[0]))
		u.Chunks = append(u.Chunks, ch)
	}
	an.Units = append(an.Units, u)
}
