package inspect

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/warden-run/warden/inspect/internal/decode"
	"github.com/warden-run/warden/tier"
)

// Tool risk labels (design: "Labels fail closed").
const (
	LabelReads           = "reads"
	LabelWrites          = "writes"
	LabelEgress          = "egress"
	LabelDestructive     = "destructive"
	LabelUntrustedOutput = "untrusted_output"
)

// EffectiveLabels applies the fail-closed rule: a tool with no labels
// carries all five.
func EffectiveLabels(labels []string) []string {
	if len(labels) == 0 {
		return []string{LabelReads, LabelWrites, LabelEgress, LabelDestructive, LabelUntrustedOutput}
	}
	return labels
}

func hasLabel(labels []string, want ...string) bool {
	for _, l := range EffectiveLabels(labels) {
		for _, w := range want {
			if l == w {
				return true
			}
		}
	}
	return false
}

// SensitiveSink reports whether a tool with these labels is a sink the flow
// rules guard (egress, writes or destructive).
func SensitiveSink(labels []string) bool {
	return hasLabel(labels, LabelEgress, LabelWrites, LabelDestructive)
}

// TaintSource is an untrusted call whose result a session ingested.
type TaintSource struct {
	CallID string    `json:"call_id"`
	Tool   string    `json:"tool"`
	At     time.Time `json:"at"`
	Bytes  int       `json:"bytes"`
}

func (t TaintSource) String() string { return fmt.Sprintf("call %s (%s)", t.CallID, t.Tool) }

// TaintLimits bound what a session remembers.
type TaintLimits struct {
	MaxSources int // untrusted results remembered, most recent kept (default 32)
	MaxBytes   int // bytes indexed per result (default 256 KiB)
	MinMatch   int // shortest substring that counts as a match (default 20 bytes)
}

func (l TaintLimits) withDefaults() TaintLimits {
	if l.MaxSources <= 0 {
		l.MaxSources = 32
	}
	if l.MaxBytes <= 0 {
		l.MaxBytes = 256 << 10
	}
	if l.MinMatch < 12 {
		l.MinMatch = 20
	}
	return l
}

// Session is one agent session's taint record: whether it has ingested
// untrusted content, from which calls, and (for the heuristic rule) an index
// of that content. The gateway owns one per session; it is safe for
// concurrent use. State is in memory only.
type Session struct {
	mu      sync.Mutex
	lim     TaintLimits
	sources []*taintEntry
	all     []TaintSource // every source, including those no longer indexed
	dec     *decode.Decoder
}

type taintEntry struct {
	src     TaintSource
	text    string              // canonical form
	anchors []uint64            // sorted hashes of anchored windows of text
	ents    map[string]struct{} // e-mails, URLs, hosts, long numbers
}

func (e *taintEntry) hasAnchor(h uint64) bool {
	i, ok := slices.BinarySearch(e.anchors, h)
	_ = i
	return ok
}

// NewSession starts an untainted session.
func NewSession(lim TaintLimits) *Session {
	return &Session{
		lim: lim.withDefaults(),
		dec: decode.New(decode.Limits{MaxPayloads: 8, MaxBytes: 64 << 10}),
	}
}

// Ingest records that the session read the result of an untrusted call.
// Call it for every result of a tool labelled untrusted_output (and for
// untrusted memory entries served to the agent).
func (s *Session) Ingest(src TaintSource, content string) {
	if len(content) > s.lim.MaxBytes {
		content = content[:s.lim.MaxBytes]
	}
	src.Bytes = len(content)
	if src.At.IsZero() {
		src.At = time.Now()
	}
	e := &taintEntry{src: src, text: canonical(content), ents: map[string]struct{}{}}
	k := s.window()
	e.anchors = make([]uint64, 0, len(e.text)/3)
	forAnchors(e.text, k, func(h uint64, _ int) bool {
		e.anchors = append(e.anchors, h)
		return true
	})
	slices.Sort(e.anchors)
	e.anchors = slices.Compact(e.anchors)
	forEachEntity(content, 4096, func(m string) {
		if v := canonEntity(m); len(v) >= 6 {
			e.ents[v] = struct{}{}
		}
	})
	s.mu.Lock()
	defer s.mu.Unlock()
	s.all = append(s.all, src)
	if len(s.all) > 4*s.lim.MaxSources {
		s.all = s.all[len(s.all)-4*s.lim.MaxSources:]
	}
	s.sources = append(s.sources, e)
	if len(s.sources) > s.lim.MaxSources {
		s.sources = s.sources[1:]
	}
}

