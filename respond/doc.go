// Package respond owns detection and automatic response: rules over the
// event stream (CEL conditions, thresholds over sliding windows grouped by a
// key, ordered sequences, suppression), the built-in rule pack, playbooks of
// containment actions and their execution, the persisted detection windows,
// and the gateway stages that hold calls for approval and deny an agent's
// calls while detection has fallen behind on it.
//
// The Engine is an events.Sink placed beside the audit log: Emit only
// queues (never longer than a configured budget, dropping and counting
// beyond it); one worker evaluates rules in event order, an action runner
// contains, a notifier posts to a webhook. Its own findings (OCSF 2004) and
// actions (OCSF Remediation 7001) go to the audit log, never back into its
// own stream.
//
// respond must never decide a single call itself (grants, policy and
// inspection do) nor hold credentials; it acts only through the small
// interfaces in Actions, which the composition root implements. A rule with
// a runtime error skips the event it failed on and the engine carries on;
// its state is bounded (events queued, groups per rule, entries per group);
// and nothing it does blocks the gateway's call path beyond the emit
// budget. It keeps no global state.
package respond
