package sandbox

// SparesReady is how many inits the runner holds started ahead.
func (r *Runner) SparesReady() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.spares)
}

// ZygotePid is the pid of the runner's zygote, 0 when it has none.
func (r *Runner) ZygotePid() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.zyg == nil {
		return 0
	}
	return r.zyg.cmd.Process.Pid
}
