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

// CgroupDirs are the folders this process's sandboxes' cgroups are made in.
func CgroupDirs() []string {
	l, err := findCgroups()
	if err != nil {
		return nil
	}
	if l.v2 != "" {
		return []string{l.v2}
	}
	var dirs []string
	for _, d := range l.v1 {
		dirs = append(dirs, d)
	}
	return dirs
}
