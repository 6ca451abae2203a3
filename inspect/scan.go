package inspect

import "strings"

// Hand-written finders for the shapes the outbound checks look for. Regular
// expressions without a literal prefix make Go's regexp engine simulate an
// automaton over the whole text (tens of MB/s at best); these finders locate
// candidates in one cheap pass, and patterns then run on small windows.

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

func isHostByte(c byte) bool { return isAlnum(c) || c == '-' || c == '.' }

func isURLByte(c byte) bool {
	return c > ' ' && c < 0x7f && c != '"' && c != '\'' && c != '<' && c != '>' && c != '(' && c != ')' && c != '`'
}

// forEachURL calls fn with the span of every scheme://... URL in s.
func forEachURL(s string, fn func(start, end int) bool) {
	for off := 0; off < len(s); {
		i := strings.Index(s[off:], "://")
		if i < 0 {
			return
		}
		i += off
		a := i
		for a > 0 && (s[a-1] >= 'a' && s[a-1] <= 'z' || s[a-1] >= 'A' && s[a-1] <= 'Z') && i-a < 10 {
			a--
		}
		b := i + 3
		for b < len(s) && isURLByte(s[b]) && b-i < 2000 {
			b++
		}
		off = b
		if a == i || b == i+3 {
			continue
		}
		// Trailing punctuation belongs to the sentence, not the URL.
		for b > i+3 && strings.IndexByte(".,;:!?", s[b-1]) >= 0 {
			b--
		}
		if !fn(a, b) {
			return
		}
	}
}

// forEachDomain calls fn with every dotted host name in s (labels of
// letters, digits and hyphens, ending in an alphabetic label of 2 to 24
// letters), outside URLs handled by the caller.
func forEachDomain(s string, fn func(start, end int) bool) {
	for i := 0; i < len(s); {
		if !isHostByte(s[i]) || s[i] == '.' || s[i] == '-' {
			i++
			continue
		}
		j := i
		for j < len(s) && isHostByte(s[j]) {
			j++
		}
		tok := strings.TrimRight(s[i:j], ".-")
		end := i + len(tok)
		if k := strings.LastIndexByte(tok, '.'); k > 0 && k < len(tok)-2 && validHost(tok) {
			if !fn(i, end) {
				return
			}
		}
		i = j
	}
}

func validHost(h string) bool {
	labels := strings.Split(h, ".")
	if len(labels) < 2 {
		return false
	}
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
	}
	tld := labels[len(labels)-1]
	if len(tld) < 2 || len(tld) > 24 {
		return false
	}
	for i := 0; i < len(tld); i++ {
		if !(tld[i] >= 'a' && tld[i] <= 'z' || tld[i] >= 'A' && tld[i] <= 'Z') {
			return false
		}
	}
	return true
}

// forEachEmail calls fn with every local@domain.tld in s.
func forEachEmail(s string, fn func(start, end int) bool) {
	for off := 0; off < len(s); {
		i := strings.IndexByte(s[off:], '@')
		if i < 0 {
			return
		}
		i += off
		off = i + 1
		a := i
		for a > 0 && i-a < 64 && (isAlnum(s[a-1]) || strings.IndexByte("._%+-", s[a-1]) >= 0) {
			a--
		}
		for a < i && !isAlnum(s[a]) {
			a++
		}
		b := i + 1
		for b < len(s) && b-i < 255 && isHostByte(s[b]) {
			b++
		}
		host := strings.TrimRight(s[i+1:b], ".-")
		if a == i || !validHost(host) {
			continue
		}
		if !fn(a, i+1+len(host)) {
			return
		}
	}
}

// forEachNumberRun calls fn with every run of digits and number punctuation
// (spaces, dashes, dots, parentheses, a leading plus) holding at least
// minDigits digits: where phone, card and identity numbers live.
func forEachNumberRun(s string, minDigits int, fn func(start, end int) bool) {
	for i := 0; i < len(s); {
		c := s[i]
		if !(c >= '0' && c <= '9' || c == '+' || c == '(') {
			i++
			continue
		}
		j, digits, lastDigit := i, 0, i
		for j < len(s) {
			c := s[j]
			if c >= '0' && c <= '9' {
				digits++
				lastDigit = j
			} else if !(c == ' ' || c == '-' || c == '.' || c == '(' || c == ')' || c == '+' && j == i) {
				break
			} else if j-lastDigit > 2 {
				break
			}
			j++
		}
		if digits >= minDigits {
			if !fn(i, lastDigit+1) {
				return
			}
		}
		if j == i {
			j++
		}
		i = j
	}
}
