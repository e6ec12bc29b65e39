package sandbox

import (
	"bufio"
	"os"
	"runtime/debug"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// trimMemory shrinks the init's resident set once the sandbox runs. Setup
// touched much of the binary and the C library; supervising needs a few of
// those pages. File mappings whose pages are all still the file's own (no
// copy-on-write page in them) are dropped from the page tables: the pages
// stay in the page cache and fault back in when used. Mappings with written
// pages, such as relocated data, are left alone, since dropping them would
// lose what was written. The Go heap returns what it no longer holds.
func trimMemory() {
	debug.FreeOSMemory()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		return
	}
	defer f.Close()
	var start, end uint64
	var file bool
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "Anonymous:"); ok {
			if file && strings.TrimSpace(rest) == "0 kB" {
				unix.Syscall(unix.SYS_MADVISE, uintptr(start), uintptr(end-start),
					unix.MADV_DONTNEED)
			}
			continue
		}
		fields := strings.Fields(line)
		lo, hi, ok := strings.Cut(fields[0], "-")
		if !ok || len(fields) < 5 {
			continue
		}
		s, err1 := strconv.ParseUint(lo, 16, 64)
		e, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil {
			continue
		}
		start, end = s, e
		file = len(fields) >= 6 && strings.HasPrefix(fields[5], "/") && fields[1][3] == 'p'
	}
}
