// Package decode finds encoded payloads hidden inside text (base64, hex,
// URL-encoding, rot13) and decodes them, recursively up to a bounded depth
// and a bounded total size, so that a detector can read what an attacker
// wrapped to get past it. Decoding never fails: what does not decode to
// readable text is ignored.
package decode

import (
	"encoding/base64"
	"encoding/hex"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Payload is one decoded piece of text.
type Payload struct {
	// Enc is the chain of encodings peeled off, outermost first ("url>base64").
	Enc string
	// Start and End delimit, in the top-level input, the encoded text the
	// payload came from.
	Start, End int
	// Text is the decoded text.
	Text string
	// Depth is 1 for a payload found in the input, 2 for one found inside it, ...
	Depth int
}

// Limits bound the work Find does.
type Limits struct {
	MaxDepth    int // nesting levels to peel (default 3)
	MaxPayloads int // payloads returned (default 32)
	MaxBytes    int // decoded bytes in total (default 1 MiB)
	MinLen      int // shortest encoded run considered (default 16)
}

func (l Limits) withDefaults() Limits {
	if l.MaxDepth <= 0 {
		l.MaxDepth = 3
	}
	if l.MaxPayloads <= 0 {
		l.MaxPayloads = 32
	}
	if l.MaxBytes <= 0 {
		l.MaxBytes = 1 << 20
	}
	if l.MinLen <= 0 {
		l.MinLen = 16
	}
	return l
}

// Decoder finds payloads. It is read-only after New and safe for concurrent use.
type Decoder struct {
	lim    Limits
	common map[string]struct{}
	tok    [256]bool // bytes that can belong to an encoded run
	// rotLean is +1 for r, g, n and -1 for e, t, a (either case): summed
	// over text it says whether the text leans towards rot13's letter
	// frequencies, without a branch per byte.
	rotLean [256]int8
}

// New builds a Decoder with the given limits (zero values take defaults).
func New(lim Limits) *Decoder {
	d := &Decoder{lim: lim.withDefaults(), common: map[string]struct{}{}}
	for c := range 256 {
		d.tok[c] = tokenByte(byte(c))
		switch byte(c) | 0x20 {
		case 'e', 't', 'a':
			d.rotLean[c] = -1
		case 'r', 'g', 'n':
			d.rotLean[c] = 1
		}
	}
	for _, w := range strings.Fields(`the and you your to of is are be in on it that this for with
		now all any previous prior instructions instruction ignore forget disregard system prompt
		tell me what please print reveal show say do not from as at by an or if then password secret
		key give write send must will can should here new rules user assistant answer respond`) {
		d.common[w] = struct{}{}
	}
	return d
}

type state struct {
	out   []Payload
	bytes int
}

// Find returns the payloads in s, outermost first.
func (d *Decoder) Find(s string) []Payload {
	var st state
	d.find(s, 0, len(s), 1, "", &st, true)
	return st.out
}

func (d *Decoder) full(st *state) bool {
	return len(st.out) >= d.lim.MaxPayloads || st.bytes >= d.lim.MaxBytes
}

// find scans s; start/end are the span in the top-level input that s stands
// for (top is true when s is the top-level input, so spans are exact).
func (d *Decoder) find(s string, start, end, depth int, chain string, st *state, top bool) {
	if depth > d.lim.MaxDepth || d.full(st) {
		return
	}
	emit := func(enc string, a, b int, text string) {
		if d.full(st) {
			return
		}
		if len(text) > d.lim.MaxBytes-st.bytes {
			text = text[:d.lim.MaxBytes-st.bytes]
			text = strings.ToValidUTF8(text, "")
		}
		st.bytes += len(text)
		ps, pe := start, end
		if top {
			ps, pe = a, b
		}
		c := enc
		if chain != "" {
			c = chain + ">" + enc
		}
		st.out = append(st.out, Payload{Enc: c, Start: ps, End: pe, Text: text, Depth: depth})
		d.find(text, ps, pe, depth+1, c, st, false)
	}

	// One pass over the runs of token characters that can hold a payload.
	n := len(s)
	noPct := strings.IndexByte(s, '%') < 0
	for i := 0; i < n && !d.full(st); {
		a, j := d.nextRun(s, i, noPct)
		if a < 0 {
			break
		}
		run := s[a:j]
		i = a
		pct, hexOnly, b64 := 0, true, true
		for k := 0; k < len(run); k++ {
			cj := run[k]
			if cj == '%' {
				pct++
			}
			if !isHex(cj) {
				hexOnly = false
			}
			if !isB64(cj) {
				b64 = false
			}
		}
		switch {
		case pct >= 2 && strings.Count(run, "%") >= 2:
			if t, ok := urlDecode(run); ok {
				emit("url", i, j, t)
			}
		case len(run) >= d.lim.MinLen && strings.Contains(run, `\x`):
			if t, ok := escDecode(run); ok {
				emit("hex", i, j, t)
			}
		case len(run) >= d.lim.MinLen && hexOnly && len(run)%2 == 0:
			if b, err := hex.DecodeString(run); err == nil && readable(b) {
				emit("hex", i, j, string(b))
			}
		case len(run) >= d.lim.MinLen && b64:
			if t, ok := b64Decode(run); ok {
				emit("base64", i, j, t)
			}
		}
		i = j
	}
	if !d.full(st) {
		if t, ok := d.rot13(s); ok {
			emit("rot13", 0, len(s), t)
		}
	}
}

// nextRun returns the next maximal run of token bytes in s at or after i
// that can hold a payload: MinLen bytes or more, or with a '%' in it (URL
// escapes); a is -1 when there is none. i must not be inside a run (i is
// 0, or s[i-1] is not a token byte, or s[i] is not). noPct says s has no
// '%': then only long runs count, and a long run starting in the window
// s[i:i+MinLen] would cover its last byte k. So nextRun looks at k first:
// if it is not a token byte the window is skipped whole; if it is, the run
// through k is read both ways, and either it is long or nothing before its
// end is. Most text is read a few bytes per window, not every byte.
func (d *Decoder) nextRun(s string, i int, noPct bool) (a, b int) {
	n, minLen := len(s), d.lim.MinLen
	for i < n {
		if noPct && i+minLen <= n {
			k := i + minLen - 1
			if !d.tok[s[k]] {
				i = k + 1
				continue
			}
			a, b := k, k+1
			for a > i && d.tok[s[a-1]] {
				a--
			}
			for b < n && d.tok[s[b]] {
				b++
			}
			if b-a >= minLen {
				return a, b
			}
			i = b
			continue
		}
		if !d.tok[s[i]] {
			i++
			continue
		}
		j, pct := i, false
		for j < n && d.tok[s[j]] {
			pct = pct || s[j] == '%'
			j++
		}
		if j-i >= minLen || pct {
			return i, j
		}
		i = j
	}
	return -1, -1
}

func tokenByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '+' || c == '/' || c == '=' || c == '_' || c == '-' || c == '%' || c == '\\' || c == '.'
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func isB64(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '+' || c == '/' || c == '=' || c == '_' || c == '-'
}

// readable reports whether b is UTF-8 text a model could act on: mostly
// printable, with letters in it.
func readable(b []byte) bool {
	if len(b) < 6 || !utf8.Valid(b) {
		return false
	}
	letters, bad, total := 0, 0, 0
	for _, r := range string(b) {
		total++
		switch {
		case unicode.IsLetter(r):
			letters++
		case r == '\n' || r == '\t' || r == '\r' || unicode.IsPrint(r):
		default:
			bad++
		}
	}
	return bad*20 <= total && letters*3 >= total && letters >= 4
}

func b64Decode(run string) (string, bool) {
	s := strings.TrimRight(run, "=")
	if strings.ContainsAny(s, "=") {
		return "", false
	}
	// A long run of only letters is more likely a word or identifier; base64
	// of text almost always has digits or mixed case within 16 characters.
	lower, upper, digit := false, false, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z':
			lower = true
		case c >= 'A' && c <= 'Z':
			upper = true
		case c >= '0' && c <= '9':
			digit = true
		}
	}
	if !(lower && upper) && !digit {
		return "", false
	}
	if len(s)%4 == 1 {
		s = s[:len(s)-1]
	}
	enc := base64.RawStdEncoding
	if strings.ContainsAny(s, "-_") {
		enc = base64.RawURLEncoding
	}
	b, err := enc.DecodeString(s)
	if err != nil || !readable(b) {
		return "", false
	}
	return string(b), true
}

