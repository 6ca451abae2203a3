// Package textnorm turns text into the canonical form Warden's detectors read:
// Unicode NFKC, invisible, bidi, variation-selector and tag characters
// stripped (and flagged), homoglyphs inside Latin words folded to Latin, and
// lower case. It keeps a map from every byte of the result back to the input,
// so that findings can point at what the user sent.
//
// It never fails: invalid UTF-8 is dropped and flagged.
package textnorm

import (
	"encoding/binary"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// Flag records something suspicious the normaliser removed or changed.
type Flag uint32

// Flags set by Normalize.
const (
	FlagInvisible   Flag = 1 << iota // zero-width and other invisible characters
	FlagBidi                         // bidirectional overrides and isolates
	FlagTag                          // Unicode tag characters (hidden ASCII)
	FlagVariation                    // runs of variation selectors (hidden bytes)
	FlagHomoglyph                    // look-alike letters mixed into Latin words
	FlagCompat                       // compatibility forms (fullwidth, math letters) folded by NFKC
	FlagInvalidUTF8                  // bytes that are not UTF-8
	FlagControl                      // C0/C1 control characters other than tab and newlines
)

// Names returns the flag names, for reasons and facts.
func (f Flag) Names() []string {
	var out []string
	for i, n := range []string{"invisible_chars", "bidi_controls", "tag_chars", "variation_selectors", "homoglyphs", "compat_forms", "invalid_utf8", "control_chars"} {
		if f&(1<<i) != 0 {
			out = append(out, n)
		}
	}
	return out
}

// Text is normalised text.
type Text struct {
	// S is the normalised text.
	S string
	// Flags says what was stripped or folded.
	Flags Flag
	// Hidden is ASCII smuggled in Unicode tag characters, decoded.
	Hidden string
	// Stripped counts the characters removed.
	Stripped int
	// ASCII reports that S is all ASCII, as most text is (detectors that
	// treat it apart need not scan S again).
	ASCII    bool
	off      []int32 // input offset of each byte of S; nil when S maps 1:1 or unmapped
	identity bool    // S maps 1:1 onto the input
}

// Orig maps a byte offset in S to the byte offset in the input.
func (t *Text) Orig(i int) int {
	if t.off == nil {
		return i
	}
	if i >= len(t.off) {
		if len(t.off) == 0 {
			return 0
		}
		return int(t.off[len(t.off)-1]) + 1
	}
	return int(t.off[i])
}

// Normalizer holds the folding tables. Build one with New and share it: it is
// read-only after construction and safe for concurrent use.
type Normalizer struct {
	confusable map[rune]rune
	// lower maps a byte to its lower case for printable ASCII, tab and
	// newlines, and to 0 for every byte the fast path cannot handle.
	lower [256]byte
	// Text made only of printable ASCII and "plain" characters is already
	// in NFKC, so normalising it only lower-cases: it takes the one-pass
	// path (plainFast). A plain character is one of the Basic Multilingual
	// Plane that NFKC leaves alone on its own and that pass 1 neither
	// strips nor flags. Next to each other plain characters stay in NFKC
	// unless two combining marks are out of order, counting the marks
	// inside precomposed letters (plainFast checks the classes in ccc), a
	// character composes with the last character of class 0 before it
	// (the Devanagari nukta after some consonants, Bengali and Tamil
	// two-part vowel signs: those are in compose, their partners in
	// pairs), or more than 30 marks follow each other (plainFast counts).
	plain   [0x10000 / 64]uint64
	marks   [0x10000 / 64]uint64 // plain characters whose decomposition has a combining mark
	ccc     map[rune][2]uint8    // their first and last characters' combining classes
	compose [0x10000 / 64]uint64 // plain characters that compose with a character before them
	pairs   map[[2]rune]bool     // (first, second) pairs that compose
}

// New builds a Normalizer.
func New() *Normalizer {
	m := make(map[rune]rune, 96)
	// Cyrillic and Greek letters that render like Latin ones (a subset of
	// Unicode's confusables.txt, chosen for the letters attacks actually use).
	for _, p := range []struct {
		from string
		to   string
	}{
		{"аеорсухіјѕԁһԛԝӏ", "aeopcyxijsdhqwl"},
		{"АВЕКМНОРСТХІЈЅ", "abekmhopctxijs"},
		{"αβεικνορτυχ", "abeikvoptux"},
		{"ΑΒΕΖΗΙΚΜΝΟΡΤΥΧ", "abezhikmnoptyx"},
		{"ɑɡɩɪʟ", "agiil"},
	} {
		to := []rune(p.to)
		for i, r := range []rune(p.from) {
			m[r] = to[i]
		}
	}
	nz := &Normalizer{confusable: m}
	nz.buildPlain()
	for c := range 256 {
		switch {
		case c >= 'A' && c <= 'Z':
			nz.lower[c] = byte(c + 'a' - 'A')
		case c >= 0x20 && c < 0x7f || c == '\t' || c == '\n' || c == '\r':
			nz.lower[c] = byte(c)
		}
	}
	return nz
}

// invisible reports characters with no visible rendering that attackers use
// to split trigger words or hide text.
func invisible(r rune) bool {
	switch r {
	case 0x00AD, 0x034F, 0x061C, 0x115F, 0x1160, 0x17B4, 0x17B5, 0x180E,
		0x200B, 0x200C, 0x200D, 0x2060, 0x2061, 0x2062, 0x2063, 0x2064,
		0x3164, 0xFEFF, 0xFFA0:
		return true
	}
	return false
}

func bidi(r rune) bool {
	return r == 0x200E || r == 0x200F || (r >= 0x202A && r <= 0x202E) || (r >= 0x2066 && r <= 0x2069)
}

func variation(r rune) bool {
	return (r >= 0xFE00 && r <= 0xFE0F) || (r >= 0xE0100 && r <= 0xE01EF)
}

// Normalize returns the canonical form of s, with the offset map.
func (n *Normalizer) Normalize(s string) Text { return n.normalize(s, true) }

// NormalizeUnmapped is Normalize without the offset map (Orig then maps
// offsets only for ASCII input; check Mapped). It is faster and allocates
// less, for callers that rarely need spans.
func (n *Normalizer) NormalizeUnmapped(s string) Text { return n.normalize(s, false) }

// Mapped reports whether Orig maps offsets back to the input exactly.
func (t *Text) Mapped() bool { return t.off != nil || t.identity }

func (n *Normalizer) normalize(s string, track bool) Text {
	// Plain printable ASCII (with tabs and newlines) only needs lower case.
	// Up to its first capital letter such text is its own lower case; from
	// there on it is copied, lower-cased, into a Builder (which hands its
	// buffer over as the string: one allocation). It is read eight bytes at
	// a time (asciiWord); a block holding a tab, a newline or anything but
	// printable ASCII goes byte by byte through the table.
	var b strings.Builder
	copying := false
	for i := 0; i < len(s); {
		if i+8 <= len(s) {
			q := s[i : i+8] // of known length: one load, no bounds checks
			x := uint64(q[0]) | uint64(q[1])<<8 | uint64(q[2])<<16 | uint64(q[3])<<24 |
				uint64(q[4])<<32 | uint64(q[5])<<40 | uint64(q[6])<<48 | uint64(q[7])<<56
			if caps, ok := asciiWord(x); ok {
				if caps != 0 && !copying {
					copying = true
					b.Grow(len(s))
					b.WriteString(s[:i])
				}
				if copying {
					var lc [8]byte
					binary.LittleEndian.PutUint64(lc[:], x|caps>>2) // capitals have 0x20 clear
					b.Write(lc[:])
				}
				i += 8
				continue
			}
		}
		for end := min(i+8, len(s)); i < end; i++ {
			c := s[i]
			l := n.lower[c]
			if l == 0 {
				return n.slow(s, track)
			}
			if l != c && !copying {
				copying = true
				b.Grow(len(s))
				b.WriteString(s[:i])
			}
			if copying {
				b.WriteByte(l)
			}
		}
	}
	if !copying {
		return Text{S: s, identity: true, ASCII: true}
	}
	return Text{S: b.String(), identity: true, ASCII: true}
}

// asciiWord looks at eight bytes at once (x, little-endian): ok reports
// that all are printable ASCII (0x20 to 0x7e), and caps has 0x80 in each
// byte that is a capital letter. The tests are the classic bit tricks for
// bytes below, equal to and between values; none carries from one byte
// into the next once the high bits are known clear.
func asciiWord(x uint64) (caps uint64, ok bool) {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	if x&highs != 0 {
		return 0, false
	}
	below := (x - ones*0x20) & ^x & highs // a byte below 0x20
	d := x ^ ones*0x7f
	del := (d - ones) & ^d & highs // a byte 0x7f
	if below|del != 0 {
		return 0, false
	}
	// Bytes in 'A'..'Z': 0x40 < x < 0x5b.
	caps = (ones*(127+0x5b) - x) & ((x + ones*(127-0x40)) & highs)
	return caps & highs, true
}

// buildPlain fills plain, marks, ccc, compose and pairs from x/text's
// tables.
func (n *Normalizer) buildPlain() {
	var buf [utf8.UTFMax]byte
	// Which characters compose with the one before: each character whose
	// canonical decomposition ends in a second character that composes
	// back with the rest (the rest recomposed, for the few that decompose
	// further) makes a pair.
	backward := map[rune]bool{}
	n.pairs = map[[2]rune]bool{}
	for r := rune(0xC0); r < 0x10000; r++ {
		if r >= 0xD800 && r < 0xE000 {
			continue
		}
		d := []rune(string(norm.NFD.Properties(utf8.AppendRune(buf[:0], r)).Decomposition()))
		if len(d) < 2 {
			continue
		}
		first := []rune(norm.NFC.String(string(d[:len(d)-1])))
		second := d[len(d)-1]
		if len(first) == 1 && norm.NFC.String(string([]rune{first[0], second})) == string(r) {
			backward[second] = true
			n.pairs[[2]rune{first[0], second}] = true
		}
	}
	n.ccc = map[rune][2]uint8{}
	for r := rune(0xA0); r < 0x10000; r++ {
		// U+FFFD stays out: DecodeRune returns it for invalid UTF-8 too.
		// Conjoining Hangul jamo compose algorithmically: kept out whatever
		// their properties say.
		jamo := r >= 0x1100 && r < 0x1200 || r >= 0xA960 && r < 0xA980 || r >= 0xD7B0 && r < 0xD800
		if r >= 0xD800 && r < 0xE000 || jamo || r == utf8.RuneError || invisible(r) || bidi(r) || variation(r) {
			continue
		}
		c := utf8.AppendRune(buf[:0], r)
		if !norm.NFKC.IsNormal(c) {
			continue
		}
		p := norm.NFKC.Properties(c)
		if p.LeadCCC() > 0 || p.TrailCCC() > 0 {
			n.marks[r/64] |= 1 << (r % 64)
			n.ccc[r] = [2]uint8{p.LeadCCC(), p.TrailCCC()}
		}
		if backward[r] {
			n.compose[r/64] |= 1 << (r % 64)
		}
		n.plain[r/64] |= 1 << (r % 64)
	}
}

// plainRun copies to out the run at s[i] of printable ASCII (lower-cased),
// tabs, newlines and three-byte characters without case that are plain,
// carry no combining mark and compose with nothing (most of the text in
// Indic, Thai, CJK and Hangul scripts): what plainFast does for them, with
// none of its state but the last character, which it returns with the
// run's end. It stops at the first other byte; its few variables stay in
// registers, where plainFast's loop reloads its own for every character.
func (n *Normalizer) plainRun(s string, i int, out *[]byte) (int, rune) {
	o := *out
	var last rune
	for i < len(s) {
		c := s[i]
		if c < utf8.RuneSelf {
			l := n.lower[c]
			if l == 0 {
				break
			}
			o = append(o, l)
			last = rune(c)
			i++
			continue
		}
		if caselessSize(c) != 3 || i+2 >= len(s) || s[i+1]&0xC0 != 0x80 || s[i+2]&0xC0 != 0x80 {
			break
		}
		r := rune(c&0x0F)<<12 | rune(s[i+1]&0x3F)<<6 | rune(s[i+2]&0x3F)
		if r < 0x800 || r >= 0xD800 && r < 0xE000 || n.plain[r/64]&(1<<(r%64)) == 0 ||
			(n.marks[r/64]|n.compose[r/64])&(1<<(r%64)) != 0 {
			break
		}
		o = append(o, c, s[i+1], s[i+2])
		last = r
		i += 3
	}
	*out = o
	return i, last
}

// plainLowerMapped is plainFast with an offset map for every byte.
func (n *Normalizer) plainLowerMapped(s string) Text {
	var t Text
	out := make([]byte, 0, len(s)+len(s)/8)
	outOff := make([]int32, 0, cap(out))
	for j := 0; j < len(s); {
		if c := s[j]; c < utf8.RuneSelf {
			out = append(out, n.lower[c])
			outOff = append(outOff, int32(j))
			j++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[j:])
		before := len(out)
		out = utf8.AppendRune(out, lower(r))
		for k := before; k < len(out); k++ {
			outOff = append(outOff, int32(j))
		}
		j += size
	}
	t.off = outOff
	out = n.foldHomoglyphs(out, &t)
	t.S = string(out)
	return t
}

func (n *Normalizer) slow(s string, track bool) Text {
	t, ok := n.plainFast(s, track)
	if !ok {
		t = n.general(s, track)
	}
	t.ASCII = IsASCII(t.S) // stops at the first other byte: short for most of this text
	return t
}

// IsASCII reports whether s is all ASCII, eight bytes a step.
func IsASCII(s string) bool {
	i := 0
	for ; i+8 <= len(s); i += 8 {
		q := s[i : i+8]
		if (q[0]|q[1]|q[2]|q[3]|q[4]|q[5]|q[6]|q[7])&0x80 != 0 {
			return false
		}
	}
	for ; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// plainFast normalises plain text in one pass: text of printable ASCII
// (with tabs and newlines) and plain characters, its combining marks in
// order and no two of its characters composing. For such text general's
// pass 1 keeps every character and NFKC changes nothing, so normalising
// only lower-cases (and folds look-alikes, when a byte that leads one was
// seen). It gives up (ok false) at the first character that breaks those
// conditions; the caller then takes general. Lower case almost never
// changes a character's UTF-8 length; when none does and no look-alike is
// folded, the result is aligned byte for byte with the input and its
// offset map is the identity (Orig(i) is i), which needs no table.
func (n *Normalizer) plainFast(s string, track bool) (Text, bool) {
	out := make([]byte, 0, len(s)+len(s)/8)
	aligned, confusable := true, false
	var starter rune    // the last character of class 0
	var prevTrail uint8 // the class of the last mark in the character before
	// marks bounds the combining marks in a row: x/text, following Unicode's
	// stream-safe format, inserts U+034F after 30 of them. A character
	// with marks counts as 4 (no decomposition holds more than 3).
	marks := 0
	for i := 0; i < len(s); {
		// Runs of characters that need nothing but a copy (most of the
		// text), in a loop of their own.
		if j, last := n.plainRun(s, i, &out); j > i {
			i, starter, prevTrail, marks = j, last, 0, 0
			if i == len(s) {
				break
			}
		}
		c := s[i]
		if c < utf8.RuneSelf {
			l := n.lower[c]
			if l == 0 {
				return Text{}, false
			}
			out = append(out, l)
			starter, prevTrail, marks = rune(c), 0, 0
			i++
			continue
		}
		var r rune
		var size int
		if c >= 0xE0 && c < 0xF0 && i+2 < len(s) && s[i+1]&0xC0 == 0x80 && s[i+2]&0xC0 == 0x80 {
			// Three bytes (Indic, Thai, CJK ...), decoded inline: the
			// library decodes only ASCII so. An overlong form or a
			// surrogate would decode to U+FFFD, which is not plain.
			r, size = rune(c&0x0F)<<12|rune(s[i+1]&0x3F)<<6|rune(s[i+2]&0x3F), 3
			if r < 0x800 || r >= 0xD800 && r < 0xE000 {
				return Text{}, false
			}
		} else {
			r, size = utf8.DecodeRuneInString(s[i:])
		}
		if r >= 0x10000 || n.plain[r/64]&(1<<(r%64)) == 0 {
			return Text{}, false
		}
		var lead, trail uint8
		if n.marks[r/64]&(1<<(r%64)) != 0 {
			lt := n.ccc[r]
			if lead, trail = lt[0], lt[1]; lead != 0 && lead < prevTrail {
				return Text{}, false // NFKC would reorder the marks
			}
		}
		// A character composes with the last starter unless a mark between
		// them blocks it; whether one does is not worked out here.
		if n.compose[r/64]&(1<<(r%64)) != 0 && n.pairs[[2]rune{starter, r}] {
			return Text{}, false
		}
		if lead == 0 {
			starter, marks = r, 0
		}
		if lead != 0 || trail != 0 {
			if marks += 4; marks > 28 {
				return Text{}, false
			}
		}
		prevTrail = trail
		if caselessSize(c) > 0 {
			// Most text outside Latin, Greek and Cyrillic: no case, and no
			// look-alikes, so its bytes are copied as they are (two or
			// three of them: one by one, cheaper than a copy's call).
			if size == 3 {
				out = append(out, c, s[i+1], s[i+2])
			} else {
				out = append(out, s[i:i+size]...)
			}
		} else {
			before := len(out)
			out = utf8.AppendRune(out, lower(r))
			aligned = aligned && len(out)-before == size
			lc := out[before]
			confusable = confusable || lc >= 0xC9 && lc <= 0xD4
		}
		i += size
	}
	if track && !aligned {
		return n.plainLowerMapped(s), true
	}
	var t Text
	folded := out
	if confusable {
		folded = n.foldHomoglyphs(out, &t)
		if track && t.Flags.has(FlagHomoglyph) {
			return n.plainLowerMapped(s), true
		}
	}
	t.S = string(folded)
	t.identity = track
	return t, true
}

// general is the normaliser for any text.
func (n *Normalizer) general(s string, track bool) Text {
	var t Text
	// Pass 1: drop what renders as nothing, decode tag characters.
	buf := make([]byte, 0, len(s))
	var off []int32
	if track {
		off = make([]int32, 0, len(s))
	}
	var hidden []byte
	varRun := 0
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size <= 1:
			t.Flags |= FlagInvalidUTF8
			t.Stripped++
			i++
			continue
		case r >= 0xE0000 && r <= 0xE007F:
			t.Flags |= FlagTag
			t.Stripped++
			if r >= 0xE0020 && r <= 0xE007E && len(hidden) < 1<<16 {
				hidden = append(hidden, byte(r-0xE0000))
			}
		case invisible(r):
			t.Flags |= FlagInvisible
			t.Stripped++
		case bidi(r):
			t.Flags |= FlagBidi
			t.Stripped++
		case variation(r):
			// One selector after an emoji is ordinary; runs hide bytes.
			varRun++
			if varRun > 1 {
				t.Flags |= FlagVariation
			}
			t.Stripped++
			i += size
			continue
		case r < 0x20 && r != '\t' && r != '\n' && r != '\r' || r >= 0x7f && r < 0xa0:
			t.Flags |= FlagControl
			t.Stripped++
			buf = append(buf, ' ')
			if track {
				off = append(off, int32(i))
			}
		default:
			buf = utf8.AppendRune(buf, r)
			if track {
				for k := 0; k < utf8.RuneLen(r); k++ {
					off = append(off, int32(i))
				}
			}
		}
		varRun = 0
		i += size
	}
	t.Hidden = string(hidden)

	// Pass 2: NFKC by segment, keeping offsets; lower case. Most text is
	// already in NFKC: then only lower-case it.
	out := make([]byte, 0, len(buf)+len(buf)/8)
	var outOff []int32
	if track {
		outOff = make([]int32, 0, cap(out))
	}
	if !track {
		// Without offsets, transform the whole buffer at once.
		nb := norm.NFKC.Append(out[:0], buf...)
		if !t.Flags.has(FlagCompat) && !bytesEqual(nb, buf) {
			t.Flags |= FlagCompat
		}
		out = make([]byte, 0, len(nb))
		for j := 0; j < len(nb); {
			if c := nb[j]; c < utf8.RuneSelf {
				if 'A' <= c && c <= 'Z' {
					c += 'a' - 'A'
				}
				out = append(out, c)
				j++
				continue
			}
			r, size := utf8.DecodeRune(nb[j:])
			j += size
			out = utf8.AppendRune(out, lower(r))
		}
		out = n.foldHomoglyphs(out, &t)
		t.S = string(out)
		return t
	}
	if norm.NFKC.IsNormal(buf) {
		for j := 0; j < len(buf); {
			r, size := utf8.DecodeRune(buf[j:])
			var o int32
			if track {
				o = off[j]
			}
			j += size
			if r < utf8.RuneSelf {
				if 'A' <= r && r <= 'Z' {
					r += 'a' - 'A'
				}
				out = append(out, byte(r))
				if track {
					outOff = append(outOff, o)
				}
				continue
			}
			r = lower(r)
			before := len(out)
			out = utf8.AppendRune(out, r)
			if track {
				for k := before; k < len(out); k++ {
					outOff = append(outOff, o)
				}
			}
		}
		t.off = outOff
		out = n.foldHomoglyphs(out, &t)
		t.S = string(out)
		return t
	}
	var it norm.Iter
	it.Init(norm.NFKC, buf)
	for !it.Done() {
		start := it.Pos()
		seg := it.Next()
		o := int32(0)
		if track && start < len(off) {
			o = off[start]
		}
		if !t.Flags.has(FlagCompat) && !sameBytes(seg, buf, start) {
			t.Flags |= FlagCompat
		}
		for j := 0; j < len(seg); {
			r, size := utf8.DecodeRune(seg[j:])
			j += size
			r = lower(r)
			before := len(out)
			out = utf8.AppendRune(out, r)
			if track {
				for k := before; k < len(out); k++ {
					outOff = append(outOff, o)
				}
			}
		}
	}

	// Pass 3: fold look-alikes inside words that mix them with Latin.
	t.off = outOff
	out = n.foldHomoglyphs(out, &t)
	t.S = string(out)
	return t
}

