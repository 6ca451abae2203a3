// Package identity owns who is who in Warden: the X.509 certificate authority
// (an offline-capable root and an online intermediate), the issuance and
// verification of SPIFFE X.509-SVIDs and JWT-SVIDs, the registry of agents,
// operators and gateways with their attestation claims, one-time enrolment
// tokens, and the trust bundle other verifiers use.
//
// Every identity is a SPIFFE ID whose path names its role: /agent/<name>,
// /gateway/<name>, /admin/<name> or /controlplane/<name>. The role is checked
// on every verification; an identity of one role is never accepted as another.
//
// identity never sees task grants or policies, and never decides what an
// identity may do: it only proves who is calling and whether that identity is
// still active. A disabled or deleted identity fails verification from the
// next call on, even while its SVIDs are unexpired.
package identity
