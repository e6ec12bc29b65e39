package sandbox

import "errors"

// ErrNoUserNamespaces is wrapped by the error Start returns when the kernel
// refuses to create the namespaces a sandbox needs. keyhole then runs
// nothing: it never falls back to running a command unsandboxed.
var ErrNoUserNamespaces = errors.New("sandbox: the kernel refused to create user namespaces")

// ErrUnsupported is returned on systems other than Linux.
var ErrUnsupported = errors.New("sandbox: only Linux is supported")

// StartKind classifies a command that could not be started.
type StartKind string

const (
	// StartSetup means building the sandbox failed.
	StartSetup StartKind = "setup"
	// StartNotFound means the program does not exist inside the sandbox.
	StartNotFound StartKind = "not found"
	// StartPermission means the program exists but may not be executed.
	StartPermission StartKind = "permission denied"
)

// StartError reports a sandbox whose command never ran.
type StartError struct {
	Kind    StartKind
	Message string
}

func (e *StartError) Error() string { return "sandbox: " + e.Message }

// ExitStatus is the status a shell gives the same failure: 127 for a
// missing program, 126 for one that cannot run, 125 for a failed setup.
func (e *StartError) ExitStatus() int {
	switch e.Kind {
	case StartNotFound:
		return 127
	case StartPermission:
		return 126
	}
	return 125
}

// Error kinds an init reports, so the parent can map them to exit codes.
const (
	kindSetup      = "setup"
	kindNotFound   = "not_found"
	kindPermission = "permission"
)

func startKind(kind string) StartKind {
	switch kind {
	case kindNotFound:
		return StartNotFound
	case kindPermission:
		return StartPermission
	}
	return StartSetup
}
