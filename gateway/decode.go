package gateway

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
)

// This file decodes the JSON-RPC messages an upstream server writes on its
// standard output into the SDK's own message types.
//
// Why not jsonrpc.DecodeMessage: it decodes through the SDK's internal JSON
// package, which builds a fresh decoder over a bytes.Reader for every value
// and so allocates (and zeroes) a 32 KiB buffer per message, more than the
// rest of the decoding costs. The functions here decode to exactly what
// DecodeMessage returns, accepting and rejecting the same messages
// (TestDecodeLineMatchesSDK and FuzzDecodeLineMatchesSDK hold them to
// it), given that the line they come from is one valid JSON value (decodeLine
// checks that first). The SDK's decoder, whose behaviour they follow:
//   - matches keys exactly (case-sensitively), after unescaping them, and
//     ignores unknown keys; a repeated key's last value wins;
//   - reads the "jsonrpc", "method", "message" strings and the string ids
//     with invalid UTF-8 and lone surrogates replaced by U+FFFD;
//   - reads a numeric id as a float64, an error code as an int64 written
//     without fraction or exponent;
//   - leaves a string field as it was on null, sets the id and the error to
//     nil on null, and keeps params, result, data and method raw (null
//     included, as the four bytes "null"); a second error object is merged
//     into the first;
//   - refuses a message nested deeper than 1000 levels.

// maxMessageDepth is the deepest nesting of objects and arrays the SDK's
// decoder accepts in one message.
const maxMessageDepth = 1000

// wireVersion is the only JSON-RPC version MCP speaks.
const wireVersion = "2.0"

