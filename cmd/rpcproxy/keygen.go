package main

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
)

// keygen prints a new gossip encryption key: 32 random bytes (AES-256) in
// base64, as gossip.encrypt and RPCPROXY_GOSSIP_KEYS take it.
func keygen(args []string, stdout io.Writer) error {
	if len(args) > 0 {
		return fmt.Errorf("keygen: unexpected argument %q", args[0])
	}
	var key [32]byte
	if _, err := rand.Read(key[:]); err != nil {
		return fmt.Errorf("keygen: %w", err)
	}
	_, err := fmt.Fprintln(stdout, base64.StdEncoding.EncodeToString(key[:]))
	return err
}
