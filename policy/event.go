package policy

import (
	"strconv"
	"strings"

	"github.com/warden-run/warden/events"
)

// activityOther is OCSF's "Other" activity, for tool calls.
const activityOther = 99

// Feature is the name under which policy decisions are reported.
const Feature = "policy"

// DecisionEvent describes the decision d on req as an OCSF API Activity
// (6003) event with the Security Control profile: action_id and
// disposition_id say whether the request was allowed, policy names the first
// policy that decided (uid), the policy file (name) and the store version;
// status_code is the decision code. Emitting it is the caller's.
func DecisionEvent(req Request, d Decision) events.Event {
	activity, name := activityOther, "Other"
	switch req.Action {
	case Read:
		activity, name = events.ActivityRead, "Read"
	case Write:
		activity, name = events.ActivityUpdate, "Update"
	case Delegate:
		activity, name = events.ActivityCreate, "Create"
	}
	e := events.New(events.ClassAPIActivity, activity, Feature)
	e.ActivityName = name
	e.Metadata.CorrelationUID = req.Task.ID
	e.Metadata.Profiles = []string{"security_control"}
	e.Actor = &events.Actor{User: &events.User{UID: req.Agent.SPIFFEID, Name: req.Agent.Name, Type: "agent"}}
	if req.Session.ID != "" {
		e.Actor.Session = &events.Session{UID: req.Session.ID}
	}
	e.API = &events.API{Operation: string(req.Action)}
	w := &events.Warden{Agent: req.Agent.SPIFFEID, Task: req.Task.ID, Reason: string(d.Code)}
	if t, err := normTarget(req.Target); err == nil {
		if tool, ok := t.(Tool); ok {
			// Every call's decision names its tool: the event needs the
			// tool's id, not the Cedar entity (attributes, label set)
			// that building would cost a quarter of a decision.
			if tool.checkID() == nil {
				w.Tool = tool.ID()
				e.Resources = []events.Resource{{UID: w.Tool, Type: "tool"}}
			}
		} else if ent, err := t.entity(); err == nil {
			e.Resources = []events.Resource{{UID: string(ent.UID.ID), Type: strings.ToLower(string(ent.UID.Type))}}
		}
	}
	e.StatusCode = string(d.Code)
	msgs := make([]string, len(d.Reasons))
	for i, r := range d.Reasons {
		msgs[i] = r.Message
	}
	e.StatusDetail = strings.Join(msgs, "; ")
	if d.Allow {
		e.StatusID = events.StatusSuccess
		e.ActionID, e.DispositionID = events.ActionAllowed, events.DispositionAllowed
		e.Message = "allowed by policy"
	} else {
		e.StatusID = events.StatusFailure
		e.ActionID, e.DispositionID = events.ActionDenied, events.DispositionBlocked
		e.SeverityID = events.SeverityLow
		e.Message = "denied by policy"
	}
	p := &events.Policy{Name: d.File}
	if ids := d.Policies(); len(ids) > 0 {
		p.UID = ids[0]
		if len(ids) > 1 {
			w.Attrs = map[string]string{"policies": strings.Join(ids, ",")}
		}
	}
	if d.Version > 0 {
		p.Version = strconv.FormatInt(d.Version, 10)
	}
	if d.Digest != "" {
		if w.Attrs == nil {
			w.Attrs = map[string]string{}
		}
		w.Attrs["policy_sha256"] = d.Digest
	}
	if p.UID != "" || p.Name != "" {
		e.Policy = p
	}
	e.Warden = w
	return e
}
