// Package store keeps keyhole's state in SQL: workspaces, wrapped data keys,
// sealed resources, tokens, the audit chain and declarative objects (tools,
// toolsets, routes, resource types and the like).
//
// # Databases
//
// One implementation serves both databases through database/sql: embedded
// SQLite (modernc.org/sqlite, no cgo) for a single machine and PostgreSQL
// (pgx) when several servers and workers share the state. Queries are written
// once with $N placeholders, which both accept; the few differences (column
// types, locking) live in [Dialect]. A conformance suite runs every test
// against both.
//
// # What it never sees
//
// The store holds resource values only as sealed bytes produced by package
// secrets, and tokens only as hashes. Nothing decrypted passes through it.
//
// # Migrations
//
// [Open] applies the versioned schema migrations in order, each in its own
// transaction, and records them in keyhole_migrations, so running them again
// is a no-op. On PostgreSQL an advisory lock keeps two servers starting at
// once from migrating together.
package store
