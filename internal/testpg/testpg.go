// Package testpg starts a real PostgreSQL server for tests.
//
// A test binary starts at most one server, lazily, the first time a test asks
// for a database; every test then gets a database of its own on it. Packages
// that use it stop the server from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(testpg.Run(m)) }
//
// KEYHOLE_TEST_POSTGRES chooses what happens when PostgreSQL cannot be
// started: unset, the tests that need it skip with the reason; "require"
// fails them instead (CI sets this, so nothing skips silently); "off" skips
// them without trying. KEYHOLE_TEST_POSTGRES_URL names an existing server to
// use instead of starting one; its user must be allowed to create databases.
package testpg

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Run runs the tests of m and then stops the server if one was started.
func Run(m *testing.M) int {
	code := m.Run()
	shared.stop()
	return code
}

// DSN returns the address of a new, empty database for t, or skips or fails
// t as KEYHOLE_TEST_POSTGRES says when PostgreSQL is unavailable.
func DSN(t testing.TB) string {
	t.Helper()

	mode := os.Getenv("KEYHOLE_TEST_POSTGRES")
	if mode == "off" {
		t.Skip("PostgreSQL tests are off (KEYHOLE_TEST_POSTGRES=off)")
	}
	admin, err := shared.start()
	if err != nil {
		if mode == "require" {
			t.Fatalf("PostgreSQL is required (KEYHOLE_TEST_POSTGRES=require): %v", err)
		}
		t.Skipf("PostgreSQL unavailable, skipping (set KEYHOLE_TEST_POSTGRES=require "+
			"to fail instead): %v", err)
	}

	name := "keyhole_test_" + randomHex(6)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := exec1(ctx, admin, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create test database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = exec1(ctx, admin, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	})

	u, _ := url.Parse(admin)
	u.Path = "/" + name
	return u.String()
}

type server struct {
	once  sync.Once
	admin string
	err   error
	cmd   *exec.Cmd
	dir   string
}

var shared server

func (s *server) start() (string, error) {
	s.once.Do(func() {
		if u := os.Getenv("KEYHOLE_TEST_POSTGRES_URL"); u != "" {
			s.admin = u
			return
		}
		s.admin, s.err = s.launch()
	})
	return s.admin, s.err
}

// launch runs initdb into a temporary folder and starts postgres on a free
// loopback port, as the postgres user when the tests run as root.
func (s *server) launch() (string, error) {
	bin, err := findBin()
	if err != nil {
		return "", err
	}
	cred, err := serverCredential()
	if err != nil {
		return "", err
	}

	s.dir, err = os.MkdirTemp("", "keyhole-pg-")
	if err != nil {
		return "", err
	}
	if cred != nil {
		if err := os.Chown(s.dir, int(cred.Uid), int(cred.Gid)); err != nil {
			return "", err
		}
	}

	data := filepath.Join(s.dir, "data")
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres",
		"-A", "trust", "-E", "UTF8", "--no-sync", "--locale=C")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	initdb.Env = []string{"PATH=/usr/bin:/bin", "LC_ALL=C"}
	if out, err := initdb.CombinedOutput(); err != nil {
		return "", fmt.Errorf("initdb: %v: %s", err, out)
	}

	port, err := freePort()
	if err != nil {
		return "", err
	}
	s.cmd = exec.Command(filepath.Join(bin, "postgres"), "-D", data,
		"-p", strconv.Itoa(port), "-k", s.dir, "-c", "listen_addresses=127.0.0.1",
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
		"-c", "max_connections=300", "-c", "shared_buffers=64MB")
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGQUIT}
	s.cmd.Env = []string{"PATH=/usr/bin:/bin", "LC_ALL=C"}
	log, err := os.Create(filepath.Join(s.dir, "postgres.log"))
	if err != nil {
		return "", err
	}
	s.cmd.Stdout, s.cmd.Stderr = log, log
	if err := s.cmd.Start(); err != nil {
		return "", fmt.Errorf("start postgres: %w", err)
	}

	admin := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)
	if err := waitReady(admin, 30*time.Second); err != nil {
		out, _ := os.ReadFile(filepath.Join(s.dir, "postgres.log"))
		return "", fmt.Errorf("postgres did not become ready: %v; log: %s", err, out)
	}
	return admin, nil
}

func (s *server) stop() {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Signal(syscall.SIGQUIT)
		done := make(chan struct{})
		go func() { _ = s.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = s.cmd.Process.Kill()
		}
	}
	if s.dir != "" {
		_ = os.RemoveAll(s.dir)
	}
}

// findBin locates the folder holding initdb and postgres.
func findBin() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			p = real
		}
		dir := filepath.Dir(p)
		if _, err := os.Stat(filepath.Join(dir, "postgres")); err == nil {
			return dir, nil
		}
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(matches) > 0 {
		return filepath.Dir(matches[len(matches)-1]), nil
	}
	return "", errors.New("initdb not found on PATH or in /usr/lib/postgresql/*/bin " +
		"(install it with: apt-get install -y postgresql)")
}

// serverCredential returns the postgres user's ids when running as root,
// since the server refuses to run as root, and nil otherwise.
func serverCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root needs a postgres user to run the server as: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func waitReady(dsn string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := exec1(ctx, dsn, "SELECT 1")
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func exec1(ctx context.Context, dsn, sql string) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql)
	return err
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
