package audit

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Segment file layout. A segment starts with segMagic and holds records back
// to back. A record is
//
//	uint32 BE  n        length of body
//	body       n bytes  uint64 BE index | int64 BE logged time (Unix ns) | event JSON
//	uint32 BE  crc      CRC-32C of the length and the body
//
// The body is the Merkle leaf: its leaf hash is SHA-256(0x00 || body), so a
// leaf commits to its own index and logging time as well as to the event. The
// CRC only tells a torn or damaged write from a whole one; tamper evidence
// comes from the tree and the signed checkpoints.
const (
	segMagic      = "WDAUDIT1"
	recHeaderSize = 4
	recTrailer    = 4
	bodyPrefix    = 16 // index + logged time
	recOverhead   = recHeaderSize + bodyPrefix + recTrailer

	// DefaultMaxEventBytes bounds the encoded size of one event.
	DefaultMaxEventBytes = 1 << 20
	// maxBody is the largest body any reader accepts, whatever the writer's
	// limit: a length field beyond it is damage, not a record.
	maxBody = 16<<20 + bodyPrefix
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Record decoding errors. They say what is wrong with the bytes, not why.
var (
	errTruncated = errors.New("record truncated")
	errLength    = errors.New("record length out of range")
	errChecksum  = errors.New("record checksum mismatch")
)

// Record is one stored event.
type Record struct {
	Index  uint64 // position in the log (the leaf index)
	Logged int64  // when the log appended it, Unix nanoseconds
	Event  []byte // the event as JSON
	body   []byte // index | logged | event: the Merkle leaf
}

// Leaf returns the Merkle leaf data of the record.
func (r Record) Leaf() []byte { return r.body }

// appendRecord encodes a record at the end of dst and returns the extended
// slice and where the body starts in it.
func appendRecord(dst []byte, index uint64, logged int64, event []byte) ([]byte, int) {
	start := len(dst)
	n := bodyPrefix + len(event)
	dst = binary.BigEndian.AppendUint32(dst, uint32(n))
	dst = binary.BigEndian.AppendUint64(dst, index)
	dst = binary.BigEndian.AppendUint64(dst, uint64(logged))
	dst = append(dst, event...)
	dst = binary.BigEndian.AppendUint32(dst, crc32.Checksum(dst[start:], castagnoli))
	return dst, start + recHeaderSize
}

// decodeRecord decodes the record at the start of b. It returns the record
// (whose slices alias b) and the number of bytes it takes. It never panics on
// any input.
func decodeRecord(b []byte) (Record, int, error) {
	if len(b) < recHeaderSize {
		return Record{}, 0, errTruncated
	}
	n := binary.BigEndian.Uint32(b)
	if n < bodyPrefix || n > maxBody {
		return Record{}, 0, errLength
	}
	total := recHeaderSize + int(n) + recTrailer
	if len(b) < total {
		return Record{}, 0, errTruncated
	}
	want := binary.BigEndian.Uint32(b[total-recTrailer:])
	if crc32.Checksum(b[:total-recTrailer], castagnoli) != want {
		return Record{}, 0, errChecksum
	}
	body := b[recHeaderSize : total-recTrailer]
	return Record{
		Index:  binary.BigEndian.Uint64(body),
		Logged: int64(binary.BigEndian.Uint64(body[8:])),
		Event:  body[bodyPrefix:],
		body:   body,
	}, total, nil
}

// leafHash is the RFC 6962 leaf hash of a record body.
func leafHash(body []byte) [32]byte {
	h := sha256.New()
	h.Write([]byte{0})
	h.Write(body)
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// segReader reads records one after another from a segment file.
type segReader struct {
	r   *bufio.Reader
	off int64 // offset of the next record
	buf []byte
	eof bool
}

func newSegReader(f io.Reader, off int64) *segReader {
	return &segReader{r: bufio.NewReaderSize(f, 1<<20), off: off}
}

// next returns the next record. io.EOF means a clean end; errTruncated means
// the file ends inside a record; other errors mean damaged bytes at s.off.
// The returned record aliases an internal buffer valid until the next call.
func (s *segReader) next() (Record, error) {
	var hdr [recHeaderSize]byte
	n, err := io.ReadFull(s.r, hdr[:])
	if err == io.EOF {
		return Record{}, io.EOF
	}
	if err != nil {
		_ = n
		return Record{}, errTruncated
	}
	l := binary.BigEndian.Uint32(hdr[:])
	if l < bodyPrefix || l > maxBody {
		return Record{}, errLength
	}
	total := recHeaderSize + int(l) + recTrailer
	if cap(s.buf) < total {
		s.buf = make([]byte, total, total+total/4)
	}
	s.buf = s.buf[:total]
	copy(s.buf, hdr[:])
	if _, err := io.ReadFull(s.r, s.buf[recHeaderSize:]); err != nil {
		return Record{}, errTruncated
	}
	rec, _, err := decodeRecord(s.buf)
	if err != nil {
		return Record{}, err
	}
	s.off += int64(total)
	return rec, nil
}

// segment names a segment file by the index of its first record.
type segment struct {
	first uint64
	path  string
}

func segName(first uint64) string { return fmt.Sprintf("%020d.seg", first) }
func idxName(first uint64) string { return fmt.Sprintf("%020d.idx", first) }

// listSegments returns the segments in dir in order of their first index.
func listSegments(dir string) ([]segment, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("listing audit segments: %w", err)
	}
	var segs []segment
	for _, e := range ents {
		name := e.Name()
		if !strings.HasSuffix(name, ".seg") || len(name) != 24 {
			continue
		}
		first, err := strconv.ParseUint(strings.TrimSuffix(name, ".seg"), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("listing audit segments: unexpected file %s", name)
		}
		segs = append(segs, segment{first: first, path: filepath.Join(dir, name)})
	}
	sort.Slice(segs, func(i, j int) bool { return segs[i].first < segs[j].first })
	return segs, nil
}

// resyncAfter looks for a whole record with an index above want anywhere in
// b (the bytes after a damaged record). Finding one means the damage is in
// the middle of the log, not a torn tail. It never panics.
func resyncAfter(b []byte, want uint64) (int, bool) {
	for i := 1; i+recOverhead <= len(b); i++ {
		n := binary.BigEndian.Uint32(b[i:])
		if n < bodyPrefix || n > maxBody || i+recHeaderSize+int(n)+recTrailer > len(b) {
			continue
		}
		idx := binary.BigEndian.Uint64(b[i+recHeaderSize:])
		if idx <= want || idx > want+1<<32 {
			continue
		}
		if _, _, err := decodeRecord(b[i:]); err == nil {
			return i, true
		}
	}
	return 0, false
}
