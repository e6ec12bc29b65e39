// Package sandbox runs untrusted commands on Linux so that they read nothing
// they were not given, spend bounded CPU, memory, processes, disk and time,
// and reach the network only through keyhole's broker or not at all. It
// needs no external program: the keyhole binary re-executes itself as the
// sandbox's PID 1.
//
// # Use
//
// The keyhole binary must hand control to the init first thing in main:
//
//	if sandbox.IsInit() {
//		os.Exit(sandbox.InitMain())
//	}
//
// Then a caller runs a command with a Spec:
//
//	res, err := sandbox.Run(ctx, &sandbox.Spec{
//		Command: []string{"python3", "job.py"},
//		Dir:     jobDir, // read-write at /work
//		Limits:  sandbox.Limits{Memory: 256 << 20, Timeout: 30 * time.Second},
//		Net:     sandbox.NetBroker, BrokerSocket: sock,
//		Stdout:  logs, Stderr: logs,
//	})
//
// Run returns an error only when the sandbox could not be built or the
// command could not start (a *StartError, ErrNoUserNamespaces,
// ErrNoCgroups, ErrInvalidSpec). A command that ran is a Result: its exit
// code or signal, why keyhole killed it if it did (KilledMemory,
// KilledPids, KilledTimeout, KilledCancelled), and its wall time, CPU time
// and peak memory. Cancelling ctx kills the whole tree. Runner.Start
// returns a Sandbox whose BrokerURL is what the command sees in
// KEYHOLE_BROKER_URL. Wait returns once the init reports every process in
// the sandbox reaped; the init's exit and the removal of its cgroups finish
// in the background, and Runner.Close waits for them.
//
// A Runner with Warm set clones its inits from a zygote, a small helper
// started once, so that cloning into a new user namespace does not copy
// the caller's page tables each time, and keeps Spares inits started ahead,
// each in fresh namespaces and its own cgroups with the common part of the
// root already built, so that a job's start only writes its limits, adds
// its own mounts and forks the command; spares unused for SpareIdle, and
// Runner.Close, end them. No init serves more than one sandbox.
//
// # Layers
//
// The init starts in new user, mount, PID, IPC, UTS and (unless NetHost)
// network namespaces, as an unprivileged user mapped to the user running
// keyhole, holding only the capabilities it needs inside its own user
// namespace. It builds a root on tmpfs: read-only /usr and /lib*, a minimal
// /etc with one user, a fresh /proc with its kernel-facing files read-only
// or hidden, a /dev with only null, zero, full, random, urandom, tty, pts
// and shm, a size-capped /tmp and the job folder at /work; then it pivots
// into it and detaches the host's tree.
//
// The command is started from a thread that has first set no_new_privs,
// the rlimits (NOFILE, FSIZE, CORE=0), a Landlock ruleset mirroring the
// mount tree (where the kernel has Landlock), an empty capability set with
// locked securebits, and two seccomp filters: a deny list assembled by
// github.com/elastic/go-seccomp-bpf (mount, ptrace, bpf, keys, modules,
// kexec, userfaultfd, io_uring, namespaces and more) and a guard that kills
// foreign-ABI syscalls and refuses raw and packet sockets and TIOCSTI.
//
// Memory, pids and CPU are limited by cgroups, v2 where its controllers are
// available and v1 otherwise; a breach ends the tree and is reported. The
// init reaps zombies, forwards signals, kills everything when the command
// exits or its time is up, and in NetBroker mode bridges 127.0.0.1 inside
// the sandbox to the broker's Unix socket, the namespace's only way out.
//
// docs/SANDBOX.md gives the threat model and what each layer does and does
// not stop; docs/PERFORMANCE.md the start-up cost against bubblewrap.
package sandbox
