package respond

import (
	"strings"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/interpreter"

	"github.com/warden-run/warden/events"
)

// The variables a rule's CEL expressions see, one per event field. Every
// variable is always bound (to "", 0, an empty list or map when the event
// lacks it), so a condition never fails for want of a field; only a map
// lookup of a missing key (attrs.host) is a runtime error: write
// has(attrs.host) or attrs[?"host"].orValue("").
var fieldDecls = []struct {
	name string
	typ  *cel.Type
	doc  string
}{
	{"time", cel.IntType, "event time, milliseconds since the Unix epoch"},
	{"class_uid", cel.IntType, "OCSF class: 2004 Detection Finding, 3001 Account Change, 3002 Authentication, 6003 API Activity, 7001 Remediation"},
	{"class_name", cel.StringType, "OCSF class name"},
	{"activity_id", cel.IntType, "OCSF activity id"},
	{"type_uid", cel.IntType, "OCSF type uid (class*100 + activity)"},
	{"severity_id", cel.IntType, "OCSF severity, 1 informational to 5 critical"},
	{"status_id", cel.IntType, "1 success, 2 failure"},
	{"status_code", cel.StringType, "the status code the emitter set"},
	{"message", cel.StringType, "the event's message"},
	{"feature", cel.StringType, "the part of Warden that emitted it: authz, gateway, grant, identity, inspect, memory, sandbox, controlplane, ..."},
	{"operation", cel.StringType, "api.operation (call, read, sandbox.egress, a control-plane route, ...)"},
	{"action_id", cel.IntType, "Security Control action: 1 allowed, 2 denied"},
	{"disposition_id", cel.IntType, "Security Control disposition"},
	{"agent", cel.StringType, "the agent's SPIFFE ID"},
	{"task", cel.StringType, "the task id"},
	{"grant", cel.StringType, "the grant id (jti)"},
	{"tool", cel.StringType, "the tool id, server.tool"},
	{"server", cel.StringType, "the server part of the tool id"},
	{"reason", cel.StringType, "the stable reason code: allow, tool_not_granted, policy_forbid, ... (unmapped.reason, else status_code)"},
	{"session", cel.StringType, "the agent's session id"},
	{"actor", cel.StringType, "actor.user.uid"},
	{"actor_type", cel.StringType, "actor.user.type: agent, admin, gateway, ..."},
	{"policy", cel.StringType, "policy.uid: the policy or detector rule that decided"},
	{"finding_types", cel.ListType(cel.StringType), "finding_info.types (prompt_injection, secret, memory_quarantined, ...)"},
	{"attrs", cel.MapType(cel.StringType, cel.StringType), "unmapped.attrs: flat string attributes"},
	{"labels", cel.ListType(cel.StringType), "the tool's risk labels as the gateway serves it (all five for an unknown tool, none without a tool)"},
}

// FieldDoc describes one variable rule expressions may use.
type FieldDoc struct {
	Name, Type, Doc string
}

// Fields lists the variables rule expressions may use.
func Fields() []FieldDoc {
	out := make([]FieldDoc, len(fieldDecls))
	for i, f := range fieldDecls {
		out[i] = FieldDoc{Name: f.name, Type: f.typ.String(), Doc: f.doc}
	}
	return out
}

// allLabels are the labels of a tool whose labels are unknown: labels fail
// closed.
var allLabels = []string{"reads", "writes", "egress", "destructive", "untrusted_output"}

// activation binds one event's fields for CEL lazily, caching each value
// for the rules that follow. The worker reuses one activation for every
// event.
type activation struct {
	e      *events.Event
	labels func(tool string) ([]string, bool)
	cache  [32]ref.Val
}

// fieldIndex is the position of a variable in fieldDecls (and in an
// activation's cache), -1 for no variable. A switch: the interpreter asks
// for names on every evaluation, and a map lookup costs more.
func fieldIndex(name string) int {
	switch name {
	case "time":
		return 0
	case "class_uid":
		return 1
	case "class_name":
		return 2
	case "activity_id":
		return 3
	case "type_uid":
		return 4
	case "severity_id":
		return 5
	case "status_id":
		return 6
	case "status_code":
		return 7
	case "message":
		return 8
	case "feature":
		return 9
	case "operation":
		return 10
	case "action_id":
		return 11
	case "disposition_id":
		return 12
	case "agent":
		return 13
	case "task":
		return 14
	case "grant":
		return 15
	case "tool":
		return 16
	case "server":
		return 17
	case "reason":
		return 18
	case "session":
		return 19
	case "actor":
		return 20
	case "actor_type":
		return 21
	case "policy":
		return 22
	case "finding_types":
		return 23
	case "attrs":
		return 24
	case "labels":
		return 25
	}
	return -1
}

