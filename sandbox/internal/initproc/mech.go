package initproc

// Mechanism names, as they appear in Mechanisms.List, in events and in
// `warden sandbox check`.
const (
	MechUserNS         = "user_ns"          // new user namespace
	MechMountNS        = "mount_ns"         // new mount namespace
	MechPIDNS          = "pid_ns"           // new PID namespace (kill of the whole tree)
	MechIPCNS          = "ipc_ns"           // new IPC namespace
	MechUTSNS          = "uts_ns"           // new UTS namespace
	MechNetNS          = "net_ns"           // new network namespace (loopback only)
	MechPivotRoot      = "pivot_root"       // minimal root of read-only bind mounts
	MechUnprivileged   = "unprivileged_uid" // sandbox uid 0 is an unprivileged host uid
	MechNoNewPrivs     = "no_new_privs"     // no privilege gain through execve
	MechCapsDropped    = "caps_dropped"     // no capabilities, bounding set empty
	MechFDsClosed      = "fds_closed"       // only stdin, stdout, stderr reach the tool
	MechNonDumpable    = "non_dumpable"     // the init cannot be read or traced
	MechLandlockFS     = "landlock_fs"      // Landlock filesystem rules
	MechLandlockNet    = "landlock_net"     // Landlock TCP bind/connect rules (ABI 4+)
	MechLandlockScoped = "landlock_scoped"  // Landlock signal and abstract-socket scoping (ABI 6+)
	MechSeccomp        = "seccomp"          // seccomp filter
	MechMemoryLimit    = "memory_limit"
	MechPidsLimit      = "pids_limit"
	MechCPULimit       = "cpu_limit"
	MechFilesLimit     = "open_files_limit"
	MechEgress         = "egress_confined" // no route out but the allow-list proxy
)