// Tainted reports whether the session has ingested untrusted content.
func (s *Session) Tainted() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.all) > 0
}

// Sources lists the untrusted calls ingested (the most recent ones).
func (s *Session) Sources() []TaintSource {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]TaintSource(nil), s.all...)
}

func (s *Session) window() int { return s.lim.MinMatch - 4 }

// FlowMatch is an argument value found in untrusted content.
type FlowMatch struct {
	Path   string
	Source TaintSource
	How    string // "substring", "entity", "url-decoded substring", ...
	Match  string // the matched text (canonical), cut
}

// Match is the Advanced heuristic: it looks for each argument value in the
// session's recent untrusted content, after simple transformations (case,
// whitespace, URL/base64/hex decoding), as a substring of sufficient length
// or as a shared entity (e-mail address, URL, host, account number). It can
// miss paraphrased or re-encoded data: it is a heuristic.
func (s *Session) Match(args []Arg) []FlowMatch {
	s.mu.Lock()
	entries := append([]*taintEntry(nil), s.sources...)
	s.mu.Unlock()
	if len(entries) == 0 {
		return nil
	}
	var out []FlowMatch
	for _, a := range args {
		if strings.HasSuffix(a.Path, ".<key>") && len(a.Value) < s.lim.MinMatch {
			continue
		}
		forms := []struct{ how, text string }{{"substring", a.Value}}
		if strings.ContainsAny(a.Value, "+%") {
			if u, err := url.QueryUnescape(a.Value); err == nil && u != a.Value {
				forms = append(forms, struct{ how, text string }{"url-decoded substring", u})
			}
		}
		if len(a.Value) >= 12 {
			for _, p := range s.dec.Find(a.Value) {
				forms = append(forms, struct{ how, text string }{p.Enc + "-decoded substring", p.Text})
			}
		}
		found := false
		for _, f := range forms {
			if m, ok := s.matchOne(entries, f.text); ok {
				m.Path = a.Path
				if m.How == "substring" {
					m.How = f.how
				} else if f.how != "substring" {
					m.How = m.How + " after " + strings.TrimSuffix(f.how, " substring")
				}
				out = append(out, m)
				found = true
				break
			}
		}
		_ = found
	}
	return out
}

func (s *Session) matchOne(entries []*taintEntry, value string) (FlowMatch, bool) {
	// Entities first: short values like an e-mail address or an account
	// number are what injected instructions most often plant.
	var found FlowMatch
	ok := false
	forEachEntity(value, 64, func(m string) {
		v := canonEntity(m)
		if ok || len(v) < 6 {
			return
		}
		for i := len(entries) - 1; i >= 0; i-- {
			if _, hit := entries[i].ents[v]; hit {
				found, ok = FlowMatch{Source: entries[i].src, How: "entity", Match: cutString(v, 80)}, true
				return
			}
		}
	})
	if ok {
		return found, true
	}
	c := canonical(value)
	if len(c) < s.lim.MinMatch {
		return FlowMatch{}, false
	}
	k := s.window()
	var res FlowMatch
	forAnchors(c, k, func(h uint64, pos int) bool {
		for i := len(entries) - 1; i >= 0; i-- {
			e := entries[i]
			if !e.hasAnchor(h) {
				continue
			}
			// Verify and extend: the longest stretch around the anchor that
			// the content contains.
			a, b := pos, pos+k
			if !strings.Contains(e.text, c[a:b]) {
				continue
			}
			for b < len(c) && strings.Contains(e.text, c[a:b+1]) {
				b++
			}
			for a > 0 && strings.Contains(e.text, c[a-1:b]) {
				a--
			}
			if b-a >= s.lim.MinMatch {
				res = FlowMatch{Source: e.src, How: "substring", Match: cutString(c[a:b], 80)}
				ok = true
				return false
			}
		}
		return true
	})
	return res, ok
}

