package gateway

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
)

// decodeLineSDK is decodeLine as it was before decodeMessage: the
// reference decodeLine must agree with, message for message.
func decodeLineSDK(line []byte) ([]jsonrpc.Message, error) {
	if !json.Valid(line) {
		return nil, errors.New("a line is not one JSON value")
	}
	if line[0] != '[' {
		m, err := jsonrpc.DecodeMessage(line)
		if err != nil {
			return nil, err
		}
		return []jsonrpc.Message{m}, nil
	}
	var raws []json.RawMessage
	if err := json.Unmarshal(line, &raws); err != nil {
		return nil, err
	}
	if len(raws) == 0 {
		return nil, errors.New("an empty batch")
	}
	msgs := make([]jsonrpc.Message, len(raws))
	for i, raw := range raws {
		m, err := jsonrpc.DecodeMessage(raw)
		if err != nil {
			return nil, err
		}
		msgs[i] = m
	}
	return msgs, nil
}

// decodeCases are lines an upstream could send, valid and not: what the
// SDK's decoder makes of each is the answer decodeLine must give.
var decodeCases = []string{
	// what servers send
	`{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"hi"}]}}`,
	`{"jsonrpc":"2.0","id":"abc","result":{}}`,
	`{"jsonrpc":"2.0","id":2,"error":{"code":-32602,"message":"invalid params","data":{"field":"x"}}}`,
	`{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"x"}}`,
	`{"jsonrpc":"2.0","id":9,"method":"sampling/createMessage","params":{"messages":[]}}`,
	` {"jsonrpc" : "2.0" , "id" : 3 , "result" : { "a" : [ 1 , 2 ] } } `,
	`[{"jsonrpc":"2.0","id":1,"result":{}},{"jsonrpc":"2.0","method":"x"}]`,
	// keys: unescaped, matched exactly, unknown ones ignored, the last of a repeated one wins
	`{"jsonrpc":"2.0","\u0069d":1,"method":"x"}`,
	`{"jsonrpc":"2.0","ID":1,"method":"x"}`,
	`{"jsonrpc":"2.0","id":1,"Method":"x"}`,
	`{"JSONRPC":"2.0","id":1,"result":{}}`,
	`{"jsonrpc":"2.0","id":1,"\u00e9":1,"ıd":2,"x\"y":3}`,
	`{"jsonrpc":"2.0","id":1,"K":2,"method":"ſ"}`,
	`{"jsonrpc":"2.0","id":1,"jsonrpc":"2.0"}`,
	`{"jsonrpc":"1.0","id":1,"jsonrpc":"2.0","result":1}`,
	`{"jsonrpc":"2.0","id":1,"jsonrpc":"1.0","result":1}`,
	// the version
	`{"id":1,"result":{}}`,
	`{"jsonrpc":"2","id":1,"result":{}}`,
	`{"jsonrpc":"\u0032.0","id":1}`,
	`{"jsonrpc":1,"jsonrpc":"2.0","id":1,"method":"x"}`,
	`{"jsonrpc":"2.0","jsonrpc":null,"id":1,"method":"x"}`,
	`{"jsonrpc":null,"id":1,"method":"x"}`,
	`{"jsonrpc":["2.0"],"id":1,"method":"x"}`,
	// ids
	`{"jsonrpc":"2.0","id":true,"id":1,"method":"x"}`,
	`{"jsonrpc":"2.0","id":1,"id":true,"method":"x"}`,
	`{"jsonrpc":"2.0","id":1,"id":null,"method":"x"}`,
	`{"jsonrpc":"2.0","id":null,"result":{}}`,
	`{"jsonrpc":"2.0","result":{}}`,
	`{"jsonrpc":"2.0","id":1.7,"method":"x"}`,
	`{"jsonrpc":"2.0","id":-1.5e+3,"method":"x"}`,
	`{"jsonrpc":"2.0","id":1E2,"result":1}`,
	`{"jsonrpc":"2.0","id":1e999,"method":"x"}`,
	`{"jsonrpc":"2.0","id":1e-400,"method":"x"}`,
	`{"jsonrpc":"2.0","id":4.9e-324,"method":"x"}`,
	`{"jsonrpc":"2.0","id":-0,"method":"x"}`,
	`{"jsonrpc":"2.0","id":1e300,"method":"x"}`,
	`{"jsonrpc":"2.0","id":999999999999999,"result":1}`,
	`{"jsonrpc":"2.0","id":9007199254740993,"result":1}`,
	`{"jsonrpc":"2.0","id":-9223372036854775808,"result":1}`,
	`{"jsonrpc":"2.0","id":123456789012345678901234567890,"result":1}`,
	`{"jsonrpc":"2.0","id":"","method":"x"}`,
	`{"jsonrpc":"2.0","id":"a\ud800b","method":"x"}`,
	`{"jsonrpc":"2.0","id":"\ud83d\ude00 \u00e9\n\"\\\/","method":"x"}`,
	"{\"jsonrpc\":\"2.0\",\"id\":\"a\xffb\xc3\",\"method\":\"x\"}",
	"{\"jsonrpc\":\"2.0\",\"id\":\"\xed\xa0\x80\",\"method\":\"x\"}",
	`{"jsonrpc":"2.0","id":{},"method":"m"}`,
	`{"jsonrpc":"2.0","id":[1],"method":"m"}`,
	`{"jsonrpc":"2.0","id":false,"result":1}`,
	// methods: present makes a request, even null or empty
	`{"jsonrpc":"2.0","id":1,"method":null}`,
	`{"jsonrpc":"2.0","id":1,"method":"x","method":null}`,
	`{"jsonrpc":"2.0","id":1,"method":1,"method":"x"}`,
	`{"jsonrpc":"2.0","id":1,"method":"x","method":1}`,
	`{"jsonrpc":"2.0","id":1,"method":{}}`,
	`{"jsonrpc":"2.0","id":1,"method":"","result":5}`,
	`{"jsonrpc":"2.0","method":""}`,
	`{"jsonrpc":"2.0","method":"t\u00e9st"}`,
	`{"jsonrpc":"2.0","id":1,"error":{"code":5},"method":"m"}`,
	// params and results: raw, as sent
	`{"jsonrpc":"2.0","id":1,"method":"x","params": { "a" : 1 } }`,
	`{"jsonrpc":"2.0","id":1,"method":"x","params":null}`,
	`{"jsonrpc":"2.0","method":"m","params":1}`,
	`{"jsonrpc":"2.0","method":"m","params":"s"}`,
	`{"jsonrpc":"2.0","id":1,"result":null}`,
	`{"jsonrpc":"2.0","id":1,"result":1,"result":null}`,
	`{"jsonrpc":"2.0","id":1,"result":[true,false,null,"\"]"]}`,
	`{"jsonrpc":"2.0","id":1,"result":{"a":"}{]["}}`,
	// errors
	`{"jsonrpc":"2.0","id":1,"error":null}`,
	`{"jsonrpc":"2.0","id":1,"error":{}}`,
	`{"jsonrpc":"2.0","id":1,"error":{"code":1.0}}`,
	`{"jsonrpc":"2.0","id":1,"error":{"code":1e2}}`,
	`{"jsonrpc":"2.0","id":1,"error":{"code":-0}}`,
	`{"jsonrpc":"2.0","id":1,"error":{"code":9223372036854775807}}`,
	`{"jsonrpc":"2.0","id":1,"error":{"code":9223372036854775808}}`,
	`{"jsonrpc":"2.0","id":1,"error":{"code":-9223372036854775809}}`,
	`{"jsonrpc":"2.0","id":1,"error":{"code":"1"}}`,
	`{"jsonrpc":"2.0","id":1,"error":{"code":true}}`,
	`{"jsonrpc":"2.0","id":1,"error":{"Code":5,"MESSAGE":"m"}}`,
	`{"jsonrpc":"2.0","id":1,"error":{"code":5,"message":"m"},"error":{"data":1}}`,
	`{"jsonrpc":"2.0","id":1,"error":{"code":5,"message":"m"},"error":null}`,
	`{"jsonrpc":"2.0","id":1,"error":null,"error":{"message":"m"}}`,
	`{"jsonrpc":"2.0","id":1,"error":{"code":5,"message":null,"data":null}}`,
	`{"jsonrpc":"2.0","id":1,"error":{"code":1,"code":null}}`,
	`{"jsonrpc":"2.0","id":1,"error":{"message":"a","message":1}}`,
	`{"jsonrpc":"2.0","id":1,"error":{"message":"\ud800 \u00e9"}}`,
	`{"jsonrpc":"2.0","id":1,"error":{"code":1,"other":{"code":2}}}`,
	`{"jsonrpc":"2.0","id":1,"error":[]}`,
	`{"jsonrpc":"2.0","id":1,"error":1}`,
	`{"jsonrpc":"2.0","id":1,"error":"boom"}`,
	`{"jsonrpc":"2.0","id":1,"result":{},"error":{"code":1}}`,
	// not messages, not JSON
	`null`, `"x"`, `1`, `true`, `{}`, `[]`, `[1]`, `[null]`, `[[]]`, `[{"jsonrpc":"2.0","id":1,"result":{}},1]`,
	`{"jsonrpc":"2.0","id":1,"result":{}} x`,
	`{"jsonrpc":"2.0","id":1,"result":{}}x`,
	`{"jsonrpc":"2.0","id":1,"result":{}`,
	`{"jsonrpc":"2.0","id":01}`,
	`{"jsonrpc":"2.0","id":1,"x":01}`,
	"{\"jsonrpc\":\"2.0\",\"id\":\"a\x01\",\"result\":1}",
	"",
	// nesting: the SDK refuses over 1000 levels in a message
	`{"jsonrpc":"2.0","id":1,"result":` + strings.Repeat("[", 999) + strings.Repeat("]", 999) + `}`,
	`{"jsonrpc":"2.0","id":1,"result":` + strings.Repeat("[", 1000) + strings.Repeat("]", 1000) + `}`,
	`{"jsonrpc":"2.0","id":1,"result":"` + strings.Repeat("[", 2000) + `"}`,
	`{"jsonrpc":"2.0","id":1,"error":{"data":` + strings.Repeat("{\"a\":", 998) + "1" + strings.Repeat("}", 998) + `}}`,
	`{"jsonrpc":"2.0","id":1,"error":{"data":` + strings.Repeat("{\"a\":", 999) + "1" + strings.Repeat("}", 999) + `}}`,
	`[{"jsonrpc":"2.0","id":1,"result":` + strings.Repeat("[", 999) + strings.Repeat("]", 999) + `}]`,
	`[{"jsonrpc":"2.0","id":1,"result":` + strings.Repeat("[", 1000) + strings.Repeat("]", 1000) + `}]`,
}

