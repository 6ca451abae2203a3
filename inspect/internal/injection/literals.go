package injection

import (
	"regexp/syntax"
	"slices"
	"strings"
)

// A rule's regular expression costs microseconds per window (the bounded
// repetitions such as [^.\n]{0,48} make large programs), most windows around
// common trigger words do not match, and most patterns cannot match without
// one of a few literal words ("instruction", "password" ...). Checking for
// those words first with strings.Contains skips the regular expression on
// most windows without changing what matches.

// maxNeed bounds the literals checked per pattern; a pattern with more
// alternatives is simply always run.
const maxNeed = 24

// mustLiterals returns strings one of which occurs in every match of
// pattern, or nil when no useful set is known (the pattern then always runs).
func mustLiterals(pattern string) []string {
	re, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		return nil
	}
	return required(re.Simplify())
}

// required is mustLiterals over a parsed expression. Only constructs whose
// matches certainly contain the literals are followed: a literal, a group,
// a repetition of at least one, a concatenation (the best of its parts) and
// an alternation (the union of its branches, if every branch has literals).
// Literals shorter than two bytes are too common to be worth checking.
func required(re *syntax.Regexp) []string {
	if sub, ok := inner(re); ok {
		return required(sub)
	}
	switch re.Op {
	case syntax.OpLiteral:
		if re.Flags&syntax.FoldCase != 0 || len(string(re.Rune)) < 2 {
			return nil
		}
		return []string{string(re.Rune)}
	case syntax.OpConcat:
		// The part whose shortest literal is longest; on a tie the later
		// one, since a rule's pattern starts with its trigger words, which
		// the window always contains.
		var best []string
		for _, sub := range re.Sub {
			if l := required(sub); l != nil && (best == nil || shortest(l) >= shortest(best)) {
				best = l
			}
		}
		return best
	case syntax.OpAlternate:
		var all []string
		for _, sub := range re.Sub {
			l := required(sub)
			if l == nil {
				return nil
			}
			all = append(all, l...)
		}
		if len(all) > maxNeed {
			return nil
		}
		return all
	}
	return nil
}

// inner returns the expression every match of re contains a match of, when
// re is a group of it or a repetition of at least one: the walkers below
// (required, requiredCond, anchoredAt, starts) look through these alike.
func inner(re *syntax.Regexp) (*syntax.Regexp, bool) {
	switch re.Op {
	case syntax.OpCapture, syntax.OpPlus:
		return re.Sub[0], true
	case syntax.OpRepeat:
		return re.Sub[0], re.Min >= 1
	}
	return nil, false
}

func shortest(l []string) int {
	n := -1
	for _, s := range l {
		if n < 0 || len(s) < n {
			n = len(s)
		}
	}
	return n
}

// A cond is what every match of a pattern contains, as a formula over
// literals: the literal lit, all of and, or one of or. The zero cond
// holds for any text. It is stronger than mustLiterals' one set (for
// `personal\s+(?:data|information)` it asks for "personal" and one of
// "data" and "information", not only the longest), so that fewer windows
// run the regular expression; like that set, it only ever skips windows
// the pattern cannot match.
type cond struct {
	lit string
	and []cond
	or  []cond
	// pre, when set, is a literal the text has at byte at (an anchored
	// cond, anchoredCond): a test of a few bytes, where lit searches.
	pre string
	at  int
}

// maxCondLits bounds the literals of a cond; a pattern that needs more
// falls back to mustLiterals.
const maxCondLits = 48

// mustCond returns the cond of pattern.
func mustCond(pattern string) cond {
	re, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		return cond{}
	}
	c, ok := requiredCond(re.Simplify())
	if !ok || c.lits() > maxCondLits {
		return cond{or: litConds(mustLiterals(pattern))}
	}
	return c
}

func litConds(need []string) []cond {
	var out []cond
	for _, w := range need {
		out = append(out, cond{lit: w})
	}
	return out
}

// requiredCond is mustCond over a parsed expression, following the same
// constructs as required; ok is false when the expression proves nothing.
func requiredCond(re *syntax.Regexp) (c cond, ok bool) {
	if sub, ok := inner(re); ok {
		return requiredCond(sub)
	}
	switch re.Op {
	case syntax.OpLiteral:
		if re.Flags&syntax.FoldCase != 0 || len(string(re.Rune)) < 2 {
			return cond{}, false
		}
		return cond{lit: string(re.Rune)}, true
	case syntax.OpConcat:
		var parts []cond
		for _, sub := range re.Sub {
			if c, ok := requiredCond(sub); ok {
				parts = append(parts, c)
			}
		}
		switch len(parts) {
		case 0:
			return cond{}, false
		case 1:
			return parts[0], true
		}
		return cond{and: parts}, true
	case syntax.OpAlternate:
		var alts []cond
		for _, sub := range re.Sub {
			c, ok := requiredCond(sub)
			if !ok {
				return cond{}, false
			}
			alts = append(alts, c)
		}
		return cond{or: alts}, true
	}
	return cond{}, false
}

