package sandbox

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// newRoot is where the init builds the sandbox's root before pivoting into
// it. The host folder is only shadowed inside the sandbox's mount namespace.
const newRoot = "/tmp"

// systemDirs are bound read-only from the host, or copied as symlinks where
// the host has merged them into /usr.
var systemDirs = []string{"/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"}

// etcBinds are the host /etc entries the sandbox sees, read-only. None holds
// a secret: the dynamic linker's cache, the alternatives symlinks, public CA
// certificates and the time zone.
var etcBinds = []string{"/etc/ld.so.cache", "/etc/alternatives", "/etc/ssl/certs"}

// procReadOnly are /proc paths that change the kernel when written; they are
// made read-only. procHidden leak kernel memory or addresses; /dev/null
// replaces them.
var (
	procReadOnly = []string{"sys", "sysrq-trigger", "irq", "bus", "fs"}
	procHidden   = []string{"kcore", "kallsyms", "timer_list", "kpagecount",
		"kpageflags", "kpagecgroup", "keys", "sched_debug"}
)

// devNodes are the host device nodes bound into the sandbox's /dev.
var devNodes = []string{"null", "zero", "full", "random", "urandom", "tty"}

// hostRoot is where the host's tree stays inside the sandbox's root from
// the pivot until the job's own mounts are made; it is gone before the
// command starts.
const hostRoot = "/.host"

// buildCommonRoot assembles under newRoot what every sandbox with network
// mode net has, and pivots into it with the host's tree kept at hostRoot.
func buildCommonRoot(net NetMode) error {
	steps := []func(NetMode) error{
		prepareRoot, bindSystem, writeEtc, mountProc, mountDev, pivot,
	}
	for _, step := range steps {
		if err := step(net); err != nil {
			return err
		}
	}
	return nil
}

// finishRoot adds what is the job's own to a root buildCommonRoot built:
// the size-capped /tmp and /dev/shm, the job folder at /work and the
// caller's mounts. It then lets go of the host's tree, makes the root
// read-only and leaves the init in /work.
func finishRoot(cfg *initConfig) error {
	defer func() { closeFDs(cfg.sourceFDs) }()
	if err := openSources(cfg); err != nil {
		return err
	}
	for _, step := range []func(*initConfig) error{mountShm, mountScratch, mountUser, dropHost} {
		if err := step(cfg); err != nil {
			return err
		}
	}
	return nil
}

// openSources opens the job folder and the mount sources as the host sees
// them and points the config at the open descriptors. finishRoot closes
// them once everything is mounted, so the init holds no handle on the
// host's tree while the command runs.
func openSources(cfg *initConfig) error {
	host, err := unix.Open(hostRoot, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open the host's tree: %w", err)
	}
	defer unix.Close(host)
	open := func(p string, wantDir bool) (string, error) {
		fd, err := openHostPath(host, p)
		if err != nil {
			return "", fmt.Errorf("open %s: %w", p, err)
		}
		cfg.sourceFDs = append(cfg.sourceFDs, fd)
		var st unix.Stat_t
		if wantDir && (unix.Fstat(fd, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR) {
			return "", fmt.Errorf("job folder %s is not a directory", p)
		}
		return fmt.Sprintf("/proc/self/fd/%d", fd), nil
	}
	if cfg.Dir != "" {
		if cfg.Dir, err = open(cfg.Dir, true); err != nil {
			return err
		}
	}
	for i := range cfg.Mounts {
		if cfg.Mounts[i].Source, err = open(cfg.Mounts[i].Source, false); err != nil {
			return fmt.Errorf("mount source: %w", err)
		}
	}
	return nil
}

// openHostPath opens the absolute path p as the host sees it: symbolic
// links resolve against the host's root and ".." cannot climb out of it.
func openHostPath(host int, p string) (int, error) {
	rel := strings.TrimLeft(p, "/")
	if rel == "" {
		rel = "."
	}
	how := unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS}
	fd, err := unix.Openat2(host, rel, &how)
	if errors.Is(err, unix.ENOSYS) {
		// Before Linux 5.6 an absolute symbolic link in p resolves inside
		// the sandbox's root instead, and so is not found.
		return unix.Open(hostRoot+"/"+rel, unix.O_PATH|unix.O_CLOEXEC, 0)
	}
	return fd, err
}

