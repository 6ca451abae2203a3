package policy

import (
	"errors"
	"strings"
	"testing"

	"github.com/cedar-policy/cedar-go/types"
)

func mustDecimal(t *testing.T, s string) types.Decimal {
	t.Helper()
	d, err := types.ParseDecimal(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestArgsRecord(t *testing.T) {
	rec, err := ArgsRecord([]byte(`{
		"s": "text", "t": true, "f": false, "n": null,
		"i": 42, "neg": -7, "whole": 1.0, "exp": 1e3, "zero": -0.0,
		"d": 10.25, "d4": -0.0001, "many": 0.12345, "big": 123456789012345678901234567890,
		"huge": 1e400, "max": 9223372036854775807, "over": 9223372036854775808,
		"arr": [1, 1, "a", null], "obj": {"k": {"deep": [true]}},
		"unicode": "h\u00e9 \ud83d\ude00"
	}`))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]types.Value{
		"s": types.String("text"), "t": types.True, "f": types.False,
		"i": types.Long(42), "neg": types.Long(-7), "whole": types.Long(1), "exp": types.Long(1000), "zero": types.Long(0),
		"d": mustDecimal(t, "10.25"), "d4": mustDecimal(t, "-0.0001"),
		"many": types.String("0.12345"), "big": types.String("123456789012345678901234567890"),
		"huge": types.String("1e400"), "max": types.Long(9223372036854775807), "over": types.String("9223372036854775808"),
		"arr":     types.NewSet(types.Long(1), types.String("a")),
		"obj":     types.NewRecord(types.RecordMap{"k": types.NewRecord(types.RecordMap{"deep": types.NewSet(types.True)})}),
		"unicode": types.String("hé 😀"),
	}
	if rec.Len() != len(want) {
		t.Errorf("record has %d attributes, want %d: %v", rec.Len(), len(want), rec)
	}
	for k, v := range want {
		got, ok := rec.Get(types.String(k))
		if !ok {
			t.Errorf("%s missing", k)
			continue
		}
		if !got.Equal(v) {
			t.Errorf("%s = %v (%T), want %v (%T)", k, got, got, v, v)
		}
	}
	if _, ok := rec.Get("n"); ok {
		t.Error("null kept")
	}
}

func TestArgsRecordEmpty(t *testing.T) {
	for _, in := range []string{"", " ", "null", "{}"} {
		rec, err := ArgsRecord([]byte(in))
		if err != nil || rec.Len() != 0 {
			t.Errorf("%q: %v %v", in, rec, err)
		}
	}
}

func TestArgsRecordErrors(t *testing.T) {
	deep := strings.Repeat(`{"a":`, MaxArgsDepth+1) + "1" + strings.Repeat("}", MaxArgsDepth+1)
	okDeep := strings.Repeat(`{"a":`, MaxArgsDepth) + "1" + strings.Repeat("}", MaxArgsDepth)
	if _, err := ArgsRecord([]byte(okDeep)); err != nil {
		t.Fatalf("nesting of %d refused: %v", MaxArgsDepth, err)
	}
	wide := "{\"a\":[" + strings.Repeat("0,", MaxArgsValues) + "0]}"
	tests := []struct{ name, in, want string }{
		{"array", `[1]`, "not a JSON object"},
		{"string", `"x"`, "not a JSON object"},
		{"truncated", `{"a": 1`, "arguments:"},
		{"trailing data", `{"a": 1} {}`, "after the top-level object"},
		{"trailing garbage", `{"a": 1}x`, "arguments:"},
		{"duplicate key", `{"a": 1, "a": 2}`, "duplicate"},
		{"duplicate nested key", `{"o": {"a": 1, "a": 2}}`, "duplicate"},
		{"invalid UTF-8 in a value", "{\"a\": \"\xff\"}", "UTF-8"},
		{"invalid UTF-8 in a key", "{\"\xc3\": 1}", "UTF-8"},
		{"lone surrogate", `{"a": "\ud800"}`, "arguments:"},
		{"too deep", deep, "nested deeper"},
		{"too many values", wide, "more than"},
		{"too big", `{"a": "` + strings.Repeat("x", MaxArgsBytes) + `"}`, "at most"},
		{"bad literal", `{"a": tru}`, "arguments:"},
		{"bad number", `{"a": 01}`, "arguments:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ArgsRecord([]byte(tt.in))
			var ae *ArgsError
			if !errors.As(err, &ae) {
				t.Fatalf("want an *ArgsError, got %v", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q does not mention %q", err, tt.want)
			}
		})
	}
}

func FuzzArgsRecord(f *testing.F) {
	for _, s := range []string{
		`{}`, `{"a": 1}`, `{"a": [1, "b", {"c": null}]}`, `{"n": 1.5e3}`, `{"n": -0.00001}`,
		`{"n": 123456789012345678901234567890}`, `{"n": 1e-400}`, `{"n": 9.99999999999999999e18}`,
		"{\"\xff\": 1}", `{"a": "\ud800"}`, `{"a": {"a": {"a": {"a": []}}}}`, `{"a":1,"a":1}`,
	} {
		f.Add([]byte(s))
	}
	set := mustCompile(f, `
permit(principal, action, resource) when { context.args has amount && context.args.amount < 10 };
forbid(principal, action, resource) when { context.args has a && context.args.a.b like "*x*" };
permit(principal, action, resource) when { context.args has d && context.args.d.lessThan(decimal("1.5")) };`)
	f.Fuzz(func(t *testing.T, in []byte) {
		rec, err := ArgsRecord(in)
		if err != nil {
			var ae *ArgsError
			if !errors.As(err, &ae) {
				t.Fatalf("error is not an *ArgsError: %v", err)
			}
			return
		}
		// Whatever converted must be usable in a decision.
		_ = rec.String()
		req := call(financeAgent(), payTool, string(in))
		NewEngine(set).Decide(t.Context(), req)
	})
}
