package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"hop3/internal/staticserve"
)

// serveStatic is `hop3 serve-static SOCKET MOUNTS`, not listed in the
// usage: the daemon runs it as a process of each app with static files
// (MOUNTS is the JSON of its []staticserve.Mount), and Caddy proxies the
// app's static paths to SOCKET.
func serveStatic(ctx context.Context, args []string, stderr io.Writer) error {
	if len(args) != 2 {
		return usageError("usage: hop3 serve-static SOCKET MOUNTS_JSON")
	}
	var mounts []staticserve.Mount
	if err := json.Unmarshal([]byte(args[1]), &mounts); err != nil {
		return usageError("serve-static: mounts: %v", err)
	}
	h, err := staticserve.New(mounts)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	for _, m := range mounts {
		fmt.Fprintf(stderr, "serving %s from %s (beneath %s)\n", m.Prefix, m.Dir, m.Root)
	}
	return staticserve.Serve(ctx, args[0], h)
}
