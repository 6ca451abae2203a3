// Package supply owns Warden's defences against poisoned tools and tampered
// tool servers: the tool lock (warden.lock), rug-pull detection at run time
// (the gateway's Vet hook), operator approval of changes, the offline
// tool-description scanner, and verification of what a stdio server will run
// before it is launched (npm trees, digest pins, signatures).
//
// It decides over values and files the caller names. It never makes network
// calls: the lock is written from tool lists the caller obtained (the
// gateway's upstream connections), the description scanner works on text,
// npm packages are verified against what npm already installed on disk
// (node_modules and its package-lock), and signatures are verified offline
// against keys and a Sigstore trusted root pinned in the configuration (no
// TUF refresh, no Rekor or Fulcio query). Launching a server is the wrapped
// gateway.Launcher's business; this package only refuses, or hands it a
// verified snapshot of what to run.
//
// It keeps no global state: compiled rules belong to a Scanner, the loaded
// lock to a Store, the record of reported changes to a Vetter.
package supply
