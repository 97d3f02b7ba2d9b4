package app

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
)

// Ports for web processes come from below Linux's default ephemeral range
// (32768–60999). A port the kernel hands out for ":0" and hop3 closes again
// is free for anyone until the app binds it, and every outgoing connection
// on the machine takes its local port from that same range: under load one
// of them took an app's port first ("address already in use"). Below the
// range only an explicit bind can take it, and handing ports out in turn
// keeps hop3 from giving one port twice before the first app binds it.
const (
	appPortFirst = 20000
	appPortLast  = 32767
)

var appPorts = struct {
	sync.Mutex
	next int
}{next: appPortFirst + rand.IntN(appPortLast-appPortFirst+1)}

// freePort returns a loopback TCP port no one listens on, for a web
// process's $PORT.
func freePort() (int, error) {
	appPorts.Lock()
	defer appPorts.Unlock()
	var lastErr error
	for range 200 {
		p := appPorts.next
		appPorts.next++
		if appPorts.next > appPortLast {
			appPorts.next = appPortFirst
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			lastErr = err
			continue
		}
		l.Close()
		return p, nil
	}
	return 0, fmt.Errorf("allocate port: %w", errors.Join(errors.New("200 ports in use"), lastErr))
}
