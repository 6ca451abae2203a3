package inspect

import (
	_ "embed"

	"github.com/warden-run/warden/inspect/internal/acindex"

	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"sort"
	"strings"
)

//go:embed rules/secrets.json
var secretRulesJSON []byte

type secretRuleFile struct {
	Source             string       `json:"source"`
	License            string       `json:"license"`
	GlobalAllowRegexes []string     `json:"global_allow_regexes"`
	GlobalStopwords    []string     `json:"global_stopwords"`
	Rules              []secretRule `json:"rules"`
}

type secretRule struct {
	ID          string   `json:"id"`
	Description string   `json:"description"`
	Regex       string   `json:"regex"`
	Keywords    []string `json:"keywords"`
	Entropy     float64  `json:"entropy"`
	SecretGroup int      `json:"secret_group"`
	Allow       []struct {
		Regex  string `json:"regex"`
		Target string `json:"target"`
	} `json:"allow"`
	Stopwords []string `json:"stopwords"`
}

type compiledSecret struct {
	secretRule
	re    *regexp.Regexp
	allow []allowRe
	wide  bool // the pattern can span far from its keyword: run it on the whole text
}

type allowRe struct {
	re     *regexp.Regexp
	target string // secret, match or line
}

// ScannerOptions tune a Scanner.
type ScannerOptions struct {
	// AllowSecrets are regular expressions of values that are known not to
	// be secrets (test fixtures, documented example keys).
	AllowSecrets []string
	// MaxBytes bounds the text scanned per call (default 4 MiB).
	MaxBytes int
}

// Scanner finds secrets and personal data. Every regular expression is
// compiled once in NewScanner; Scan allocates only for what it finds.
type Scanner struct {
	rules       []compiledSecret
	kw          *acindex.Index
	globalAllow []*regexp.Regexp
	stopwords   []string
	userAllow   []*regexp.Regexp
	pii         *piiScanner
	exfil       *exfilRules
	maxBytes    int
	source      string
}

// NewScanner compiles the embedded secret rules (converted from gitleaks'
// rule set, MIT; see inspect/rules) and the PII detectors.
func NewScanner(o ScannerOptions) (*Scanner, error) {
	var f secretRuleFile
	if err := json.Unmarshal(secretRulesJSON, &f); err != nil {
		return nil, fmt.Errorf("secret rules: %w", err)
	}
	s := &Scanner{stopwords: f.GlobalStopwords, maxBytes: o.MaxBytes, source: f.Source}
	if s.maxBytes <= 0 {
		s.maxBytes = 4 << 20
	}
	var kws [][]string
	for _, r := range f.Rules {
		re, err := regexp.Compile(r.Regex)
		if err != nil {
			return nil, fmt.Errorf("secret rule %s: %w", r.ID, err)
		}
		c := compiledSecret{secretRule: r, re: re}
		c.wide = strings.Contains(r.Regex, `[\s\S]`) || strings.Contains(r.Regex, "(?s") || strings.Contains(r.Regex, "{64,") || strings.Contains(r.Regex, "{100,") || strings.Contains(r.Regex, "{250,")
		for _, a := range r.Allow {
			are, err := regexp.Compile(a.Regex)
			if err != nil {
				return nil, fmt.Errorf("secret rule %s allow-list: %w", r.ID, err)
			}
			c.allow = append(c.allow, allowRe{are, a.Target})
		}
		s.rules = append(s.rules, c)
		kws = append(kws, r.Keywords)
	}
	s.kw = acindex.New(kws)
	for _, x := range f.GlobalAllowRegexes {
		re, err := regexp.Compile(x)
		if err != nil {
			return nil, fmt.Errorf("secret global allow-list: %w", err)
		}
		s.globalAllow = append(s.globalAllow, re)
	}
	for _, x := range o.AllowSecrets {
		re, err := regexp.Compile(x)
		if err != nil {
			return nil, fmt.Errorf("allow_secrets %q: %w", x, err)
		}
		s.userAllow = append(s.userAllow, re)
	}
	var err error
	if s.pii, err = newPIIScanner(); err != nil {
		return nil, fmt.Errorf("PII patterns: %w", err)
	}
	if s.exfil, err = newExfilRules(); err != nil {
		return nil, fmt.Errorf("exfiltration patterns: %w", err)
	}
	return s, nil
}

// RuleCount is the number of secret rules loaded.
func (s *Scanner) RuleCount() int { return len(s.rules) }

// Scan returns the secrets and PII in text. path labels the findings (the
// argument's JSON path). Findings carry no action: the Inspector sets it.
func (s *Scanner) Scan(text, path string) []Finding {
	if len(text) > s.maxBytes {
		text = text[:s.maxBytes]
	}
	var out []Finding
	out = s.scanSecrets(text, path, out)
	out = s.pii.scan(text, path, out)
	sort.SliceStable(out, func(i, j int) bool { return out[i].Start < out[j].Start })
	return dropOverlaps(out)
}

