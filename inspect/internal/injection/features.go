// Package injection is the prompt-injection detector's core: features over
// normalised text, rules for known attack shapes, and the linear model that
// scores chunks. Package inspect wraps it with the embedded weights; the
// training command (inspect/internal/train) uses the same code, so training
// and inference see identical features.
package injection

import (
	"math/bits"
	"unicode"
	"unicode/utf8"
)

// FeatureConfig fixes how text becomes features. It is stored in the model
// file, so a model is always read with the features it was trained on.
type FeatureConfig struct {
	Bits         int `json:"bits"`          // log2 of the hashed feature space
	CharMin      int `json:"char_min"`      // shortest character n-gram
	CharMax      int `json:"char_max"`      // longest character n-gram
	ChunkBytes   int `json:"chunk_bytes"`   // window scored at once
	ChunkOverlap int `json:"chunk_overlap"` // overlap between windows
}

// DefaultFeatures is the configuration new models are trained with.
func DefaultFeatures() FeatureConfig {
	return FeatureConfig{Bits: 20, CharMin: 4, CharMax: 4, ChunkBytes: 1024, ChunkOverlap: 192}
}

const (
	fnvPrime  = 0x100000001b3
	fnvOffset = 0xcbf29ce484222325
	golden    = 0x9E3779B97F4A7C15
)

// seeds per feature family keep families apart in the hashed space.
const (
	seedWord   = 0x51ed2701a3b4c5d6
	seedBigram = 0x2b7e151628aed2a6
	seedChar   = 0x6a09e667f3bcc908
)

func bucket(h uint64, shift uint) uint32 { return uint32((h * golden) >> shift) }

// charMul is fnvPrime*golden modulo 2^64: bucket(x*fnvPrime+k) is
// (x*charMul + k*golden) >> shift, one multiplication instead of two.
const charMul = fnvPrime * golden % (1 << 64)

// asciiWordByte reports ASCII letters and digits with one lookup in a
// 128-bit constant (no branches for the hot loop to mispredict).
func asciiWordByte(b byte) bool {
	const lo = 0x03FF000000000000 // '0'..'9'
	const hi = 0x07FFFFFE07FFFFFE // 'A'..'Z', 'a'..'z' (bytes 64..127)
	m := uint64(lo)
	if b >= 64 {
		m = hi
	}
	return m>>(b&63)&1 != 0
}

// isWordRune is letters, digits and combining marks; everything else
// separates words. Outside ASCII it decides by block rather than by the
// Unicode tables (several times faster on Indic, Arabic and CJK text): the
// punctuation, symbol, arrow, box-drawing and emoji blocks separate, and so
// do the few punctuation marks inside letter blocks that text uses
// (danda, Arabic comma and question mark, Armenian and Hebrew marks, the
// CJK and fullwidth punctuation).
func isWordRune(r rune) bool {
	if r < utf8.RuneSelf {
		return 'a' <= r && r <= 'z' || '0' <= r && r <= '9' || 'A' <= r && r <= 'Z'
	}
	switch {
	case r < 0xC0:
		return r == 0xAA || r == 0xB5 || r == 0xBA
	case r == 0xD7 || r == 0xF7:
		return false
	case r < 0x2000:
		switch r {
		case 0x037E, 0x0387, 0x055A, 0x055B, 0x055C, 0x055D, 0x055E, 0x055F, 0x0589, 0x05BE, 0x05C0, 0x05C3, 0x05C6, 0x05F3, 0x05F4,
			0x060C, 0x060D, 0x061B, 0x061F, 0x066A, 0x066B, 0x066C, 0x066D, 0x06D4, 0x0964, 0x0965, 0x0970, 0x0E3F, 0x0E4F, 0x0E5A, 0x0E5B,
			0x10FB, 0x1361, 0x1362, 0x1363, 0x1364, 0x1365, 0x1366, 0x1367, 0x1368, 0x166E, 0x1680, 0x17D4, 0x17D5, 0x17D6, 0x17D8, 0x17D9, 0x17DA, 0x1800, 0x1801, 0x1802, 0x1803, 0x1804, 0x1805:
			return false
		}
		return true
	case r < 0x2C00: // punctuation, currency, letter-like and number forms, arrows, maths, technical, boxes, shapes, dingbats, Braille
		return r >= 0x2070 && r < 0x20A0 // super- and subscripts
	case r < 0x2E00:
		return true
	case r < 0x2E80: // supplemental punctuation
		return false
	case r >= 0x3000 && r < 0x3040: // CJK symbols and punctuation
		return r == 0x3005 || r == 0x3006 || r == 0x3007
	case r >= 0xFE10 && r < 0xFE70: // vertical, CJK compatibility and small form punctuation
		return false
	case r >= 0xFF00 && r < 0xFF66: // fullwidth forms: letters and digits only
		return r >= 0xFF10 && r <= 0xFF19 || r >= 0xFF21 && r <= 0xFF3A || r >= 0xFF41 && r <= 0xFF5A
	case r >= 0xFFF0 && r <= 0xFFFF, r >= 0x1F000 && r < 0x1FB00: // specials, emoji and pictographs
		return false
	case r >= 0x3400 && r < 0x4DC0, r >= 0x4E00 && r < 0xA000, r >= 0xAC00 && r < 0xD7A4:
		// CJK ideographs and Hangul syllables, every one of them a letter:
		// what unicode.IsPrint answers, without its table search (a test
		// checks that it agrees).
		return true
	}
	return unicode.IsPrint(r)
}

