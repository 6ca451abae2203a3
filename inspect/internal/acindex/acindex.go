// Package acindex finds many keywords in a text in one pass (Aho-Corasick
// over bytes, ASCII case-insensitive). Detectors use it to decide which of
// their rules can match before running any regular expression.
package acindex

import "strings"

// Index is an immutable automaton over a set of keywords, each tagged with
// an integer (a rule index). It is safe for concurrent use.
type Index struct {
	next [][256]int32 // goto function with failure links folded in (build time)
	out  [][]int32    // tags of keywords ending at this state
	lens [][]int32    // their lengths, parallel to out
	// The scan table: bytes that occur in no keyword share class 0, so each
	// state's row is small and the table stays in cache.
	class  [256]uint8
	nclass int
	// delta[st+class] is the next state premultiplied by nclass (so that
	// the scan loop has no multiplication in its dependency chain), or
	// -(next+1) when the next state ends a keyword.
	delta []int32
}

// New builds an index; keywords[i] are the keywords of tag i.
func New(keywords [][]string) *Index {
	k := &Index{next: make([][256]int32, 1), out: make([][]int32, 1), lens: make([][]int32, 1)}
	for i := range k.next[0] {
		k.next[0][i] = -1
	}
	for tag, ws := range keywords {
		for _, w := range ws {
			w = strings.ToLower(w)
			if w == "" {
				continue
			}
			st := int32(0)
			for i := 0; i < len(w); i++ {
				c := w[i]
				if k.next[st][c] < 0 {
					k.next = append(k.next, [256]int32{})
					k.out = append(k.out, nil)
					k.lens = append(k.lens, nil)
					n := int32(len(k.next) - 1)
					for j := range k.next[n] {
						k.next[n][j] = -1
					}
					k.next[st][c] = n
				}
				st = k.next[st][c]
			}
			k.out[st] = append(k.out[st], int32(tag))
			k.lens[st] = append(k.lens[st], int32(len(w)))
		}
	}
	fail := make([]int32, len(k.next))
	queue := make([]int32, 0, len(k.next))
	for c := range 256 {
		if n := k.next[0][c]; n >= 0 {
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
				f := k.next[fail[st]][c]
				if st == 0 {
					f = 0
				}
				fail[n] = f
				k.out[n] = append(k.out[n], k.out[f]...)
				k.lens[n] = append(k.lens[n], k.lens[f]...)
				queue = append(queue, n)
			} else {
				k.next[st][c] = k.next[fail[st]][c]
			}
		}
	}
	// Compress the alphabet.
	for _, ws := range keywords {
		for _, w := range ws {
			w = strings.ToLower(w)
			for i := 0; i < len(w); i++ {
				c := w[i]
				if k.class[c] == 0 {
					k.nclass++
					k.class[c] = uint8(k.nclass)
					if c >= 'a' && c <= 'z' {
						k.class[c-'a'+'A'] = uint8(k.nclass)
					}
				}
			}
		}
	}
	k.nclass++
	k.delta = make([]int32, len(k.next)*k.nclass)
	rep := make([]byte, k.nclass) // a byte of each class
	for c := 255; c >= 0; c-- {
		rep[k.class[c]] = byte(c)
	}
	for st := range k.next {
		for cl := 0; cl < k.nclass; cl++ {
			c := rep[cl]
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			n := k.next[st][c]
			v := n * int32(k.nclass)
			if len(k.out[n]) > 0 {
				v = -v - 1
			}
			k.delta[st*k.nclass+cl] = v
		}
	}
	k.next = nil
	return k
}

// Hit is one keyword occurrence.
type Hit struct {
	Tag, Start, Len int
}

// Stepper is an Index's scan table held by value, for callers that read
// the text in a loop of their own: a loop that keeps one in a local steps
// the automaton without reloading the Index's fields at every byte.
type Stepper struct {
	delta []int32
	class *[256]uint8
}

// Stepper returns the scan table of k.
func (k *Index) Stepper() Stepper { return Stepper{delta: k.delta, class: &k.class} }

// Next advances a scan by one byte of text: st is 0 before the first byte.
// ends reports that keywords end at c; Index.AppendEnds lists them.
func (s Stepper) Next(st int32, c byte) (next int32, ends bool) {
	next = s.delta[st+int32(s.class[c])]
	if next < 0 {
		return -next - 1, true
	}
	return next, false
}

// AppendEnds appends to dst the keywords that end at text byte i, where
// Stepper.Next returned st with ends set.
func (k *Index) AppendEnds(dst []Hit, st int32, i int) []Hit {
	s := st / int32(k.nclass)
	for j, tag := range k.out[s] {
		n := int(k.lens[s][j])
		dst = append(dst, Hit{Tag: int(tag), Start: i + 1 - n, Len: n})
	}
	return dst
}

// Scan calls fn(tag, start) for every keyword occurrence in text, in order
// of their ends; it stops when fn returns false.
func (k *Index) Scan(text string, fn func(tag, start int) bool) {
	k.ScanN(text, func(tag, start, _ int) bool { return fn(tag, start) })
}

// ScanN is Scan that also passes the length of the keyword found.
func (k *Index) ScanN(text string, fn func(tag, start, n int) bool) {
	st := int32(0) // premultiplied by nclass
	nc := int32(k.nclass)
	for i := 0; i < len(text); i++ {
		st = k.delta[st+int32(k.class[text[i]])]
		if st < 0 {
			st = -st - 1
			s := st / nc // rare: a keyword ends here
			for j, tag := range k.out[s] {
				if !fn(int(tag), i+1-int(k.lens[s][j]), int(k.lens[s][j])) {
					return
				}
			}
		}
	}
}
