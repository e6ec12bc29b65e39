package sandbox

import (
	"context"
	"syscall"
	"time"
)

// breachPoll is how often a running sandbox's cgroups are checked for a
// breached memory or pids limit.
const breachPoll = 25 * time.Millisecond

// backstopGrace is how long past its timeout the parent lets a sandbox run
// before it kills the init itself, in case the init could not.
const backstopGrace = 2 * time.Second

// Wait waits for the sandbox to end and returns how it ended. It may be
// called more than once.
func (sb *Sandbox) Wait() (*Result, error) {
	sb.waitOnce.Do(func() { sb.result, sb.waitErr = sb.wait() })
	return sb.result, sb.waitErr
}

// wait returns once the init reports the tree gone and its output read,
// or once the init has exited. An init that reported is left to exit, and
// its cgroups to be removed, in the background; Runner.Close waits for that.
func (sb *Sandbox) wait() (*Result, error) {
	select {
	case <-sb.done:
		// Its last report may still be on the way.
		<-sb.ctlDone
	case <-sb.exited:
	}
	wall := time.Since(sb.started)
	sb.copies.Wait()
	res := sb.buildResult(wall)
	sb.cleanups.Add(1)
	go func() {
		defer sb.cleanups.Done()
		<-sb.done
		<-sb.ctlDone
		sb.cleanup()
	}()
	if sb.ended != nil {
		sb.ended()
	}
	sb.log.Debug("sandbox: ended", "status", res.Status(), "killed", string(res.Killed),
		"wall", res.Wall, "cpu", res.CPU, "peak_memory", res.PeakMemory)
	return res, nil
}

// serveControl answers the init's requests until it exits.
func (sb *Sandbox) serveControl() {
	defer close(sb.ctlDone)
	for {
		m, fds, err := sb.ctl.recv()
		if err != nil {
			return
		}
		closeFDs(fds)
		switch m.Type {
		case msgDial:
			sb.answerDial()
		case msgExit:
			sb.mu.Lock()
			first := sb.exit == nil
			sb.exit = m.Exit
			sb.mu.Unlock()
			if first && m.Exit != nil {
				close(sb.exited)
			}
		}
	}
}

// answerDial connects to the broker for the init and passes the descriptor.
func (sb *Sandbox) answerDial() {
	f, err := dialBrokerSocket(sb.spec.BrokerSocket)
	if err != nil {
		sb.log.Warn("sandbox: dial broker", "socket", sb.spec.BrokerSocket, "error", err)
		sb.ctl.send(&message{Type: msgConn, Error: "broker unreachable"})
		return
	}
	defer f.Close()
	sb.ctl.send(&message{Type: msgConn}, int(f.Fd()))
}

// watch ends the tree when ctx is cancelled, the backstop timer fires or a
// cgroup limit is breached.
func (sb *Sandbox) watch(ctx context.Context) {
	backstop := time.NewTimer(sb.limits.Timeout + backstopGrace)
	defer backstop.Stop()
	tick := time.NewTicker(breachPoll)
	defer tick.Stop()
	cancelled := ctx.Done()
	for {
		select {
		case <-sb.done:
			return
		case <-cancelled:
			sb.kill(KilledCancelled)
			cancelled = nil
		case <-backstop.C:
			sb.kill(KilledTimeout)
		case <-tick.C:
			if oom, pids := sb.cg.breaches(); oom > 0 {
				sb.kill(KilledMemory)
			} else if pids > 0 {
				sb.kill(KilledPids)
			}
		}
	}
}

// buildResult puts together how the command ended and what it spent.
func (sb *Sandbox) buildResult(wall time.Duration) *Result {
	res := &Result{Wall: wall, ExitCode: -1, Signal: syscall.SIGKILL}
	sb.mu.Lock()
	killed, exit := sb.killed, sb.exit
	sb.mu.Unlock()
	if exit != nil {
		res.CPU, res.PeakMemory = time.Duration(exit.CPUNS), exit.MaxRSSKiB<<10
	} else {
		res.CPU, res.PeakMemory = sb.reaped.cpu, sb.reaped.maxRSS
	}
	if peak := sb.cg.peakMemory(); peak > 0 {
		res.PeakMemory = peak
	}
	if exit != nil {
		res.ExitCode, res.Signal = exit.Code, syscall.Signal(exit.Signal)
	}
	oom, pids := sb.cg.breaches()
	switch {
	case killed != KilledNone:
		res.Killed = killed
	case exit != nil && exit.TimedOut:
		res.Killed = KilledTimeout
	case oom > 0:
		res.Killed = KilledMemory
	case pids > 0:
		res.Killed = KilledPids
	case exit == nil:
		res.Killed = KilledInit
	}
	return res
}
