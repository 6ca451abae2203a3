// Package memory owns agent memory Warden can vouch for: a knowledge-graph
// MCP server with the tool surface of @modelcontextprotocol/server-memory,
// whose every write records who wrote it (agent, task, session), when, and
// whether the writing session had ingested untrusted content; whose entries
// are signed with the memory key and hash-chained per namespace, so that an
// edit, deletion or insertion made outside Warden is detected; and whose
// every read verifies what it serves, withholds what was tampered with, and
// withholds or marks what was written by an untrusted session. Snapshots and
// rollback restore a known-good state after a poisoning. A guard does the
// provable part of this for third-party memory servers behind the gateway.
//
// memory never decides whether an agent may call its tools (the gateway's
// pipeline does, before a call arrives) and never sees credentials; it
// trusts the caller context only from the gateway, in process.
package memory
