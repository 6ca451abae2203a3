package events

import (
	"slices"
	"strconv"
	"unicode/utf8"
)

// AppendJSON appends the event's JSON to dst, byte for byte what
// json.Marshal(&e) writes: the same field order, omitempty rules, sorted
// Attrs keys and string escaping (HTML characters, U+2028 and U+2029
// escaped, invalid UTF-8 as U+FFFD; appendQuoted is encoding/json's
// appendString).
//
// Why: the audit log encodes one event per decision, on the call's path,
// and json.Marshal's reflection over this tree of structs was several
// microseconds of each tool call. TestAppendJSONMatchesMarshal holds the
// two to the same bytes, over every field (it fails when a field is added
// here and not there).
func (e *Event) AppendJSON(dst []byte) []byte {
	b := dst
	b = append(b, `{"time":`...)
	b = strconv.AppendInt(b, e.Time, 10)
	b = appendInt(b, `,"class_uid":`, int64(e.ClassUID))
	b = appendString(b, `,"class_name":`, e.ClassName)
	b = appendInt(b, `,"category_uid":`, int64(e.CategoryUID))
	b = appendInt(b, `,"activity_id":`, int64(e.ActivityID))
	b = appendStringOmit(b, `,"activity_name":`, e.ActivityName)
	b = appendInt(b, `,"type_uid":`, int64(e.TypeUID))
	b = appendInt(b, `,"severity_id":`, int64(e.SeverityID))
	b = appendIntOmit(b, `,"status_id":`, int64(e.StatusID))
	b = appendStringOmit(b, `,"status_code":`, e.StatusCode)
	b = appendStringOmit(b, `,"status_detail":`, e.StatusDetail)
	b = appendStringOmit(b, `,"message":`, e.Message)
	b = e.Metadata.appendJSON(append(b, `,"metadata":`...))
	if e.Actor != nil {
		b = e.Actor.appendJSON(append(b, `,"actor":`...))
	}
	if e.API != nil {
		b = e.API.appendJSON(append(b, `,"api":`...))
	}
	if e.SrcEndpoint != nil {
		b = appendStringOmit(append(b, `,"src_endpoint":{`...), `"ip":`, e.SrcEndpoint.IP)
		b = appendIntOmit(b, `"port":`, int64(e.SrcEndpoint.Port))
		b = closeObject(b)
	}
	if e.User != nil {
		b = e.User.appendJSON(append(b, `,"user":`...))
	}
	if len(e.Resources) > 0 {
		b = append(b, `,"resources":[`...)
		for i := range e.Resources {
			r := &e.Resources[i]
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, `{"uid":`, r.UID)
			b = appendStringOmit(b, `,"type":`, r.Type)
			b = appendStringOmit(b, `,"name":`, r.Name)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	if f := e.FindingInfo; f != nil {
		b = appendString(b, `,"finding_info":{"uid":`, f.UID)
		b = appendString(b, `,"title":`, f.Title)
		b = appendStrings(b, `,"types":`, f.Types)
		b = append(b, '}')
	}
	b = appendIntOmit(b, `,"action_id":`, int64(e.ActionID))
	b = appendIntOmit(b, `,"disposition_id":`, int64(e.DispositionID))
	if p := e.Policy; p != nil {
		b = appendStringOmit(append(b, `,"policy":{`...), `"uid":`, p.UID)
		b = appendStringOmit(b, `"name":`, p.Name)
		b = appendStringOmit(b, `"version":`, p.Version)
		b = closeObject(b)
	}
	if w := e.Warden; w != nil {
		b = w.appendJSON(append(b, `,"unmapped":`...))
	}
	return append(b, '}')
}

func (m *Metadata) appendJSON(b []byte) []byte {
	b = appendString(b, `{"uid":`, m.UID)
	b = appendString(b, `,"version":`, m.Version)
	b = appendString(b, `,"product":{"name":`, m.Product.Name)
	b = appendString(b, `,"vendor_name":`, m.Product.VendorName)
	if f := m.Product.Feature; f != nil {
		b = appendString(b, `,"feature":{"name":`, f.Name)
		b = append(b, '}')
	}
	b = append(b, '}')
	b = appendStringOmit(b, `,"correlation_uid":`, m.CorrelationUID)
	b = appendStrings(b, `,"profiles":`, m.Profiles)
	return append(b, '}')
}

func (a *Actor) appendJSON(b []byte) []byte {
	b = append(b, '{')
	if a.User != nil {
		b = a.User.appendJSON(append(b, `"user":`...))
	}
	if a.Session != nil {
		if a.User != nil {
			b = append(b, ',')
		}
		b = appendString(b, `"session":{"uid":`, a.Session.UID)
		b = append(b, '}')
	}
	return append(b, '}')
}

func (u *User) appendJSON(b []byte) []byte {
	b = appendStringOmit(append(b, '{'), `"uid":`, u.UID)
	b = appendStringOmit(b, `"name":`, u.Name)
	b = appendStringOmit(b, `"type":`, u.Type)
	return closeObject(b)
}

func (a *API) appendJSON(b []byte) []byte {
	b = appendString(b, `{"operation":`, a.Operation)
	if a.Request != nil {
		b = appendString(b, `,"request":{"uid":`, a.Request.UID)
		b = append(b, '}')
	}
	if r := a.Response; r != nil {
		b = appendIntOmit(append(b, `,"response":{`...), `"code":`, int64(r.Code))
		b = appendStringOmit(b, `"error":`, r.Error)
		b = appendStringOmit(b, `"message":`, r.Message)
		b = closeObject(b)
	}
	return append(b, '}')
}

func (w *Warden) appendJSON(b []byte) []byte {
	b = appendStringOmit(append(b, '{'), `"agent":`, w.Agent)
	b = appendStringOmit(b, `"task":`, w.Task)
	b = appendStringOmit(b, `"grant":`, w.Grant)
	b = appendStringOmit(b, `"tool":`, w.Tool)
	b = appendStringOmit(b, `"reason":`, w.Reason)
	if len(w.Attrs) > 0 {
		b = appendSep(b)
		b = append(b, `"attrs":{`...)
		var small [8]string // the attributes of one event are few: no allocation for them
		keys := small[:0]
		for k := range w.Attrs {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendQuoted(b, k)
			b = appendQuoted(append(b, ':'), w.Attrs[k])
		}
		b = append(b, '}')
	}
	return closeObject(b)
}

// The helpers below write one member. Those for members that may come first
// in an object written with closeObject (a struct whose fields are all
// omitempty) take the key without its leading comma and add one only if
// the object already has a member: appendSep.

func appendInt(b []byte, key string, v int64) []byte {
	return strconv.AppendInt(append(b, key...), v, 10)
}

func appendIntOmit(b []byte, key string, v int64) []byte {
	if v == 0 {
		return b
	}
	if key[0] != ',' {
		b = appendSep(b)
	}
	return appendInt(b, key, v)
}

func appendString(b []byte, key, v string) []byte {
	return appendQuoted(append(b, key...), v)
}

func appendStringOmit(b []byte, key, v string) []byte {
	if v == "" {
		return b
	}
	if key[0] != ',' {
		b = appendSep(b)
	}
	return appendString(b, key, v)
}

func appendStrings(b []byte, key string, vs []string) []byte {
	if len(vs) == 0 { // omitempty
		return b
	}
	b = append(b, key...)
	for i, v := range vs {
		if i == 0 {
			b = append(b, '[')
		} else {
			b = append(b, ',')
		}
		b = appendQuoted(b, v)
	}
	return append(b, ']')
}

// appendSep adds the comma before a member unless it is the object's first.
func appendSep(b []byte) []byte {
	if b[len(b)-1] != '{' {
		b = append(b, ',')
	}
	return b
}

func closeObject(b []byte) []byte { return append(b, '}') }

// appendQuoted appends s as a JSON string, escaped as encoding/json's
// Marshal escapes it: ", \ and the control characters, <, > and & (HTML
// safety), U+2028 and U+2029 (JSONP safety), and invalid UTF-8 as U+FFFD.
func appendQuoted(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
