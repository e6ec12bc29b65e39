//go:build !linux

package sandbox

import (
	"context"
	"log/slog"
	"os"
)

// Runner starts sandboxes; on this system it only reports ErrUnsupported.
type Runner struct {
	InitPath     string
	CgroupParent string
	Logger       *slog.Logger
}

// Sandbox is one running sandbox.
type Sandbox struct{}

// Run reports ErrUnsupported.
func Run(ctx context.Context, spec *Spec) (*Result, error) { return nil, ErrUnsupported }

// Run reports ErrUnsupported.
func (r *Runner) Run(ctx context.Context, spec *Spec) (*Result, error) {
	return nil, ErrUnsupported
}

// Start reports ErrUnsupported.
func (r *Runner) Start(ctx context.Context, spec *Spec) (*Sandbox, error) {
	return nil, ErrUnsupported
}

// Wait reports ErrUnsupported.
func (sb *Sandbox) Wait() (*Result, error) { return nil, ErrUnsupported }

// Signal reports ErrUnsupported.
func (sb *Sandbox) Signal(os.Signal) error { return ErrUnsupported }

// Kill does nothing.
func (sb *Sandbox) Kill() {}

// BrokerURL is empty.
func (sb *Sandbox) BrokerURL() string { return "" }

// Pid is 0.
func (sb *Sandbox) Pid() int { return 0 }

// IsInit reports false: no sandbox init runs on this system.
func IsInit() bool { return false }

// InitMain reports failure.
func InitMain() int { return 125 }

// Probe reports ErrUnsupported.
func Probe() error { return ErrUnsupported }