// canonical lower-cases and collapses whitespace.
func canonical(s string) string {
	b := make([]byte, 0, len(s))
	space := false
	i := 0
	for ; i < len(s) && s[i] < utf8.RuneSelf; i++ { // ASCII prefix, the common case
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f':
			space = true
			continue
		case 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		}
		if space && len(b) > 0 {
			b = append(b, ' ')
		}
		space = false
		b = append(b, c)
	}
	if i == len(s) {
		return string(b)
	}
	return canonicalSlow(s[i:], b, space)
}

func canonicalSlow(s string, b []byte, space bool) string {
	for _, r := range s {
		if r == utf8.RuneError {
			continue
		}
		if unicode.IsSpace(r) {
			space = true
			continue
		}
		if space && len(b) > 0 {
			b = append(b, ' ')
		}
		space = false
		b = utf8.AppendRune(b, unicode.ToLower(r))
	}
	return string(b)
}

func canonEntity(s string) string {
	s = strings.ToLower(strings.TrimRight(s, ".,;:!?)"))
	return strings.Map(func(r rune) rune {
		if r == ' ' || r == '-' && len(s) > 0 && s[0] >= '0' && s[0] <= '9' {
			return -1
		}
		return r
	}, s)
}

// forAnchors calls fn for every window of k bytes of s whose hash is
// selected (about one in four), content-defined so that the same substring
// selects the same windows wherever it occurs.
func forAnchors(s string, k int, fn func(h uint64, pos int) bool) {
	if len(s) < k {
		return
	}
	const base = 1099511628211
	var pow uint64 = 1
	for range k - 1 {
		pow *= base
	}
	var h uint64
	for i := 0; i < k; i++ {
		h = h*base + uint64(s[i])
	}
	for i := 0; ; i++ {
		if (h*0x9E3779B97F4A7C15)>>62 == 0 {
			if !fn(h, i) {
				return
			}
		}
		if i+k >= len(s) {
			return
		}
		h = (h-uint64(s[i])*pow)*base + uint64(s[i+k])
	}
}

// FlowDecision is the verdict of a flow rule on one call.
type FlowDecision struct {
	Allow bool
	// Rule is "taint_heuristic", "taint_sound" or "" when nothing applied.
	Rule   string
	Reason string
	// Heuristic is true for the Advanced rule's decisions.
	Heuristic bool
	Findings  []Finding
}

