// Package e2e holds usine's end-to-end tests: a real server over SQLite,
// real node agents (in this process, and one as a separate usine agent
// process) running real shell scripts, driven through the HTTP API as users
// drive it. The tests live in the _test files; this package has no code.
package e2e
