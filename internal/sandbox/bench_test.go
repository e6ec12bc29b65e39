package sandbox_test

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keyhole/keyhole/internal/sandbox"
)

// BenchmarkStartTrue measures start-to-exit of /bin/true under keyhole (the
// CLI, and the Go API a job runner calls, cold and Warm), under bwrap with
// equivalent flags, and as a plain fork/exec, in one run on one machine.
// Each reports the median and 99th percentile besides the mean.
func BenchmarkStartTrue(b *testing.B) {
	requireSandboxB(b)
	job := b.TempDir()
	b.Run("keyhole-cli", func(b *testing.B) {
		timeRuns(b, func() error {
			return exec.Command(keyholeBin, "sandbox", "exec", "--dir", job, "--", "/bin/true").Run()
		})
	})
	// The runner a job takes, with keyhole's binary or keyhole-sandbox-init
	// as the init, cold and Warm: a Warm runner clones inits from a zygote
	// and keeps spares started ahead, 4 as the server does with its
	// default 4 workers. "spaced" runs are 20 ms apart, as jobs that
	// arrive apart rather than back to back.
	const gap = 20 * time.Millisecond
	b.Run("keyhole-api", func(b *testing.B) { benchRunner(b, job, keyholeBin, false, 0) })
	b.Run("keyhole-api-warm", func(b *testing.B) { benchRunner(b, job, keyholeBin, true, 0) })
	b.Run("keyhole-api-init", func(b *testing.B) { benchRunner(b, job, sandboxInit(), false, 0) })
	b.Run("keyhole-api-init-warm", func(b *testing.B) { benchRunner(b, job, sandboxInit(), true, 0) })
	b.Run("bwrap", func(b *testing.B) { benchBwrap(b, job, 0) })
	b.Run("keyhole-api-init-warm-spaced", func(b *testing.B) {
		benchRunner(b, job, sandboxInit(), true, gap)
	})
	b.Run("bwrap-spaced", func(b *testing.B) { benchBwrap(b, job, gap) })
	b.Run("fork-exec", func(b *testing.B) {
		timeRuns(b, func() error { return exec.Command("/bin/true").Run() })
	})
}

// benchRunner times /bin/true in sandboxes from a runner of its own, so
// that no spare outlives the sub-benchmark.
func benchRunner(b *testing.B, job, init string, warm bool, gap time.Duration) {
	r := &sandbox.Runner{InitPath: init, Warm: warm, Spares: 4}
	defer r.Close()
	spec := &sandbox.Spec{Command: []string{"/bin/true"}, Dir: job}
	timeSpacedRuns(b, gap, func() error {
		_, err := r.Run(b.Context(), spec)
		return err
	})
}

// benchBwrap times /bin/true under bwrap with equivalent flags.
func benchBwrap(b *testing.B, job string, gap time.Duration) {
	bwrap, err := exec.LookPath("bwrap")
	if err != nil {
		b.Skip("bwrap is not installed (apt-get install bubblewrap); skipping the baseline")
	}
	args := bwrapArgs(job)
	timeSpacedRuns(b, gap, func() error { return exec.Command(bwrap, args...).Run() })
}

// bwrapArgs asks bwrap for what keyhole builds: every namespace, a new
// session, a read-only /usr with the host's /lib* and /bin symlinks, the
// linker cache, fresh /proc and /dev, a capped /tmp, the job folder at
// /work, a clean environment, an unprivileged user and no capabilities.
// bwrap sets no cgroup limits and, without a compiled filter, no seccomp.
func bwrapArgs(job string) []string {
	args := []string{"--unshare-all", "--die-with-parent", "--new-session",
		"--hostname", "sandbox", "--clearenv",
		"--setenv", "PATH", "/usr/local/bin:/usr/bin:/bin",
		"--setenv", "HOME", "/work", "--setenv", "TMPDIR", "/tmp",
		"--setenv", "LANG", "C.UTF-8", "--ro-bind", "/usr", "/usr"}
	for _, d := range []string{"/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"} {
		if t, err := os.Readlink(d); err == nil {
			args = append(args, "--symlink", t, d)
		} else if _, err := os.Stat(d); err == nil {
			args = append(args, "--ro-bind", d, d)
		}
	}
	return append(args, "--ro-bind", "/etc/ld.so.cache", "/etc/ld.so.cache",
		"--proc", "/proc", "--dev", "/dev", "--size", "67108864", "--tmpfs", "/tmp",
		"--bind", job, "/work", "--chdir", "/work", "--uid", "1000", "--gid", "1000",
		"--cap-drop", "ALL", "/bin/true")
}

// timeRuns runs f b.N times and reports p50 and p99 in milliseconds.
func timeRuns(b *testing.B, f func() error) { timeSpacedRuns(b, 0, f) }

// timeSpacedRuns is timeRuns with gap between the runs, as jobs that
// arrive apart rather than back to back; only the runs are timed.
func timeSpacedRuns(b *testing.B, gap time.Duration, f func() error) {
	b.Helper()
	times := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		if gap > 0 {
			b.StopTimer()
			time.Sleep(gap)
			b.StartTimer()
		}
		start := time.Now()
		if err := f(); err != nil {
			b.Fatal(err)
		}
		times = append(times, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(times)
	pct := func(p float64) float64 {
		return float64(times[int(p*float64(len(times)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
}

// BenchmarkInitRSS measures the resident memory of keyhole's init while it
// supervises a sleeping command: the memory a sandbox costs beyond its
// command.
func BenchmarkInitRSS(b *testing.B) {
	requireSandboxB(b)
	b.Run("keyhole", func(b *testing.B) { benchInitRSS(b, keyholeBin) })
	b.Run("keyhole-sandbox-init", func(b *testing.B) { benchInitRSS(b, sandboxInit()) })
}

// sandboxInit is the keyhole-sandbox-init TestMain built beside keyhole.
func sandboxInit() string {
	return filepath.Join(filepath.Dir(keyholeBin), sandbox.InitProgramName)
}

func benchInitRSS(b *testing.B, init string) {
	r := sandbox.Runner{InitPath: init}
	var total float64
	for range b.N {
		sb, err := r.Start(b.Context(), &sandbox.Spec{Command: []string{"/bin/sleep", "10"}})
		if err != nil {
			b.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
		rss, err := vmRSS(sb.Pid())
		sb.Kill()
		sb.Wait()
		if err != nil {
			b.Fatal(err)
		}
		total += float64(rss)
	}
	b.ReportMetric(total/float64(b.N), "init-rss-KiB")
}

// vmRSS reads VmRSS, in KiB, of process pid.
func vmRSS(pid int) (int, error) {
	f, err := os.Open(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			return strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
		}
	}
	return 0, os.ErrNotExist
}

func requireSandboxB(b *testing.B) {
	b.Helper()
	if nsErr != nil {
		b.Skipf("skipping: %v", nsErr)
	}
}
