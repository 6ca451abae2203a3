package audit

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/mod/sumdb/note"

	"github.com/warden-run/warden/config"
	"github.com/warden-run/warden/internal/keyfile"
)

// Checkpoint is a signed tree head in the C2SP tlog-checkpoint format:
//
//	<origin>
//	<tree size>
//	<base64 root hash>
//
//	— <key name> <base64 signature>
type Checkpoint struct {
	Origin string
	Size   uint64
	Root   []byte
	// Note is the whole signed note, exactly as published.
	Note []byte
}

// maxNoteBytes bounds a checkpoint note read from anywhere.
const maxNoteBytes = 64 << 10

// checkpointText renders the note text of a checkpoint.
func checkpointText(origin string, size uint64, root []byte) string {
	return origin + "\n" + strconv.FormatUint(size, 10) + "\n" + base64.StdEncoding.EncodeToString(root) + "\n"
}

// parseCheckpointText parses the text of a note as a checkpoint body.
// Extension lines after the root are allowed and ignored, as the spec says.
func parseCheckpointText(text string) (origin string, size uint64, root []byte, err error) {
	lines := strings.Split(text, "\n")
	if len(lines) < 4 || lines[len(lines)-1] != "" {
		return "", 0, nil, errors.New("checkpoint: want origin, size and root hash lines")
	}
	for _, l := range lines[:len(lines)-1] {
		if l == "" {
			return "", 0, nil, errors.New("checkpoint: empty line in body")
		}
	}
	origin = lines[0]
	if !validName(origin) {
		return "", 0, nil, fmt.Errorf("checkpoint: invalid origin %q", origin)
	}
	s := lines[1]
	if s == "" || (len(s) > 1 && s[0] == '0') || strings.TrimLeft(s, "0123456789") != "" {
		return "", 0, nil, fmt.Errorf("checkpoint: invalid tree size %q", s)
	}
	size, err = strconv.ParseUint(s, 10, 64)
	if err != nil {
		return "", 0, nil, fmt.Errorf("checkpoint: invalid tree size %q", s)
	}
	root, err = base64.StdEncoding.Strict().DecodeString(lines[2])
	if err != nil || len(root) != hashSize {
		return "", 0, nil, fmt.Errorf("checkpoint: invalid root hash %q", lines[2])
	}
	return origin, size, root, nil
}

// validName reports whether s may be a note key name and checkpoint origin.
func validName(s string) bool {
	return s != "" && utf8.ValidString(s) && strings.IndexFunc(s, unicode.IsSpace) < 0 && !strings.Contains(s, "+")
}

// ParseCheckpoint checks the signature of a checkpoint note with the verifier
// and parses it. A note that is not signed by the verifier's key, whose origin
// is not the key's name, or that is malformed is refused.
func ParseCheckpoint(msg []byte, v note.Verifier) (*Checkpoint, error) {
	if len(msg) > maxNoteBytes {
		return nil, fmt.Errorf("checkpoint: note of %d bytes is too large", len(msg))
	}
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		var unverified *note.UnverifiedNoteError
		if errors.As(err, &unverified) {
			return nil, fmt.Errorf("checkpoint is not signed by %s (key hash %08x)", v.Name(), v.KeyHash())
		}
		return nil, fmt.Errorf("checkpoint signature: %w", err)
	}
	origin, size, root, err := parseCheckpointText(n.Text)
	if err != nil {
		return nil, err
	}
	if origin != v.Name() {
		return nil, fmt.Errorf("checkpoint origin %q is not the key's name %q", origin, v.Name())
	}
	return &Checkpoint{Origin: origin, Size: size, Root: root, Note: append([]byte(nil), msg...)}, nil
}

// parseUnverified parses a checkpoint note without checking its signature.
func parseUnverified(msg []byte) (*Checkpoint, error) {
	if len(msg) > maxNoteBytes {
		return nil, fmt.Errorf("checkpoint: note of %d bytes is too large", len(msg))
	}
	i := bytes.LastIndex(msg, []byte("\n\n"))
	if i < 0 || !bytes.HasPrefix(msg[i+2:], []byte("— ")) {
		return nil, errors.New("checkpoint: malformed note")
	}
	origin, size, root, err := parseCheckpointText(string(msg[:i+1]))
	if err != nil {
		return nil, err
	}
	return &Checkpoint{Origin: origin, Size: size, Root: root, Note: append([]byte(nil), msg...)}, nil
}

