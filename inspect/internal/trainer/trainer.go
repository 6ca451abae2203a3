// Package trainer reproduces the injection detector's weights
// (inspect/model/injection.bin) from the project's data sets and the hard
// negatives named in package corpus:
//
//	go run ./inspect/internal/train            # from the repository root
//
// It reads ../shared/data/injection/train.jsonl and dev_tune.jsonl (or
// $WARDEN_DATA/injection), never dev_test.jsonl except to refuse to train if
// any of its texts appears in the training or tuning data. Thresholds and
// calibration are chosen on out-of-fold scores of dev_tune (5-fold cross
// validation), so the tuning set is never scored by a model that saw it.
// Training is deterministic: the same inputs give the same file.
package trainer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/warden-run/warden/inspect/internal/corpus"
	"github.com/warden-run/warden/inspect/internal/injection"
)

type doc struct {
	row    corpus.Row
	y      float64
	w      float64 // sample weight
	fold   int     // dev_tune fold, -1 otherwise
	chunks []injection.Chunk
	// strong: a Strong rule matched, which lifts the detector's score to
	// injection.StrongScore whatever the model says (inspect.Detector).
	strong bool
}

type params struct {
	epochs int
	lr     float64
	l2     float64
	bits   int
}

// Options are the training settings; zero values take the defaults that
// produced the committed model.
type Options struct {
	Out           string  // model file to write (default inspect/model/injection.bin)
	Data          string  // injection data directory (default ../shared/data/injection beside the module root)
	Folds         int     // cross-validation folds over dev_tune (default 5)
	Epochs        int     // passes over the training data (default 20)
	MaxFPR        float64 // out-of-fold FPR limit on benign dev_tune rows other than NotInject (default 0.009)
	MaxNotInject  float64 // out-of-fold FPR limit on NotInject (default 0.08)
	DevTuneWeight float64 // sample weight of dev_tune rows (default 50)
	DumpOOF       string  // write out-of-fold dev_tune scores here (TSV), if set
	MultiWeight   float64 // sample weight of hard negatives not in English (default 4)
	Bits          int     // log2 of the hashed feature space (default: injection.DefaultFeatures)
	CharMax       int     // longest character n-gram (default: injection.DefaultFeatures)
	CharMin       int     // shortest character n-gram (default: injection.DefaultFeatures)
}

// Defaults fills zero values.
func (o Options) Defaults() Options {
	if o.Out == "" {
		o.Out = "inspect/model/injection.bin"
	}
	if o.Folds == 0 {
		o.Folds = 5
	}
	if o.Epochs == 0 {
		o.Epochs = 20
	}
	if o.MaxFPR == 0 {
		o.MaxFPR = 0.009
	}
	if o.MaxNotInject == 0 {
		o.MaxNotInject = 0.08
	}
	if o.DevTuneWeight == 0 {
		o.DevTuneWeight = 50
	}
	if o.MultiWeight == 0 {
		o.MultiWeight = 4
	}
	return o
}

// Run trains and writes the model.
func Run(ctx context.Context, log *slog.Logger, o Options) error {
	o = o.Defaults()
	cfg := injection.DefaultFeatures()
	if o.Bits != 0 {
		cfg.Bits = o.Bits
	}
	if o.CharMax != 0 {
		cfg.CharMax = o.CharMax
	}
	if o.CharMin != 0 {
		cfg.CharMin = o.CharMin
	}
	return run(ctx, log, cfg, o.Out, o.Data, o.Folds, o.Epochs, o.MaxFPR, o.MaxNotInject, o.DevTuneWeight, o.MultiWeight, o.DumpOOF)
}