// prepareRoot cuts propagation to the host and mounts the tmpfs that
// becomes the sandbox's root.
func prepareRoot(NetMode) error {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make mounts private: %w", err)
	}
	return mountTmpfs(newRoot, "mode=0755,size=1m", unix.MS_NOSUID|unix.MS_NODEV)
}

func bindSystem(NetMode) error {
	for _, dir := range systemDirs {
		fi, err := os.Lstat(dir)
		switch {
		case errors.Is(err, os.ErrNotExist):
			continue
		case err != nil:
			return fmt.Errorf("inspect %s: %w", dir, err)
		case fi.Mode()&os.ModeSymlink != 0:
			if err := copySymlink(dir); err != nil {
				return err
			}
		default:
			if err := bind(dir, inRoot(dir), false, unix.MOUNT_ATTR_NODEV); err != nil {
				return err
			}
		}
	}
	return nil
}

// writeEtc writes the sandbox's own /etc: one user, localhost only.
func writeEtc(net NetMode) error {
	files := map[string]string{
		"passwd": fmt.Sprintf("%s:x:%d:%d:keyhole sandbox:%s:/bin/sh\n",
			UserName, UserID, GroupID, WorkDir),
		"group":         fmt.Sprintf("%s:x:%d:\n", UserName, GroupID),
		"hosts":         "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost\n",
		"hostname":      hostname + "\n",
		"nsswitch.conf": "passwd: files\ngroup: files\nhosts: files dns\n",
	}
	if err := os.Mkdir(inRoot("/etc"), 0o755); err != nil {
		return fmt.Errorf("create /etc: %w", err)
	}
	for name, content := range files {
		if err := os.WriteFile(inRoot("/etc/"+name), []byte(content), 0o644); err != nil {
			return fmt.Errorf("write /etc/%s: %w", name, err)
		}
	}
	binds := etcBinds
	if net == NetHost {
		binds = append(slices.Clip(binds), "/etc/resolv.conf")
	}
	for _, p := range binds {
		if err := bindIfExists(p); err != nil {
			return err
		}
	}
	if _, err := os.Lstat("/etc/localtime"); err == nil {
		return copySymlink("/etc/localtime")
	}
	return nil
}

func bindIfExists(p string) error {
	real, err := filepath.EvalSymlinks(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("resolve %s: %w", p, err)
	}
	return bind(real, inRoot(p), false, unix.MOUNT_ATTR_NODEV)
}

// mountProc mounts a fresh /proc for the sandbox's PID namespace and
// shields the files that reach into the kernel.
func mountProc(NetMode) error {
	dst := inRoot("/proc")
	if err := os.Mkdir(dst, 0o555); err != nil {
		return fmt.Errorf("create /proc: %w", err)
	}
	flags := uintptr(unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC)
	if err := unix.Mount("proc", dst, "proc", flags, ""); err != nil {
		return fmt.Errorf("mount /proc: %w", err)
	}
	for _, name := range procReadOnly {
		p := filepath.Join(dst, name)
		if _, err := os.Lstat(p); err != nil {
			continue
		}
		if err := bind(p, p, false, unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV); err != nil {
			return err
		}
	}
	for _, name := range procHidden {
		p := filepath.Join(dst, name)
		if _, err := os.Lstat(p); err != nil {
			continue
		}
		if err := unix.Mount("/dev/null", p, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("hide /proc/%s: %w", name, err)
		}
	}
	return nil
}

