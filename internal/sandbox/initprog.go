package sandbox

import (
	"fmt"
	"os"
	"path/filepath"
)

// InitProgramName is the file name of keyhole-sandbox-init, the sandbox's
// init as a program of its own, looked for beside the keyhole binary.
const InitProgramName = "keyhole-sandbox-init"

// SiblingInit returns the path of a keyhole-sandbox-init installed beside
// the running binary, or "" when there is none.
func SiblingInit() string {
	exe, err := os.Executable()
	if err != nil {
		return ""
	}
	path := filepath.Join(filepath.Dir(exe), InitProgramName)
	if _, err := os.Stat(path); err != nil {
		return ""
	}
	return path
}

// CheckInitProgram refuses an init program that is not an absolute path to
// an executable file, or that its group or others may write: it runs every
// sandbox.
func CheckInitProgram(path string) error {
	if !filepath.IsAbs(path) {
		return fmt.Errorf("sandbox init %s: give an absolute path", path)
	}
	info, err := os.Stat(path)
	switch {
	case err != nil:
		return fmt.Errorf("sandbox init: %w", err)
	case !info.Mode().IsRegular() || info.Mode().Perm()&0o111 == 0:
		return fmt.Errorf("sandbox init %s: not an executable file", path)
	case info.Mode().Perm()&0o022 != 0:
		return fmt.Errorf("sandbox init %s: group or others may write to it, "+
			"and it runs every sandbox", path)
	}
	return nil
}