// decodeRune is utf8.DecodeRuneInString(s[i:]) with the two- and
// three-byte sequences of most non-Latin text decoded inline.
func decodeRune(s string, i int) (rune, int) {
	if b := s[i]; b >= 0xC2 && b < 0xE0 && i+1 < len(s) && s[i+1]&0xC0 == 0x80 {
		return rune(b&0x1F)<<6 | rune(s[i+1]&0x3F), 2
	} else if b >= 0xE0 && b < 0xF0 && i+2 < len(s) && s[i+1]&0xC0 == 0x80 && s[i+2]&0xC0 == 0x80 {
		// Overlong forms and surrogates are left to the library (RuneError).
		if r := rune(b&0x0F)<<12 | rune(s[i+1]&0x3F)<<6 | rune(s[i+2]&0x3F); r >= 0x800 && (r < 0xD800 || r > 0xDFFF) {
			return r, 3
		}
	}
	return utf8.DecodeRuneInString(s[i:])
}

// fold16 maps a rune to 16 bits for the n-gram register (runes beyond the
// Basic Multilingual Plane share codes with others; they are rare in text).
func fold16(r rune) uint16 { return uint16(r) ^ uint16(r>>16)*0x9E37 }

// AppendFeatures appends the hashed feature indices of s (normalised text)
// to dst and returns it. Indices repeat when a feature repeats.
//
// Features: every word, every pair of adjacent words, character n-grams of
// CharMin..CharMax characters over the text with separators collapsed to one
// space (character bigrams too for ideographic and other unspaced scripts),
// and the punctuation that shapes chat templates (a run of one character
// counts once). An n-gram is the last n
// characters of a 64-bit shift register (16 bits a character), hashed with
// one multiplication; CharMax is at most 4.
func (c FeatureConfig) AppendFeatures(dst []uint32, s string) []uint32 {
	shift := uint(64 - c.Bits)
	var reg uint64 // last four characters, 16 bits each, ' ' for any separator run
	n := 0         // characters seen in the stream
	prevSpace := true
	var lastPunct rune // runs of one punctuation character count once
	word := uint64(seedWord)
	inWord := false
	var prevWord uint64
	havePrev := false
	cmin, cmax := c.CharMin, c.CharMax
	if cmax > 4 {
		cmax = 4
	}
	if cmin < 1 {
		cmin = 1
	}
	single := cmin == cmax // the usual configuration: one n-gram size
	gm := ^uint64(0) >> (64 - 16*cmax)
	for i := 0; i < len(s); {
		var r rune
		if b := s[i]; b < utf8.RuneSelf {
			r = rune(b)
			i++
			if 'a' <= b && b <= 'z' || '0' <= b && b <= '9' || 'A' <= b && b <= 'Z' {
				goto wordRune
			}
		} else {
			var size int
			r, size = utf8.DecodeRuneInString(s[i:])
			i += size
			if isWordRune(r) {
				goto wordRune
			}
		}
		// Separator.
		if inWord {
			dst = append(dst, bucket(finishWord(word), shift))
			if havePrev {
				dst = append(dst, bucket(bits.RotateLeft64(prevWord, 17)^finishWord(word)^seedBigram, shift))
			}
			prevWord, havePrev = finishWord(word), true
			word = seedWord
			inWord = false
		}
		if !prevSpace {
			prevSpace = true
			reg = reg<<16 | ' '
			n++
			for k := cmin; k <= cmax && k <= n; k++ {
				dst = append(dst, bucket(((reg&(^uint64(0)>>(64-16*k)))^seedChar)*fnvPrime+uint64(k), shift))
			}
		}
		if r != lastPunct {
			switch r {
			case '<', '>', '|', '#', '[', ']', '{', '}', '!', '`':
				dst = append(dst, bucket((uint64(fnvOffset^seedChar)^uint64(r))*fnvPrime*7, shift))
			}
		}
		lastPunct = r
		continue
	wordRune:
		lastPunct = 0
		word = bits.RotateLeft64(word, 7) ^ uint64(r)
		inWord = true
		prevSpace = false
		reg = reg<<16 | uint64(fold16(r))
		n++
		if single {
			if n >= cmin {
				dst = append(dst, bucket(((reg&gm)^seedChar)*fnvPrime+uint64(cmin), shift))
			}
		} else {
			for k := cmin; k <= cmax && k <= n; k++ {
				dst = append(dst, bucket(((reg&(^uint64(0)>>(64-16*k)))^seedChar)*fnvPrime+uint64(k), shift))
			}
		}
		if r >= 0x2E80 && n >= 2 && cmin > 2 { // unspaced scripts: bigrams too
			dst = append(dst, bucket(((reg&0xFFFFFFFF)^seedChar)*fnvPrime+2, shift))
		}
	}
	if inWord {
		dst = append(dst, bucket(finishWord(word), shift))
		if havePrev {
			dst = append(dst, bucket(bits.RotateLeft64(prevWord, 17)^finishWord(word)^seedBigram, shift))
		}
	}
	return dst
}

