package events

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"testing"
)

// fill sets v (and everything under it) at random, with r: every field is
// zero, empty or set, each string from strs. Reflection, so that a field
// added to Event is filled too and AppendJSON must know it.
func fill(r *rand.Rand, v reflect.Value, strs []string) {
	switch v.Kind() {
	case reflect.String:
		if r.IntN(4) > 0 {
			v.SetString(strs[r.IntN(len(strs))])
		}
	case reflect.Int, reflect.Int64:
		switch r.IntN(4) {
		case 1:
			v.SetInt(r.Int64N(10000))
		case 2:
			v.SetInt(-r.Int64())
		case 3:
			v.SetInt(r.Int64())
		}
	case reflect.Pointer:
		if r.IntN(4) > 0 {
			v.Set(reflect.New(v.Type().Elem()))
			fill(r, v.Elem(), strs)
		}
	case reflect.Struct:
		for i := range v.NumField() {
			fill(r, v.Field(i), strs)
		}
	case reflect.Slice:
		if n := r.IntN(5) - 1; n >= 0 { // nil, or 0 to 3 elements
			v.Set(reflect.MakeSlice(v.Type(), n, n))
			for i := range n {
				fill(r, v.Index(i), strs)
			}
		}
	case reflect.Map:
		if n := r.IntN(12) - 1; n >= 0 { // nil, or 0 to 10 entries (more than AppendJSON's stack room)
			m := reflect.MakeMap(v.Type())
			for range n {
				k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
				fill(r, k, strs)
				fill(r, e, strs)
				m.SetMapIndex(k, e)
			}
			v.Set(m)
		}
	default:
		panic("fill: no case for " + v.Type().String())
	}
}

// awkward are strings whose JSON needs escaping, or nearly does.
var awkward = []string{
	"", "a", "spiffe://acme.test/agent/a", "tool_call allowed", "x y ~", "\x7f",
	`"quoted"`, `back\slash`, "<script>&amp;</script>", "tab\tnew\nline\rcr\bbs\ffeed\x00nul\x1f",
	"é ü 日本 🙂", "\u2028\u2029", "\xff\xfe invalid", "a\xc3", "\xed\xa0\x80 surrogate",
}

func checkAppendJSON(t *testing.T, e *Event) {
	t.Helper()
	want, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	if got := e.AppendJSON([]byte("prefix")); !bytes.Equal(got[len("prefix"):], want) {
		t.Fatalf("AppendJSON:\n got %s\nwant %s", got[len("prefix"):], want)
	}
}

// TestAppendJSONMatchesMarshal: the audit log's encoding of an event is
// json.Marshal's, byte for byte, whatever the event holds.
func TestAppendJSONMatchesMarshal(t *testing.T) {
	checkAppendJSON(t, &Event{})
	e := New(ClassAPIActivity, 99, "authz")
	e.Warden = &Warden{Agent: "spiffe://acme.test/agent/a", Tool: "files.read_file", Attrs: map[string]string{"call": "c1", "grant_entry": "0"}}
	checkAppendJSON(t, &e)
	r := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		var e Event
		fill(r, reflect.ValueOf(&e).Elem(), awkward)
		checkAppendJSON(t, &e)
	}
}

// TestAppendJSONCoversEveryField: an event with every field set encodes as
// json.Marshal does, so a field added to a type and not to AppendJSON fails.
func TestAppendJSONCoversEveryField(t *testing.T) {
	var e Event
	setAll(reflect.ValueOf(&e).Elem())
	checkAppendJSON(t, &e)
}

func setAll(v reflect.Value) {
	switch v.Kind() {
	case reflect.String:
		v.SetString("s")
	case reflect.Int, reflect.Int64:
		v.SetInt(7)
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		setAll(v.Elem())
	case reflect.Struct:
		for i := range v.NumField() {
			setAll(v.Field(i))
		}
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 2, 2))
		setAll(v.Index(0))
		setAll(v.Index(1))
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		for _, k := range []string{"b", "a"} {
			m.SetMapIndex(reflect.ValueOf(k), reflect.ValueOf("v"))
		}
		v.Set(m)
	default:
		panic("setAll: no case for " + v.Type().String())
	}
}

// FuzzAppendJSON: events built from any seed and strings encode as
// json.Marshal encodes them.
func FuzzAppendJSON(f *testing.F) {
	f.Add(uint64(1), "x", "<&>")
	f.Add(uint64(2), "\xff", "\u2028")
	f.Fuzz(func(t *testing.T, seed uint64, s1, s2 string) {
		var e Event
		fill(rand.New(rand.NewPCG(seed, seed)), reflect.ValueOf(&e).Elem(), []string{s1, s2, "a"})
		checkAppendJSON(t, &e)
	})
}

// BenchmarkEncodeDecisionEvent is the event the decision point records for
// an allowed tool call, encoded both ways:
// go test -run '^$' -bench EncodeDecisionEvent -benchmem ./events
func BenchmarkEncodeDecisionEvent(b *testing.B) {
	e := New(ClassAPIActivity, 99, "authz")
	e.ActivityName, e.StatusID, e.StatusCode = "Other", StatusSuccess, "allowed"
	e.Message = "allowed by the task's grant and by policy"
	e.ActionID, e.DispositionID = ActionAllowed, DispositionAllowed
	e.Metadata.CorrelationUID = "task-0123456789abcdef"
	e.Actor = &Actor{User: &User{UID: "spiffe://acme.test/agent/bench", Name: "bench", Type: "agent"}, Session: &Session{UID: "0123456789abcdef0123456789abcdef"}}
	e.Resources = []Resource{{UID: "everything.echo", Type: "tool", Name: "echo"}}
	e.Policy = &Policy{UID: "policy0", Name: "baseline"}
	e.Warden = &Warden{Agent: "spiffe://acme.test/agent/bench", Task: "task-0123456789abcdef", Grant: "grant-0123", Tool: "everything.echo", Reason: "allowed",
		Attrs: map[string]string{"grant_entry": "0", "call": "0123456789abcdef"}}
	b.Run("json.Marshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := json.Marshal(&e); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("AppendJSON", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = e.AppendJSON(make([]byte, 0, 1024))
		}
	})
}

// TestAppendQuotedMatchesMarshal: every byte alone and in company, and
// the runes encoding/json treats specially, quote as json.Marshal quotes.
func TestAppendQuotedMatchesMarshal(t *testing.T) {
	strs := append([]string(nil), awkward...)
	for c := range 256 {
		strs = append(strs, string([]byte{byte(c)}), "a"+string([]byte{byte(c)})+"é")
	}
	strs = append(strs, "\u2027\u2028\u2029\u202a", "\U0010ffff", "\xf4\x90\x80\x80", "\xc0\xaf", "日本\xe6\x97")
	for _, s := range strs {
		want, _ := json.Marshal(s)
		if got := appendQuoted(nil, s); !bytes.Equal(got, want) {
			t.Errorf("appendQuoted(%q) = %s, want %s", s, got, want)
		}
	}
}
