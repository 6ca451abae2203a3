package audit

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"os"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
)

// The tree's nodes are stored in one file ("hashes"), 32 bytes each, in the
// order the nodes become complete as leaves are appended: leaf m is followed
// by each parent it completes, lowest first. So node (level l, index k),
// completed by leaf m = (k+1)·2^l − 1, sits at position 2m − popcount(m) + l,
// and a tree of n leaves stores 2n − popcount(n) nodes. The file is derived
// from the segments: verification never trusts it, and Open rebuilds what is
// missing or wrong.

const hashSize = 32

func hasher() *rfc6962.Hasher { return rfc6962.DefaultHasher }

func rangeFactory() *compact.RangeFactory {
	return &compact.RangeFactory{Hash: hasher().HashChildren}
}

// storedCount is how many nodes a tree of n leaves stores.
func storedCount(n uint64) uint64 { return 2*n - uint64(bits.OnesCount64(n)) }

// nodePos is the position of node (level, index) in the hashes file.
func nodePos(level uint, index uint64) uint64 {
	m := (index+1)<<level - 1
	return 2*m - uint64(bits.OnesCount64(m)) + uint64(level)
}

// leavesCovered returns the largest n with storedCount(n) <= nodes.
func leavesCovered(nodes uint64) uint64 {
	n := nodes / 2
	for storedCount(n+1) <= nodes {
		n++
	}
	for n > 0 && storedCount(n) > nodes {
		n--
	}
	return n
}

// hashStore reads nodes from a hashes file.
type hashStore struct {
	r io.ReaderAt
	n uint64 // leaves whose nodes are all in the file
}

var errNodeMissing = errors.New("tree node not stored")

func (h hashStore) node(id compact.NodeID) ([]byte, error) {
	// A node is complete in a tree of n leaves iff its last leaf is below n.
	if (id.Index+1)<<id.Level > h.n {
		return nil, fmt.Errorf("%w: level %d index %d beyond %d leaves", errNodeMissing, id.Level, id.Index, h.n)
	}
	b := make([]byte, hashSize)
	if _, err := h.r.ReadAt(b, int64(nodePos(id.Level, id.Index))*hashSize); err != nil {
		return nil, fmt.Errorf("reading tree node: %w", err)
	}
	return b, nil
}

// rangeAt returns the compact range [0, n) from the stored nodes.
func (h hashStore) rangeAt(n uint64) (*compact.Range, error) {
	ids := compact.RangeNodes(0, n, nil)
	hs := make([][]byte, len(ids))
	for i, id := range ids {
		b, err := h.node(id)
		if err != nil {
			return nil, err
		}
		hs[i] = b
	}
	return rangeFactory().NewRange(0, n, hs)
}

// root returns the root hash of the tree of size n.
func (h hashStore) root(n uint64) ([]byte, error) {
	if n == 0 {
		return hasher().EmptyRoot(), nil
	}
	r, err := h.rangeAt(n)
	if err != nil {
		return nil, err
	}
	return r.GetRootHash(nil)
}

// inclusion returns the inclusion proof of leaf index in the tree of size n.
func (h hashStore) inclusion(index, n uint64) ([][]byte, error) {
	nodes, err := proof.Inclusion(index, n)
	if err != nil {
		return nil, err
	}
	return h.rehash(nodes)
}

// consistency returns the consistency proof from size m to size n.
func (h hashStore) consistency(m, n uint64) ([][]byte, error) {
	if m == 0 {
		return nil, errors.New("no consistency proof from an empty tree: every tree extends it")
	}
	nodes, err := proof.Consistency(m, n)
	if err != nil {
		return nil, err
	}
	return h.rehash(nodes)
}

func (h hashStore) rehash(nodes proof.Nodes) ([][]byte, error) {
	hs := make([][]byte, len(nodes.IDs))
	for i, id := range nodes.IDs {
		b, err := h.node(id)
		if err != nil {
			return nil, err
		}
		hs[i] = b
	}
	return nodes.Rehash(hs, hasher().HashChildren)
}

// treeWriter appends a tree's nodes to its hashes file. It keeps the compact
// range of the right border in memory and buffers nodes until flushed.
type treeWriter struct {
	f     *os.File
	rng   *compact.Range
	buf   []byte // nodes not yet written to f
	wrote uint64 // bytes of f that are written
}

func (t *treeWriter) size() uint64 { return t.rng.End() }

// append adds a leaf hash and buffers every node it completes.
func (t *treeWriter) append(leaf []byte) error {
	return t.rng.Append(leaf, func(_ compact.NodeID, h []byte) {
		t.buf = append(t.buf, h...)
	})
}

func (t *treeWriter) root() []byte {
	if t.rng.End() == 0 {
		return hasher().EmptyRoot()
	}
	r, _ := t.rng.GetRootHash(nil) // begins at 0 by construction
	return r
}

// snapshot remembers the state to return to if a batch fails.
type treeSnapshot struct {
	end    uint64
	hashes [][]byte
	buf    int
}

func (t *treeWriter) snapshot() treeSnapshot {
	return treeSnapshot{end: t.rng.End(), hashes: append([][]byte(nil), t.rng.Hashes()...), buf: len(t.buf)}
}

func (t *treeWriter) restore(s treeSnapshot) {
	r, err := rangeFactory().NewRange(0, s.end, s.hashes)
	if err == nil {
		t.rng = r
	}
	t.buf = t.buf[:s.buf]
}

// flush writes buffered nodes to the file (without syncing).
func (t *treeWriter) flush() error {
	if len(t.buf) == 0 {
		return nil
	}
	if _, err := t.f.WriteAt(t.buf, int64(t.wrote)); err != nil {
		return fmt.Errorf("writing tree nodes: %w", err)
	}
	t.wrote += uint64(len(t.buf))
	t.buf = t.buf[:0]
	return nil
}

// store returns a reader over the nodes written so far.
func (t *treeWriter) store() hashStore {
	return hashStore{r: t.f, n: leavesCovered(t.wrote / hashSize)}
}

// rootsEqual compares two root hashes.
func rootsEqual(a, b []byte) bool { return len(a) == hashSize && bytes.Equal(a, b) }
