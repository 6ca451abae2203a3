package audit

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/transparency-dev/merkle/proof"
	"golang.org/x/mod/sumdb/note"
)

// InclusionBundle is everything a third party needs, besides the verifier
// key, to check that one event is in the log: the leaf (the stored record
// body: 8-byte big-endian index, 8-byte big-endian logged time in Unix ns,
// the event JSON), the RFC 6962 audit path, and the signed checkpoint of the
// tree it proves against. In JSON, byte strings are standard base64.
type InclusionBundle struct {
	Kind       string   `json:"kind"` // "inclusion"
	Index      uint64   `json:"index"`
	TreeSize   uint64   `json:"tree_size"`
	Leaf       []byte   `json:"leaf"`
	Proof      [][]byte `json:"proof"`
	Checkpoint string   `json:"checkpoint"`
}

// ConsistencyBundle proves that the tree of OldSize is a prefix of the tree
// of the signed checkpoint: nothing logged before was changed or removed.
// The checker compares it with an old checkpoint it holds itself (or the one
// included, which the log signed).
type ConsistencyBundle struct {
	Kind          string   `json:"kind"` // "consistency"
	OldSize       uint64   `json:"old_size"`
	TreeSize      uint64   `json:"tree_size"`
	Proof         [][]byte `json:"proof"`
	OldCheckpoint string   `json:"old_checkpoint,omitempty"`
	Checkpoint    string   `json:"checkpoint"`
}

// maxProofHashes bounds a proof's length: a tree of 2^64 leaves needs at
// most 128 hashes for any proof.
const maxProofHashes = 130

// ParseBundle decodes a proof bundle of either kind. It never panics.
func ParseBundle(b []byte) (*InclusionBundle, *ConsistencyBundle, error) {
	var kind struct {
		Kind string `json:"kind"`
	}
	if err := json.Unmarshal(b, &kind); err != nil {
		return nil, nil, fmt.Errorf("parsing proof: %w", err)
	}
	switch kind.Kind {
	case "inclusion":
		var ib InclusionBundle
		if err := json.Unmarshal(b, &ib); err != nil {
			return nil, nil, fmt.Errorf("parsing inclusion proof: %w", err)
		}
		if len(ib.Proof) > maxProofHashes {
			return nil, nil, errors.New("parsing inclusion proof: too many hashes")
		}
		return &ib, nil, nil
	case "consistency":
		var cb ConsistencyBundle
		if err := json.Unmarshal(b, &cb); err != nil {
			return nil, nil, fmt.Errorf("parsing consistency proof: %w", err)
		}
		if len(cb.Proof) > maxProofHashes {
			return nil, nil, errors.New("parsing consistency proof: too many hashes")
		}
		return nil, &cb, nil
	}
	return nil, nil, fmt.Errorf("parsing proof: unknown kind %q", kind.Kind)
}

// CheckInclusion verifies an inclusion bundle with only the verifier key: the
// checkpoint's signature, that the leaf says it is the claimed index, and the
// audit path from the leaf to the signed root. It returns the checked
// checkpoint and the event JSON.
func CheckInclusion(b *InclusionBundle, v note.Verifier) (*Checkpoint, []byte, error) {
	cp, err := ParseCheckpoint([]byte(b.Checkpoint), v)
	if err != nil {
		return nil, nil, err
	}
	if cp.Size != b.TreeSize {
		return nil, nil, fmt.Errorf("proof is for tree size %d but the checkpoint is of size %d", b.TreeSize, cp.Size)
	}
	if len(b.Leaf) < bodyPrefix {
		return nil, nil, errors.New("leaf is too short to be a record")
	}
	if got := binary.BigEndian.Uint64(b.Leaf); got != b.Index {
		return nil, nil, fmt.Errorf("leaf says it is index %d, proof claims %d", got, b.Index)
	}
	for _, h := range b.Proof {
		if len(h) != hashSize {
			return nil, nil, errors.New("proof hash of the wrong length")
		}
	}
	lh := hasher().HashLeaf(b.Leaf)
	if err := proof.VerifyInclusion(hasher(), b.Index, b.TreeSize, lh, b.Proof, cp.Root); err != nil {
		return nil, nil, fmt.Errorf("inclusion proof does not verify: %w", err)
	}
	return cp, b.Leaf[bodyPrefix:], nil
}

// CheckConsistency verifies a consistency bundle with only the verifier key.
// old is the checker's own copy of the old checkpoint note; when nil, the
// bundle's OldCheckpoint is used (and must be present).
func CheckConsistency(b *ConsistencyBundle, v note.Verifier, old []byte) (oldCP, newCP *Checkpoint, err error) {
	newCP, err = ParseCheckpoint([]byte(b.Checkpoint), v)
	if err != nil {
		return nil, nil, err
	}
	if old == nil {
		if b.OldCheckpoint == "" {
			return nil, nil, errors.New("no old checkpoint to check against: pass the one you hold")
		}
		old = []byte(b.OldCheckpoint)
	}
	oldCP, err = ParseCheckpoint(old, v)
	if err != nil {
		return nil, nil, fmt.Errorf("old checkpoint: %w", err)
	}
	if oldCP.Size != b.OldSize || newCP.Size != b.TreeSize {
		return nil, nil, fmt.Errorf("proof is from size %d to %d but the checkpoints are of sizes %d and %d", b.OldSize, b.TreeSize, oldCP.Size, newCP.Size)
	}
	for _, h := range b.Proof {
		if len(h) != hashSize {
			return nil, nil, errors.New("proof hash of the wrong length")
		}
	}
	if err := proof.VerifyConsistency(hasher(), oldCP.Size, newCP.Size, b.Proof, oldCP.Root, newCP.Root); err != nil {
		return nil, nil, fmt.Errorf("consistency proof does not verify: %w", err)
	}
	return oldCP, newCP, nil
}
