package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// Dialect names the SQL database behind a [DB].
type Dialect string

// The supported databases.
const (
	SQLite   Dialect = "sqlite"
	Postgres Dialect = "postgres"
)

// Errors returned by the store. Callers test for them with errors.Is.
var (
	// ErrNotFound reports that the named row does not exist.
	ErrNotFound = errors.New("store: not found")
	// ErrExists reports that a row with the same name already exists.
	ErrExists = errors.New("store: already exists")
	// ErrConflict reports that a row changed between read and write.
	ErrConflict = errors.New("store: concurrent update")
)

// DB is keyhole's database, SQLite or PostgreSQL.
type DB struct {
	sql     *sql.DB
	stmts   stmtCache
	pool    *pgxpool.Pool // PostgreSQL only
	dialect Dialect
	where   string // the database file or host, for messages; never a password
	logger  *slog.Logger
}

// Options configures [Open]. The zero value is usable.
type Options struct {
	// DataDir holds the SQLite file when the address names none.
	DataDir string
	// Logger receives the store's logs; nil discards them.
	Logger *slog.Logger
}

// Open connects to the database at addr and brings its schema up to date.
//
// An empty addr means the SQLite file keyhole.db in opts.DataDir. An addr
// starting with postgres:// or postgresql:// is a PostgreSQL connection
// string; sqlite:PATH or file:PATH names a SQLite file.
func Open(ctx context.Context, addr string, opts *Options) (*DB, error) {
	if opts == nil {
		opts = &Options{}
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}

	var db *DB
	var err error
	switch {
	case strings.HasPrefix(addr, "postgres://"), strings.HasPrefix(addr, "postgresql://"):
		db, err = openPostgres(ctx, addr)
	case addr == "":
		db, err = openSQLite(filepath.Join(opts.DataDir, "keyhole.db"))
	case strings.HasPrefix(addr, "sqlite:"):
		db, err = openSQLite(strings.TrimPrefix(strings.TrimPrefix(addr, "sqlite:"), "//"))
	case strings.HasPrefix(addr, "file:"):
		db, err = openSQLite(strings.TrimPrefix(addr, "file:"))
	default:
		return nil, fmt.Errorf("unsupported database address %q: use postgres://…, "+
			"sqlite:PATH, or leave it empty for a SQLite file in the data directory",
			redactDSN(addr))
	}
	if err != nil {
		return nil, err
	}
	db.logger = logger

	if err := db.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

func openSQLite(path string) (*DB, error) {
	if path == "" {
		return nil, errors.New("empty SQLite file name")
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("create database folder: %w", err)
		}
	}

	// WAL lets readers run beside the one writer; immediate transactions
	// take the write lock up front so two writers queue on busy_timeout
	// instead of failing when one upgrades a read lock.
	q := url.Values{}
	for _, p := range []string{"journal_mode(WAL)", "busy_timeout(10000)",
		"foreign_keys(1)", "synchronous(NORMAL)"} {
		q.Add("_pragma", p)
	}
	q.Set("_txlock", "immediate")
	sqldb, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open SQLite %s: %w", path, err)
	}
	sqldb.SetMaxOpenConns(8)
	sqldb.SetMaxIdleConns(8)
	sqldb.SetConnMaxIdleTime(0)

	if err := sqldb.Ping(); err != nil {
		sqldb.Close()
		return nil, fmt.Errorf("open SQLite %s: %w", path, err)
	}
	// The database file holds only sealed values, but keep it private.
	_ = os.Chmod(path, 0o600)
	return &DB{sql: sqldb, dialect: SQLite, where: path}, nil
}

func openPostgres(ctx context.Context, addr string) (*DB, error) {
	cfg, err := pgxpool.ParseConfig(addr)
	if err != nil {
		return nil, fmt.Errorf("parse PostgreSQL address %s: %w", redactDSN(addr), err)
	}
	if cfg.MaxConns < 16 {
		cfg.MaxConns = 16
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to PostgreSQL %s: %w", redactDSN(addr), err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to PostgreSQL %s: %w", redactDSN(addr), err)
	}
	return &DB{
		sql:     stdlib.OpenDBFromPool(pool),
		pool:    pool,
		dialect: Postgres,
		where:   redactDSN(addr),
	}, nil
}

// Close releases the database's connections.
func (db *DB) Close() error {
	db.stmts.close()
	err := db.sql.Close()
	if db.pool != nil {
		db.pool.Close()
	}
	return err
}

// Dialect reports which database db is.
func (db *DB) Dialect() Dialect { return db.dialect }

// SQL returns the database/sql handle, for packages that keep tables of
// their own in the same database.
func (db *DB) SQL() *sql.DB { return db.sql }

// Pool returns the pgx pool behind a PostgreSQL database, or nil for SQLite.
func (db *DB) Pool() *pgxpool.Pool { return db.pool }

// String describes the database for logs, without any password.
func (db *DB) String() string { return string(db.dialect) + " " + db.where }

// querier is what both *sql.DB and *sql.Tx offer.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// Tx is a database transaction; the store's methods are available on it so
// that several writes commit or fail together.
type Tx struct {
	q       querier
	dialect Dialect
	stmts   *stmtCache // statements prepared once, by query text
	db      *sql.DB
	sqlTx   *sql.Tx // nil outside a transaction
}