func (f Flag) has(g Flag) bool { return f&g != 0 }

// lower lower-cases r, skipping the table lookup for scripts without case
// (most of the non-Latin text Warden sees: Indic, Arabic, CJK, Thai).
func lower(r rune) rune {
	// Small letters of Latin-1, Greek and Cyrillic and the Cyrillic
	// capitals, without the table search (a test checks every character
	// against unicode.ToLower).
	switch {
	case r >= 0x00E0 && r <= 0x00FF, r >= 0x03B1 && r <= 0x03C9, r >= 0x0430 && r <= 0x045F:
		return r
	case r >= 0x0410 && r <= 0x042F:
		return r + 0x20
	case r >= 0x0400 && r <= 0x040F:
		return r + 0x50
	}
	if r < 0x0590 || r >= 0x10A0 && r < 0x1100 || r >= 0x13A0 && r < 0x1400 || r >= 0x1C80 && r < 0x1CC0 ||
		r >= 0x1E00 && r < 0x2200 || r >= 0x2C00 && r < 0x2D30 || r >= 0xA640 && r < 0xA800 || r >= 0xAB70 && r < 0xABC0 ||
		r >= 0xFF21 && r <= 0xFF3A || r >= 0x10400 {
		return unicode.ToLower(r)
	}
	return r
}

