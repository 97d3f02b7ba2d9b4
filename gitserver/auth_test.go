package gitserver_test

// Regression test for authentication bypass through key offers
// (CVE-2024-45337, golang.org/x/crypto before 0.31.0, as used through
// gliderlabs/ssh).
//
// The attack: SSH public-key authentication lets a client first ask "would
// you accept this key?" without proving it holds the private key. The
// server answers by calling its key callback, and gliderlabs/ssh records
// every accepted key as "the session's key". An attacker who knows an
// admin's *public* key (it is public: on GitHub, in authorized_keys files)
// offers it first, gets a yes, then authenticates with its own low-
// privilege key. A server that takes the session's identity from an
// offered key instead of the key whose signature it verified runs the
// attacker as the admin.
//
// hop3 takes the identity only from the key x/crypto verified
// (VerifiedPublicKeyCallback). These tests drive a real gitserver.Server
// with the x/crypto client, offering keys in both orders, and require the
// session to be the deployer, never the admin.

import (
	"errors"
	"strings"
	"testing"

	gossh "golang.org/x/crypto/ssh"

	"hop3/gitserver"
)

// offers authenticates with each signer in turn, one auth attempt each,
// in the order given (x/crypto's AuthCallback picks the next method even
// when "publickey" was tried already).
func offers(list ...gossh.Signer) *gossh.ClientConfig {
	i := 0
	return &gossh.ClientConfig{
		AuthCallback: func(*gossh.ClientAuthContext) (gossh.AuthMethod, error) {
			if i >= len(list) {
				return nil, errors.New("no more keys to offer")
			}
			s := list[i]
			i++
			return gossh.PublicKeys(s), nil
		},
	}
}

func TestAuthIdentityIsTheVerifiedKey(t *testing.T) {
	ts := startServer(t, gitserver.Config{})
	mallory := newKey(t) // registered nowhere
	adminOffer := querySigner{pub: ts.admin.signer.PublicKey()}
	deployOffer := querySigner{pub: ts.deploy.signer.PublicKey()}

	tests := []struct {
		name   string
		keys   []gossh.Signer
		want   string // identity of the session; "" means authentication fails
		probed bool   // the admin key was offered to the server's key callback
	}{
		{"admin offered, then own key signs", []gossh.Signer{adminOffer, ts.deploy.signer}, "deployer", true},
		{"own key offered, admin offered, own key signs", []gossh.Signer{deployOffer, adminOffer, ts.deploy.signer}, "deployer", true},
		{"own key signs, admin offered after", []gossh.Signer{ts.deploy.signer, adminOffer}, "deployer", false},
		{"admin offered only", []gossh.Signer{adminOffer}, "", true},
		{"admin offered, then an unknown key signs", []gossh.Signer{adminOffer, mallory.signer}, "", true},
		{"admin key with another key's signature", []gossh.Signer{wrongSigner{pub: ts.admin.signer.PublicKey(), other: ts.deploy.signer}, ts.deploy.signer}, "", true},
		{"the admin itself", []gossh.Signer{ts.admin.signer}, "admin (admin)", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ts.keys.mu.Lock()
			ts.keys.asked = nil
			ts.keys.mu.Unlock()
			cfg := offers(tc.keys...)
			cfg.User = "hop3"
			cfg.HostKeyCallback = gossh.FixedHostKey(ts.hostKey)
			c, err := gossh.Dial("tcp", ts.addr, cfg)
			if tc.want == "" {
				if err == nil {
					out, _ := run(c, "whoami")
					c.Close()
					t.Fatalf("authenticated as %q; want refused", strings.TrimSpace(out))
				}
			} else {
				if err != nil {
					t.Fatalf("dial: %v", err)
				}
				defer c.Close()
				out, err := run(c, "whoami")
				if err != nil {
					t.Fatal(err)
				}
				if got := strings.TrimSpace(out); got != tc.want {
					t.Fatalf("session is %q, want %q", got, tc.want)
				}
				// Every session of the connection is the same identity.
				out, _ = run(c, "whoami")
				if got := strings.TrimSpace(out); got != tc.want {
					t.Fatalf("second session is %q, want %q", got, tc.want)
				}
			}
			// The attack was really tried: the server's key callback saw the
			// admin key (otherwise the test proves nothing).
			if got := ts.keys.wasAsked(ts.admin.fp); got != tc.probed {
				t.Fatalf("admin key offered to the server: %v, want %v", got, tc.probed)
			}
		})
	}
}

// A deployer that got in through the admin's offered key must still not
// reach another app: authority follows the verified key.
func TestAuthOfferedAdminKeyGrantsNoApps(t *testing.T) {
	ts := startServer(t, gitserver.Config{})
	cfg := offers(querySigner{pub: ts.admin.signer.PublicKey()}, ts.deploy.signer)
	cfg.User = "hop3"
	cfg.HostKeyCallback = gossh.FixedHostKey(ts.hostKey)
	c, err := gossh.Dial("tcp", ts.addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	s.Stderr = &stderr
	err = s.Run("git-receive-pack 'theirs'")
	if err == nil {
		t.Fatal("deployer pushed to an app it was not given")
	}
	if !strings.Contains(stderr.String(), "key deployer may not use app theirs") {
		t.Fatalf("refusal does not name the deployer: %q", stderr.String())
	}
	// The fake deployer refuses every push, saying which app it reached.
	if _, err := run(c, "git-receive-pack 'mine'"); err == nil || !strings.Contains(err.Error(), "prepare mine") {
		t.Fatalf("push to its own app did not reach the deployer: %v", err)
	}
}
