// Package e2e holds rpcproxy's end-to-end scenarios: the official Go and
// Node Copilot SDKs drive real headless Copilot CLI servers through rpcproxy,
// with a local model stub behind the CLI (see harness and README.md).
package e2e
