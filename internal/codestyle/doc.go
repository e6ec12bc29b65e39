// Package codestyle holds a test that keeps keyhole's code as STYLE.md
// describes it: every package documented, exported names documented, short
// functions and files, narrow lines. It has no code of its own.
package codestyle
