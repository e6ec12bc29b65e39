package sandbox

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// ErrNoCgroups is wrapped by the error Start returns when keyhole cannot
// create the cgroups that enforce the memory, pids and CPU limits. keyhole
// fails closed rather than run a command without them.
var ErrNoCgroups = errors.New("sandbox: cannot create cgroups for the limits")

// cgroupLayout is where the controllers keyhole needs are mounted.
type cgroupLayout struct {
	// v2 is the cgroup2 directory under which sandboxes are created when
	// the unified hierarchy has the memory and pids controllers.
	v2 string
	// v1 maps a v1 controller name to the directory of this process's
	// cgroup in it, for use when v2 does not have the controllers.
	v1 map[string]string
}

var v1Controllers = []string{"memory", "pids", "cpu"}

var (
	layoutOnce sync.Once
	layout     cgroupLayout
	layoutErr  error
)

// findCgroups reads /proc/self/mountinfo and /proc/self/cgroup once.
func findCgroups() (cgroupLayout, error) {
	layoutOnce.Do(func() { layout, layoutErr = readCgroupLayout() })
	return layout, layoutErr
}

func readCgroupLayout() (cgroupLayout, error) {
	own, err := ownCgroups()
	if err != nil {
		return cgroupLayout{}, err
	}
	mounts, err := cgroupMounts()
	if err != nil {
		return cgroupLayout{}, err
	}
	l := cgroupLayout{v1: map[string]string{}}
	for _, m := range mounts {
		if m.fstype == "cgroup2" {
			dir := joinCgroup(m, own[""])
			if hasControllers(dir, "memory", "pids") {
				l.v2 = dir
			}
			continue
		}
		for _, c := range m.controllers {
			if p, ok := own[c]; ok {
				l.v1[c] = joinCgroup(m, p)
			}
		}
	}
	return l, nil
}

type cgroupMount struct {
	fstype      string
	root        string
	point       string
	controllers []string
}

// cgroupMounts lists the cgroup and cgroup2 mounts of this process.
func cgroupMounts() ([]cgroupMount, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("read mounts: %w", err)
	}
	defer f.Close()
	var out []cgroupMount
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		fields, tail := strings.Fields(pre), strings.Fields(post)
		if !ok || len(fields) < 5 || len(tail) < 3 {
			continue
		}
		if tail[0] != "cgroup" && tail[0] != "cgroup2" {
			continue
		}
		m := cgroupMount{fstype: tail[0], root: fields[3], point: fields[4]}
		if tail[0] == "cgroup" {
			m.controllers = strings.Split(tail[2], ",")
		}
		out = append(out, m)
	}
	return out, sc.Err()
}

// ownCgroups maps each v1 controller of this process to its cgroup path;
// the key "" holds the v2 path.
func ownCgroups() (map[string]string, error) {
	data, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return nil, fmt.Errorf("read own cgroups: %w", err)
	}
	own := map[string]string{}
	for line := range strings.Lines(string(data)) {
		parts := strings.SplitN(strings.TrimSpace(line), ":", 3)
		if len(parts) != 3 {
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			own[c] = parts[2]
		}
	}
	return own, nil
}

// joinCgroup is the directory of cgroup path p in mount m.
func joinCgroup(m cgroupMount, p string) string {
	rel, ok := strings.CutPrefix(p, m.root)
	if !ok {
		rel = "/"
	}
	return filepath.Join(m.point, rel)
}

func hasControllers(dir string, want ...string) bool {
	data, err := os.ReadFile(filepath.Join(dir, "cgroup.controllers"))
	if err != nil {
		return false
	}
	have := strings.Fields(string(data))
	for _, w := range want {
		found := false
		for _, h := range have {
			found = found || h == w
		}
		if !found {
			return false
		}
	}
	return true
}

// cgroup is the set of cgroup directories of one sandbox.
type cgroup struct {
	v2   bool
	dirs map[string]string // controller → directory; v2 uses the key ""
}

var (
	cgroupSeq atomic.Uint64
	sweepOnce sync.Once
)

// sweepStale removes the empty cgroups that keyhole processes no longer
// running left behind, killed before they could remove them. Left alone,
// one named after a pid that is reused would stop that process's first
// sandbox. A cgroup with a process in it cannot be removed and stays.
func sweepStale(parent string) {
	l, err := findCgroups()
	if err != nil {
		return
	}
	dirs := []string{parent}
	if parent == "" {
		dirs = []string{l.v2}
		for _, d := range l.v1 {
			dirs = append(dirs, d)
		}
	}
	for _, dir := range dirs {
		if dir == "" {
			continue
		}
		entries, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, e := range entries {
			rest, ok := strings.CutPrefix(e.Name(), "keyhole-")
			pidText, _, ok2 := strings.Cut(rest, "-")
			pid, err := strconv.Atoi(pidText)
			if !ok || !ok2 || err != nil || !e.IsDir() {
				continue
			}
			// This process has made none yet, so one named after its pid
			// is a dead process's.
			if pid == os.Getpid() || unix.Kill(pid, 0) == unix.ESRCH {
				unix.Rmdir(filepath.Join(dir, e.Name()))
			}
		}
	}
}

// newCgroup creates the cgroups of one sandbox under parent (or under this
// process's own cgroups when parent is empty) and applies the limits.
func newCgroup(parent string, l Limits) (*cgroup, error) {
	sweepOnce.Do(func() { sweepStale(parent) })
	name := fmt.Sprintf("keyhole-%d-%d", os.Getpid(), cgroupSeq.Add(1))
	cg, err := createCgroup(parent, name)
	if err != nil {
		return nil, fmt.Errorf("%w: %w; run keyhole as root, or give it a delegated "+
			"cgroup v2 subtree (see docs/SANDBOX.md)", ErrNoCgroups, err)
	}
	if err := cg.limit(l); err != nil {
		cg.remove()
		return nil, fmt.Errorf("%w: %w", ErrNoCgroups, err)
	}
	return cg, nil
}

