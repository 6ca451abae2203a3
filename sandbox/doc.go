// Package sandbox owns confined execution: it starts tool servers and
// commands inside a sandbox built from Linux mechanisms (user, mount, PID,
// IPC, UTS and network namespaces; a minimal read-only root entered with
// pivot_root; no_new_privs and no capabilities; Landlock; a seccomp filter;
// cgroup or rlimit resource limits), supervises them (restart with backoff,
// kill of the whole process tree, exit reasons) and runs the egress proxy
// through which alone a sandbox reaches the network, to an allow-list of
// hosts and ports.
//
// A launch re-executes the current binary as a small init (see MaybeInit),
// which builds the sandbox from inside the new namespaces, applies Landlock
// and seccomp on one locked thread, starts the tool from that thread and
// stays behind as the sandbox's PID 1 (non-dumpable) to reap and to forward
// allowed connections to the proxy.
//
// This package must never run a tool unconfined without saying so: every
// launch records which mechanisms were in force (Mechanisms, and an event),
// and a mechanism that is unavailable refuses the launch unless the tier
// preset allows running with a warning (Foundation). It must never map the
// sandbox's uid 0 to host root, never pass an inherited file descriptor other
// than stdin, stdout and stderr to a tool, never expose the invoking user's
// home or Warden's data directory, and never let the proxy connect to an
// address it did not check. It makes no policy decision about which tool may
// run: the gateway decides that; this package only confines what it is asked
// to run.
package sandbox