// CheckFlow applies the tier's flow rule to a call. labels are the tool's
// risk labels; args its flattened arguments; fixed reports whether the
// grant fixes a top-level argument (const, enum, allow-list, path_within,
// url_host_in) — nil means the grant fixes nothing.
//
//   - off: taint is recorded; matches are returned as findings to log.
//   - heuristic (Advanced): a sensitive call whose argument values match the
//     session's untrusted content is denied, naming the source call.
//   - sound (Optimized): once the session is tainted, every argument of a
//     sensitive call must be fixed by the grant; otherwise the call needs
//     human approval: the decision is a block with rule taint_sound, which
//     the gateway turns into a hold for an operator when approvals are
//     configured (and a denial when they are not).
func CheckFlow(rule tier.FlowRule, s *Session, labels []string, args []Arg, fixed func(arg string) bool) FlowDecision {
	if s == nil || !SensitiveSink(labels) || !s.Tainted() {
		return FlowDecision{Allow: true}
	}
	var d FlowDecision
	d.Allow = true
	// A value the grant fixes (const, enum, path_within, url_host_in) was
	// chosen by the operator, not by whoever wrote the untrusted content:
	// that it also appears there is no flow.
	matches := s.Match(args)
	if fixed != nil {
		matches = slices.DeleteFunc(matches, func(m FlowMatch) bool { return fixed(TopLevelArg(m.Path)) })
	}
	for _, m := range matches {
		d.Findings = append(d.Findings, Finding{
			Kind: KindFlow, Rule: "taint_heuristic", Score: 0.9, Path: m.Path, Heuristic: true, Source: m.Source.String(),
			Reason:  fmt.Sprintf("heuristic: argument %s carries content from untrusted %s (%s match)", m.Path, m.Source, m.How),
			Excerpt: m.Match,
		})
	}
	switch rule {
	case tier.FlowHeuristic:
		if len(matches) > 0 {
			d.Allow, d.Rule, d.Heuristic = false, "taint_heuristic", true
			d.Reason = d.Findings[0].Reason
		}
	case tier.FlowSound:
		srcs := s.Sources()
		var unfixed []string
		seen := map[string]bool{}
		for _, a := range args {
			top := TopLevelArg(a.Path)
			if top == "" || seen[top] {
				continue
			}
			seen[top] = true
			if fixed == nil || !fixed(top) {
				unfixed = append(unfixed, top)
			}
		}
		if len(unfixed) > 0 {
			d.Allow, d.Rule, d.Heuristic = false, "taint_sound", false
			d.Reason = fmt.Sprintf("sound rule: the session is tainted by untrusted %s; argument(s) %s of this %s call are not fixed by the grant, so the call needs human approval",
				srcs[len(srcs)-1], strings.Join(unfixed, ", "), strings.Join(sinkLabels(labels), "/"))
			d.Findings = append(d.Findings, Finding{Kind: KindFlow, Rule: "taint_sound", Score: 1, Reason: d.Reason, Source: srcs[len(srcs)-1].String(), Path: "$." + unfixed[0]})
		}
	}
	return d
}

func sinkLabels(labels []string) []string {
	var out []string
	for _, l := range EffectiveLabels(labels) {
		if l == LabelEgress || l == LabelWrites || l == LabelDestructive {
			out = append(out, l)
		}
	}
	return out
}

// TopLevelArg returns the top-level argument name of a JSON path ("$.to" →
// "to", "$.items[2].body" → "items", `$."a b".c` → "a b").
func TopLevelArg(path string) string {
	p := strings.TrimPrefix(path, "$")
	p = strings.TrimPrefix(p, ".")
	if p == "" || strings.HasPrefix(p, "[") {
		return ""
	}
	if p[0] == '"' {
		for i := 1; i < len(p); i++ {
			if p[i] == '\\' {
				i++
				continue
			}
			if p[i] == '"' {
				return strings.ReplaceAll(p[1:i], `\"`, `"`)
			}
		}
		return p
	}
	if i := strings.IndexAny(p, ".[<"); i >= 0 {
		return p[:i]
	}
	return p
}

// forEachEntity calls fn with the e-mail addresses, URLs, host names,
// long numbers (account, reference, phone) and IBAN-like codes in s, at most
// max of them.
func forEachEntity(s string, max int, fn func(string)) {
	n := 0
	emit := func(a, b int) bool {
		fn(s[a:b])
		n++
		return n < max
	}
	forEachEmail(s, emit)
	forEachURL(s, emit)
	forEachDomain(s, emit)
	forEachNumberRun(s, 6, emit)
	// Codes mixing letters and digits (ZX-99-4471-AB, IBANs): tokens of
	// letters, digits and dashes with at least 4 digits and 2 letters.
	for i := 0; i < len(s) && n < max; {
		if !isAlnum(s[i]) {
			i++
			continue
		}
		j, digits, letters := i, 0, 0
		for j < len(s) && (isAlnum(s[j]) || s[j] == '-') {
			if s[j] >= '0' && s[j] <= '9' {
				digits++
			} else if s[j] != '-' {
				letters++
			}
			j++
		}
		if digits >= 4 && letters >= 2 && j-i >= 8 && j-i <= 64 {
			emit(i, j)
		}
		i = j
	}
}
