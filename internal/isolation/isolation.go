// Package isolation holds the rules that keep apps apart: the uid and gid
// each app runs as, and who owns each path under hop3's root, with which
// mode. The orchestrator asks it rather than calling chown and chmod itself.
//
// Each app runs as uid = gid = Base + n, where n >= 1 is the app's identity
// number from the store; Base itself is Caddy's. No /etc/passwd entry is
// needed: the kernel deals in numbers.
package isolation

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"hop3/runtime/supervisor"
)

// DefaultBase is the first uid of hop3's range: Caddy's, the apps' above it.
const DefaultBase = 62000

// maxApps bounds n, so that Base+n stays inside a 16-bit-safe block of
// uids below the kernel's overflow uid (65534) for the default base, and
// never wraps for another.
const maxApps = 1 << 20

// Capabilities hop3 needs to run apps as their own users (bit numbers of
// linux/capability.h).
const (
	capChown  = 0
	capSetGID = 6
	capSetUID = 7
)

// Policy says whether apps run as their own users, and which.
type Policy struct {
	// On is true when apps run as their own users.
	On bool
	// Base is Caddy's uid and gid; app n is Base+n.
	Base uint32
	// Why tells why isolation is off; empty when it is on.
	Why string
}

// New decides the policy for mode ("auto" or "off"): auto turns isolation
// on when this process may switch users.
func New(mode string, base uint32) (Policy, error) {
	if base == 0 {
		return Policy{}, errors.New("the uid base must not be 0 (root)")
	}
	if uint64(base)+maxApps > 1<<31 {
		return Policy{}, fmt.Errorf("uid base %d is too high", base)
	}
	switch mode {
	case "off":
		return Policy{Base: base, Why: "isolation is turned off (--isolation off)"}, nil
	case "", "auto":
		if err := CanSwitch(); err != nil {
			return Policy{Base: base, Why: err.Error()}, nil
		}
		if self := uint32(os.Getuid()); self > base && self <= base+maxApps {
			return Policy{}, fmt.Errorf("hop3 runs as uid %d, inside its own app range from %d: pick another --uid-base", self, base)
		}
		return Policy{On: true, Base: base}, nil
	}
	return Policy{}, fmt.Errorf("bad isolation mode %q: use auto or off", mode)
}

// User returns the credential app number n runs as, or nil when isolation
// is off (the app runs as hop3's user).
func (p Policy) User(n int) *supervisor.Credential {
	if !p.On || n <= 0 {
		return nil
	}
	id := p.Base + uint32(n)
	return &supervisor.Credential{UID: id, GID: id}
}

// Caddy returns the credential a Caddy hop3 starts runs as (uid = gid =
// Base), or nil when isolation is off (Caddy runs as hop3's user).
func (p Policy) Caddy() *supervisor.Credential {
	if !p.On {
		return nil
	}
	return &supervisor.Credential{UID: p.Base, GID: p.Base}
}

// Warning is the line hop3 prints once at start when apps run as its own
// user; empty when they do not.
func (p Policy) Warning() string {
	if p.On {
		return ""
	}
	return "WARNING: every app runs as hop3's own user, so any app can read hop3's database, keys and every other app's files (" + p.Why + "); " + Fix
}

// Fix tells how to let hop3 switch users.
const Fix = "run hop3 as root or with CAP_SETUID, CAP_SETGID, CAP_CHOWN, CAP_FOWNER, CAP_DAC_OVERRIDE and CAP_KILL (scripts/install.sh's systemd unit does), with --isolation auto"

// CanSwitch returns nil when this process may run children as other users
// and give them files: euid 0, or CAP_SETUID, CAP_SETGID and CAP_CHOWN.
func CanSwitch() error {
	if os.Geteuid() == 0 {
		return nil
	}
	eff, err := capSet("/proc/self/status", "CapEff")
	if err != nil {
		return fmt.Errorf("hop3 is not root and cannot read its capabilities: %w", err)
	}
	// A process that is not root keeps ambient capabilities across the
	// switch to an app's uid and hands them to every program it runs: the
	// app would get CAP_SETUID with them.
	if amb, err := capSet("/proc/self/status", "CapAmb"); err != nil || amb != 0 {
		return fmt.Errorf("hop3 runs as uid %d with ambient capabilities, which every app would inherit: run it as root limited by a capability bounding set instead", os.Getuid())
	}
	var missing []string
	for _, c := range []struct {
		bit  uint
		name string
	}{{capSetUID, "CAP_SETUID"}, {capSetGID, "CAP_SETGID"}, {capChown, "CAP_CHOWN"}} {
		if eff&(1<<c.bit) == 0 {
			missing = append(missing, c.name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("hop3 runs as uid %d without %s", os.Getuid(), strings.Join(missing, ", "))
	}
	return nil
}

// capSet reads a capability mask (CapEff, CapAmb) of a /proc status file.
func capSet(path, field string) (uint64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			return strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, errors.New("no " + field + " line")
}