// anchoredCond is mustCond for matches that start where the text does (a
// rule's pattern run at its trigger word): besides the literals every
// match contains, it asks for the literals a match must start with, or
// have at a fixed offset, which a window around a common trigger word
// ("the", "i", "what") rarely has. For `\bwhere\s+is|\bthe\s+user's`
// at the word "the" it tests that the text starts with "where" or with
// "the" and contains "user's", instead of searching for both
// alternatives' words.
func anchoredCond(pattern string) cond {
	re, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		return cond{}
	}
	c, ok := anchoredAt(re.Simplify(), 0)
	if !ok || c.lits() > maxCondLits {
		return mustCond(pattern)
	}
	return c
}

// anchoredAt is requiredCond for the matches of re that start at byte off
// of the text; ok is false when it proves nothing. Literals at a known
// offset become prefix tests; past the first part of unknown length the
// parts are searched for as requiredCond does.
func anchoredAt(re *syntax.Regexp, off int) (c cond, ok bool) {
	if sub, ok := inner(re); ok {
		return anchoredAt(sub, off)
	}
	switch re.Op {
	case syntax.OpLiteral:
		if re.Flags&syntax.FoldCase != 0 {
			return cond{}, false
		}
		return cond{pre: string(re.Rune), at: off}, true
	case syntax.OpConcat:
		var parts []cond
		for _, sub := range re.Sub {
			var c cond
			var ok bool
			if off >= 0 {
				c, ok = anchoredAt(sub, off)
			} else {
				c, ok = requiredCond(sub)
			}
			if ok {
				parts = append(parts, c)
			}
			switch {
			case off < 0:
			case emptyWidth(sub.Op):
			case sub.Op == syntax.OpLiteral && sub.Flags&syntax.FoldCase == 0:
				off += len(string(sub.Rune))
			default:
				off = -1
			}
		}
		switch len(parts) {
		case 0:
			return cond{}, false
		case 1:
			return parts[0], true
		}
		// holds tries an and's parts from the last: the prefix tests,
		// which come first here, are the cheapest.
		slices.Reverse(parts)
		return cond{and: parts}, true
	case syntax.OpAlternate:
		var alts []cond
		for _, sub := range re.Sub {
			c, ok := anchoredAt(sub, off)
			if !ok {
				return cond{}, false
			}
			alts = append(alts, c)
		}
		return cond{or: alts}, true
	}
	return cond{}, false
}

// emptyWidth reports the operators that match without consuming text.
func emptyWidth(op syntax.Op) bool {
	switch op {
	case syntax.OpEmptyMatch, syntax.OpBeginLine, syntax.OpEndLine, syntax.OpBeginText,
		syntax.OpEndText, syntax.OpWordBoundary, syntax.OpNoWordBoundary:
		return true
	}
	return false
}

func (c *cond) lits() int {
	n := 0
	if c.lit != "" || c.pre != "" {
		n++
	}
	for i := range c.and {
		n += c.and[i].lits()
	}
	for i := range c.or {
		n += c.or[i].lits()
	}
	return n
}

// holds reports whether s meets c. The parts of an and are tried from the
// last: a pattern starts with its trigger words, which the window always
// holds.
func (c *cond) holds(s string) bool {
	switch {
	case c.pre != "":
		return len(s) >= c.at+len(c.pre) && s[c.at:c.at+len(c.pre)] == c.pre
	case c.lit != "":
		return strings.Contains(s, c.lit)
	case c.and != nil:
		for i := len(c.and) - 1; i >= 0; i-- {
			if !c.and[i].holds(s) {
				return false
			}
		}
		return true
	case c.or != nil:
		for i := range c.or {
			if c.or[i].holds(s) {
				return true
			}
		}
		return false
	}
	return true
}

// containsAny reports whether s contains one of need; with no need, true.
func containsAny(s string, need []string) bool {
	if need == nil {
		return true
	}
	for _, w := range need {
		if strings.Contains(s, w) {
			return true
		}
	}
	return false
}

// startLiterals returns literals one of which every match of pattern
// starts with, or nil when the pattern does not show them: each branch
// must begin with a literal (or a group or repetition of one), and not
// with an assertion such as \b or ^, whose answer on a text cut at the
// literal could differ from the answer in the whole text.
func startLiterals(pattern string) []string {
	re, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		return nil
	}
	l, ok := starts(re.Simplify())
	if !ok {
		return nil
	}
	// A literal another one begins marks no start the shorter does not:
	// keep the shortest of each such family, once ("ignor" for "ignora",
	// "ignore" and "ignor" again), so that find searches for each once.
	slices.Sort(l)
	out := l[:0]
	for _, w := range l {
		if len(out) == 0 || !strings.HasPrefix(w, out[len(out)-1]) {
			out = append(out, w)
		}
	}
	return out
}

func starts(re *syntax.Regexp) ([]string, bool) {
	if sub, ok := inner(re); ok {
		return starts(sub)
	}
	switch re.Op {
	case syntax.OpLiteral:
		if re.Flags&syntax.FoldCase != 0 || len(re.Rune) == 0 {
			return nil, false
		}
		return []string{string(re.Rune)}, true
	case syntax.OpConcat:
		return starts(re.Sub[0])
	case syntax.OpAlternate:
		var all []string
		for _, sub := range re.Sub {
			l, ok := starts(sub)
			if !ok {
				return nil, false
			}
			all = append(all, l...)
		}
		return all, true
	}
	return nil, false
}
