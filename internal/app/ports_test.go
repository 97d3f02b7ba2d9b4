package app

import (
	"net"
	"strconv"
	"testing"
)

func TestFreePortBelowEphemeralRange(t *testing.T) {
	seen := map[int]bool{}
	for range 50 {
		p, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		if p < appPortFirst || p > appPortLast {
			t.Fatalf("port %d outside %d–%d", p, appPortFirst, appPortLast)
		}
		if seen[p] {
			t.Fatalf("port %d handed out twice", p)
		}
		seen[p] = true
	}
	// A port someone listens on is skipped.
	appPorts.Lock()
	next := appPorts.next
	appPorts.Unlock()
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(next))
	if err != nil {
		t.Skipf("port %d busy: %v", next, err)
	}
	defer l.Close()
	p, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	if p == next {
		t.Fatalf("handed out port %d, which is in use", p)
	}
}
