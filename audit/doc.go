// Package audit owns Warden's tamper-evident record: an append-only Merkle log
// of every event (decisions, calls, findings, responses), its signed
// checkpoints, the proofs that let a third party check it, and its export.
//
// Events are stored in segment files under the log's directory. Every event is
// one leaf of an RFC 6962 Merkle tree (github.com/transparency-dev/merkle);
// checkpoints of the tree are signed notes in the C2SP tlog-checkpoint format
// (golang.org/x/mod/sumdb/note) with the dedicated audit-checkpoint Ed25519
// key, kept locally and published to sinks off the host (a file on another
// mount, an HTTP endpoint, syslog). Derived files (the stored tree nodes and
// the lookup index by time, agent, task and event id) are rebuilt from the
// segments when they are missing or behind.
//
// In sync mode Emit returns only once the event is on stable storage (group
// commit: many events share one fsync); in async mode Emit returns once the
// event is queued in a bounded buffer, and the loss window is documented in
// docs/audit.md. A Log that cannot record fails closed: Emit returns an error,
// and a caller that must not act unrecorded refuses to act.
//
// This package must never rewrite or delete a record that a checkpoint covers
// or that Emit acknowledged in sync mode (the only bytes it ever truncates are
// a torn, unacknowledged tail, and it records that it did so), never sign a
// tree it has not recomputed from the stored records, never make a decision
// about a call (it records decisions, it does not take them), and never hold
// the checkpoint key anywhere but in memory of the process that was given it.
package audit