func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

// urlDecode decodes %XX escapes, leaving malformed ones as they are, and
// '+' as space.
func urlDecode(run string) (string, bool) {
	b := make([]byte, 0, len(run))
	n := 0
	for i := 0; i < len(run); i++ {
		c := run[i]
		if c == '%' && i+2 < len(run)+0 && i+2 <= len(run)-1 && isHex(run[i+1]) && isHex(run[i+2]) {
			b = append(b, unhex(run[i+1])<<4|unhex(run[i+2]))
			i += 2
			n++
			continue
		}
		if c == '+' {
			c = ' '
		}
		b = append(b, c)
	}
	if n < 2 || !readable(b) {
		return "", false
	}
	return string(b), true
}

// escDecode decodes \xNN escapes.
func escDecode(run string) (string, bool) {
	b := make([]byte, 0, len(run)/2)
	n := 0
	for i := 0; i < len(run); i++ {
		if run[i] == '\\' && i+3 < len(run)+0 && (run[i+1] == 'x' || run[i+1] == 'X') && isHex(run[i+2]) && isHex(run[i+3]) {
			b = append(b, unhex(run[i+2])<<4|unhex(run[i+3]))
			i += 3
			n++
			continue
		}
		b = append(b, run[i])
	}
	if n < 4 || !readable(b) {
		return "", false
	}
	return string(b), true
}

