package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"golang.org/x/sys/unix"
)

// takeSpare returns the oldest live init started ahead. With none ready
// but one starting, it waits for that one, which is further along than a
// fresh init would be; with none starting, it returns nil.
func (r *Runner) takeSpare(ctx context.Context) *Sandbox {
	for {
		r.mu.Lock()
		if len(r.spares) == 0 {
			if r.spawning == 0 || r.closed {
				r.mu.Unlock()
				return nil
			}
			changed := r.sparesChangedLocked()
			r.mu.Unlock()
			select {
			case <-changed:
				continue
			case <-ctx.Done():
				return nil
			}
		}
		sb := r.spares[0]
		r.spares = r.spares[1:]
		r.mu.Unlock()
		sb.idle.Stop()
		select {
		case <-sb.done:
			sb.cleanup()
		default:
			return sb
		}
	}
}

// sparesChangedLocked returns a channel closed when a spare is next added or
// fails to start. r.mu must be held.
func (r *Runner) sparesChangedLocked() chan struct{} {
	if r.changed == nil {
		r.changed = make(chan struct{})
	}
	return r.changed
}

// spawnedLocked records that a spare finished starting, as sb or not at
// all, and wakes those waiting for one. r.mu must be held.
func (r *Runner) spawnedLocked(sb *Sandbox) {
	r.spawning--
	if sb != nil {
		r.spares = append(r.spares, sb)
	}
	if r.changed != nil {
		close(r.changed)
		r.changed = nil
	}
}

// refillDelay is how long a Warm runner waits, after handing out a spare
// while others are still ready, before it starts the next one, unless the
// sandbox ends sooner: a new init's start-up then does not compete with a
// short job for the CPU.
const refillDelay = 20 * time.Millisecond

// scheduleRefill refills the spares at once when none is ready, and after
// refillDelay otherwise.
func (r *Runner) scheduleRefill() {
	r.mu.Lock()
	ready := len(r.spares)
	r.mu.Unlock()
	if ready == 0 {
		r.refill()
		return
	}
	time.AfterFunc(refillDelay, r.refill)
}

// refill starts spares in the background until the runner has Spares of
// them, counting those already starting, so that a burst of starts does
// not start inits only to end them.
func (r *Runner) refill() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for !r.closed && len(r.spares)+r.spawning < r.spareCount() {
		r.spawning++
		r.spawns.Add(1)
		go func() {
			defer r.spawns.Done()
			r.addSpare()
		}()
	}
}

func (r *Runner) addSpare() {
	sb, err := r.spawnSpare()
	if err != nil {
		r.mu.Lock()
		r.spawnedLocked(nil)
		r.mu.Unlock()
		r.logger().Warn("sandbox: start a spare init", "error", err)
		return
	}
	r.mu.Lock()
	kept := !r.closed
	if kept {
		r.spawnedLocked(sb)
		sb.idle = time.AfterFunc(r.spareIdle(), func() { r.expire(sb) })
	} else {
		r.spawnedLocked(nil)
	}
	r.mu.Unlock()
	if !kept {
		sb.discard()
	}
}

// expire ends a spare that has waited SpareIdle for a job.
func (r *Runner) expire(sb *Sandbox) {
	r.mu.Lock()
	i := slices.Index(r.spares, sb)
	if i >= 0 {
		r.spares = slices.Delete(r.spares, i, i+1)
	}
	r.mu.Unlock()
	if i >= 0 {
		sb.discard()
	}
}

func (r *Runner) spareCount() int { return max(r.Spares, 1) }

func (r *Runner) spareIdle() time.Duration {
	if r.SpareIdle <= 0 {
		return time.Minute
	}
	return r.SpareIdle
}

// Close ends the inits a Warm runner keeps ahead, waiting for those still
// starting, and waits for the inits of ended sandboxes to exit, so that
// none outlives it with its cgroups left behind. Sandboxes still running
// are not affected.
func (r *Runner) Close() error {
	r.mu.Lock()
	spares := r.spares
	r.spares, r.closed = nil, true
	r.mu.Unlock()
	for _, sb := range spares {
		sb.idle.Stop()
		sb.discard()
	}
	r.spawns.Wait()
	r.cleanups.Wait()
	r.mu.Lock()
	z := r.zyg
	r.mu.Unlock()
	if z != nil {
		z.close()
	}
	return nil
}

// spawnSpare starts an init with a private network namespace, joins it to
// cgroups with the default limits and leaves it waiting for a job.
func (r *Runner) spawnSpare() (*Sandbox, error) {
	sb := r.newSandbox(&Spec{})
	if r.cgroupsAtClone() {
		cg, err := newCgroup(r.CgroupParent, sb.limits)
		if err != nil {
			return nil, err
		}
		sb.cg = cg
	}
	ctl, child, err := socketPair()
	if err != nil {
		sb.cleanup()
		return nil, err
	}
	sb.ctl = ctl
	if err := sb.startProc(r.zygote(), r.initPath(), child, nil); err != nil {
		sb.cleanup()
		return nil, err
	}
	err = sb.ctl.send(&message{Type: msgPrepare})
	if err == nil {
		err = sb.joinCgroups()
	}
	if err == nil {
		err = sb.awaitPrepared()
	}
	if err != nil {
		sb.discard()
		return nil, err
	}
	return sb, nil
}