func (a *activation) reset(e *events.Event) {
	a.e = e
	a.cache = [32]ref.Val{}
}

// ResolveName implements interpreter.Activation.
func (a *activation) ResolveName(name string) (any, bool) {
	i := fieldIndex(name)
	if i < 0 {
		return nil, false
	}
	if v := a.cache[i]; v != nil {
		return v, true
	}
	v := a.value(name)
	a.cache[i] = v
	return v, true
}

// Parent implements interpreter.Activation.
func (a *activation) Parent() interpreter.Activation { return nil }

func (a *activation) value(name string) ref.Val {
	e := a.e
	w := e.Warden
	if w == nil {
		w = &events.Warden{}
	}
	switch name {
	case "time":
		return types.Int(e.Time)
	case "class_uid":
		return types.Int(e.ClassUID)
	case "class_name":
		return types.String(e.ClassName)
	case "activity_id":
		return types.Int(e.ActivityID)
	case "type_uid":
		return types.Int(e.TypeUID)
	case "severity_id":
		return types.Int(e.SeverityID)
	case "status_id":
		return types.Int(e.StatusID)
	case "status_code":
		return types.String(e.StatusCode)
	case "message":
		return types.String(e.Message)
	case "feature":
		return types.String(featureOf(e))
	case "operation":
		if e.API != nil {
			return types.String(e.API.Operation)
		}
		return types.String("")
	case "action_id":
		return types.Int(e.ActionID)
	case "disposition_id":
		return types.Int(e.DispositionID)
	case "agent":
		return types.String(agentOf(e))
	case "task":
		return types.String(taskOf(e))
	case "grant":
		return types.String(w.Grant)
	case "tool":
		return types.String(toolOf(e))
	case "server":
		t := toolOf(e)
		if i := strings.IndexByte(t, '.'); i > 0 {
			t = t[:i]
		}
		return types.String(t)
	case "reason":
		return types.String(reasonOf(e))
	case "session":
		return types.String(sessionOf(e))
	case "actor":
		if e.Actor != nil && e.Actor.User != nil {
			return types.String(e.Actor.User.UID)
		}
		return types.String("")
	case "actor_type":
		if e.Actor != nil && e.Actor.User != nil {
			return types.String(e.Actor.User.Type)
		}
		return types.String("")
	case "policy":
		if e.Policy != nil {
			return types.String(e.Policy.UID)
		}
		return types.String("")
	case "finding_types":
		var ts []string
		if e.FindingInfo != nil {
			ts = e.FindingInfo.Types
		}
		return types.NewStringList(types.DefaultTypeAdapter, ts)
	case "attrs":
		m := w.Attrs
		if m == nil {
			m = map[string]string{}
		}
		return types.NewStringStringMap(types.DefaultTypeAdapter, m)
	case "labels":
		return types.NewStringList(types.DefaultTypeAdapter, a.toolLabels(toolOf(e)))
	}
	return types.NewErr("no field %s", name)
}

func (a *activation) toolLabels(tool string) []string {
	if tool == "" {
		return nil
	}
	if a.labels != nil {
		if ls, ok := a.labels(tool); ok && len(ls) > 0 {
			return ls
		}
	}
	return allLabels
}

// The accessors below are shared by CEL and by the engine (group keys,
// alert context): one definition of what "the agent of an event" is.

func featureOf(e *events.Event) string {
	if f := e.Metadata.Product.Feature; f != nil {
		return f.Name
	}
	return ""
}

func agentOf(e *events.Event) string {
	if e.Warden != nil && e.Warden.Agent != "" {
		return e.Warden.Agent
	}
	if e.Actor != nil && e.Actor.User != nil && e.Actor.User.Type == "agent" {
		return e.Actor.User.UID
	}
	return ""
}

func taskOf(e *events.Event) string {
	if e.Warden != nil && e.Warden.Task != "" {
		return e.Warden.Task
	}
	return e.Metadata.CorrelationUID
}

func toolOf(e *events.Event) string {
	if e.Warden != nil && e.Warden.Tool != "" {
		return e.Warden.Tool
	}
	for _, r := range e.Resources {
		if r.Type == "tool" {
			return r.UID
		}
	}
	return ""
}

func reasonOf(e *events.Event) string {
	if e.Warden != nil && e.Warden.Reason != "" {
		return e.Warden.Reason
	}
	return e.StatusCode
}

func sessionOf(e *events.Event) string {
	if e.Actor != nil && e.Actor.Session != nil {
		return e.Actor.Session.UID
	}
	return ""
}