// SumWeights is AppendFeatures fused with the model's dot product: it sums
// w over the features of s without storing them. It must stay in step with
// AppendFeatures (a test checks that they agree).
func (c FeatureConfig) SumWeights(w []int8, s string) (sum int64, count int) {
	return c.sumSentences(w, s, nil)
}

// Sentence marks the end of a sentence in text SentenceSums read: the byte
// offset after it, and the sum and number of the features up to there.
type Sentence struct {
	End   int
	Sum   int64
	Count int
}

// SentenceSums is SumWeights that also appends to dst, at the end of each
// sentence of s and at the end of s, the running sum and count (so a
// sentence's own are the difference from the mark before). A sentence ends
// after a newline, or after . ! or ? followed by a space or the end of s.
// The features that span two sentences (the 4-grams and the word pair
// across the boundary) count for the second.
func (c FeatureConfig) SentenceSums(w []int8, s string, dst []Sentence) []Sentence {
	sum, count := c.sumSentences(w, s, &dst)
	if len(dst) == 0 || dst[len(dst)-1].End != len(s) {
		dst = append(dst, Sentence{End: len(s), Sum: sum, Count: count})
	}
	return dst
}

func (c FeatureConfig) sumSentences(w []int8, s string, marks *[]Sentence) (sum int64, count int) {
	if c.Bits == fastBits && c.CharMin == 4 && c.CharMax == 4 && len(w) == 1<<fastBits {
		return sumWeights4((*[1 << fastBits]int8)(w), s, marks)
	}
	return c.sumWeights(w, s, marks)
}

// sentenceStop reports whether the separator r, before s[i], ends a
// sentence (SentenceSums).
func sentenceStop(r rune, s string, i int) bool {
	switch r {
	case '\n':
		return true
	case '.', '!', '?':
		return i == len(s) || s[i] == ' '
	}
	return false
}