// rot13 decodes s when its rot13 reads as English far better than s does.
func (d *Decoder) rot13(s string) (string, bool) {
	const maxWords = 120
	// Letter frequencies first: English is rich in e, t, a; its rot13 in
	// r, g, n. Text that reads like English is not rot13, and text in
	// other scripts has too few of these letters to lean either way: most
	// text stops here.
	if d.lean(s[:min(len(s), 1024)]) <= 0 {
		return "", false
	}
	// rot13 only turns ASCII letters into English: skip text that is mostly
	// something else.
	nonASCII := 0
	for i := 0; i < len(s) && i < 256; i++ {
		if s[i] >= 0x80 {
			nonASCII++
		}
	}
	if nonASCII*8 > min(len(s), 256) {
		return "", false
	}
	orig, rot, words := 0, 0, 0
	var w [24]byte
	for i := 0; i < len(s) && words < maxWords; {
		if !asciiLetter(s[i]) {
			i++
			continue
		}
		j := i
		for j < len(s) && asciiLetter(s[j]) {
			j++
		}
		words++
		if j-i <= len(w) {
			k := 0
			for p := i; p < j; p++ {
				w[k] = lowerByte(s[p])
				k++
			}
			if _, ok := d.common[string(w[:k])]; ok {
				orig++
			}
			for p := 0; p < k; p++ {
				w[p] = rot13Byte(w[p])
			}
			if _, ok := d.common[string(w[:k])]; ok {
				rot++
			}
		}
		i = j
	}
	if words < 4 || rot < 3 || rot < 3*orig+2 || rot*5 < words {
		return "", false
	}
	b := []byte(s)
	for i, c := range b {
		b[i] = rot13Byte(c)
	}
	return string(b), true
}

// lean is the count of r, g, n minus the count of e, t, a in s. It runs
// over most texts, so it is written for the compiler: eight bytes a step
// from a slice of known length (no bounds checks), and a copy of the table
// on the stack (one instruction a lookup).
func (d *Decoder) lean(s string) int {
	t := d.rotLean
	lean, i := 0, 0
	for ; i+8 <= len(s); i += 8 {
		q := s[i : i+8]
		lean += int(t[q[0]]) + int(t[q[1]]) + int(t[q[2]]) + int(t[q[3]]) +
			int(t[q[4]]) + int(t[q[5]]) + int(t[q[6]]) + int(t[q[7]])
	}
	for ; i < len(s); i++ {
		lean += int(t[s[i]])
	}
	return lean
}

func asciiLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

func lowerByte(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 32
	}
	return c
}

func rot13Byte(c byte) byte {
	switch {
	case c >= 'a' && c <= 'z':
		return 'a' + (c-'a'+13)%26
	case c >= 'A' && c <= 'Z':
		return 'A' + (c-'A'+13)%26
	}
	return c
}
