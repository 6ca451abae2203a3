// Package inspect owns Warden's input and output controls: the
// prompt-injection detector for what flows into an agent (tool results,
// resources, prompts), data-loss prevention (secrets, PII) and exfiltration
// controls for what flows out (tool-call arguments), the per-task
// data-volume budget, and the session taint record with the information-flow
// rules the gateway applies to sensitive sinks.
//
// Everything here is a pure decision over values the caller passes in:
// inspect never makes network calls, never reads files at run time (the
// model weights and rule sets are embedded), never persists anything, and
// keeps no global state — compiled rules and the model belong to the
// Detector, Scanner and Inspector values built once at start.
//
// The gateway calls Inspector.Outbound before forwarding a tool call
// (pipeline stage 4) and Inspector.Inbound on its result (stage 6); each
// returns a Result with a decision, findings, OCSF Detection Finding events
// and flat facts for the Cedar context. Taint is tracked per session in a
// Session value the gateway owns.
package inspect
