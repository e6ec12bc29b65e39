// Package jobs runs keyhole's work as durable jobs: a script in the sandbox
// with the tools and routes it was granted, one tool call, or an agent.
//
// # Queue
//
// Jobs live in the database (package store), on SQLite or PostgreSQL. A
// worker claims queued jobs (FOR UPDATE SKIP LOCKED on PostgreSQL, so many
// workers share one queue and no job is claimed twice), holds a lease on each
// that it renews every second, and records the outcome only if the job is
// still its own. When a worker dies its leases lapse; any worker then puts
// the job back in the queue while attempts remain, or fails it saying why.
// Workers wake on a notification (in process, and over PostgreSQL
// LISTEN/NOTIFY between processes) and poll as a fallback.
//
// keyhole uses its own queue rather than River: a worker's death is noticed
// from a lapsed lease within seconds whatever the job's length, where River
// rescues a running job only after a fixed, global time that must exceed the
// longest job; and the job row keeps keyhole's own state, logs, result,
// transcript and usage in one place.
//
// # Scripts
//
// A script job writes the script's files and args.json into a fresh job
// folder, starts a broker for the job on a private Unix socket (MCP at /mcp,
// routes at /routes/NAME, nothing else), and runs the command in the sandbox
// with only that socket as its way out. The broker's grant covers exactly the
// script's toolset and routes and ends with the job. The result is
// /work/result.json when the script writes one, else its trimmed standard
// output; both streams are kept as the job's log.
package jobs
