package policy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/cedar-policy/cedar-go/types"
	"github.com/go-json-experiment/json/jsontext"
)

// Limits on a call's arguments. They bound the work one request can cause;
// arguments beyond them are refused (and the call denied), never truncated.
const (
	MaxArgsBytes  = 1 << 20 // size of the JSON text
	MaxArgsDepth  = 32      // nesting of objects and arrays
	MaxArgsValues = 100_000 // values in all
)

// ArgsError is a call's arguments that cannot be turned into a Cedar record.
type ArgsError struct {
	Offset int64 // byte offset in the JSON text, when known
	Msg    string
}

func (e *ArgsError) Error() string {
	if e.Offset > 0 {
		return fmt.Sprintf("arguments: %s (at byte %d)", e.Msg, e.Offset)
	}
	return "arguments: " + e.Msg
}

// ArgsRecord converts a call's JSON arguments into the Cedar record policies
// see as context.args:
//
//   - an object becomes a record (a duplicate key is an error: the upstream
//     server might read the other one);
//   - an array becomes a set (Cedar has no lists: order and duplicates are
//     lost);
//   - a string stays a string; true and false are booleans; null is left
//     out, so `context.args has x` is false for "x": null;
//   - a whole number that fits 64 bits becomes a Long (1.0 and 1e2 are
//     whole); a number with at most four decimal places within Cedar's range
//     becomes a decimal; any other number is kept as its JSON text, a String,
//     so that comparing it with < or > is an evaluation error, which denies.
//
// Empty input or null is the empty record. Input that is not a JSON object,
// invalid JSON, invalid UTF-8, or input beyond MaxArgsBytes, MaxArgsDepth or
// MaxArgsValues is an *ArgsError. It never panics.
func ArgsRecord(raw []byte) (types.Record, error) {
	var c argsConverter
	return c.convert(raw)
}

// argsConverter converts arguments; it is reused (pooled per Set) to spare
// the decoder's allocations.
type argsConverter struct {
	buf    bytes.Buffer
	dec    jsontext.Decoder // rejects duplicate names and invalid UTF-8 by default
	values int
}

func (c *argsConverter) convert(raw []byte) (types.Record, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return types.Record{}, nil
	}
	if len(raw) > MaxArgsBytes {
		return types.Record{}, &ArgsError{Msg: fmt.Sprintf("%d bytes of JSON; at most %d", len(raw), MaxArgsBytes)}
	}
	if raw[0] != '{' {
		return types.Record{}, &ArgsError{Msg: "not a JSON object"}
	}
	c.buf.Reset()
	c.buf.Write(raw)
	c.dec.Reset(&c.buf)
	c.values = 0
	v, err := c.value(0)
	if err != nil {
		return types.Record{}, err
	}
	if _, err := c.dec.ReadToken(); err != io.EOF {
		return types.Record{}, c.fail(errors.New("data after the top-level object"))
	}
	rec, ok := v.(types.Record)
	if !ok { // unreachable: raw starts with '{'
		return types.Record{}, &ArgsError{Msg: "not a JSON object"}
	}
	return rec, nil
}

// args converts a request's arguments with a pooled converter.
func (s *Set) args(raw []byte) (types.Record, error) {
	c, _ := s.converters.Get().(*argsConverter)
	if c == nil {
		c = &argsConverter{}
	}
	rec, err := c.convert(raw)
	if c.buf.Cap() <= 64<<10 {
		s.converters.Put(c)
	}
	return rec, err
}

func (c *argsConverter) fail(err error) error {
	msg := err.Error()
	var se *jsontext.SyntacticError
	if errors.As(err, &se) {
		msg = strings.TrimPrefix(se.Err.Error(), "jsontext: ")
		if se.JSONPointer != "" {
			msg += " at " + string(se.JSONPointer)
		}
		return &ArgsError{Offset: se.ByteOffset, Msg: msg}
	}
	return &ArgsError{Offset: c.dec.InputOffset(), Msg: msg}
}