func run(ctx context.Context, log *slog.Logger, cfg injection.FeatureConfig, out, data string, folds, epochs int, maxFPR, maxNI, devTuneW, multiW float64, dump string) error {
	start := time.Now()
	if data == "" {
		d, err := corpus.DataDir(".")
		if err != nil {
			return err
		}
		data = d
	}
	trainRows, err := corpus.ReadJSONL(filepath.Join(data, "train.jsonl"))
	if err != nil {
		return err
	}
	tuneRows, err := corpus.ReadJSONL(filepath.Join(data, "dev_tune.jsonl"))
	if err != nil {
		return err
	}
	hard, err := corpus.HardNegatives(ctx, corpus.Options{})
	if err != nil {
		return err
	}
	if err := checkNoLeak(filepath.Join(data, "dev_test.jsonl"), trainRows, tuneRows, hard); err != nil {
		return err
	}
	log.Info("data", "train", len(trainRows), "dev_tune", len(tuneRows), "hard_negatives", len(hard))

	rs, err := injection.CompileRules(injection.DefaultRules())
	if err != nil {
		return err
	}
	an := injection.NewAnalyzer(cfg, rs, injection.Limits{})
	var docs []*doc
	add := func(r corpus.Row, w float64, fold int) {
		a := an.Analyze(r.Text)
		d := &doc{row: r, y: float64(r.Label), w: w, fold: fold}
		for _, u := range a.Units {
			for _, h := range u.Hits {
				d.strong = d.strong || rs.Rules()[h.Rule].Strong
			}
			for _, c := range u.Chunks {
				c.Idx = append([]uint32(nil), c.Idx...)
				d.chunks = append(d.chunks, c)
			}
		}
		docs = append(docs, d)
	}
	trainRows = isolateBIPIA(trainRows)
	for _, r := range trainRows {
		w := 1.0
		switch {
		case r.Source == "gsm8k_train":
			w = 0.3 // many near-identical math questions: do not let them define "benign"
		case r.Source == "bipia_train" && r.Label == 0:
			w = 3 // each clean context recurs in several attack rows
		}
		add(r, w, -1)
	}
	langW := languageBalance(tuneRows, hard, devTuneW, multiW)
	for _, r := range hard {
		// Ordinary text in other languages is scarce next to the translated
		// attacks of dev_tune; weigh it up so that a language is not itself
		// evidence of an attack.
		w := 1.0
		if r.Lang != "en" {
			w = multiW * langW[baseLang(r.Lang)]
		}
		add(r, w, -1)
	}
	for _, r := range tuneRows {
		add(r, devTuneW, foldOf(r.ID, folds))
	}
	log.Info("features", "docs", len(docs), "elapsed", time.Since(start).Round(time.Millisecond))

	p := params{epochs: epochs, lr: 0.2, l2: 1e-6, bits: cfg.Bits}
	nd := an.NumDense()

	// Out-of-fold scores over dev_tune.
	oof := make([]float64, 0, len(tuneRows))
	var oofDocs []*doc
	for k := range folds {
		var tr []*doc
		var te []*doc
		for _, d := range docs {
			if d.fold == k {
				te = append(te, d)
			} else {
				tr = append(tr, d)
			}
		}
		m := fit(tr, p, nd, uint64(k+1))
		m.roundWeights()
		for _, d := range te {
			oof = append(oof, m.score(d))
			oofDocs = append(oofDocs, d)
		}
		log.Info("fold", "k", k, "train", len(tr), "held", len(te))
	}
	a, b := platt(oof, oofDocs)
	cal := make([]float64, len(oof))
	for i, z := range oof {
		// Scored as the detector scores: a Strong rule's match lifts the
		// score, so the threshold is chosen over what will be deployed.
		cal[i] = sigmoid(a*z + b)
		if oofDocs[i].strong {
			cal[i] = max(cal[i], injection.StrongScore)
		}
	}
	thr := chooseThreshold(cal, oofDocs, maxFPR, maxNI)
	report(log, "out-of-fold dev_tune", cal, oofDocs, thr)
	if dump != "" {
		var sb strings.Builder
		for i, d := range oofDocs {
			fmt.Fprintf(&sb, "%.4f\t%d\t%s\t%s\t%s\t%q\n", cal[i], d.row.Label, d.row.Source, d.row.Lang, d.row.Category, d.row.Text)
		}
		if err := os.WriteFile(dump, []byte(sb.String()), 0o644); err != nil {
			return err
		}
	}

	final := fit(docs, p, nd, 99)
	q, scale := injection.Quantize(final.w)
	model := &injection.Model{
		Meta: injection.Meta{
			Features:  cfg,
			Dense:     an.DenseNames(),
			Bias:      float32(final.bias),
			PlattA:    a,
			PlattB:    b,
			Threshold: thr,
			Scale:     scale,
			Trained: fmt.Sprintf("go run ./inspect/internal/train (or warden inspect train; epochs=%d folds=%d max-fpr=%g max-notinject-fpr=%g dev-tune-weight=%g multi-weight=%g); train.jsonl sha256:%s dev_tune.jsonl sha256:%s; %d hard negatives",
				epochs, folds, maxFPR, maxNI, devTuneW, multiW, digest(filepath.Join(data, "train.jsonl")), digest(filepath.Join(data, "dev_tune.jsonl")), len(hard)),
		},
		W:     q,
		Dense: toF32(final.dense),
	}
	var buf bytes.Buffer
	if err := model.Encode(&buf); err != nil {
		return err
	}
	if err := os.WriteFile(out, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("writing model: %w", err)
	}
	log.Info("wrote model", "path", out, "bytes", buf.Len(), "threshold", thr, "platt_a", a, "platt_b", b, "elapsed", time.Since(start).Round(time.Second))
	return nil
}