// TestDecodeLineMatchesSDK: for every case, decodeLine accepts what the
// SDK's decoder accepts, decoded to equal messages, and refuses the rest.
func TestDecodeLineMatchesSDK(t *testing.T) {
	for _, line := range decodeCases {
		checkDecodeLine(t, []byte(line))
	}
}

// FuzzDecodeLineMatchesSDK holds decodeLine to the SDK's decoder on any
// line: go test -run '^$' -fuzz FuzzDecodeLineMatchesSDK ./gateway
func FuzzDecodeLineMatchesSDK(f *testing.F) {
	for _, line := range decodeCases {
		f.Add([]byte(line))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		if len(line) == 0 {
			return // Read skips blank lines before decodeLine
		}
		checkDecodeLine(t, line)
	})
}

func checkDecodeLine(t *testing.T, line []byte) {
	t.Helper()
	if len(line) == 0 {
		return
	}
	want, wantErr := decodeLineSDK(line)
	got, err := decodeLine(line)
	switch {
	case (err == nil) != (wantErr == nil):
		t.Errorf("decodeLine(%.200q): error %v, the SDK's decoder: %v", line, err, wantErr)
	case !reflect.DeepEqual(got, want):
		t.Errorf("decodeLine(%.200q):\n got %s\nwant %s", line, describe(got), describe(want))
	}
}