// decodeMessage decodes one message, data being one valid JSON value.
// Params, Result and the error's Data are slices of data (capped, so that
// appending to them cannot write over the rest of it).
func decodeMessage(data []byte) (jsonrpc.Message, error) {
	var (
		version        string
		id             any  // what the SDK's decoder would leave in its `any`
		idBad          bool // the last id was a bool, an object or an array: no valid ID
		method         []byte
		params, result []byte
		werr           *jsonrpc.Error
		i              = skipSpace(data, 0)
	)
	if i == len(data) || data[i] != '{' {
		return nil, errors.New("decoding a JSON-RPC message: not a JSON object")
	}
	err := eachMember(data, i, 1, func(key, v []byte) error {
		switch string(key) {
		case "jsonrpc":
			return decodeStringField(v, &version)
		case "id":
			idBad = false
			switch v[0] {
			case 'n':
				id = nil
			case '"':
				s, err := decodeString(v)
				if err != nil {
					return err
				}
				id = s
			case 't', 'f', '{', '[':
				// The SDK's decoder reads these; MakeID then refuses them,
				// unless a later "id" replaces them.
				id, idBad = nil, true
			default:
				f, err := parseFloat(v)
				if err != nil {
					return fmt.Errorf("the id %.40s: %w", v, err)
				}
				id = f
			}
		case "method":
			method = v
		case "params":
			params = v
		case "result":
			result = v
		case "error":
			switch v[0] {
			case 'n':
				werr = nil
			case '{':
				if werr == nil {
					werr = new(jsonrpc.Error)
				}
				if err := decodeWireError(v, werr); err != nil {
					return err
				}
			default:
				return fmt.Errorf("the error %.20s… is not an object", v)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("decoding a JSON-RPC message: %w", err)
	}
	if version != wireVersion {
		return nil, fmt.Errorf("invalid message version tag %q; expected %q", version, wireVersion)
	}
	if idBad {
		return nil, errors.New("decoding a JSON-RPC message: an id that is not a string, a number or null")
	}
	rid, err := jsonrpc.MakeID(id)
	if err != nil {
		return nil, fmt.Errorf("decoding a JSON-RPC message: %w", err)
	}
	if method != nil {
		// The "method" key was there: a request, even with a null or empty method.
		var name string
		if err := decodeStringField(method, &name); err != nil {
			return nil, fmt.Errorf("decoding a JSON-RPC message: the method: %w", err)
		}
		return &jsonrpc.Request{ID: rid, Method: name, Params: params}, nil
	}
	if !rid.IsValid() {
		return nil, errors.New("decoding a JSON-RPC message: a response without an id")
	}
	resp := &jsonrpc.Response{ID: rid, Result: result}
	if werr != nil { // not a typed nil in the error interface
		resp.Error = werr
	}
	return resp, nil
}

// decodeWireError decodes the error object v into e, over what e holds.
func decodeWireError(v []byte, e *jsonrpc.Error) error {
	return eachMember(v, 0, 2, func(key, v []byte) error {
		switch string(key) {
		case "code":
			if v[0] == 'n' {
				return nil
			}
			c, err := parseInt(v)
			if err != nil {
				return fmt.Errorf("the error code %.20s: %w", v, err)
			}
			e.Code = c
		case "message":
			if err := decodeStringField(v, &e.Message); err != nil {
				return fmt.Errorf("the error message: %w", err)
			}
		case "data":
			e.Data = v
		}
		return nil
	})
}

// eachMember calls f with each key (unescaped) and raw value of the object
// that starts at data[i], in order. depth is the object's own nesting level;
// values nested deeper than maxMessageDepth are refused.
func eachMember(data []byte, i, depth int, f func(key, v []byte) error) error {
	i++ // '{'
	for {
		i = skipSpace(data, i)
		if data[i] == '}' {
			return nil
		}
		if data[i] == ',' {
			i = skipSpace(data, i+1)
		}
		end, plain := stringEnd(data, i)
		key := data[i+1 : end-1]
		if !plain { // escaped: "\u0069d" is "id" to the SDK's decoder
			s, err := decodeString(data[i:end])
			if err != nil {
				return err
			}
			key = []byte(s)
		}
		i = skipSpace(data, end)
		i = skipSpace(data, i+1) // ':'
		vend, err := valueEnd(data, i, depth)
		if err != nil {
			return err
		}
		if err := f(key, data[i:vend:vend]); err != nil {
			return err
		}
		i = vend
	}
}

// valueEnd returns where the value at data[i] ends. Nested objects and
// arrays count from depth, the level of the value's container.
func valueEnd(data []byte, i, depth int) (int, error) {
	switch data[i] {
	case '"':
		end, _ := stringEnd(data, i)
		return end, nil
	case '{', '[':
		level := 0
		for ; ; i++ {
			switch data[i] {
			case '"':
				end, _ := stringEnd(data, i)
				i = end - 1
			case '{', '[':
				level++
				if depth+level > maxMessageDepth {
					return 0, fmt.Errorf("a message nested deeper than %d levels", maxMessageDepth)
				}
			case '}', ']':
				level--
				if level == 0 {
					return i + 1, nil
				}
			}
		}
	default: // a number, true, false or null
		for i < len(data) {
			switch data[i] {
			case ',', '}', ']', ' ', '\t', '\r', '\n':
				return i, nil
			}
			i++
		}
		return i, nil
	}
}

// stringEnd returns the index just past the string that starts at data[i],
// and whether the string is plain: printable ASCII without escapes, its
// content the same as its bytes.
func stringEnd(data []byte, i int) (end int, plain bool) {
	plain = true
	for i++; ; i++ {
		switch c := data[i]; {
		case c == '"':
			return i + 1, plain
		case c == '\\':
			plain = false
			i++ // the escaped byte; a \u escape's hex digits are never '"' or '\\'
		case c >= 0x80:
			plain = false
		}
	}
}

func skipSpace(data []byte, i int) int {
	for i < len(data) {
		switch data[i] {
		case ' ', '\t', '\r', '\n':
			i++
		default:
			return i
		}
	}
	return i
}

// decodeString decodes the JSON string v. The standard library replaces
// invalid UTF-8 and lone surrogates by U+FFFD, as the SDK's decoder does.
func decodeString(v []byte) (string, error) {
	if end, plain := stringEnd(v, 0); plain && end == len(v) {
		return string(v[1 : len(v)-1]), nil
	}
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		return "", fmt.Errorf("decoding the string %.20s…: %w", v, err)
	}
	return s, nil
}

// decodeStringField sets *dst to the string v; null leaves it as it is.
func decodeStringField(v []byte, dst *string) error {
	switch v[0] {
	case 'n':
		return nil
	case '"':
		s, err := decodeString(v)
		if err != nil {
			return err
		}
		*dst = s
		return nil
	}
	return fmt.Errorf("%.20s is not a string", v)
}

// parseFloat parses the JSON number v. Small integers, the ids clients
// use, skip strconv and the string it needs.
func parseFloat(v []byte) (float64, error) {
	if n, ok := smallInt(v); ok {
		return float64(n), nil
	}
	return strconv.ParseFloat(string(v), 64)
}

// parseInt parses the JSON number v as an int64: no fraction, no exponent.
func parseInt(v []byte) (int64, error) {
	if n, ok := smallInt(v); ok {
		return n, nil
	}
	for _, c := range v {
		if c == '.' || c == 'e' || c == 'E' {
			return 0, errors.New("not an integer")
		}
	}
	return strconv.ParseInt(string(v), 10, 64)
}

// smallInt parses v if it is an integer of at most 15 digits (exact as a
// float64), optionally negative.
func smallInt(v []byte) (int64, bool) {
	neg := len(v) > 0 && v[0] == '-'
	if neg {
		v = v[1:]
	}
	if len(v) == 0 || len(v) > 15 {
		return 0, false
	}
	var n int64
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	if neg {
		n = -n
	}
	return n, true
}