// sumWeights is sumSentences for any configuration.
func (c FeatureConfig) sumWeights(w []int8, s string, marks *[]Sentence) (sum int64, count int) {
	mask := uint32(len(w) - 1)
	shift := uint(64 - c.Bits)
	var reg uint64 // last four characters, 16 bits each, ' ' for any separator run
	n := 0         // characters seen in the stream
	prevSpace := true
	var lastPunct rune // runs of one punctuation character count once
	word := uint64(seedWord)
	inWord := false
	var prevWord uint64
	havePrev := false
	cmin, cmax := c.CharMin, c.CharMax
	if cmax > 4 {
		cmax = 4
	}
	if cmin < 1 {
		cmin = 1
	}
	single := cmin == cmax // the usual configuration: one n-gram size
	gm := ^uint64(0) >> (64 - 16*cmax)
	// bucket((x^seedChar)*fnvPrime + k) with the two multiplications
	// folded into one (modulo 2^64 the product distributes).
	kAdd := uint64(cmin) * golden
	for i := 0; i < len(s); {
		var r rune
		if b := s[i]; b < utf8.RuneSelf {
			r = rune(b)
			i++
			if asciiWordByte(b) {
				if !single {
					goto wordRune
				}
				// A run of ASCII letters and digits (most of most text):
				// what wordRune does for each, in a tight loop.
				for {
					word = bits.RotateLeft64(word, 7) ^ uint64(b)
					reg = reg<<16 | uint64(b)
					n++
					if n >= cmin {
						sum += int64(w[uint32((((reg&gm)^seedChar)*charMul+kAdd)>>shift)&mask])
						count++
					}
					if i == len(s) {
						break
					}
					if b = s[i]; b >= utf8.RuneSelf || !asciiWordByte(b) {
						break
					}
					i++
				}
				lastPunct, inWord, prevSpace = 0, true, false
				continue
			}
		} else {
			var size int
			r, size = decodeRune(s, i)
			i += size
			if isWordRune(r) {
				goto wordRune
			}
		}
		// Separator.
		if inWord {
			sum += int64(w[bucket(finishWord(word), shift)&mask])
			count++
			if havePrev {
				sum += int64(w[bucket(bits.RotateLeft64(prevWord, 17)^finishWord(word)^seedBigram, shift)&mask])
				count++
			}
			prevWord, havePrev = finishWord(word), true
			word = seedWord
			inWord = false
		}
		if !prevSpace {
			prevSpace = true
			reg = reg<<16 | ' '
			n++
			if single {
				if n >= cmin {
					sum += int64(w[uint32((((reg&gm)^seedChar)*charMul+kAdd)>>shift)&mask])
					count++
				}
			} else {
				for k := cmin; k <= cmax && k <= n; k++ {
					sum += int64(w[bucket(((reg&(^uint64(0)>>(64-16*k)))^seedChar)*fnvPrime+uint64(k), shift)&mask])
					count++
				}
			}
		}
		if r != lastPunct {
			switch r {
			case '<', '>', '|', '#', '[', ']', '{', '}', '!', '`':
				sum += int64(w[bucket((uint64(fnvOffset^seedChar)^uint64(r))*fnvPrime*7, shift)&mask])
				count++
			}
		}
		lastPunct = r
		if marks != nil && sentenceStop(r, s, i) {
			*marks = append(*marks, Sentence{End: i, Sum: sum, Count: count})
		}
		continue
	wordRune:
		lastPunct = 0
		word = bits.RotateLeft64(word, 7) ^ uint64(r)
		inWord = true
		prevSpace = false
		reg = reg<<16 | uint64(fold16(r))
		n++
		if single {
			if n >= cmin {
				sum += int64(w[uint32((((reg&gm)^seedChar)*charMul+kAdd)>>shift)&mask])
				count++
			}
		} else {
			for k := cmin; k <= cmax && k <= n; k++ {
				sum += int64(w[bucket(((reg&(^uint64(0)>>(64-16*k)))^seedChar)*fnvPrime+uint64(k), shift)&mask])
				count++
			}
		}
		if r >= 0x2E80 && n >= 2 && cmin > 2 { // unspaced scripts: bigrams too
			sum += int64(w[bucket(((reg&0xFFFFFFFF)^seedChar)*fnvPrime+2, shift)&mask])
			count++
		}
	}
	if inWord {
		sum += int64(w[bucket(finishWord(word), shift)&mask])
		count++
		if havePrev {
			sum += int64(w[bucket(bits.RotateLeft64(prevWord, 17)^finishWord(word)^seedBigram, shift)&mask])
			count++
		}
	}
	return sum, count
}

