package sandbox

// SparesReady is how many inits the runner holds started ahead.
func (r *Runner) SparesReady() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.spares)
}