// mountDev builds a /dev with only the harmless nodes and a private devpts;
// mountShm adds /dev/shm.
func mountDev(NetMode) error {
	dev := inRoot("/dev")
	if err := os.Mkdir(dev, 0o755); err != nil {
		return fmt.Errorf("create /dev: %w", err)
	}
	noExec := uintptr(unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC)
	if err := mountTmpfs(dev, "mode=0755,size=64k", noExec); err != nil {
		return err
	}
	for _, n := range devNodes {
		attr := uint64(unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NOEXEC)
		if err := bind("/dev/"+n, filepath.Join(dev, n), true, attr); err != nil {
			return err
		}
	}
	if err := mountDevPts(dev); err != nil {
		return err
	}
	if err := os.Mkdir(filepath.Join(dev, "shm"), 0o1777); err != nil {
		return fmt.Errorf("create /dev/shm: %w", err)
	}
	links := [][2]string{{"pts/ptmx", "ptmx"}, {"/proc/self/fd", "fd"},
		{"/proc/self/fd/0", "stdin"}, {"/proc/self/fd/1", "stdout"},
		{"/proc/self/fd/2", "stderr"}}
	for _, l := range links {
		if err := os.Symlink(l[0], filepath.Join(dev, l[1])); err != nil {
			return fmt.Errorf("link /dev/%s: %w", l[1], err)
		}
	}
	return nil
}

func mountDevPts(dev string) error {
	pts := filepath.Join(dev, "pts")
	if err := os.Mkdir(pts, 0o755); err != nil {
		return fmt.Errorf("create /dev/pts: %w", err)
	}
	flags := uintptr(unix.MS_NOSUID | unix.MS_NOEXEC)
	err := unix.Mount("devpts", pts, "devpts", flags, "newinstance,ptmxmode=0666,mode=0620")
	if err != nil {
		return fmt.Errorf("mount /dev/pts: %w", err)
	}
	return nil
}

// mountShm mounts the size-capped /dev/shm.
func mountShm(cfg *initConfig) error {
	opts := fmt.Sprintf("mode=1777,size=%d", cfg.TmpSize)
	return mountTmpfs("/dev/shm", opts, uintptr(unix.MS_NOSUID|unix.MS_NODEV))
}

// mountScratch mounts the size-capped /tmp and the job folder at /work.
func mountScratch(cfg *initConfig) error {
	opts := fmt.Sprintf("mode=1777,size=%d", cfg.TmpSize)
	nodev := uintptr(unix.MS_NOSUID | unix.MS_NODEV)
	if err := os.Mkdir(TmpDir, 0o1777); err != nil {
		return fmt.Errorf("create /tmp: %w", err)
	}
	if err := mountTmpfs(TmpDir, opts, nodev); err != nil {
		return err
	}
	if err := os.Mkdir(WorkDir, 0o755); err != nil {
		return fmt.Errorf("create /work: %w", err)
	}
	if cfg.Dir == "" {
		opts := fmt.Sprintf("mode=0755,uid=%d,gid=%d,size=%d", UserID, GroupID, cfg.TmpSize)
		return mountTmpfs(WorkDir, opts, nodev)
	}
	return bind(cfg.Dir, WorkDir, true, unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV)
}

// mountUser binds the caller's extra mounts, parents before children.
func mountUser(cfg *initConfig) error {
	mounts := slices.Clone(cfg.Mounts)
	slices.SortStableFunc(mounts, func(a, b Mount) int {
		return strings.Count(a.Target, "/") - strings.Count(b.Target, "/")
	})
	for _, m := range mounts {
		fi, err := os.Stat(m.Source)
		if err != nil {
			return fmt.Errorf("mount source %s: %w", m.Source, err)
		}
		if err := makeMountPoint(m.Target, fi.IsDir()); err != nil {
			return err
		}
		attr := uint64(unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV)
		if err := bind(m.Source, m.Target, m.Writable, attr); err != nil {
			return err
		}
	}
	return nil
}

func makeMountPoint(p string, dir bool) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("create mount point %s: %w", p, err)
	}
	if dir {
		if err := os.Mkdir(p, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("create mount point %s: %w", p, err)
		}
		return nil
	}
	f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("create mount point %s: %w", p, err)
	}
	return f.Close()
}

