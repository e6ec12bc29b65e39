package jobs

import (
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/keyhole/keyhole/internal/sandbox"
	"github.com/keyhole/keyhole/internal/schema"
	"github.com/keyhole/keyhole/internal/tool"
	"github.com/keyhole/keyhole/internal/yamldoc"
)

// KindScript is the configuration kind of a script.
const KindScript = "script"

// Limits of scripts.
const (
	DefaultTimeout = time.Minute
	MaxTimeout     = 24 * time.Hour
	maxFilesBytes  = 1 << 20
	maxRetries     = 10
)

// Script is a command with files, run in the sandbox (kind: script).
type Script struct {
	Kind        string `json:"kind" yaml:"kind"`
	Name        string `json:"name" yaml:"name"`
	Description string `json:"description,omitempty" yaml:"description,omitempty"`

	// Run is a shell line, run with /bin/sh -c. Command is the alternative:
	// a program and its arguments.
	Run     string   `json:"run,omitempty" yaml:"run,omitempty"`
	Command []string `json:"command,omitempty" yaml:"command,omitempty"`
	// Files are written into /work before the command starts.
	Files map[string]string `json:"files,omitempty" yaml:"files,omitempty"`
	// Env holds extra environment variables; never secrets.
	Env map[string]string `json:"env,omitempty" yaml:"env,omitempty"`

	// Toolset and Routes are what the job may use through the broker.
	Toolset string   `json:"toolset,omitempty" yaml:"toolset,omitempty"`
	Routes  []string `json:"routes,omitempty" yaml:"routes,omitempty"`
	// Net is none or broker; broker when Toolset or Routes is set.
	Net string `json:"net,omitempty" yaml:"net,omitempty"`

	Limits  Limits        `json:"limits,omitzero" yaml:"limits,omitempty"`
	Timeout tool.Duration `json:"timeout,omitempty" yaml:"timeout,omitempty"`
	// Retries is how many times a failed run is retried; 0 by default.
	Retries int `json:"retries,omitempty" yaml:"retries,omitempty"`

	// Input is the JSON Schema of the job's arguments.
	Input map[string]any `json:"input,omitempty" yaml:"input,omitempty"`

	// Mounts show host folders; each must be under a folder the operator
	// allows with --mount-allow.
	Mounts []Mount `json:"mounts,omitempty" yaml:"mounts,omitempty"`
	// Volumes are persistent folders keyhole keeps per workspace.
	Volumes []Volume `json:"volumes,omitempty" yaml:"volumes,omitempty"`

	// IDToken, when set, gives the job an identity token signed by keyhole
	// for this audience, to federate to a cloud itself. Off by default.
	IDToken *IDToken `json:"id_token,omitempty" yaml:"id_token,omitempty"`
}

// IDToken asks for the job's identity token in /work/.keyhole/id_token.
type IDToken struct {
	Audience string `json:"audience" yaml:"audience"`
}

// Limits bound a script's sandbox; sizes are written like 256M.
type Limits struct {
	Memory      string  `json:"memory,omitempty" yaml:"memory,omitempty"`
	CPU         float64 `json:"cpu,omitempty" yaml:"cpu,omitempty"`
	Pids        int     `json:"pids,omitempty" yaml:"pids,omitempty"`
	MaxFileSize string  `json:"max_file_size,omitempty" yaml:"max_file_size,omitempty"`
	TmpSize     string  `json:"tmp_size,omitempty" yaml:"tmp_size,omitempty"`
}

// Mount shows a host folder inside the sandbox.
type Mount struct {
	Source string `json:"source" yaml:"source"`
	Target string `json:"target" yaml:"target"`
	Mode   string `json:"mode,omitempty" yaml:"mode,omitempty"` // ro (default) or rw
}

// Volume is a persistent folder of the workspace. A read-write volume is
// used by one running job at a time; a read-only one by any number.
type Volume struct {
	Name   string `json:"name" yaml:"name"`
	Target string `json:"target" yaml:"target"`
	Mode   string `json:"mode,omitempty" yaml:"mode,omitempty"` // rw (default) or ro
}

var sections = map[string]string{"Script": "the script", "Limits": "limits",
	"Mount": "a mount", "Volume": "a volume", "IDToken": "id_token"}

// DecodeScript reads a script definition from one YAML or JSON document.
func DecodeScript(doc []byte) (*Script, error) {
	var s Script
	if err := yamldoc.DecodeKind(doc, KindScript, &s, &s.Kind, sections); err != nil {
		return nil, err
	}
	return &s, nil
}

var (
	envName    = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	volumeName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)
)

// reservedTargets are sandbox paths a mount or volume may not cover.
var reservedTargets = []string{"/", "/work", "/proc", "/dev", "/tmp", "/etc", "/usr",
	"/bin", "/sbin", "/lib", "/lib64", "/lib32", "/run"}

// Check validates a script on its own. mountAllow lists the host folders
// mounts may come from; a mount outside them is refused, naming its path.
func (s *Script) Check(mountAllow []string) error {
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }

	if err := tool.CheckName(s.Name); err != nil {
		add("%v", err)
	}
	switch {
	case s.Run == "" && len(s.Command) == 0:
		add("give run (a shell line) or command (a program and its arguments)")
	case s.Run != "" && len(s.Command) > 0:
		add("give run or command, not both")
	}
	s.checkFiles(add)
	s.checkEnv(add)
	s.checkNet(add)
	if _, err := s.SandboxLimits(); err != nil {
		add("limits: %v", err)
	}
	if t := time.Duration(s.Timeout); t < 0 || t > MaxTimeout {
		add("timeout must be between 1s and %s", MaxTimeout)
	}
	if s.Retries < 0 || s.Retries > maxRetries {
		add("retries must be between 0 and %d", maxRetries)
	}
	if s.Input != nil {
		if _, err := s.InputSchema(); err != nil {
			add("input: %v", err)
		}
	}
	s.checkMounts(mountAllow, add)
	s.checkVolumes(add)
	if s.IDToken != nil && strings.TrimSpace(s.IDToken.Audience) == "" {
		add("id_token needs an audience")
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}

