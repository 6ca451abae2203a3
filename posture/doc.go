// Package posture owns Warden's assessment: the controls catalogue (eight
// phases, three tiers, each control with its check, its fix and its
// mappings to the frameworks auditors use), the checks themselves, and the
// reports (terminal, Markdown, JSON, SARIF 2.1.0, HTML and OSCAL assessment
// results).
//
// A check is a Go function over a snapshot of the deployment's live state:
// the agents registered and the SVIDs issued to them, the open grants, the
// active Cedar policy, warden.yaml as Warden loads it, the sandbox
// mechanisms this host puts in force, the rule pack, the memory store, the
// audit log and warden.lock. It never credits what an operator merely
// claims: attestation claims marked asserted earn nothing.
//
// posture only reads. It never writes to the data directory, never takes
// the locks a running `warden serve` holds (the audit log is read with a
// Reader), never changes a setting to make a check pass, and keeps no global
// state: the catalogue is parsed per call from data embedded in the binary.
package posture