func toF32(v []float64) []float32 {
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(x)
	}
	return out
}

func digest(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "missing"
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:8])
}

func foldOf(id string, folds int) int {
	h := fnv.New32a()
	h.Write([]byte(id))
	return int(h.Sum32() % uint32(folds))
}

func checkNoLeak(testPath string, sets ...[]corpus.Row) error {
	test, err := corpus.ReadJSONL(testPath)
	if err != nil {
		return nil // no dev_test beside the data: nothing to leak
	}
	seen := map[string]bool{}
	for _, r := range test {
		seen[strings.TrimSpace(r.Text)] = true
	}
	for _, set := range sets {
		for _, r := range set {
			if seen[strings.TrimSpace(r.Text)] {
				return fmt.Errorf("refusing to train: row %s of %s is a dev_test text", r.ID, r.Source)
			}
		}
	}
	return nil
}

type linear struct {
	w     []float32
	dense []float64
	bias  float64
}

func (m *linear) raw(c *injection.Chunk) float64 {
	var s float64
	for _, i := range c.Idx {
		s += float64(m.w[i])
	}
	z := m.bias
	if len(c.Idx) > 0 {
		z += s / math.Sqrt(float64(len(c.Idx)))
	}
	for _, d := range c.Dense {
		z += m.dense[d]
	}
	return z
}

// roundWeights replaces each sparse weight with what the model file will
// hold (injection.Quantize), so that the out-of-fold scores, and the
// calibration and threshold chosen from them, are those of the deployed
// 8-bit table rather than of float weights it only approximates.
func (m *linear) roundWeights() {
	q, scale := injection.Quantize(m.w)
	for i, v := range q {
		m.w[i] = float32(v) * scale
	}
}

// score is the document score: its highest chunk.
func (m *linear) score(d *doc) float64 {
	best := math.Inf(-1)
	for i := range d.chunks {
		if z := m.raw(&d.chunks[i]); z > best {
			best = z
		}
	}
	return best
}

func sigmoid(z float64) float64 { return 1 / (1 + math.Exp(-z)) }

