package supply

import (
	"strings"
	"unicode"

	"golang.org/x/text/unicode/norm"
)

// confusableASCII says which ASCII letter or digit r is commonly mistaken
// for: Cyrillic, Greek and Armenian look-alikes, and whatever NFKC folds to
// ASCII (fullwidth and mathematical letters). It is a short table of the
// look-alikes used in practice (Unicode's confusables.txt has thousands),
// enough for tool names, which the gateway restricts to ASCII anyway.
func confusableASCII(r rune) (string, bool) {
	if r < 0x80 {
		return "", false
	}
	switch r {
	case 'а', 'ɑ', 'α':
		return "a", true
	case 'с', 'ϲ':
		return "c", true
	case 'е', 'ε':
		return "e", true
	case 'һ':
		return "h", true
	case 'і', 'ı', 'ι', 'Ꭵ':
		return "i", true
	case 'ј', 'ϳ':
		return "j", true
	case 'о', 'ο', 'օ', 'σ':
		return "o", true
	case 'р', 'ρ':
		return "p", true
	case 'ԛ':
		return "q", true
	case 'ѕ':
		return "s", true
	case 'υ', 'ս':
		return "u", true
	case 'ν', 'ѵ':
		return "v", true
	case 'ԝ', 'ѡ':
		return "w", true
	case 'х', 'χ':
		return "x", true
	case 'у', 'γ':
		return "y", true
	case 'ℓ', 'ӏ', 'Ɩ':
		return "l", true
	case 'А', 'Α':
		return "A", true
	case 'В', 'Β':
		return "B", true
	case 'С', 'Ϲ':
		return "C", true
	case 'Е', 'Ε':
		return "E", true
	case 'Н', 'Η':
		return "H", true
	case 'І', 'Ι', 'Ӏ':
		return "I", true
	case 'Ј':
		return "J", true
	case 'К', 'Κ':
		return "K", true
	case 'М', 'Μ':
		return "M", true
	case 'О', 'Ο', 'Օ':
		return "O", true
	case 'Р', 'Ρ':
		return "P", true
	case 'Ѕ':
		return "S", true
	case 'Т', 'Τ':
		return "T", true
	case 'Х', 'Χ':
		return "X", true
	case 'У', 'Υ':
		return "Y", true
	case 'Ζ':
		return "Z", true
	case '‐', '‑', '‒', '–', '—', '−':
		return "-", true
	case '＿':
		return "_", true
	}
	if f := norm.NFKC.String(string(r)); f != string(r) && len(f) == 1 && f[0] < 0x80 {
		return f, true
	}
	return "", false
}

// skeleton folds a name to a form in which names a reader (or a model)
// would take for the same compare equal: look-alike letters to ASCII,
// case, the usual ASCII look-alikes (I, 1 and | to l; 0 to o; rn to m;
// vv to w), and '-' to '_'.
func skeleton(s string) string {
	var b strings.Builder
	for _, r := range s {
		if a, ok := confusableASCII(r); ok {
			b.WriteString(a)
			continue
		}
		switch r {
		case 'I', '1', '|':
			r = 'l'
		case '0':
			r = 'o'
		case '-':
			r = '_'
		}
		b.WriteRune(unicode.ToLower(r))
	}
	out := b.String()
	out = strings.ReplaceAll(out, "rn", "m")
	out = strings.ReplaceAll(out, "vv", "w")
	return out
}
