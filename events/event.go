// Package events owns the shape of everything Warden records: one event type,
// laid out as OCSF 1.8 JSON, and the Sink interface through which every part
// of Warden emits it.
//
// An Event is written once and never mutated after Emit; sinks may keep it.
// This package never decides anything and never talks to the network: it only
// describes what happened. The tamper-evident audit log (package audit)
// implements Sink; detection (package respond) subscribes to what is emitted.
package events

import (
	"crypto/rand"
	"encoding/hex"
	"time"
)

// OCSF schema version the events follow.
const OCSFVersion = "1.8.0"

// Class is an OCSF event class uid.
type Class int

// The OCSF classes Warden emits.
const (
	ClassDetectionFinding    Class = 2004 // a detector or rule found something
	ClassAccountChange       Class = 3001 // an identity was created, changed or disabled
	ClassAuthentication      Class = 3002 // an identity was proven, or failed to be
	ClassAPIActivity         Class = 6003 // a request was decided (Security Control profile)
	ClassRemediationActivity Class = 7001 // a containment action was taken
)

// Category returns the OCSF category uid of the class.
func (c Class) Category() int { return int(c) / 1000 }

// Name returns the OCSF class name.
func (c Class) Name() string {
	switch c {
	case ClassDetectionFinding:
		return "Detection Finding"
	case ClassAccountChange:
		return "Account Change"
	case ClassAuthentication:
		return "Authentication"
	case ClassAPIActivity:
		return "API Activity"
	case ClassRemediationActivity:
		return "Remediation Activity"
	}
	return "Unknown"
}

// OCSF activity ids. Their meaning depends on the class; the names below say
// which class they belong to.
const (
	ActivityCreate = 1 // Account Change, API Activity, Detection Finding
	ActivityRead   = 2 // API Activity
	ActivityUpdate = 3 // API Activity, Detection Finding
	ActivityDelete = 4 // API Activity

	ActivityAccountEnable  = 2 // Account Change
	ActivityAccountDisable = 5 // Account Change
	ActivityAccountDelete  = 6 // Account Change
	ActivityAccountRotate  = 3 // Account Change: password/credential change

	ActivityLogon            = 1 // Authentication
	ActivityServiceTicket    = 3 // Authentication: a credential was issued
	ActivityServiceTicketRen = 4 // Authentication: a credential was renewed

	ActivityIsolate = 1 // Remediation Activity
	ActivityEvict   = 2 // Remediation Activity
	ActivityRestore = 3 // Remediation Activity
)

// Severity is the OCSF severity_id.
type Severity int

// OCSF severities.
const (
	SeverityInformational Severity = 1
	SeverityLow           Severity = 2
	SeverityMedium        Severity = 3
	SeverityHigh          Severity = 4
	SeverityCritical      Severity = 5
)

// Status is the OCSF status_id.
type Status int

// OCSF statuses.
const (
	StatusSuccess Status = 1
	StatusFailure Status = 2
)

// Action is the Security Control profile's action_id.
type Action int

// Security Control actions.
const (
	ActionAllowed Action = 1
	ActionDenied  Action = 2
)

// Disposition is the Security Control profile's disposition_id.
type Disposition int

// Security Control dispositions Warden uses.
const (
	DispositionAllowed     Disposition = 1
	DispositionBlocked     Disposition = 2
	DispositionQuarantined Disposition = 3
	DispositionLogged      Disposition = 17
)

// Event is one OCSF event. Build it with New and the setters the emitter
// needs; fields map one to one onto OCSF attributes, and what OCSF has no
// place for lives in Warden (emitted as "unmapped").
type Event struct {
	Time         int64    `json:"time"` // milliseconds since the Unix epoch
	ClassUID     Class    `json:"class_uid"`
	ClassName    string   `json:"class_name"`
	CategoryUID  int      `json:"category_uid"`
	ActivityID   int      `json:"activity_id"`
	ActivityName string   `json:"activity_name,omitempty"`
	TypeUID      int      `json:"type_uid"`
	SeverityID   Severity `json:"severity_id"`
	StatusID     Status   `json:"status_id,omitempty"`
	// StatusCode is the machine-readable reason code (e.g. "join_token_used").
	StatusCode   string   `json:"status_code,omitempty"`
	StatusDetail string   `json:"status_detail,omitempty"`
	Message      string   `json:"message,omitempty"`
	Metadata     Metadata `json:"metadata"`

	Actor       *Actor       `json:"actor,omitempty"`
	API         *API         `json:"api,omitempty"`
	SrcEndpoint *Endpoint    `json:"src_endpoint,omitempty"`
	User        *User        `json:"user,omitempty"` // the identity acted on (Account Change, Authentication)
	Resources   []Resource   `json:"resources,omitempty"`
	FindingInfo *FindingInfo `json:"finding_info,omitempty"`

	// Security Control profile.
	ActionID      Action      `json:"action_id,omitempty"`
	DispositionID Disposition `json:"disposition_id,omitempty"`
	Policy        *Policy     `json:"policy,omitempty"`

	Warden *Warden `json:"unmapped,omitempty"`
}

