package sandbox

import (
	"syscall"
	"time"
)

// KillReason says why keyhole ended a sandbox before its command finished.
type KillReason string

const (
	// KilledNone means the command ended on its own.
	KilledNone KillReason = ""
	// KilledMemory means the tree went past Limits.Memory.
	KilledMemory KillReason = "memory limit"
	// KilledPids means the tree reached Limits.Pids.
	KilledPids KillReason = "pids limit"
	// KilledTimeout means the command ran past Limits.Timeout.
	KilledTimeout KillReason = "timeout"
	// KilledCancelled means the caller's context was cancelled.
	KilledCancelled KillReason = "cancelled"
	// KilledInit means keyhole's init inside the sandbox died, taking the
	// tree with it.
	KilledInit KillReason = "sandbox init died"
)

// Result is how a sandboxed command ended and what it spent.
type Result struct {
	// ExitCode is the command's exit status, or -1 when a signal ended it.
	ExitCode int
	// Signal is the signal that ended the command, or 0.
	Signal syscall.Signal
	// Killed says why keyhole ended the tree, if it did.
	Killed KillReason
	// Wall is the time from start to the end of the tree.
	Wall time.Duration
	// CPU is the user and system CPU time of the whole tree.
	CPU time.Duration
	// PeakMemory is the highest memory use of the tree in bytes, as the
	// memory cgroup saw it.
	PeakMemory int64
}

// Status is the exit status a shell would report: ExitCode, or 128 plus
// the signal number when a signal ended the command.
func (r *Result) Status() int {
	if r.Signal != 0 {
		return 128 + int(r.Signal)
	}
	return r.ExitCode
}