func (s *Script) checkFiles(add func(string, ...any)) {
	total := 0
	for name, content := range s.Files {
		total += len(content)
		clean := path.Clean(name)
		if name == "" || path.IsAbs(name) || clean != name || strings.HasPrefix(clean, "../") ||
			clean == ".." || strings.ContainsAny(name, "\x00\\") {
			add("file name %q must be a relative path inside /work, without . or .. parts", name)
		}
		if name == "args.json" || name == "result.json" {
			add("file %s is written by keyhole; choose another name", name)
		}
	}
	if total > maxFilesBytes {
		add("files hold %d bytes; at most %d fit in a script (use a mount or a volume)", total, maxFilesBytes)
	}
}

func (s *Script) checkEnv(add func(string, ...any)) {
	for k := range s.Env {
		if !envName.MatchString(k) || strings.HasPrefix(k, "KEYHOLE_") {
			add("env name %q must be a shell variable name not starting with KEYHOLE_", k)
		}
	}
}

func (s *Script) checkNet(add func(string, ...any)) {
	switch s.NetMode() {
	case sandbox.NetNone:
		if s.Toolset != "" || len(s.Routes) > 0 {
			add("net: none cuts the script off from its toolset and routes; use net: broker")
		}
	case sandbox.NetBroker:
	default:
		add("net must be none or broker, not %q", s.Net)
	}
	for _, r := range s.Routes {
		if err := tool.CheckName(r); err != nil {
			add("route %v", err)
		}
	}
}

func (s *Script) checkMounts(allow []string, add func(string, ...any)) {
	for _, m := range s.Mounts {
		if !filepath.IsAbs(m.Source) || filepath.Clean(m.Source) != m.Source {
			add("mount source %q must be a clean absolute host path", m.Source)
			continue
		}
		if !underAny(m.Source, allow) {
			add("mount source %s is not under a folder the server allows (--mount-allow %s)",
				m.Source, strings.Join(allow, ","))
		}
		checkTarget("mount", m.Target, add)
		if m.Mode != "" && m.Mode != "ro" && m.Mode != "rw" {
			add("mount mode must be ro or rw, not %q", m.Mode)
		}
	}
}

func (s *Script) checkVolumes(add func(string, ...any)) {
	for _, v := range s.Volumes {
		if !volumeName.MatchString(v.Name) {
			add("volume name %q must be lower case letters, digits, - and _", v.Name)
		}
		checkTarget("volume", v.Target, add)
		if v.Mode != "" && v.Mode != "ro" && v.Mode != "rw" {
			add("volume mode must be rw or ro, not %q", v.Mode)
		}
	}
}

func checkTarget(what, target string, add func(string, ...any)) {
	if !path.IsAbs(target) || path.Clean(target) != target {
		add("%s target %q must be a clean absolute path", what, target)
		return
	}
	for _, r := range reservedTargets {
		if target == r || (r != "/" && strings.HasPrefix(target, r+"/")) {
			add("%s target %s is inside %s, which keyhole manages", what, target, r)
			return
		}
	}
}

// underAny reports whether p is one of dirs or inside one.
func underAny(p string, dirs []string) bool {
	return slices.ContainsFunc(dirs, func(d string) bool {
		d = filepath.Clean(d)
		return p == d || strings.HasPrefix(p, strings.TrimSuffix(d, "/")+"/")
	})
}

// NetMode is the sandbox network the script gets.
func (s *Script) NetMode() sandbox.NetMode {
	switch s.Net {
	case "":
		if s.Toolset != "" || len(s.Routes) > 0 {
			return sandbox.NetBroker
		}
		return sandbox.NetNone
	case "none":
		return sandbox.NetNone
	case "broker":
		return sandbox.NetBroker
	}
	return sandbox.NetMode(s.Net)
}

// SandboxLimits turns the script's limits into sandbox limits.
func (s *Script) SandboxLimits() (sandbox.Limits, error) {
	l := sandbox.Limits{CPU: s.Limits.CPU, Pids: s.Limits.Pids, Timeout: s.timeout()}
	for _, f := range []struct {
		v   string
		dst *int64
	}{{s.Limits.Memory, &l.Memory}, {s.Limits.MaxFileSize, &l.MaxFileSize}, {s.Limits.TmpSize, &l.TmpSize}} {
		if f.v == "" {
			continue
		}
		n, err := sandbox.ParseSize(f.v)
		if err != nil {
			return l, err
		}
		*f.dst = n
	}
	if l.CPU < 0 || l.Pids < 0 {
		return l, errors.New("cpu and pids must not be negative")
	}
	return l, nil
}

func (s *Script) timeout() time.Duration {
	if s.Timeout == 0 {
		return DefaultTimeout
	}
	return time.Duration(s.Timeout)
}

// InputSchema compiles the script's argument schema; nil when it has none.
func (s *Script) InputSchema() (*schema.Schema, error) {
	if s.Input == nil {
		return nil, nil
	}
	raw, err := json.Marshal(s.Input)
	if err != nil {
		return nil, err
	}
	return schema.Compile(raw)
}

// CommandLine is the program and arguments the sandbox runs.
func (s *Script) CommandLine() []string {
	if s.Run != "" {
		return []string{"/bin/sh", "-c", s.Run}
	}
	return s.Command
}