// Metadata is OCSF metadata.
type Metadata struct {
	UID            string   `json:"uid"`
	Version        string   `json:"version"`
	Product        Product  `json:"product"`
	CorrelationUID string   `json:"correlation_uid,omitempty"` // the task id, when there is one
	Profiles       []string `json:"profiles,omitempty"`
}

// Product names the emitter.
type Product struct {
	Name       string   `json:"name"`
	VendorName string   `json:"vendor_name"`
	Feature    *Feature `json:"feature,omitempty"`
}

// Feature is the part of Warden that emitted the event (identity, gateway, ...).
type Feature struct {
	Name string `json:"name"`
}

// Actor is who did it.
type Actor struct {
	User    *User    `json:"user,omitempty"`
	Session *Session `json:"session,omitempty"`
}

// User is an OCSF user; for Warden, a workload identity.
type User struct {
	UID  string `json:"uid,omitempty"` // SPIFFE ID
	Name string `json:"name,omitempty"`
	Type string `json:"type,omitempty"` // agent, admin, gateway, control-plane
}

// Session is the actor's session.
type Session struct {
	UID string `json:"uid"`
}

// API is the operation that was requested.
type API struct {
	Operation string    `json:"operation"`
	Request   *Request  `json:"request,omitempty"`
	Response  *Response `json:"response,omitempty"`
}

// Request identifies the request.
type Request struct {
	UID string `json:"uid"`
}

// Response summarises the answer.
type Response struct {
	Code    int    `json:"code,omitempty"`
	Error   string `json:"error,omitempty"`
	Message string `json:"message,omitempty"`
}

// Endpoint is a network endpoint.
type Endpoint struct {
	IP   string `json:"ip,omitempty"`
	Port int    `json:"port,omitempty"`
}

// Resource is what was acted on: a tool, a task, a memory namespace.
type Resource struct {
	UID  string `json:"uid"`
	Type string `json:"type,omitempty"`
	Name string `json:"name,omitempty"`
}

// Policy is the policy or rule that decided.
type Policy struct {
	UID     string `json:"uid,omitempty"`
	Name    string `json:"name,omitempty"`
	Version string `json:"version,omitempty"`
}

// FindingInfo describes a finding (Detection Finding).
type FindingInfo struct {
	UID   string   `json:"uid"`
	Title string   `json:"title"`
	Types []string `json:"types,omitempty"`
}

// Warden carries what OCSF has no attribute for. Keys are stable: detection
// rules and exports depend on them.
type Warden struct {
	Agent  string            `json:"agent,omitempty"`  // agent SPIFFE ID
	Task   string            `json:"task,omitempty"`   // task id
	Grant  string            `json:"grant,omitempty"`  // grant jti
	Tool   string            `json:"tool,omitempty"`   // server.tool
	Reason string            `json:"reason,omitempty"` // stable reason code
	Attrs  map[string]string `json:"attrs,omitempty"`  // anything else, flat
}

// New starts an event of the given class and activity at the current time,
// with a fresh id. feature names the emitting part of Warden.
func New(class Class, activity int, feature string) Event {
	return Event{
		Time:        time.Now().UnixMilli(),
		ClassUID:    class,
		ClassName:   class.Name(),
		CategoryUID: class.Category(),
		ActivityID:  activity,
		TypeUID:     int(class)*100 + activity,
		SeverityID:  SeverityInformational,
		Metadata: Metadata{
			UID:     NewID(),
			Version: OCSFVersion,
			Product: Product{Name: "Warden", VendorName: "Warden", Feature: &Feature{Name: feature}},
		},
	}
}

// NewID returns a random 128-bit id in hex, for events and requests.
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return hex.EncodeToString(b[:])
}
