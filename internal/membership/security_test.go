package membership

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"testing"
	"time"
)

var (
	keyOld = bytes.Repeat([]byte{0x11}, 32)
	keyNew = bytes.Repeat([]byte{0x22}, 16)
)

func TestEncryptionMismatchRefused(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		seed, joiner [][]byte
	}{
		{"different keys", [][]byte{keyOld}, [][]byte{keyNew}},
		{"joiner without key", [][]byte{keyOld}, nil},
		{"cluster without key", nil, [][]byte{keyOld}},
		// The primary key encrypts everything a node sends, so a node only
		// understands peers whose primary key it holds: [new, old] cannot
		// talk to [old]. Rotation goes [old] -> [old,new] -> [new,old] -> [new].
		{"joiner primary key unknown to cluster", [][]byte{keyOld}, [][]byte{keyNew, keyOld}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rec := newRecorder()
			cfg := testConfig("proxy", ProfileFast, proxyMeta)
			cfg.Keys = tt.seed
			p := startNode(t, cfg, rec)

			jc := testConfig("intruder", ProfileFast, backendMeta(9), p.Addr())
			jc.Keys = tt.joiner
			jc.JoinTimeout = time.Second
			n, err := Join(context.Background(), jc)
			if err == nil {
				n.Shutdown()
				t.Fatalf("Join succeeded, want ErrJoin")
			}
			if !errors.Is(err, ErrJoin) {
				t.Fatalf("Join error = %v, want ErrJoin", err)
			}
			// All join attempts are over and the intruder is shut down; had
			// any reached the proxy, it would be listed (dead members are
			// listed until detected, which takes longer than this check).
			for _, m := range p.Members() {
				if m.Name == "intruder" {
					t.Fatalf("proxy lists the intruder: %+v", m)
				}
			}
			if rec.everSaw("intruder") {
				t.Fatalf("proxy listener was told of the intruder")
			}
		})
	}
}

func TestKeyRotationStages(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		seed, joiner [][]byte
	}{
		{"stage 1: [old] with [old,new]", [][]byte{keyOld}, [][]byte{keyOld, keyNew}},
		{"stage 2: [old,new] with [new,old]", [][]byte{keyOld, keyNew}, [][]byte{keyNew, keyOld}},
		{"stage 3: [new,old] with [new]", [][]byte{keyNew, keyOld}, [][]byte{keyNew}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srec, jrec := newRecorder(), newRecorder()
			sc := testConfig("seed", ProfileFast, backendMeta(1))
			sc.Keys = tt.seed
			s := startNode(t, sc, srec)
			jc := testConfig("joiner", ProfileFast, backendMeta(2), s.Addr())
			jc.Keys = tt.joiner
			j := startNode(t, jc, jrec)

			both := func(bs []Backend) bool { return slices.Equal(backendNames(bs), []string{"joiner", "seed"}) }
			srec.wait(t, 5*time.Second, "seed sees both", both)
			jrec.wait(t, 5*time.Second, "joiner sees both", both)

			// Steady-state gossip works both ways, not just the join sync.
			ms, mj := backendMeta(1), backendMeta(2)
			ms.Draining, mj.Draining = true, true
			ms.Weight, mj.Weight = 10+i, 20+i
			if err := s.UpdateMeta(ms); err != nil {
				t.Fatal(err)
			}
			if err := j.UpdateMeta(mj); err != nil {
				t.Fatal(err)
			}
			drained := func(bs []Backend) bool {
				a, b := findBackend(bs, "seed"), findBackend(bs, "joiner")
				return a != nil && b != nil && a.Draining && b.Draining
			}
			srec.wait(t, 5*time.Second, "seed sees the joiner's update", drained)
			jrec.wait(t, 5*time.Second, "joiner sees the seed's update", drained)
		})
	}
}

func TestParseKeys(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      []string
		wantLen []int
		wantErr bool
	}{
		{"none", nil, []int{}, false},
		{"aes128 std", []string{"EREREREREREREREREREREQ=="}, []int{16}, false},
		{"aes256 std and raw url", []string{
			"ERERERERERERERERERERERERERERERERERERERERERE=",
			"IiIiIiIiIiIiIiIiIiIiIg",
		}, []int{32, 16}, false},
		{"whitespace trimmed", []string{" EREREREREREREREREREREQ==\n"}, []int{16}, false},
		{"aes192", []string{"MzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMz"}, []int{24}, false},
		{"21 bytes", []string{"MzMzMzMzMzMzMzMzMzMzMzMzMzMz"}, nil, true},
		{"wrong size", []string{"AAAA"}, nil, true},
		{"not base64", []string{"not base64!!"}, nil, true},
		{"duplicate in another alphabet", []string{"EREREREREREREREREREREQ==", "EREREREREREREREREREREQ"}, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keys, err := ParseKeys(tt.in)
			if tt.wantErr {
				if !errors.Is(err, ErrInvalidKey) {
					t.Fatalf("ParseKeys = %v, want ErrInvalidKey", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var lens []int
			for _, k := range keys {
				lens = append(lens, len(k))
			}
			if !slices.Equal(lens, tt.wantLen) && !(len(lens) == 0 && len(tt.wantLen) == 0) {
				t.Fatalf("key lengths %v, want %v", lens, tt.wantLen)
			}
		})
	}
}
