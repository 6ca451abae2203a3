package injection

import (
	"regexp/syntax"
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
	switch re.Op {
	case syntax.OpLiteral:
		if re.Flags&syntax.FoldCase != 0 || len(string(re.Rune)) < 2 {
			return nil
		}
		return []string{string(re.Rune)}
	case syntax.OpCapture:
		return required(re.Sub[0])
	case syntax.OpPlus:
		return required(re.Sub[0])
	case syntax.OpRepeat:
		if re.Min >= 1 {
			return required(re.Sub[0])
		}
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

func shortest(l []string) int {
	n := -1
	for _, s := range l {
		if n < 0 || len(s) < n {
			n = len(s)
		}
	}
	return n
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
