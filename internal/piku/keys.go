package piku

import (
	"bufio"
	"fmt"
	"strings"

	gossh "golang.org/x/crypto/ssh"

	"hop3/internal/store"
)

// AuthorizedKey is one key of piku's ~/.ssh/authorized_keys, without the
// forced command piku put in front of it.
type AuthorizedKey struct {
	Line        int    // line number in the file
	PublicKey   string // "ssh-ed25519 AAAA...", authorized_keys form without options
	Fingerprint string // "SHA256:..."
	Comment     string
	Name        string // a hop3 key name derived from the comment; unique in the file
	// Options are the line's options hop3 keeps (from=, expiry-time=), in
	// authorized_keys form; empty when none.
	Options string
}

// keptOptions are the options hop3's keys honour: a piku key restricted by
// one keeps the restriction.
var keptOptions = map[string]bool{"from": true, "expiry-time": true}

// pikuOptions are the restrictions piku's setup:ssh writes after its
// command=; hop3's SSH server grants none of them to anyone, so they are
// dropped with the command.
var pikuOptions = map[string]bool{
	"no-agent-forwarding": true, "no-user-rc": true, "no-X11-forwarding": true,
	"no-port-forwarding": true, "no-pty": true, "restrict": true,
}

// ParseAuthorizedKeys reads piku's authorized_keys. A line is piku's when
// its command= runs piku.py (setup:ssh writes `command="FINGERPRINT=...
// NAME=default /home/piku/piku.py $SSH_ORIGINAL_COMMAND",no-agent-forwarding,
// no-user-rc,no-X11-forwarding,no-port-forwarding KEY`); those keys are
// returned with that prefix stripped, keeping the options hop3 honours
// (from=, expiry-time=). Every other line that holds a key is left out with
// a reason: a key without piku's command logs in to a shell, not to piku,
// and one with other options (a different command=, environment=) would
// lose a restriction hop3 can not carry.
func ParseAuthorizedKeys(text string) (keys []AuthorizedKey, skipped []string) {
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	names := map[string]bool{}
	seen := map[string]int{}
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		pub, comment, options, _, err := gossh.ParseAuthorizedKey([]byte(line))
		if err != nil {
			skipped = append(skipped, fmt.Sprintf("authorized_keys line %d: not a public key (%v)", n, err))
			continue
		}
		fp := gossh.FingerprintSHA256(pub)
		if first, ok := seen[fp]; ok {
			skipped = append(skipped, fmt.Sprintf("authorized_keys line %d: the same key as line %d", n, first))
			continue
		}
		piku, other, kept := false, []string{}, []string{}
		for _, o := range options {
			name, _, _ := strings.Cut(o, "=")
			switch {
			case strings.HasPrefix(o, "command="):
				piku = strings.Contains(o, "piku.py")
				if !piku {
					other = append(other, "a command= that is not piku's")
				}
			case pikuOptions[o]:
			case keptOptions[strings.ToLower(name)] && strings.Contains(o, "="):
				kept = append(kept, o)
			default:
				other = append(other, name+"=")
			}
		}
		switch {
		case !piku && len(other) == 0:
			skipped = append(skipped, fmt.Sprintf("authorized_keys line %d (%s): no piku command=, a shell login key: left out", n, fp))
			continue
		case len(other) > 0:
			skipped = append(skipped, fmt.Sprintf("authorized_keys line %d (%s): %s hop3 can not carry: left out (add it with hop3 keys add if you mean to)", n, fp, strings.Join(other, ", ")))
			continue
		}
		seen[fp] = n
		k := AuthorizedKey{
			Line:        n,
			PublicKey:   strings.TrimSpace(string(gossh.MarshalAuthorizedKey(pub))),
			Fingerprint: fp,
			Comment:     comment,
			Options:     strings.Join(kept, ","),
		}
		k.Name = uniqueName(keyBase(comment, len(keys)+1), names)
		keys = append(keys, k)
	}
	if err := sc.Err(); err != nil {
		skipped = append(skipped, "authorized_keys: "+err.Error())
	}
	return keys, skipped
}

// keyBase turns a key's comment into a name hop3 accepts (letters, digits,
// '.', '_', '@', '-'; 64 at most), prefixed with piku- so that the imported
// keys stand out in `hop3 keys list`.
func keyBase(comment string, n int) string {
	c := store.KeyNameFrom(comment)
	if c == "" {
		return fmt.Sprintf("piku-%d", n)
	}
	name := "piku-" + c
	if len(name) > 60 {
		name = name[:60]
	}
	return name
}

func uniqueName(base string, used map[string]bool) string {
	name := base
	for i := 2; used[name]; i++ {
		name = fmt.Sprintf("%s-%d", base, i)
	}
	used[name] = true
	return name
}
