package injection

import (
	"bytes"
	"slices"
	"strings"
	"testing"
)

func testModel() *Model {
	w := make([]float32, 1<<8)
	for i := range w {
		w[i] = float32(i%17) - 8
	}
	q, scale := Quantize(w)
	return &Model{
		Meta:  Meta{Features: FeatureConfig{Bits: 8}, Dense: []string{"a", "b"}, Bias: -1, PlattA: 1, Threshold: 0.7, Scale: scale},
		W:     q,
		Dense: []float32{0.5, -0.5},
	}
}

func TestModelRoundTrip(t *testing.T) {
	m := testModel()
	var buf bytes.Buffer
	if err := m.Encode(&buf); err != nil {
		t.Fatal(err)
	}
	got, err := Decode(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.W, m.W) || got.Meta.Scale != m.Meta.Scale || len(got.Dense) != 2 || got.Dense[1] != -0.5 {
		t.Errorf("decoded model differs from the one encoded")
	}
}

func TestQuantizeKeepsLargestWeightAndSign(t *testing.T) {
	q, scale := Quantize([]float32{0.5, -2, 0, 1e-9, 2})
	want := []int8{32, -127, 0, 0, 127}
	for i := range want {
		if q[i] != want[i] {
			t.Errorf("weight %d: got %d, want %d (scale %g)", i, q[i], want[i], scale)
		}
	}
	if q, scale := Quantize(make([]float32, 4)); scale != 1 || q[0] != 0 {
		t.Errorf("all-zero weights: scale %g, want 1", scale)
	}
}

func TestDecodeRejectsBadModels(t *testing.T) {
	var buf bytes.Buffer
	if err := testModel().Encode(&buf); err != nil {
		t.Fatal(err)
	}
	good := buf.Bytes()
	cases := []struct {
		name string
		b    []byte
		want string
	}{
		{"empty", nil, "not a Warden injection model"},
		{"other file", []byte("PK\x03\x04 a zip file"), "not a Warden injection model"},
		{"16-bit format", append([]byte("WRDNINJ1"), good[8:]...), "retrain"},
		{"truncated weights", good[:len(good)-1], "weights truncated"},
		{"extra bytes", append(append([]byte(nil), good...), 0), "weights truncated"},
		{"truncated header", good[:12], "header"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Decode(c.b)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("got %v, want an error containing %q", err, c.want)
			}
		})
	}
}

func FuzzDecode(f *testing.F) {
	var buf bytes.Buffer
	if err := testModel().Encode(&buf); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Add([]byte("WRDNINJ2\xff\xff\xff\xff"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Decode(b)
		if err != nil {
			return
		}
		if len(m.W) != 1<<m.Meta.Features.Bits || len(m.Dense) != len(m.Meta.Dense) {
			t.Fatalf("accepted a model of %d weights for %d bits, %d dense for %d names", len(m.W), m.Meta.Features.Bits, len(m.Dense), len(m.Meta.Dense))
		}
	})
}