// Keyword windows: a rule's pattern runs on the text around each of its
// keywords (most secrets sit within a few hundred bytes after the name that
// introduces them), not on the whole text.
const (
	kwBefore = 64
	kwAfter  = 320
)

func (s *Scanner) scanSecrets(text, path string, out []Finding) []Finding {
	type hit struct{ rule, pos int }
	var hits []hit
	s.kw.ScanN(text, func(rule, pos, n int) bool {
		// A keyword of three bytes or fewer ("s.", "sk-") only counts at
		// the start of a word.
		if n <= 3 && pos > 0 && isAlnum(text[pos-1]) {
			return true
		}
		hits = append(hits, hit{rule, pos})
		return len(hits) < 4096
	})
	if len(hits) == 0 {
		return out
	}
	sort.Slice(hits, func(i, j int) bool {
		if hits[i].rule != hits[j].rule {
			return hits[i].rule < hits[j].rule
		}
		return hits[i].pos < hits[j].pos
	})
	for k := 0; k < len(hits); {
		ri := hits[k].rule
		r := &s.rules[ri]
		var windows [][2]int
		for ; k < len(hits) && hits[k].rule == ri; k++ {
			if r.wide {
				continue
			}
			a, b := max(0, hits[k].pos-kwBefore), min(len(text), hits[k].pos+kwAfter)
			if n := len(windows); n > 0 && a <= windows[n-1][1] {
				windows[n-1][1] = b
				continue
			}
			if len(windows) < 64 {
				windows = append(windows, [2]int{a, b})
			}
		}
		if r.wide {
			windows = [][2]int{{0, len(text)}}
		}
		for _, w := range windows {
			out = s.matchRule(r, text, w[0], w[1], path, out)
		}
	}
	return out
}

// matchRule runs one rule's pattern on text[a:b].
func (s *Scanner) matchRule(r *compiledSecret, text string, a, b int, path string, out []Finding) []Finding {
	win := text[a:b]
	for _, m := range r.re.FindAllStringSubmatchIndex(win, 16) {
		ss, se := m[0], m[1]
		g := r.SecretGroup
		if g == 0 && len(m) > 2 {
			// gitleaks uses the first non-empty group when none is named.
			for k := 1; 2*k+1 < len(m); k++ {
				if m[2*k] >= 0 && m[2*k+1] > m[2*k] {
					g = k
					break
				}
			}
		}
		if g > 0 && 2*g+1 < len(m) && m[2*g] >= 0 {
			ss, se = m[2*g], m[2*g+1]
		}
		secret := win[ss:se]
		if r.Entropy > 0 && shannon(secret) < r.Entropy {
			continue
		}
		if s.allowed(r, secret, win[m[0]:m[1]], line(text, a+m[0], a+m[1])) {
			continue
		}
		score := 0.9
		switch {
		case strings.HasPrefix(r.ID, "generic"):
			score = 0.75 // a specific rule matching the same text wins
		case r.Entropy == 0:
			score = 0.8
		}
		out = append(out, Finding{Kind: KindSecret, Rule: r.ID, Reason: r.Description, Score: score, Path: path, Start: a + ss, End: a + se, Excerpt: mask(secret)})
	}
	return out
}

func (s *Scanner) allowed(r *compiledSecret, secret, match, ln string) bool {
	lower := strings.ToLower(secret)
	for _, w := range s.stopwords {
		if strings.Contains(lower, w) {
			return true
		}
	}
	for _, w := range r.Stopwords {
		if strings.Contains(lower, strings.ToLower(w)) {
			return true
		}
	}
	for _, re := range s.globalAllow {
		if re.MatchString(secret) {
			return true
		}
	}
	for _, a := range r.allow {
		t := secret
		switch a.target {
		case "match":
			t = match
		case "line":
			t = ln
		}
		if a.re.MatchString(t) {
			return true
		}
	}
	for _, re := range s.userAllow {
		if re.MatchString(secret) {
			return true
		}
	}
	return false
}

func line(text string, a, b int) string {
	s := strings.LastIndexByte(text[:a], '\n') + 1
	e := strings.IndexByte(text[b:], '\n')
	if e < 0 {
		return text[s:]
	}
	return text[s : b+e]
}

// shannon is the Shannon entropy of s in bits per byte.
func shannon(s string) float64 {
	if s == "" {
		return 0
	}
	var counts [256]int
	for i := 0; i < len(s); i++ {
		counts[s[i]]++
	}
	n := float64(len(s))
	var h float64
	for _, c := range counts {
		if c > 0 {
			p := float64(c) / n
			h -= p * math.Log2(p)
		}
	}
	return h
}

// dropOverlaps keeps the first of overlapping findings of the same kind
// (findings are sorted by start).
func dropOverlaps(fs []Finding) []Finding {
	if len(fs) < 2 {
		return fs
	}
	out := fs[:1]
	for _, f := range fs[1:] {
		last := &out[len(out)-1]
		if f.Start < last.End && f.Kind == last.Kind && f.Path == last.Path {
			if f.Score > last.Score {
				*last = f
			}
			continue
		}
		out = append(out, f)
	}
	return out
}
