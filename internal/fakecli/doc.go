// Package fakecli is an in-process stand-in for a headless GitHub Copilot CLI
// server (`copilot --headless --port N`), for the proxy's integration tests,
// load benchmarks and failover tests.
//
// A Server speaks the observed subset of the CLI's protocol
// (/work/shared/docs/protocol.md): Content-Length framed JSON-RPC 2.0 over
// TCP, the connect handshake and its token rules, session create/resume/send/
// detach/delete with per-turn session.event streams, server→client requests
// (userInput.request), external tool calls, the session.list/getLastId
// aggregates and the process-wide provider registrations. Answers, error
// codes and messages follow what the real CLI 1.0.102 was seen to send,
// including its less obvious rules: session.create of a loaded ID attaches
// rather than fails, any connection may send to a loaded session (only the
// attached ones get its events), session.lifecycle goes to every
// connection, and a provider registration outlives its owner's connection.
//
// Per-connection state (authentication, which sessions a connection holds,
// its tools) is kept apart from per-process state (loaded sessions, provider
// owners), and session history lives in a Store that several Servers may
// share, like CLI processes sharing one COPILOT_HOME.
//
// Turn scripts: a prompt beginning "ask:" makes the server ask the client a
// question (userInput.request) before it answers; a prompt beginning "tool:"
// makes it call the first external tool registered for the session. Every
// answer reads "echo from <Name>: <prompt> (turn <n>)", so tests can tell
// which backend answered and how much history it saw.
package fakecli
