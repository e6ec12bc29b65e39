// Package server is keyhole's HTTP server: the JSON API under /api/v1/, the
// MCP endpoints, the broker's routes, health and metrics.
//
// [New] opens everything the server needs (key service, database, keyring,
// audit log), creates the default workspace and an admin token on first
// start, and [Server.Run] serves until its context ends, then shuts down
// gracefully.
//
// Every API route is declared once in a table that serves three purposes: it
// registers the handler, states the scope the handler needs, and produces the
// OpenAPI document at /api/v1/openapi.json, so the document cannot drift from
// what is served.
package server