func createCgroup(parent, name string) (*cgroup, error) {
	l, err := findCgroups()
	if err != nil {
		return nil, err
	}
	if parent != "" || l.v2 != "" {
		if parent == "" {
			parent = l.v2
		}
		return createV2(parent, name)
	}
	cg := &cgroup{dirs: map[string]string{}}
	for _, c := range v1Controllers {
		base, ok := l.v1[c]
		if !ok {
			cg.remove()
			return nil, fmt.Errorf("no cgroup v1 %s controller is mounted", c)
		}
		dir := filepath.Join(base, name)
		if err := os.Mkdir(dir, 0o755); err != nil {
			cg.remove()
			return nil, fmt.Errorf("create cgroup: %w", err)
		}
		cg.dirs[c] = dir
	}
	return cg, nil
}

// createV2 creates parent/name with the controllers enabled below parent.
func createV2(parent, name string) (*cgroup, error) {
	ctl := filepath.Join(parent, "cgroup.subtree_control")
	if err := os.WriteFile(ctl, []byte("+memory +pids +cpu"), 0); err != nil {
		return nil, fmt.Errorf("enable controllers in %s: %w", parent, err)
	}
	dir := filepath.Join(parent, name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create cgroup: %w", err)
	}
	return &cgroup{v2: true, dirs: map[string]string{"": dir}}, nil
}

// limit writes the limits into the cgroup files.
func (cg *cgroup) limit(l Limits) error {
	period := 100000
	quota := max(int(l.CPU*float64(period)), 1000)
	mem := strconv.FormatInt(l.Memory, 10)
	pids := strconv.Itoa(l.Pids)
	if cg.v2 {
		return cg.write("",
			"memory.max", mem, "memory.swap.max", "0", "memory.oom.group", "1",
			"pids.max", pids, "cpu.max", fmt.Sprintf("%d %d", quota, period))
	}
	if err := cg.write("memory", "memory.limit_in_bytes", mem); err != nil {
		return err
	}
	// Without swap accounting this file is absent and swap is not charged.
	_ = cg.write("memory", "memory.memsw.limit_in_bytes", mem)
	if err := cg.write("pids", "pids.max", pids); err != nil {
		return err
	}
	return cg.write("cpu", "cpu.cfs_period_us", strconv.Itoa(period),
		"cpu.cfs_quota_us", strconv.Itoa(quota))
}

// write writes name/value pairs into the files of controller c.
func (cg *cgroup) write(c string, pairs ...string) error {
	for i := 0; i+1 < len(pairs); i += 2 {
		p := filepath.Join(cg.dirs[c], pairs[i])
		if err := os.WriteFile(p, []byte(pairs[i+1]), 0); err != nil {
			return fmt.Errorf("set %s: %w", pairs[i], err)
		}
	}
	return nil
}

// open returns a descriptor of the v2 directory for CLONE_INTO_CGROUP.
func (cg *cgroup) open() (*os.File, error) {
	f, err := os.Open(cg.dirs[""])
	if err != nil {
		return nil, fmt.Errorf("open cgroup: %w", err)
	}
	return f, nil
}

// add moves process pid into every v1 cgroup of cg.
func (cg *cgroup) add(pid int) error {
	for _, c := range v1Controllers {
		p := filepath.Join(cg.dirs[c], "cgroup.procs")
		if err := os.WriteFile(p, []byte(strconv.Itoa(pid)), 0); err != nil {
			return fmt.Errorf("%w: join %s cgroup: %w", ErrNoCgroups, c, err)
		}
	}
	return nil
}

// breaches reports how often the memory limit made the kernel kill and how
// often the pids limit refused a fork.
func (cg *cgroup) breaches() (oomKills, pidsMax int64) {
	if cg.v2 {
		oomKills = readKey(filepath.Join(cg.dirs[""], "memory.events"), "oom_kill")
		pidsMax = readKey(filepath.Join(cg.dirs[""], "pids.events"), "max")
		return oomKills, pidsMax
	}
	oomKills = readKey(filepath.Join(cg.dirs["memory"], "memory.oom_control"), "oom_kill")
	pidsMax = readKey(filepath.Join(cg.dirs["pids"], "pids.events"), "max")
	return oomKills, pidsMax
}

// peakMemory is the most memory the cgroup has used, in bytes.
func (cg *cgroup) peakMemory() int64 {
	p := filepath.Join(cg.dirs["memory"], "memory.max_usage_in_bytes")
	if cg.v2 {
		p = filepath.Join(cg.dirs[""], "memory.peak")
	}
	data, err := os.ReadFile(p)
	if err != nil {
		return 0
	}
	n, _ := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
	return n
}

// readKey reads the value of "key N" from a flat-keyed cgroup file.
func readKey(path, key string) int64 {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(data)) {
		k, v, ok := strings.Cut(strings.TrimSpace(line), " ")
		if ok && k == key {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	return 0
}

// remove deletes the cgroup directories. The tree is gone by then, but the
// kernel may take a moment to let go of the last task, so it retries.
func (cg *cgroup) remove() error {
	var firstErr error
	for _, dir := range cg.dirs {
		var err error
		for try := 0; try < 50; try++ {
			if err = unix.Rmdir(dir); err != unix.EBUSY {
				break
			}
			time.Sleep(2 * time.Millisecond)
		}
		if err != nil && !errors.Is(err, unix.ENOENT) && firstErr == nil {
			firstErr = fmt.Errorf("remove cgroup %s: %w", dir, err)
		}
	}
	return firstErr
}