// awaitPrepared waits, for at most setupTimeout, for a spare init to have
// built the common part of its sandbox.
func (sb *Sandbox) awaitPrepared() error {
	got := make(chan error, 1)
	go func() {
		m, fds, err := sb.ctl.recv()
		closeFDs(fds)
		switch {
		case err != nil:
			err = fmt.Errorf("sandbox: the spare init exited while preparing (%v)", err)
		case m.Type == msgError:
			err = &StartError{Kind: startKind(m.Kind), Message: m.Error}
		case m.Type != msgPrepared:
			err = fmt.Errorf("sandbox: unexpected %q message from a spare init", m.Type)
		}
		got <- err
	}()
	select {
	case err := <-got:
		return err
	case <-time.After(setupTimeout):
		return errors.New("sandbox: the spare init did not prepare in time")
	}
}

// joinCgroups creates and joins v1 cgroups for an init already running.
func (sb *Sandbox) joinCgroups() error {
	if sb.cg != nil {
		return nil
	}
	cg, err := newCgroup(sb.cgroupParent, sb.limits)
	if err != nil {
		return err
	}
	sb.cg = cg
	return sb.cg.add(sb.proc.Pid())
}

// discard ends an init that will not be used and releases its cgroups.
func (sb *Sandbox) discard() {
	sb.proc.Signal(unix.SIGKILL)
	<-sb.done
	sb.cleanup()
}

// errSpareUnfit means a spare init could not be given a job's limits, such
// as a memory limit below what the spare already uses; the job starts in a
// fresh init instead.
var errSpareUnfit = errors.New("sandbox: the spare init cannot take the limits")

// startWarm hands spec to a spare init: the job's limits go into its
// cgroups and its standard streams travel with the configuration.
func (sb *Sandbox) startWarm(ctx context.Context, spec *Spec) (*Sandbox, error) {
	sb.spec, sb.limits, sb.started = spec, spec.Limits.withDefaults(), time.Now()
	if err := sb.cg.limit(sb.limits); err != nil {
		sb.discard()
		return nil, fmt.Errorf("%w: %w", errSpareUnfit, err)
	}
	child, err := sb.openStdio()
	if err == nil {
		cfg := sb.initConfig()
		cfg.Stdio = true
		err = sb.ctl.send(&message{Type: msgConfig, Config: cfg},
			int(child[0].Fd()), int(child[1].Fd()), int(child[2].Fd()))
		closeFiles(child)
	}
	if err == nil {
		sb.ctl.send(&message{Type: msgGo})
		err = sb.awaitStartedCtx(ctx)
	}
	if err != nil {
		sb.discard()
		return nil, err
	}
	go sb.serveControl()
	go sb.watch(ctx)
	return sb, nil
}

// openStdio returns the files that become the command's standard streams,
// starting the copies between pipes and the spec's readers and writers
// where they are not files, as os/exec does.
func (sb *Sandbox) openStdio() ([]*os.File, error) {
	in, err := sb.stdinFile(sb.spec.Stdin)
	if err != nil {
		return nil, err
	}
	out, err := sb.outputFile(sb.spec.Stdout)
	if err != nil {
		in.Close()
		return nil, err
	}
	errOut := out
	if sb.spec.Stderr != sb.spec.Stdout {
		errOut, err = sb.outputFile(sb.spec.Stderr)
		if err != nil {
			in.Close()
			out.Close()
			return nil, err
		}
	}
	return []*os.File{in, out, errOut}, nil
}

func (sb *Sandbox) stdinFile(r io.Reader) (*os.File, error) {
	switch r := r.(type) {
	case nil:
		return openNull(os.O_RDONLY)
	case *os.File:
		return dupFile(r)
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("sandbox: stdin pipe: %w", err)
	}
	go func() {
		io.Copy(pw, r)
		pw.Close()
	}()
	// The copy ends at its next write once the tree is gone.
	go func() {
		<-sb.done
		pw.Close()
	}()
	return pr, nil
}

func (sb *Sandbox) outputFile(w io.Writer) (*os.File, error) {
	switch w := w.(type) {
	case nil:
		return openNull(os.O_WRONLY)
	case *os.File:
		return dupFile(w)
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("sandbox: output pipe: %w", err)
	}
	sb.copies.Add(1)
	go func() {
		defer sb.copies.Done()
		io.Copy(w, pr)
		pr.Close()
	}()
	return pw, nil
}

func closeFiles(files []*os.File) {
	for _, f := range files {
		f.Close()
	}
}

func openNull(flag int) (*os.File, error) {
	f, err := os.OpenFile(os.DevNull, flag, 0)
	if err != nil {
		return nil, fmt.Errorf("sandbox: open %s: %w", os.DevNull, err)
	}
	return f, nil
}

// dupFile returns a copy of f that the caller may close.
func dupFile(f *os.File) (*os.File, error) {
	sc, err := f.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("sandbox: standard stream: %w", err)
	}
	var dup *os.File
	var derr error
	err = sc.Control(func(fd uintptr) {
		var nfd int
		nfd, derr = dupCloexec(int(fd))
		dup = os.NewFile(uintptr(nfd), f.Name())
	})
	if err == nil {
		err = derr
	}
	if err != nil {
		return nil, fmt.Errorf("sandbox: standard stream: %w", err)
	}
	return dup, nil
}

func dupCloexec(fd int) (int, error) {
	return unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
}
