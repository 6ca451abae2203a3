package injection

import (
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"
)

// A wordSeq is a rule pattern of the shape
//
//	(?:a|b|…)\b[^.\n]{0,N}?\b(?:c|d|…)\b[^.\n]{0,N}?\b(?:e|f|…)
//
// (a word of the first list, then within N characters of the same sentence
// a word of the second, then of the third: "ignore … previous …
// instructions"), matched by code at a rule's trigger words. As a regular
// expression each bounded gap compiles to a hundred instructions, which puts
// the override rules past the 500 that Go's regexp runs on its backtracker
// and onto its NFA: about 13 µs a window, a tenth of the detector's time
// on attack-dense text. matchAt finds what the expression's anchored
// match finds, in the same order of preference (a test holds it to the
// expression on random text).
type wordSeq struct {
	words [3][]string
	gap   int // N, in characters
}

// pattern is the regular expression q stands for.
func (q *wordSeq) pattern() string {
	alt := func(ws []string) string {
		quoted := make([]string, len(ws))
		for i, w := range ws {
			quoted[i] = regexp.QuoteMeta(w)
		}
		return `(?:` + strings.Join(quoted, "|") + `)`
	}
	gap := `\b[^.\n]{0,` + strconv.Itoa(q.gap) + `}?\b`
	return alt(q.words[0]) + gap + alt(q.words[1]) + gap + alt(q.words[2])
}

// matchAt returns the end of the match of pattern anchored at the start of
// s, or -1. As the expression's backtracking does, it tries the first
// list's words in order, then the shortest gap first, then the second
// list's words in order, and so on, and returns the first complete match.
func (q *wordSeq) matchAt(s string) int {
	for _, w := range q.words[0] {
		if strings.HasPrefix(s, w) && wordBoundary(s, len(w)) {
			if e := q.after(s, len(w), 1); e >= 0 {
				return e
			}
		}
	}
	return -1
}

// after matches the gap and a word of list k from s[i:] (\b holds at i),
// and the rest of the sequence after it.
func (q *wordSeq) after(s string, i, k int) int {
	for n := 0; ; n++ {
		if wordBoundary(s, i) {
			for _, w := range q.words[k] {
				if !strings.HasPrefix(s[i:], w) {
					continue
				}
				e := i + len(w)
				if k == len(q.words)-1 {
					return e // the last word needs no \b after it
				}
				if wordBoundary(s, e) {
					if end := q.after(s, e, k+1); end >= 0 {
						return end
					}
				}
			}
		}
		if n == q.gap || i == len(s) {
			return -1
		}
		// One more character of the gap: any but '.' and '\n'.
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == '.' || r == '\n' {
			return -1
		}
		i += size
	}
}

// wordBoundary is \b at byte i of s: an ASCII word character (letter,
// digit, '_') on one side and not on the other, the ends of s counting as
// non-word.
func wordBoundary(s string, i int) bool {
	before := i > 0 && wordChar(s[i-1])
	after := i < len(s) && wordChar(s[i])
	return before != after
}

func wordChar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_'
}