// InTx runs fn in a transaction and commits it when fn returns nil.
func (db *DB) InTx(ctx context.Context, fn func(tx *Tx) error) error {
	sqltx, err := db.sql.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	if err := fn(&Tx{q: sqltx, dialect: db.dialect, stmts: &db.stmts, db: db.sql, sqlTx: sqltx}); err != nil {
		_ = sqltx.Rollback()
		return err
	}
	if err := sqltx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// Direct returns a Tx whose statements each run on their own, outside any
// transaction: for single reads and single writes.
func (db *DB) Direct() *Tx {
	return &Tx{q: db.sql, dialect: db.dialect, stmts: &db.stmts, db: db.sql}
}

// stmtCache keeps prepared statements by query text. Reads on the hot path
// (a resource by path, a token by hash) skip re-parsing their SQL this way.
type stmtCache struct {
	mu         sync.Mutex
	m          map[string]*sql.Stmt
	pending    map[string]bool // being prepared in the background
	closed     bool
	background sync.WaitGroup
}

func (c *stmtCache) lookup(query string) *sql.Stmt {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[query]
}

// prepare prepares query on db and keeps it. It takes a connection of its
// own, so it never runs with c.mu held.
func (c *stmtCache) prepare(ctx context.Context, db *sql.DB, query string) (*sql.Stmt, error) {
	st, err := db.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		st.Close()
		return nil, sql.ErrConnDone
	}
	if old := c.m[query]; old != nil {
		st.Close()
		return old, nil
	}
	if c.m == nil {
		c.m = map[string]*sql.Stmt{}
	}
	c.m[query] = st
	return st, nil
}

// prepareLater prepares query in the background, once.
func (c *stmtCache) prepareLater(db *sql.DB, query string) {
	c.mu.Lock()
	if c.closed || c.pending[query] || c.m[query] != nil {
		c.mu.Unlock()
		return
	}
	if c.pending == nil {
		c.pending = map[string]bool{}
	}
	c.pending[query] = true
	c.background.Add(1)
	c.mu.Unlock()

	go func() {
		defer c.background.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c.prepare(ctx, db, query) //nolint:errcheck // the query runs unprepared meanwhile
		c.mu.Lock()
		delete(c.pending, query)
		c.mu.Unlock()
	}()
}

// close waits for background preparations and closes every statement.
func (c *stmtCache) close() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.background.Wait()

	c.mu.Lock()
	defer c.mu.Unlock()
	for _, st := range c.m {
		st.Close()
	}
	c.m = nil
}

// stmt returns the prepared statement for query, bound to the transaction
// when there is one, or nil when there is none yet: the caller then runs
// the query unprepared.
//
// Inside a transaction a statement not yet prepared is prepared in the
// background, not here: preparing needs a second connection, and a
// transaction that holds a lock while it waits for one can deadlock with
// transactions that hold every other connection while they wait for the
// lock.
func (tx *Tx) stmt(ctx context.Context, query string) *sql.Stmt {
	if tx.stmts == nil {
		return nil
	}
	st := tx.stmts.lookup(query)
	if st == nil && tx.sqlTx != nil {
		tx.stmts.prepareLater(tx.db, query)
		return nil
	}
	if st == nil {
		var err error
		if st, err = tx.stmts.prepare(ctx, tx.db, query); err != nil {
			return nil
		}
	}
	if tx.sqlTx != nil {
		return tx.sqlTx.StmtContext(ctx, st)
	}
	return st
}

// queryRow runs a query expected to return one row through a prepared
// statement: hot queries skip re-parsing their SQL.
func (tx *Tx) queryRow(ctx context.Context, query string, args ...any) *sql.Row {
	if st := tx.stmt(ctx, query); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return tx.q.QueryRowContext(ctx, query, args...)
}

// exec runs a statement through a prepared statement.
func (tx *Tx) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if st := tx.stmt(ctx, query); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return tx.q.ExecContext(ctx, query, args...)
}

// Lock takes a lock named by key for the rest of the transaction. On
// PostgreSQL it is an advisory lock; SQLite transactions already hold the
// database's single write lock, so there it does nothing.
func (tx *Tx) Lock(ctx context.Context, key string) error {
	if tx.dialect != Postgres {
		return nil
	}
	_, err := tx.q.ExecContext(ctx, "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", key)
	if err != nil {
		return fmt.Errorf("take lock %s: %w", key, err)
	}
	return nil
}

// LockShared takes a lock named by key in shared mode for the rest of the
// transaction: many holders at once, but none beside a holder of Lock.
func (tx *Tx) LockShared(ctx context.Context, key string) error {
	if tx.dialect != Postgres {
		return nil
	}
	_, err := tx.q.ExecContext(ctx,
		"SELECT pg_advisory_xact_lock_shared(hashtextextended($1, 0))", key)
	if err != nil {
		return fmt.Errorf("take shared lock %s: %w", key, err)
	}
	return nil
}

// redactDSN drops the password from a database address.
func redactDSN(addr string) string {
	u, err := url.Parse(addr)
	if err != nil || u.User == nil {
		if err != nil {
			return "(unparsable address)"
		}
		return addr
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}

// now is the store's clock, in Unix microseconds.
func now() int64 { return time.Now().UnixMicro() }

// fromMicros turns a stored timestamp back into a time; 0 is the zero time.
func fromMicros(us int64) time.Time {
	if us == 0 {
		return time.Time{}
	}
	return time.UnixMicro(us).UTC()
}

func toMicros(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

// isUniqueViolation reports whether err is a unique-constraint failure on
// either database.
func isUniqueViolation(err error) bool {
	if err == nil {
		return false
	}
	s := err.Error()
	return strings.Contains(s, "UNIQUE constraint failed") || // SQLite
		strings.Contains(s, "SQLSTATE 23505") // PostgreSQL unique_violation
}
