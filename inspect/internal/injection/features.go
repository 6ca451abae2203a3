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
	return FeatureConfig{Bits: 20, CharMin: 3, CharMax: 5, ChunkBytes: 1024, ChunkOverlap: 192}
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

// isWordRune is letters and digits; everything else separates words.
func isWordRune(r rune) bool {
	if r < utf8.RuneSelf {
		return 'a' <= r && r <= 'z' || '0' <= r && r <= '9' || 'A' <= r && r <= 'Z'
	}
	return unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.Is(unicode.Mn, r) || unicode.Is(unicode.Mc, r)
}

// AppendFeatures appends the hashed feature indices of s (normalised text)
// to dst and returns it. Indices repeat when a feature repeats.
func (c FeatureConfig) AppendFeatures(dst []uint32, s string) []uint32 {
	shift := uint(64 - c.Bits)
	var ring [8]rune // last characters, ' ' for any separator run
	n := 0           // characters seen in the stream
	prevSpace := true
	var word uint64 = fnvOffset ^ seedWord
	inWord := false
	var prevWord uint64
	havePrev := false
	cmin, cmax := c.CharMin, c.CharMax

	push := func(r rune) {
		ring[n&7] = r
		n++
		for k := cmin; k <= cmax && k <= n; k++ {
			h := uint64(fnvOffset^seedChar) + uint64(k)
			for j := n - k; j < n; j++ {
				h = (h ^ uint64(ring[j&7])) * fnvPrime
			}
			dst = append(dst, bucket(h, shift))
		}
		if r >= 0x2E80 && n >= 2 { // ideographic and other unspaced scripts: bigrams too
			h := (uint64(fnvOffset^seedChar) + 2 ^ uint64(ring[(n-2)&7])) * fnvPrime
			h = (h ^ uint64(r)) * fnvPrime
			dst = append(dst, bucket(h, shift))
		}
	}
	endWord := func() {
		if !inWord {
			return
		}
		dst = append(dst, bucket(word, shift))
		if havePrev {
			dst = append(dst, bucket(bits.RotateLeft64(prevWord, 17)^word^seedBigram, shift))
		}
		prevWord, havePrev = word, true
		word = fnvOffset ^ seedWord
		inWord = false
	}
	for i := 0; i < len(s); {
		r := rune(s[i])
		size := 1
		if r >= utf8.RuneSelf {
			r, size = utf8.DecodeRuneInString(s[i:])
		}
		i += size
		if isWordRune(r) {
			word = (word ^ uint64(r)) * fnvPrime
			inWord = true
			push(r)
			prevSpace = false
			continue
		}
		endWord()
		if !prevSpace {
			push(' ')
			prevSpace = true
		}
		// Punctuation that shapes attacks (<|im_start|>, ###, [INST]) is kept
		// as its own unigram feature.
		switch r {
		case '<', '>', '|', '#', '[', ']', '{', '}', '!', ':', '*', '`', '@', '=':
			dst = append(dst, bucket((uint64(fnvOffset^seedChar)^uint64(r))*fnvPrime*7, shift))
		}
	}
	endWord()
	return dst
}

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
