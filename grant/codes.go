package grant

import (
	"errors"
	"fmt"
)

// Code is a stable, machine-readable reason a grant check refused a call.
// Codes are part of Warden's API: the gateway returns them to agents in
// _meta, events carry them and detection rules match them.
type Code string

// Reason codes.
const (
	CodeOK                  Code = "grant_permit"              // the grant permits the call
	CodeMissing             Code = "grant_missing"             // no grant presented
	CodeMalformed           Code = "grant_malformed"           // not parseable as a grant
	CodeWrongType           Code = "grant_wrong_type"          // typ is not warden-grant+jwt (e.g. a JWT-SVID)
	CodeAlg                 Code = "grant_alg_not_allowed"     // alg is none or not EdDSA
	CodeUntrusted           Code = "grant_untrusted"           // signed by a key this trust domain does not use for grants
	CodeBadSignature        Code = "grant_bad_signature"       // tampered
	CodeExpired             Code = "grant_expired"             // past exp
	CodeNotYetValid         Code = "grant_not_yet_valid"       // before nbf/iat
	CodeWrongAudience       Code = "grant_wrong_audience"      // not for this trust domain's gateways
	CodeWrongAgent          Code = "grant_wrong_agent"         // issued to another agent
	CodeBindingUnproven     Code = "binding_unproven"          // the caller did not prove possession of the bound key
	CodeDPoPInvalid         Code = "dpop_invalid"              // the DPoP proof is malformed, for another request, or stale
	CodeDPoPReplayed        Code = "dpop_replayed"             // the DPoP proof's jti was seen before
	CodeRevoked             Code = "grant_revoked"             // the task was revoked
	CodeTaskCompleted       Code = "task_completed"            // the task was completed: its access ended
	CodeAncestorRevoked     Code = "ancestor_revoked"          // a task this one was delegated from was revoked or completed
	CodeTaskUnknown         Code = "task_unknown"              // no such task
	CodeBudgetExhausted     Code = "budget_exhausted"          // the grant's (or an ancestor's) call budget is spent
	CodeToolBudget          Code = "tool_budget_exhausted"     // the per-tool budget of the matching entry is spent
	CodeToolNotGranted      Code = "tool_not_granted"          // no scope entry names the tool
	CodeConstraint          Code = "constraint_violated"       // an argument violates the entry's constraints
	CodeArgsInvalid         Code = "args_invalid"              // the arguments are not a JSON object
	CodeDelegationWidening  Code = "delegation_widening"       // a delegation asked for more than the parent holds
	CodeDelegationDepth     Code = "delegation_depth_exceeded" // no delegation depth left
	CodeInvalidInput        Code = "invalid_input"             // a request to mint or delegate is malformed
	CodeAgentInactive       Code = "agent_inactive"            // the grantee is disabled, deleted or not enrolled
	CodePolicyForbids       Code = "policy_forbids_tool"       // Cedar forbids the tool for this agent whatever the arguments
	CodeConstraintsRequired Code = "constraints_required"      // the tier grants a sensitive tool only with argument constraints
	CodeStateUnavailable    Code = "grant_state_unavailable"   // revocations or budgets are not loaded: fail closed
	CodeInternal            Code = "internal_error"            // the check could not be made: fail closed
)

// Error is a refusal with its code.
type Error struct {
	Code Code
	Msg  string
	Err  error
	// Task and Grant name the task and grant (jti) a refused call was made
	// under, once the grant verified and its holder proved its key: the
	// refusal is attributable to that task.
	Task, Grant string
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %v", e.Msg, e.Err)
	}
	return e.Msg
}

func (e *Error) Unwrap() error { return e.Err }

func errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Msg: fmt.Sprintf(format, args...)}
}

func wrapErr(code Code, err error, format string, args ...any) *Error {
	return &Error{Code: code, Msg: fmt.Sprintf(format, args...), Err: err}
}

// CodeOf returns the code of a grant error; any other error is
// CodeInternal: a check that could not be classified denies.
func CodeOf(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeInternal
}
