package audit

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"slices"

	"github.com/warden-run/warden/events"
)

// ExportJSONL writes one record as a JSON line: its position, logging time,
// leaf hash and the event exactly as stored.
func ExportJSONL(w io.Writer, rec Record) error {
	lh := hasher().HashLeaf(rec.body)
	line := struct {
		Index    uint64          `json:"index"`
		Logged   int64           `json:"logged_time_ns"`
		LeafHash string          `json:"leaf_hash"`
		Event    json.RawMessage `json:"event"`
	}{rec.Index, rec.Logged, base64.StdEncoding.EncodeToString(lh), json.RawMessage(rec.Event)}
	if !json.Valid(rec.Event) {
		line.Event = nil
	}
	b, err := json.Marshal(line)
	if err != nil {
		return fmt.Errorf("exporting record %d: %w", rec.Index, err)
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// ExportOCSF writes one record as an OCSF 1.8 event on one line, for a SIEM:
// the stored event with the attributes its class requires filled in when the
// emitter left them out (API Activity 6003 with the Security Control profile,
// Detection Finding 2004, Remediation Activity 7001), metadata.sequence set to
// the log index, metadata.logged_time to the logging time, and the leaf hash
// under unmapped.audit so the SIEM copy can be matched to a proof.
func ExportOCSF(w io.Writer, rec Record) error {
	var m map[string]any
	if err := json.Unmarshal(rec.Event, &m); err != nil || m == nil {
		return fmt.Errorf("exporting record %d: stored event is not a JSON object", rec.Index)
	}
	md := object(m, "metadata")
	md["sequence"] = rec.Index
	md["logged_time"] = rec.Logged / 1e6
	md["log_name"] = "warden-audit"
	if _, ok := md["version"]; !ok {
		md["version"] = events.OCSFVersion
	}
	product := object(md, "product")
	if _, ok := product["name"]; !ok {
		product["name"] = "Warden"
		product["vendor_name"] = "Warden"
	}
	if _, ok := md["uid"]; !ok {
		md["uid"] = fmt.Sprintf("audit-%d", rec.Index)
	}
	class := events.Class(toInt(m["class_uid"]))
	activity := toInt(m["activity_id"])
	if _, ok := m["category_uid"]; !ok {
		m["category_uid"] = class.Category()
	}
	if _, ok := m["class_name"]; !ok {
		m["class_name"] = class.Name()
	}
	if _, ok := m["type_uid"]; !ok {
		m["type_uid"] = int(class)*100 + activity
	}
	if _, ok := m["severity_id"]; !ok {
		m["severity_id"] = int(events.SeverityInformational)
	}
	switch class {
	case events.ClassAPIActivity:
		// Required: actor, api, src_endpoint. Security Control profile.
		object(m, "actor")
		api := object(m, "api")
		if _, ok := api["operation"]; !ok {
			api["operation"] = "unknown"
		}
		object(m, "src_endpoint")
		addProfile(md, "security_control")
		if _, ok := m["action_id"]; !ok {
			m["action_id"] = 0 // Unknown
		}
		if _, ok := m["disposition_id"]; !ok {
			m["disposition_id"] = 0
		}
	case events.ClassDetectionFinding:
		fi := object(m, "finding_info")
		if _, ok := fi["uid"]; !ok {
			fi["uid"] = md["uid"]
		}
		if _, ok := fi["title"]; !ok {
			fi["title"] = m["message"]
		}
	case events.ClassRemediationActivity:
		// Required: command_uid; countermeasures recommended.
		if _, ok := m["command_uid"]; !ok {
			m["command_uid"] = md["uid"]
		}
		addProfile(md, "security_control")
	}
	un := object(m, "unmapped")
	un["audit"] = map[string]any{
		"index":     rec.Index,
		"leaf_hash": base64.StdEncoding.EncodeToString(hasher().HashLeaf(rec.body)),
	}
	b, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("exporting record %d: %w", rec.Index, err)
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// object returns m[key] as an object, creating it when absent or not one.
func object(m map[string]any, key string) map[string]any {
	if o, ok := m[key].(map[string]any); ok {
		return o
	}
	o := map[string]any{}
	m[key] = o
	return o
}

func addProfile(md map[string]any, p string) {
	var ps []any
	if cur, ok := md["profiles"].([]any); ok {
		ps = cur
	}
	if slices.Contains(ps, any(p)) {
		return
	}
	md["profiles"] = append(ps, p)
}

func toInt(v any) int {
	if f, ok := v.(float64); ok {
		return int(f)
	}
	return 0
}