// pivot makes newRoot the root, with the host's tree at hostRoot until
// dropHost.
func pivot(NetMode) error {
	if err := os.Mkdir(inRoot(hostRoot), 0o700); err != nil {
		return fmt.Errorf("create %s: %w", hostRoot, err)
	}
	if err := unix.Chdir(newRoot); err != nil {
		return fmt.Errorf("enter new root: %w", err)
	}
	if err := unix.PivotRoot(".", "."+hostRoot); err != nil {
		return fmt.Errorf("pivot root: %w", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return fmt.Errorf("enter new root: %w", err)
	}
	return nil
}

// dropHost detaches the host's tree, makes the root itself read-only
// (/tmp, /work and /dev stay writable mounts of their own) and enters
// /work.
func dropHost(*initConfig) error {
	if err := unix.Unmount(hostRoot, unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detach host root: %w", err)
	}
	if err := unix.Rmdir(hostRoot); err != nil {
		return fmt.Errorf("remove %s: %w", hostRoot, err)
	}
	flags := uintptr(unix.MS_REMOUNT | unix.MS_BIND | unix.MS_RDONLY |
		unix.MS_NOSUID | unix.MS_NODEV)
	if err := unix.Mount("", "/", "", flags, ""); err != nil {
		return fmt.Errorf("make root read-only: %w", err)
	}
	if err := unix.Chdir(WorkDir); err != nil {
		return fmt.Errorf("enter %s: %w", WorkDir, err)
	}
	return nil
}

// bind mounts src at dst (creating dst), recursively, read-only unless
// writable, with the extra MOUNT_ATTR flags in attr.
func bind(src, dst string, writable bool, attr uint64) error {
	fi, err := os.Stat(src)
	if err != nil {
		return fmt.Errorf("bind %s: %w", src, err)
	}
	if src != dst {
		if err := makeMountPoint(dst, fi.IsDir()); err != nil {
			return err
		}
	}
	if err := unix.Mount(src, dst, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind %s: %w", src, err)
	}
	if !writable {
		attr |= unix.MOUNT_ATTR_RDONLY
	}
	return setMountAttr(dst, attr)
}

// setMountAttr adds attr to the mount at p and every mount beneath it.
func setMountAttr(p string, attr uint64) error {
	ma := unix.MountAttr{Attr_set: attr}
	err := unix.MountSetattr(unix.AT_FDCWD, p, unix.AT_RECURSIVE, &ma)
	if errors.Is(err, unix.ENOSYS) {
		return remountLegacy(p, attr)
	}
	if err != nil {
		return fmt.Errorf("restrict mount %s: %w", p, err)
	}
	return nil
}

// remountLegacy is setMountAttr for kernels before 5.12. It keeps the flags
// the kernel locked on the source mount, or the remount would be refused,
// and it only covers the top mount.
func remountLegacy(p string, attr uint64) error {
	var st unix.Statfs_t
	if err := unix.Statfs(p, &st); err != nil {
		return fmt.Errorf("inspect mount %s: %w", p, err)
	}
	flags := uintptr(unix.MS_REMOUNT | unix.MS_BIND)
	pairs := [][2]uint64{{unix.MOUNT_ATTR_RDONLY, unix.MS_RDONLY},
		{unix.MOUNT_ATTR_NOSUID, unix.MS_NOSUID}, {unix.MOUNT_ATTR_NODEV, unix.MS_NODEV},
		{unix.MOUNT_ATTR_NOEXEC, unix.MS_NOEXEC}}
	for _, pr := range pairs {
		if attr&pr[0] != 0 || uint64(st.Flags)&pr[1] != 0 {
			flags |= uintptr(pr[1])
		}
	}
	if err := unix.Mount("", p, "", flags, ""); err != nil {
		return fmt.Errorf("restrict mount %s: %w", p, err)
	}
	return nil
}

func mountTmpfs(dst, opts string, flags uintptr) error {
	if err := unix.Mount("tmpfs", dst, "tmpfs", flags, opts); err != nil {
		return fmt.Errorf("mount tmpfs at %s: %w", dst, err)
	}
	return nil
}

// copySymlink recreates the host symlink p inside the new root.
func copySymlink(p string) error {
	target, err := os.Readlink(p)
	if err != nil {
		return fmt.Errorf("read link %s: %w", p, err)
	}
	if err := os.MkdirAll(filepath.Dir(inRoot(p)), 0o755); err != nil {
		return fmt.Errorf("create %s: %w", filepath.Dir(p), err)
	}
	if err := os.Symlink(target, inRoot(p)); err != nil {
		return fmt.Errorf("link %s: %w", p, err)
	}
	return nil
}

func inRoot(p string) string { return newRoot + p }
