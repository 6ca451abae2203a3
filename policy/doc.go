// Package policy owns Warden's organisation-wide rules: the Cedar schema they
// are written against (entity types Agent, Tool, Task, Resource, Prompt and
// Memory; actions call, read, write and delegate; a context carrying the
// task, the call's arguments and the session's facts), the compilation and
// validation of policy sets, the versioned policy store, and the decisions
// made with them: allow or deny, every reason, the ids of the policies that
// decided and a stable reason code.
//
// Decisions fail closed. A forbid overrides every permit; no matching permit
// denies; an evaluation error in any policy that applies denies; a missing
// engine, a policy store that failed to load, a malformed request or
// malformed arguments deny, each with its own code. Policies are indexed by
// their principal, action and resource scopes, so a decision evaluates only
// the policies that can apply to it, with the same result as evaluating them
// all.
//
// policy decides on attributes it is given: it never sees raw credentials
// (tokens, keys, SVIDs), never makes network calls and never emits events
// itself; turning a decision into an event is a helper, emitting it is the
// caller's.
package policy
