package jwsheader

import (
	"encoding/base64"
	"strings"
	"testing"
)

func enc(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func TestParse(t *testing.T) {
	cases := []struct {
		name, token, wantErr string
		want                 Header
	}{
		{"ok", enc(`{"alg":"ES256","typ":"JWT","kid":"k1"}`) + ".e30.sig", "", Header{Alg: "ES256", Typ: "JWT", Kid: "k1"}},
		{"none", enc(`{"alg":"none"}`) + ".e30.", "", Header{Alg: "none"}},
		{"two parts", "a.b", "compact JWS", Header{}},
		{"bad base64", "***.e30.sig", "base64url", Header{}},
		{"not json", enc("hello") + ".e30.sig", "JSON object", Header{}},
		{"crit", enc(`{"alg":"ES256","crit":["b64"]}`) + ".e30.sig", "critical", Header{}},
		{"huge", strings.Repeat("a", MaxTokenSize+1), "at most", Header{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h, err := Parse(c.token)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err = %v, want %q", err, c.wantErr)
				}
				return
			}
			if err != nil || h.Alg != c.want.Alg || h.Typ != c.want.Typ || h.Kid != c.want.Kid {
				t.Fatalf("got %+v, %v", h, err)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	f.Add(enc(`{"alg":"ES256","typ":"JWT"}`) + ".e30.sig")
	f.Add("..")
	f.Fuzz(func(t *testing.T, s string) { _, _ = Parse(s) })
}