// fastBits is the table size of DefaultFeatures, which sumWeights4 is
// written for.
const fastBits = 20

// sumWeights4 is sumSentences for the configuration of DefaultFeatures, the
// one the shipped model uses: character 4-grams only, 1<<fastBits weights.
// It computes what the general loop does for CharMin = CharMax = 4 (a test
// checks both against AppendFeatures), with the shift a constant, indices
// that need no mask or bounds check, and without the variables for other
// configurations. Go keeps the general loop's twenty-odd variables on the
// stack, reloading them for every character; here fewer of them live
// across the loop, and ASCII words between single spaces (most of most
// text) take a loop of their own (sumASCIIWords) whose handful of
// variables stay in registers. On the development set it executes about
// half the instructions of the general loop.
func sumWeights4(w *[1 << fastBits]int8, s string, marks *[]Sentence) (sum int64, count int) {
	const shift = 64 - fastBits
	const kAdd = 4 * golden % (1 << 64) // uint64(CharMin) * golden
	// One nil check of w here, where Go checked it at every character.
	_ = w[0]
	var reg uint64 // last four characters, 16 bits each, ' ' for any separator run
	n := 0         // characters seen in the stream
	prevSpace := true
	var lastPunct rune // runs of one punctuation character count once
	word := uint64(seedWord)
	inWord := false
	var prevWord uint64
	havePrev := false
	for i := 0; i < len(s); {
		var r rune
		if b := s[i]; b < utf8.RuneSelf {
			r = rune(b)
			i++
			if asciiWordBytes[b] != 0 {
				if n < 3 { // the first characters of the text complete no 4-gram
					goto wordRune
				}
				j, wsum, wcount, wd, rg, pw, hp := sumASCIIWords(w, s, i-1, word, reg, prevWord, havePrev)
				sum += wsum
				count += wcount
				n += j - (i - 1)
				i, word, reg, prevWord, havePrev = j, wd, rg, pw, hp
				lastPunct, inWord, prevSpace = 0, true, false
				continue
			}
		} else {
			var size int
			r, size = decodeRune(s, i)
			i += size
			if isWordRune(r) {
				goto wordRune
			}
		}
		// Separator.
		if inWord {
			fw := finishWord(word)
			sum += int64(w[fw*golden>>shift])
			count++
			if havePrev {
				sum += int64(w[(bits.RotateLeft64(prevWord, 17)^fw^seedBigram)*golden>>shift])
				count++
			}
			prevWord, havePrev = fw, true
			word = seedWord
			inWord = false
		}
		if !prevSpace {
			prevSpace = true
			reg = reg<<16 | ' '
			n++
			if n >= 4 {
				sum += int64(w[((reg^seedChar)*charMul+kAdd)>>shift])
				count++
			}
		}
		if r != lastPunct {
			switch r {
			case '<', '>', '|', '#', '[', ']', '{', '}', '!', '`':
				sum += int64(w[(uint64(fnvOffset^seedChar)^uint64(r))*fnvPrime*7*golden>>shift])
				count++
			}
		}
		lastPunct = r
		if marks != nil && sentenceStop(r, s, i) {
			*marks = append(*marks, Sentence{End: i, Sum: sum, Count: count})
		}
		continue
	wordRune:
		lastPunct = 0
		word = bits.RotateLeft64(word, 7) ^ uint64(r)
		inWord = true
		prevSpace = false
		reg = reg<<16 | uint64(fold16(r))
		n++
		if n >= 4 {
			sum += int64(w[((reg^seedChar)*charMul+kAdd)>>shift])
			count++
		}
		if r >= 0x2E80 && n >= 2 { // unspaced scripts: bigrams too
			sum += int64(w[(((reg&0xFFFFFFFF)^seedChar)*fnvPrime+2)*golden>>shift])
			count++
		}
	}
	if inWord {
		fw := finishWord(word)
		sum += int64(w[fw*golden>>shift])
		count++
		if havePrev {
			sum += int64(w[(bits.RotateLeft64(prevWord, 17)^fw^seedBigram)*golden>>shift])
			count++
		}
	}
	return sum, count
}

