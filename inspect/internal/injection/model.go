package injection

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
)

// Meta describes a trained model. It is stored in the model file.
type Meta struct {
	Features  FeatureConfig `json:"features"`
	Dense     []string      `json:"dense"`     // names of the dense features, in order
	Bias      float32       `json:"bias"`      // intercept of the raw score
	PlattA    float64       `json:"platt_a"`   // calibration: p = 1/(1+exp(-(A*z+B)))
	PlattB    float64       `json:"platt_b"`   //
	Threshold float64       `json:"threshold"` // calibrated score at or above which text is flagged
	Scale     float32       `json:"scale"`     // sparse weight = int8 * Scale
	Trained   string        `json:"trained"`   // how it was made: command, data digests
}

// Model is a linear model over hashed features. Weights are int8 with one
// scale: scoring reads one weight per character from a table too big for a
// core's cache, so its size sets the detector's speed on real text. At 8
// bits (1 MiB) dev_test is scored about 13% faster than at 16 bits, with
// the same accuracy (docs/benchmarks.md).
type Model struct {
	Meta  Meta
	W     []int8    // 1<<Bits sparse weights
	Dense []float32 // dense weights, named by Meta.Dense
}

// magic names the format. WRDNINJ1, with 16-bit weights, is no longer read.
const magic = "WRDNINJ2"

// Encode writes the model: magic, header length, JSON header, weights.
func (m *Model) Encode(w io.Writer) error {
	hdr, err := json.Marshal(m.Meta)
	if err != nil {
		return fmt.Errorf("encoding model header: %w", err)
	}
	var buf bytes.Buffer
	buf.WriteString(magic)
	_ = binary.Write(&buf, binary.LittleEndian, uint32(len(hdr)))
	buf.Write(hdr)
	_ = binary.Write(&buf, binary.LittleEndian, uint32(len(m.Dense)))
	_ = binary.Write(&buf, binary.LittleEndian, m.Dense)
	_ = binary.Write(&buf, binary.LittleEndian, uint32(len(m.W)))
	_ = binary.Write(&buf, binary.LittleEndian, m.W)
	if _, err := w.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("writing model: %w", err)
	}
	return nil
}

// Decode reads a model written by Encode.
func Decode(b []byte) (*Model, error) {
	if len(b) < len(magic)+4 || string(b[:len(magic)]) != magic {
		if len(b) >= len(magic) && string(b[:len(magic)]) == "WRDNINJ1" {
			return nil, errors.New("injection model has 16-bit weights, a format this version no longer reads: retrain it (go run ./inspect/internal/train)")
		}
		return nil, errors.New("not a Warden injection model")
	}
	r := bytes.NewReader(b[len(magic):])
	var n uint32
	if err := binary.Read(r, binary.LittleEndian, &n); err != nil || int(n) > r.Len() {
		return nil, errors.New("model header truncated")
	}
	hdr := make([]byte, n)
	_, _ = io.ReadFull(r, hdr)
	m := &Model{}
	if err := json.Unmarshal(hdr, &m.Meta); err != nil {
		return nil, fmt.Errorf("model header: %w", err)
	}
	if err := binary.Read(r, binary.LittleEndian, &n); err != nil || int(n)*4 > r.Len() {
		return nil, errors.New("model dense weights truncated")
	}
	m.Dense = make([]float32, n)
	if err := binary.Read(r, binary.LittleEndian, m.Dense); err != nil {
		return nil, fmt.Errorf("model dense weights: %w", err)
	}
	if err := binary.Read(r, binary.LittleEndian, &n); err != nil || int(n) != r.Len() {
		return nil, errors.New("model weights truncated")
	}
	bits := m.Meta.Features.Bits
	if bits < 8 || bits > 26 || int(n) != 1<<bits {
		return nil, fmt.Errorf("model has %d weights for %d bits", n, bits)
	}
	m.W = make([]int8, n)
	if err := binary.Read(r, binary.LittleEndian, m.W); err != nil {
		return nil, fmt.Errorf("model weights: %w", err)
	}
	if len(m.Dense) != len(m.Meta.Dense) {
		return nil, fmt.Errorf("model has %d dense weights for %d names", len(m.Dense), len(m.Meta.Dense))
	}
	return m, nil
}

// Quantize turns float weights into the int8 table and scale. The scale
// comes from the largest weight, so nothing saturates; the rounding error
// of each weight is independent of the others and mostly cancels in a
// chunk's sum.
func Quantize(w []float32) ([]int8, float32) {
	var max float32
	for _, v := range w {
		if a := float32(math.Abs(float64(v))); a > max {
			max = a
		}
	}
	if max == 0 {
		return make([]int8, len(w)), 1
	}
	scale := max / 127
	q := make([]int8, len(w))
	for i, v := range w {
		q[i] = int8(math.Round(float64(v / scale)))
	}
	return q, scale
}

// Raw is the uncalibrated score of one chunk.
func (m *Model) Raw(c *Chunk, dense []float32) float64 {
	s, n := c.Sum, c.Count
	if c.Idx != nil {
		s, n = 0, len(c.Idx)
		w := m.W
		mask := uint32(len(w) - 1)
		for _, i := range c.Idx {
			s += int64(w[i&mask])
		}
	}
	z := float64(m.Meta.Bias)
	if n > 0 {
		z += float64(s) * float64(m.Meta.Scale) / math.Sqrt(float64(n))
	}
	for _, d := range c.Dense {
		if int(d) < len(dense) {
			z += float64(dense[d])
		}
	}
	return z
}

// Calibrate maps a raw score to a probability-like score in [0,1].
func (m *Model) Calibrate(z float64) float64 {
	return 1 / (1 + math.Exp(-(m.Meta.PlattA*z + m.Meta.PlattB)))
}
