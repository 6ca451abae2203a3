package inspect

import (
	_ "embed"
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
	kw          *keywordIndex
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
	s.kw = newKeywordIndex(kws)
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

func (s *Scanner) scanSecrets(text, path string, out []Finding) []Finding {
	cands := s.kw.match(text)
	for _, ri := range cands {
		r := &s.rules[ri]
		for _, m := range r.re.FindAllStringSubmatchIndex(text, 16) {
			secret, ss, se := text[m[0]:m[1]], m[0], m[1]
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
				secret = text[ss:se]
			}
			if r.Entropy > 0 && shannon(secret) < r.Entropy {
				continue
			}
			if s.allowed(r, secret, text[m[0]:m[1]], line(text, m[0], m[1])) {
				continue
			}
			score := 0.9
			switch {
			case strings.HasPrefix(r.ID, "generic"):
				score = 0.75 // a specific rule matching the same text wins
			case r.Entropy == 0:
				score = 0.8
			}
			out = append(out, Finding{Kind: KindSecret, Rule: r.ID, Reason: r.Description, Score: score, Path: path, Start: ss, End: se, Excerpt: mask(secret)})
		}
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

// keywordIndex finds which rules' keywords occur in a text in one pass,
// case-insensitively, with an Aho-Corasick automaton over bytes.
type keywordIndex struct {
	next  [][256]int32 // goto function with failure links folded in
	out   [][]int32    // rules whose keyword ends at this state
	rules int
}

func newKeywordIndex(kws [][]string) *keywordIndex {
	k := &keywordIndex{next: make([][256]int32, 1), out: make([][]int32, 1), rules: len(kws)}
	for i := range k.next[0] {
		k.next[0][i] = -1
	}
	for ri, ws := range kws {
		for _, w := range ws {
			w = strings.ToLower(w)
			st := int32(0)
			for i := 0; i < len(w); i++ {
				c := w[i]
				if k.next[st][c] < 0 {
					k.next = append(k.next, [256]int32{})
					k.out = append(k.out, nil)
					n := int32(len(k.next) - 1)
					for j := range k.next[n] {
						k.next[n][j] = -1
					}
					k.next[st][c] = n
				}
				st = k.next[st][c]
			}
			k.out[st] = append(k.out[st], int32(ri))
		}
	}
	// Breadth-first: failure links, folded into the goto table.
	fail := make([]int32, len(k.next))
	queue := make([]int32, 0, len(k.next))
	for c := range 256 {
		if n := k.next[0][c]; n >= 0 {
			fail[n] = 0
			queue = append(queue, n)
		} else {
			k.next[0][c] = 0
		}
	}
	for len(queue) > 0 {
		st := queue[0]
		queue = queue[1:]
		for c := range 256 {
			n := k.next[st][c]
			if n >= 0 {
				fail[n] = k.next[fail[st]][c]
				k.out[n] = append(k.out[n], k.out[fail[n]]...)
				queue = append(queue, n)
			} else {
				k.next[st][c] = k.next[fail[st]][c]
			}
		}
	}
	return k
}

// match returns the indices of rules with a keyword in text, ascending.
func (k *keywordIndex) match(text string) []int {
	var seen []uint64
	var out []int
	st := int32(0)
	for i := 0; i < len(text); i++ {
		c := text[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		st = k.next[st][c]
		if o := k.out[st]; len(o) > 0 {
			if seen == nil {
				seen = make([]uint64, (k.rules+63)/64)
			}
			for _, r := range o {
				if seen[r/64]&(1<<(r%64)) == 0 {
					seen[r/64] |= 1 << (r % 64)
					out = append(out, int(r))
				}
			}
		}
	}
	sort.Ints(out)
	return out
}
