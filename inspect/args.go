package inspect

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Arg is one leaf value of a tool call's arguments.
type Arg struct {
	Path  string // JSON path: $.to, $.items[2].body
	Value string // strings as they are; numbers and booleans in JSON form
}

// ArgLimits bound the walk over arguments.
type ArgLimits struct {
	MaxDepth  int // nesting (default 32)
	MaxLeaves int // leaf values (default 4096)
	MaxBytes  int // total bytes of leaf values (default 8 MiB)
}

func (l ArgLimits) withDefaults() ArgLimits {
	if l.MaxDepth <= 0 {
		l.MaxDepth = 32
	}
	if l.MaxLeaves <= 0 {
		l.MaxLeaves = 4096
	}
	if l.MaxBytes <= 0 {
		l.MaxBytes = 8 << 20
	}
	return l
}

// ErrArgsTooLarge is returned when arguments exceed the limits; the caller
// must treat such a call as blocked (the controls could not read all of it).
type ErrArgsTooLarge struct{ What string }

func (e ErrArgsTooLarge) Error() string { return "arguments too large to inspect: " + e.What }

// FlattenArgs walks decoded JSON arguments (map[string]any, []any, string,
// float64, json.Number, bool, nil, or json.RawMessage/[]byte holding JSON)
// and returns their leaves in a stable order. Strings that themselves hold
// JSON objects or arrays are walked too (an agent can nest a payload in a
// string), within the same limits.
func FlattenArgs(v any, lim ArgLimits) ([]Arg, error) {
	lim = lim.withDefaults()
	w := walker{lim: lim}
	if err := w.walk(v, "$", 0); err != nil {
		return w.out, err
	}
	return w.out, nil
}

type walker struct {
	lim   ArgLimits
	out   []Arg
	bytes int
}

func (w *walker) leaf(path, s string) error {
	if len(w.out) >= w.lim.MaxLeaves {
		return ErrArgsTooLarge{fmt.Sprintf("more than %d values", w.lim.MaxLeaves)}
	}
	w.bytes += len(s)
	if w.bytes > w.lim.MaxBytes {
		return ErrArgsTooLarge{fmt.Sprintf("more than %d bytes", w.lim.MaxBytes)}
	}
	w.out = append(w.out, Arg{Path: path, Value: s})
	return nil
}

func (w *walker) walk(v any, path string, depth int) error {
	if depth > w.lim.MaxDepth {
		return ErrArgsTooLarge{fmt.Sprintf("nested deeper than %d levels at %s", w.lim.MaxDepth, path)}
	}
	switch x := v.(type) {
	case nil:
		return nil
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			// Keys are data too: an agent can smuggle a secret in a key.
			if err := w.leaf(path+".<key>", k); err != nil {
				return err
			}
			if err := w.walk(x[k], path+"."+pathKey(k), depth+1); err != nil {
				return err
			}
		}
	case []any:
		for i, e := range x {
			if err := w.walk(e, path+"["+strconv.Itoa(i)+"]", depth+1); err != nil {
				return err
			}
		}
	case string:
		if err := w.leaf(path, x); err != nil {
			return err
		}
		t := strings.TrimSpace(x)
		if len(t) >= 2 && (t[0] == '{' && t[len(t)-1] == '}' || t[0] == '[' && t[len(t)-1] == ']') {
			var inner any
			if dec(t, &inner) == nil {
				return w.walk(inner, path+"<json>", depth+1)
			}
		}
	case json.Number:
		return w.leaf(path, x.String())
	case float64:
		return w.leaf(path, strconv.FormatFloat(x, 'g', -1, 64))
	case bool:
		return w.leaf(path, strconv.FormatBool(x))
	case json.RawMessage:
		return w.raw(x, path, depth)
	case []byte:
		return w.raw(x, path, depth)
	default:
		b, err := json.Marshal(x)
		if err != nil {
			return fmt.Errorf("arguments at %s: %w", path, err)
		}
		return w.raw(b, path, depth)
	}
	return nil
}

func (w *walker) raw(b []byte, path string, depth int) error {
	if len(b) > w.lim.MaxBytes {
		return ErrArgsTooLarge{fmt.Sprintf("more than %d bytes", w.lim.MaxBytes)}
	}
	if d := jsonDepth(b); d > w.lim.MaxDepth-depth {
		return ErrArgsTooLarge{fmt.Sprintf("nested deeper than %d levels at %s", w.lim.MaxDepth, path)}
	}
	var v any
	if err := dec(string(b), &v); err != nil {
		return fmt.Errorf("arguments at %s are not JSON: %w", path, err)
	}
	return w.walk(v, path, depth)
}

// jsonDepth measures nesting without decoding (so a hostile document cannot
// make the decoder recurse deeply).
func jsonDepth(b []byte) int {
	depth, max := 0, 0
	inStr, esc := false, false
	for _, c := range b {
		switch {
		case esc:
			esc = false
		case inStr && c == '\\':
			esc = true
		case c == '"':
			inStr = !inStr
		case inStr:
		case c == '{' || c == '[':
			depth++
			if depth > max {
				max = depth
			}
		case c == '}' || c == ']':
			depth--
		}
	}
	return max
}

func dec(s string, v *any) error {
	if jsonDepth([]byte(s)) > 64 {
		return fmt.Errorf("nested too deeply")
	}
	d := json.NewDecoder(bytes.NewReader([]byte(s)))
	d.UseNumber()
	return d.Decode(v)
}

func pathKey(k string) string {
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9') {
			return strconv.Quote(k)
		}
	}
	if k == "" {
		return `""`
	}
	return k
}
