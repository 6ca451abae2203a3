// Package grant owns task-scoped permissions: tasks, the signed grant that
// scopes an agent to one task (which tools, with which argument constraints,
// until when, for how many calls, how deep it may be delegated), narrowing
// by delegation, revocation with immediate effect, call budgets, and proof
// that the caller holds the key the grant is bound to (mTLS or DPoP).
//
// A grant only ever narrows: a delegated grant carries its ancestors' scopes
// and every one of them is checked on every call, so a child can never do
// what an ancestor could not. Every check fails closed: a grant that cannot
// be verified, a revocation state that is not loaded, a budget that cannot be
// persisted, each denies with its own reason code.
//
// grant never evaluates organisation policy (package policy does; the
// decision point combines both), never sees an agent's private key, and never
// makes network calls.
package grant