func describe(msgs []jsonrpc.Message) string {
	var b strings.Builder
	for _, m := range msgs {
		switch m := m.(type) {
		case *jsonrpc.Request:
			b.WriteString("request id=" + stringOf(m.ID.Raw()) + " method=" + m.Method + " params=" + string(m.Params) + "; ")
		case *jsonrpc.Response:
			b.WriteString("response id=" + stringOf(m.ID.Raw()) + " result=" + string(m.Result))
			if e, ok := m.Error.(*jsonrpc.Error); ok {
				b.WriteString(" error=" + stringOf(*e))
			}
			b.WriteString("; ")
		}
	}
	return b.String()
}

func stringOf(v any) string {
	data, _ := json.Marshal(v)
	return string(data)
}

// TestDecodedErrorsAreTheSDKs: an upstream's error reaches the client
// session as the SDK's own wire error, which callers match with errors.Is.
func TestDecodedErrorsAreTheSDKs(t *testing.T) {
	msgs, err := decodeLine([]byte(`{"jsonrpc":"2.0","id":3,"error":{"code":-32601,"message":"no such tool"}}`))
	if err != nil {
		t.Fatal(err)
	}
	r := msgs[0].(*jsonrpc.Response)
	if !errors.Is(r.Error, &jsonrpc.Error{Code: jsonrpc.CodeMethodNotFound}) || r.Error.Error() != "no such tool" {
		t.Fatalf("error = %#v, want the SDK's method-not-found wire error", r.Error)
	}
	msgs, err = decodeLine([]byte(`{"jsonrpc":"2.0","id":3,"result":{}}`))
	if err != nil {
		t.Fatal(err)
	}
	if r := msgs[0].(*jsonrpc.Response); r.Error != nil {
		t.Fatalf("error = %#v for a result, want nil", r.Error)
	}
}

// TestDecodedPartsCannotOverwriteTheLine: appending to a message's params
// must not write over the next message of a batch.
func TestDecodedPartsCannotOverwriteTheLine(t *testing.T) {
	line := []byte(`[{"jsonrpc":"2.0","method":"a","params":{}},{"jsonrpc":"2.0","method":"b","params":{}}]`)
	msgs, err := decodeLine(line)
	if err != nil {
		t.Fatal(err)
	}
	_ = append(msgs[0].(*jsonrpc.Request).Params, "XXXXXXXXXXXXXXXXXXXX"...)
	if p := string(msgs[1].(*jsonrpc.Request).Params); p != "{}" {
		t.Fatalf("second params = %q after appending to the first's", p)
	}
}

// BenchmarkDecodeLine decodes a tool call's answer as the SDK's decoder
// and decodeLine do: go test -run '^$' -bench DecodeLine -benchmem ./gateway
func BenchmarkDecodeLine(b *testing.B) {
	line := []byte(`{"jsonrpc":"2.0","id":42,"result":{"content":[{"type":"text","text":"Echo: hello from the benchmark"}]}}`)
	for _, tc := range []struct {
		name   string
		decode func([]byte) ([]jsonrpc.Message, error)
	}{{"sdk", decodeLineSDK}, {"warden", decodeLine}} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := tc.decode(line); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