// fit trains logistic regression with AdaGrad on each document's
// highest-scoring chunk (multiple-instance learning: a long attack document
// is an attack because of one of its chunks).
func fit(docs []*doc, p params, nd int, seed uint64) *linear {
	m := &linear{w: make([]float32, 1<<p.bits), dense: make([]float64, nd)}
	g2 := make([]float32, 1<<p.bits)
	gd := make([]float64, nd)
	var gb float64
	var pos, neg float64
	for _, d := range docs {
		if d.y > 0 {
			pos += d.w
		} else {
			neg += d.w
		}
	}
	posScale := neg / math.Max(pos, 1)
	order := make([]int, len(docs))
	for i := range order {
		order[i] = i
	}
	rng := rand.New(rand.NewPCG(seed, 7))
	for ep := range p.epochs {
		rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		lr := p.lr / (1 + 0.3*float64(ep))
		for _, oi := range order {
			d := docs[oi]
			if len(d.chunks) == 0 {
				continue
			}
			best, bz := 0, math.Inf(-1)
			for i := range d.chunks {
				if z := m.raw(&d.chunks[i]); z > bz {
					best, bz = i, z
				}
			}
			c := &d.chunks[best]
			sw := d.w
			if d.y > 0 {
				sw *= posScale
			}
			g := (sigmoid(bz) - d.y) * sw
			if g == 0 {
				continue
			}
			inv := 1.0
			if len(c.Idx) > 0 {
				inv = 1 / math.Sqrt(float64(len(c.Idx)))
			}
			gi := float32(g * inv)
			for _, i := range c.Idx {
				gg := gi + float32(p.l2)*m.w[i]
				g2[i] += gg * gg
				m.w[i] -= float32(lr) * gg / float32(math.Sqrt(float64(g2[i]))+1e-6)
			}
			for _, di := range c.Dense {
				gg := g + p.l2*m.dense[di]
				gd[di] += gg * gg
				m.dense[di] -= lr * gg / (math.Sqrt(gd[di]) + 1e-6)
			}
			gb += g * g
			m.bias -= lr * g / (math.Sqrt(gb) + 1e-6)
		}
	}
	return m
}

// platt fits p = sigmoid(a*z+b) to the out-of-fold raw scores.
func platt(z []float64, docs []*doc) (float64, float64) {
	a, b := 1.0, 0.0
	for range 2000 {
		var ga, gb, haa, hab, hbb float64
		for i, x := range z {
			p := sigmoid(a*x + b)
			e := p - docs[i].y
			ga += e * x
			gb += e
			w := p * (1 - p)
			haa += w * x * x
			hab += w * x
			hbb += w
		}
		haa += 1e-6
		hbb += 1e-6
		det := haa*hbb - hab*hab
		if det == 0 {
			break
		}
		da := (hbb*ga - hab*gb) / det
		db := (haa*gb - hab*ga) / det
		a -= da
		b -= db
		if math.Abs(da)+math.Abs(db) < 1e-9 {
			break
		}
	}
	return a, b
}

func isNotInject(r corpus.Row) bool { return r.Source == "notinject" }

// chooseThreshold picks the lowest threshold whose out-of-fold false-positive
// rates stay within the limits.
func chooseThreshold(s []float64, docs []*doc, maxFPR, maxNI float64) float64 {
	cands := append([]float64(nil), s...)
	sort.Float64s(cands)
	var nBen, nNI int
	for _, d := range docs {
		if d.y == 0 {
			if isNotInject(d.row) {
				nNI++
			} else {
				nBen++
			}
		}
	}
	for _, t := range cands {
		var fp, fpNI int
		for i, d := range docs {
			if d.y == 0 && s[i] >= t {
				if isNotInject(d.row) {
					fpNI++
				} else {
					fp++
				}
			}
		}
		if float64(fp) <= maxFPR*float64(nBen) && float64(fpNI) <= maxNI*float64(nNI) {
			return t
		}
	}
	return 1
}

func report(log *slog.Logger, name string, s []float64, docs []*doc, t float64) {
	type ctr struct{ tp, fn, fp, tn int }
	by := map[string]*ctr{}
	get := func(k string) *ctr {
		if by[k] == nil {
			by[k] = &ctr{}
		}
		return by[k]
	}
	for i, d := range docs {
		keys := []string{"all", "src:" + d.row.Source}
		if d.y > 0 {
			if d.row.Lang == "en" {
				keys = append(keys, "attack:en")
			} else {
				keys = append(keys, "attack:multi")
			}
		}
		for _, k := range keys {
			c := get(k)
			switch {
			case d.y > 0 && s[i] >= t:
				c.tp++
			case d.y > 0:
				c.fn++
			case s[i] >= t:
				c.fp++
			default:
				c.tn++
			}
		}
	}
	keys := make([]string, 0, len(by))
	for k := range by {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		c := by[k]
		rec := float64(c.tp) / math.Max(1, float64(c.tp+c.fn))
		fpr := float64(c.fp) / math.Max(1, float64(c.fp+c.tn))
		log.Info(name, "slice", k, "recall", fmt.Sprintf("%.3f", rec), "fpr", fmt.Sprintf("%.3f", fpr), "tp", c.tp, "fn", c.fn, "fp", c.fp, "tn", c.tn, "threshold", fmt.Sprintf("%.4f", t))
	}
}