// caselessSize is the length of the UTF-8 sequence that lead byte c starts
// when every character it can start has no case (lower leaves it alone),
// else 0: U+05C0..U+07FF (Hebrew, Arabic, Syriac ...), U+0800..U+0FFF
// (Indic, Thai, Tibetan ...), U+3000..U+9FFF (CJK) and U+B000..U+EFFF
// (Hangul, private use). A test checks every character against lower.
func caselessSize(c byte) int {
	switch {
	case c >= 0xD7 && c <= 0xDF:
		return 2
	case c == 0xE0, c >= 0xE3 && c <= 0xE9, c >= 0xEB && c <= 0xEE:
		return 3
	}
	return 0
}

func sameBytes(seg, buf []byte, start int) bool {
	if start+len(seg) > len(buf) {
		return false
	}
	for i := range seg {
		c := buf[start+i]
		if seg[i] != c {
			return false
		}
	}
	return true
}

// foldHomoglyphs rewrites confusable letters to Latin within words that
// contain Latin letters, or that consist only of confusables in a text that
// is mostly Latin. Folding keeps byte lengths aligned by padding: each
// confusable is two bytes in UTF-8 and becomes one Latin letter plus nothing,
// so offsets are rebuilt alongside.
func (n *Normalizer) foldHomoglyphs(b []byte, t *Text) []byte {
	// Confusables live in IPA, Greek and Cyrillic (U+0250..U+052F): two-byte
	// UTF-8 sequences led by 0xC9..0xD4. Without one there is nothing to fold.
	maybe := false
	for _, c := range b {
		if c >= 0xC9 && c <= 0xD4 {
			maybe = true
			break
		}
	}
	if !maybe {
		return b
	}
	latin, other := 0, 0
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		i += size
		switch {
		case r < utf8.RuneSelf && ('a' <= r && r <= 'z'):
			latin++
		case r >= utf8.RuneSelf && unicode.IsLetter(r):
			if _, ok := n.confusable[r]; !ok {
				other++
			}
		}
	}
	if latin == 0 {
		return b
	}
	mostlyLatin := latin > 4*other
	// Find words and decide per word.
	var changed bool
	res := b[:0:0]
	var off []int32
	for i := 0; i < len(b); {
		j := i
		hasLatin, hasConf, hasOther := false, false, false
		for j < len(b) {
			r, size := utf8.DecodeRune(b[j:])
			if !unicode.IsLetter(r) && !unicode.IsDigit(r) {
				break
			}
			switch {
			case r < utf8.RuneSelf:
				hasLatin = true
			default:
				if _, ok := n.confusable[r]; ok {
					hasConf = true
				} else {
					hasOther = true
				}
			}
			j += size
		}
		if j == i { // not a word character
			_, size := utf8.DecodeRune(b[i:])
			j = i + size
		}
		fold := hasConf && ((hasLatin) || (!hasOther && mostlyLatin))
		if fold && !changed {
			changed = true
			res = make([]byte, 0, len(b))
			res = append(res, b[:i]...)
			if t.off != nil {
				off = make([]int32, 0, len(b))
				off = append(off, t.off[:i]...)
			}
		}
		if changed {
			for k := i; k < j; {
				r, size := utf8.DecodeRune(b[k:])
				if to, ok := n.confusable[r]; ok && fold {
					res = append(res, byte(to))
					if t.off != nil {
						off = append(off, t.off[k])
					}
				} else {
					res = append(res, b[k:k+size]...)
					if t.off != nil {
						off = append(off, t.off[k:k+size]...)
					}
				}
				k += size
			}
		}
		i = j
	}
	if !changed {
		return b
	}
	t.Flags |= FlagHomoglyph
	t.off = off
	return res
}

func bytesEqual(a, b []byte) bool { return string(a) == string(b) }