// sumASCIIWords is sumWeights4 over ASCII words separated by single
// spaces (most of most text), from the run of letters and digits at s[i],
// when three characters came before it (so every one completes a
// 4-gram): the 4-grams of each word's letters, and at each space the word,
// its bigram with the word before and the space's 4-gram. It stops at the
// end of a word that a single space and another word do not follow, and
// returns where, the sum and number of the features, and the word hash,
// n-gram register and previous word there. Its handful of variables stay
// in registers, where sumWeights4's loop reloads its own for every
// character and separator.
func sumASCIIWords(w *[1 << fastBits]int8, s string, i int, word, reg, prevWord uint64, havePrev bool) (int, int64, int, uint64, uint64, uint64, bool) {
	const shift = 64 - fastBits
	const kAdd = 4 * golden % (1 << 64) // uint64(CharMin) * golden
	// One nil check of w here, where Go checked it at every character.
	_ = w[0]
	var sum int64
	count := 0
	for {
		for ; i < len(s); i++ {
			b := s[i]
			if asciiWordBytes[b] == 0 {
				break
			}
			word = bits.RotateLeft64(word, 7) ^ uint64(b)
			reg = reg<<16 | uint64(b)
			sum += int64(w[((reg^seedChar)*charMul+kAdd)>>shift])
			count++
		}
		if i+1 >= len(s) || s[i] != ' ' || asciiWordBytes[s[i+1]] == 0 {
			return i, sum, count, word, reg, prevWord, havePrev
		}
		// The separator, as sumWeights4 reads it.
		fw := finishWord(word)
		sum += int64(w[fw*golden>>shift])
		count++
		if havePrev {
			sum += int64(w[(bits.RotateLeft64(prevWord, 17)^fw^seedBigram)*golden>>shift])
			count++
		}
		prevWord, havePrev = fw, true
		word = seedWord
		reg = reg<<16 | ' '
		sum += int64(w[((reg^seedChar)*charMul+kAdd)>>shift])
		count++
		i++
	}
}

// asciiWordBytes[b] is 1 for the ASCII letters and digits (asciiWordByte
// as a table: one load, where the bit test needs a check for non-ASCII
// bytes and several instructions more). A string, so it is read-only.
const asciiWordBytes = "" +
	"\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00" +
	"\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00" +
	"\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00" +
	"\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x00\x00\x00\x00\x00\x00" +
	"\x00\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01" +
	"\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x00\x00\x00\x00\x00" +
	"\x00\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01" +
	"\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x00\x00\x00\x00\x00" +
	"\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00" +
	"\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00" +
	"\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00" +
	"\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00" +
	"\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00" +
	"\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00" +
	"\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00" +
	"\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"

// Chunks splits normalised text into windows of about ChunkBytes bytes that
// overlap by ChunkOverlap, cut at spaces where possible. It returns pairs of
// byte offsets.
func (c FeatureConfig) Chunks(s string) [][2]int {
	size, ov := c.ChunkBytes, c.ChunkOverlap
	if size <= 0 || len(s) <= size {
		return [][2]int{{0, len(s)}}
	}
	if ov >= size/2 {
		ov = size / 4
	}
	var out [][2]int
	start := 0
	for start < len(s) {
		end := start + size
		if end >= len(s) {
			end = len(s)
		} else {
			end = cut(s, end, size/8)
		}
		out = append(out, [2]int{start, end})
		if end == len(s) {
			break
		}
		next := cut(s, end-ov, size/8)
		if next <= start {
			next = end
		}
		start = next
	}
	return out
}

// cut moves i back to just after a space (at most back bytes), else to a
// rune boundary.
func cut(s string, i, back int) int {
	for j := i; j > i-back && j > 0; j-- {
		if s[j-1] == ' ' || s[j-1] == '\n' {
			return j
		}
	}
	for i > 0 && i < len(s) && !utf8.RuneStart(s[i]) {
		i--
	}
	return i
}