// isolateBIPIA narrows each BIPIA training attack (a clean context with an
// instruction inserted at its start, middle or end) to the inserted
// instruction and the context around it. The same contexts occur clean as
// benign rows; trained whole, the attack rows would teach the model that the
// contexts themselves (e-mails, tables, code) are attacks.
func isolateBIPIA(rows []corpus.Row) []corpus.Row {
	const keyLen, margin = 80, 160
	pre, suf := map[string]string{}, map[string]string{}
	for _, r := range rows {
		if r.Source == "bipia_train" && r.Label == 0 && len(r.Text) > keyLen {
			pre[r.Text[:keyLen]] = r.Text
			suf[r.Text[len(r.Text)-keyLen:]] = r.Text
		}
	}
	out := make([]corpus.Row, 0, len(rows))
	for _, r := range rows {
		if r.Source != "bipia_train" || r.Label != 1 || len(r.Text) <= keyLen {
			out = append(out, r)
			continue
		}
		t := r.Text
		b, ok := pre[t[:keyLen]]
		if !ok {
			b, ok = suf[t[len(t)-keyLen:]]
		}
		if !ok {
			out = append(out, r)
			continue
		}
		i := 0
		for i < len(t) && i < len(b) && t[i] == b[i] {
			i++
		}
		j := 0
		for j < len(t)-i && j < len(b)-i && t[len(t)-1-j] == b[len(b)-1-j] {
			j++
		}
		if len(strings.TrimSpace(t[i:len(t)-j])) < 8 {
			out = append(out, r)
			continue
		}
		a, e := max(0, i-margin), min(len(t), len(t)-j+margin)
		for a > 0 && !utf8.RuneStart(t[a]) {
			a--
		}
		for e < len(t) && !utf8.RuneStart(t[e]) {
			e++
		}
		r.Text = t[a:e]
		out = append(out, r)
	}
	return out
}

// devLangs maps the development set's language names to locale codes.
func devLangs() map[string]string {
	return map[string]string{"Arabic": "ar", "Bengali": "bn", "Chinese": "zh", "Filipino/Tagalog": "tl", "French": "fr", "German": "de",
		"Hindi": "hi", "Indonesian": "id", "Italian": "it", "Japanese": "ja", "Korean": "ko", "Portuguese": "pt", "Russian": "ru",
		"Spanish": "es", "Thai": "th", "Turkish": "tr", "Vietnamese": "vi"}
}

// baseLang reduces a locale name (zh_CN, sr@latin, fil) to its language.
func baseLang(l string) string {
	if i := strings.IndexAny(l, "_@"); i > 0 {
		l = l[:i]
	}
	if l == "fil" {
		l = "tl"
	}
	return l
}

// languageBalance returns, per language, the factor by which its hard
// negatives are weighed up so that their total weight at least matches the
// weight of dev_tune's attacks in that language (1 when it already does).
// dev_tune has attacks in 17 languages and almost no benign text in them;
// without this, the language itself becomes evidence of an attack.
func languageBalance(tune, hard []corpus.Row, devTuneW, multiW float64) map[string]float64 {
	names := devLangs()
	attack := map[string]float64{}
	for _, r := range tune {
		if code, ok := names[r.Lang]; ok && r.Label == 1 {
			attack[code] += devTuneW
		}
	}
	benign := map[string]float64{}
	for _, r := range hard {
		benign[baseLang(r.Lang)] += multiW
	}
	out := map[string]float64{}
	for _, r := range hard {
		l := baseLang(r.Lang)
		if _, done := out[l]; done {
			continue
		}
		out[l] = 1
		if a, b := attack[l], benign[l]; b > 0 && a > b {
			out[l] = a / b
		}
	}
	return out
}