// signCheckpoint signs a checkpoint of the tree.
func signCheckpoint(s note.Signer, size uint64, root []byte) (*Checkpoint, error) {
	msg, err := note.Sign(&note.Note{Text: checkpointText(s.Name(), size, root)}, s)
	if err != nil {
		return nil, fmt.Errorf("signing checkpoint: %w", err)
	}
	return &Checkpoint{Origin: s.Name(), Size: size, Root: append([]byte(nil), root...), Note: msg}, nil
}

// SplitNotes splits a file of signed notes written one after another (as the
// file publisher and the local history write them) into single notes. It
// never panics; a trailing partial note is returned as is and fails to parse.
func SplitNotes(b []byte) [][]byte {
	var notes [][]byte
	start, inSigs := 0, false
	for off := 0; off < len(b); {
		end := bytes.IndexByte(b[off:], '\n')
		if end < 0 {
			end = len(b)
		} else {
			end += off + 1
		}
		line := b[off:end]
		switch {
		case inSigs && !bytes.HasPrefix(line, []byte("— ")):
			notes = append(notes, b[start:off])
			start, inSigs = off, false
			if len(bytes.TrimSpace(line)) == 0 { // tolerate blank separators
				start = end
			}
		case !inSigs && off > start && bytes.Equal(line, []byte("\n")):
			inSigs = true
		case !inSigs && off == start && len(bytes.TrimSpace(line)) == 0:
			start = end // skip leading blank lines
		}
		off = end
	}
	if start < len(b) {
		notes = append(notes, b[start:])
	}
	return notes
}

// NewSigner returns a note signer for the checkpoint key under the log's
// origin (the key name and the origin are the same string, as the C2SP
// checkpoint spec expects).
func NewSigner(origin string, key ed25519.PrivateKey) (note.Signer, error) {
	if len(key) != ed25519.PrivateKeySize {
		return nil, errors.New("checkpoint key: not an Ed25519 private key")
	}
	vkey, err := VerifierKey(origin, key.Public().(ed25519.PublicKey))
	if err != nil {
		return nil, err
	}
	// vkey is name+hash+base64(alg||pub) (the base64 may hold '+'); the
	// signer key is PRIVATE+KEY+name+hash+base64(alg||seed).
	hash := strings.TrimPrefix(vkey, origin+"+")[:8]
	skey := "PRIVATE+KEY+" + origin + "+" + hash + "+" +
		base64.StdEncoding.EncodeToString(append([]byte{1}, key.Seed()...))
	s, err := note.NewSigner(skey)
	if err != nil {
		return nil, fmt.Errorf("checkpoint key: %w", err)
	}
	return s, nil
}

// VerifierKey returns the public verifier key string (name+hash+key) that a
// third party needs, and nothing else, to check checkpoints and proofs.
func VerifierKey(origin string, pub ed25519.PublicKey) (string, error) {
	if !validName(origin) {
		return "", fmt.Errorf("audit origin %q: must be non-empty with no spaces or '+'", origin)
	}
	vkey, err := note.NewEd25519VerifierKey(origin, pub)
	if err != nil {
		return "", fmt.Errorf("checkpoint verifier key: %w", err)
	}
	return vkey, nil
}

// NewVerifier parses a verifier key string (as printed by `warden audit key`).
func NewVerifier(vkey string) (note.Verifier, error) {
	v, err := note.NewVerifier(strings.TrimSpace(vkey))
	if err != nil {
		return nil, fmt.Errorf("parsing verifier key: %w", err)
	}
	return v, nil
}

// KeyPath is where the checkpoint key lives in a data directory.
func KeyPath(d config.Dir) string { return filepath.Join(d.Keys(), "checkpoint.key") }

// Dir is where the audit log lives in a data directory.
func Dir(d config.Dir) string { return filepath.Join(string(d), "audit") }

// LoadKey reads an Ed25519 checkpoint key stored as PKCS#8 PEM (a file
// only its owner may read).
func LoadKey(path string) (ed25519.PrivateKey, error) {
	k, err := keyfile.Load(path)
	if err != nil {
		return nil, fmt.Errorf("reading checkpoint key: %w", err)
	}
	ek, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("checkpoint key %s: %T is not Ed25519", path, k)
	}
	return ek, nil
}

// EnsureKey loads the checkpoint key at path, creating it (Ed25519, PKCS#8
// PEM, mode 0600, in a 0700 directory) if no file is there. It never
// overwrites an existing file.
func EnsureKey(path string) (ed25519.PrivateKey, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("creating key directory: %w", err)
	}
	k, _, err := keyfile.LoadOrCreate(path, keyfile.Ed25519)
	if err != nil {
		return nil, fmt.Errorf("checkpoint key: %w", err)
	}
	ek, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("checkpoint key %s: %T is not Ed25519", path, k)
	}
	return ek, nil
}