// value converts the next JSON value. A nil Value (with a nil error) is null.
func (c *argsConverter) value(depth int) (types.Value, error) {
	if depth > MaxArgsDepth {
		return nil, &ArgsError{Offset: c.dec.InputOffset(), Msg: fmt.Sprintf("nested deeper than %d levels", MaxArgsDepth)}
	}
	c.values++
	if c.values > MaxArgsValues {
		return nil, &ArgsError{Offset: c.dec.InputOffset(), Msg: fmt.Sprintf("more than %d values", MaxArgsValues)}
	}
	tok, err := c.dec.ReadToken()
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, c.fail(err)
	}
	switch tok.Kind() {
	case 'n':
		return nil, nil
	case 't':
		return types.True, nil
	case 'f':
		return types.False, nil
	case '"':
		return types.String(tok.String()), nil
	case '0':
		return number(tok.String()), nil
	case '{':
		m := types.RecordMap{}
		for c.dec.PeekKind() != '}' {
			kt, err := c.dec.ReadToken()
			if err != nil {
				return nil, c.fail(err)
			}
			if kt.Kind() != '"' { // the decoder guarantees names are strings
				return nil, c.fail(errors.New("object name is not a string"))
			}
			key := kt.String()
			v, err := c.value(depth + 1)
			if err != nil {
				return nil, err
			}
			if v != nil {
				m[types.String(key)] = v
			}
		}
		if _, err := c.dec.ReadToken(); err != nil {
			return nil, c.fail(err)
		}
		return types.NewRecord(m), nil
	case '[':
		var vs []types.Value
		for c.dec.PeekKind() != ']' {
			v, err := c.value(depth + 1)
			if err != nil {
				return nil, err
			}
			if v != nil {
				vs = append(vs, v)
			}
		}
		if _, err := c.dec.ReadToken(); err != nil {
			return nil, c.fail(err)
		}
		return types.NewSet(vs...), nil
	}
	return nil, c.fail(fmt.Errorf("unexpected %v", tok.Kind()))
}

// number converts a JSON number (syntax already checked by the decoder) to a
// Long when it is whole and fits, to a decimal when it has at most four
// decimal places and fits, and otherwise keeps its text as a String.
func number(s string) types.Value {
	text := s
	neg := false
	if strings.HasPrefix(s, "-") {
		neg, s = true, s[1:]
	}
	exp := 0
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		es := s[i+1:]
		s = s[:i]
		if len(strings.TrimLeft(strings.TrimLeft(es, "+-"), "0")) > 4 {
			return types.String(text) // an exponent beyond ±9999
		}
		e, err := strconv.Atoi(es)
		if err != nil {
			return types.String(text)
		}
		exp = e
	}
	digits := s
	if i := strings.IndexByte(s, '.'); i >= 0 {
		digits = s[:i] + s[i+1:]
		exp -= len(s) - i - 1
	}
	// value = digits × 10^exp; normalise.
	digits = strings.TrimLeft(digits, "0")
	for len(digits) > 0 && digits[len(digits)-1] == '0' {
		digits = digits[:len(digits)-1]
		exp++
	}
	if digits == "" {
		return types.Long(0)
	}
	if len(digits) > 19 || exp > 19-len(digits) || exp < -4 {
		return types.String(text)
	}
	mant, err := strconv.ParseInt(digits, 10, 64)
	if err != nil {
		return types.String(text)
	}
	if neg {
		mant = -mant
	}
	if exp >= 0 {
		v := mant
		for range exp {
			if v > (1<<63-1)/10 || v < (-1<<63)/10 {
				return types.String(text)
			}
			v *= 10
		}
		return types.Long(v)
	}
	d, err := types.NewDecimal(mant, exp)
	if err != nil {
		return types.String(text)
	}
	return d
}
