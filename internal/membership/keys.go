package membership

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/hashicorp/memberlist"
)

// ErrInvalidKey means a gossip encryption key is not a 16, 24 or 32-byte
// AES key (or not valid base64, for ParseKeys).
var ErrInvalidKey = errors.New("membership: invalid gossip key")

// ParseKeys decodes base64 gossip keys (standard or URL alphabet, padded or
// not), e.g. from `head -c32 /dev/urandom | base64`. The order is kept: the
// first key is the primary one. Each key must decode to 16, 24 or 32 bytes
// (AES-128, -192, -256); a key listed twice is an error.
func ParseKeys(encoded []string) ([][]byte, error) {
	keys := make([][]byte, 0, len(encoded))
	seen := make(map[string]int, len(encoded))
	for i, s := range encoded {
		k, err := decodeKey(strings.TrimSpace(s))
		if err != nil {
			// The error names the key's position, never its bytes.
			return nil, fmt.Errorf("%w: key %d: %v", ErrInvalidKey, i, err)
		}
		if j, dup := seen[string(k)]; dup {
			return nil, fmt.Errorf("%w: key %d repeats key %d", ErrInvalidKey, i, j)
		}
		seen[string(k)] = i
		keys = append(keys, k)
	}
	return keys, nil
}

func decodeKey(s string) ([]byte, error) {
	for _, enc := range []*base64.Encoding{
		base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding,
	} {
		if k, err := enc.DecodeString(s); err == nil {
			return k, checkKey(k)
		}
	}
	return nil, errors.New("not base64")
}

func checkKey(k []byte) error {
	if n := len(k); n != 16 && n != 24 && n != 32 {
		return fmt.Errorf("%d bytes, want 16, 24 or 32", n)
	}
	return nil
}

// newKeyring builds memberlist's keyring from Config.Keys: keys[0] encrypts
// everything this node sends, and every key is tried on what it receives.
// No keys means no encryption (nil keyring).
func newKeyring(keys [][]byte) (*memberlist.Keyring, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	kr, err := memberlist.NewKeyring(keys[1:], keys[0])
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidKey, err)
	}
	return kr, nil
}
