package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"hop3/gitserver"
	"hop3/internal/commands"
	"hop3/internal/layout"
	"hop3/internal/store"
)

func openStore(root string) (*store.Store, error) {
	return store.Open(layout.New(root).DB())
}

func keys(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	// --root may stand anywhere: before the command (handed on by
	// dispatch), or after the verb or NAME.
	root, rest, err := extractRoot(args)
	if err != nil {
		return err
	}
	sub := "list" // `hop3 keys` alone lists, as the daemon's keys does
	if len(rest) > 0 {
		sub, rest = rest[0], rest[1:]
	}
	if sub == "add" {
		// The daemon's keys:add, on the store directly: one code path, one
		// set of rules, flags before or after NAME.
		st, err := openStore(root)
		if err != nil {
			return err
		}
		defer st.Close()
		added, err := commands.AddKeys(ctx, st, rest, stdin)
		var ce *commands.Error
		if errors.As(err, &ce) {
			return &exitError{code: ce.Code, msg: ce.Msg}
		}
		if err != nil {
			return err
		}
		for _, k := range added {
			keyEvent(ctx, st, stderr, "added key %s", commands.Describe(k))
			fmt.Fprintf(stdout, "added key %s, %s\n", commands.Describe(k), k.Fingerprint)
		}
		return nil
	}
	fs := flag.NewFlagSet("keys "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	if err := fs.Parse(rest); err != nil {
		return &exitError{code: 2}
	}
	st, err := openStore(root)
	if err != nil {
		return err
	}
	defer st.Close()
	switch sub {
	case "list":
		ks, err := st.Keys(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tROLE\tAPPS\tFINGERPRINT\tOPTIONS")
		for _, k := range ks {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", k.Name, k.Role, strings.Join(k.Apps, ","), k.Fingerprint, k.Options)
		}
		tw.Flush()
	case "remove":
		if fs.NArg() != 1 {
			return usageError("usage: hop3 keys remove NAME")
		}
		if err := st.RemoveKey(ctx, fs.Arg(0)); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("no key named %s", fs.Arg(0))
			}
			return err
		}
		keyEvent(ctx, st, stderr, "removed key %s", fs.Arg(0))
		fmt.Fprintf(stdout, "removed key %s\n", fs.Arg(0))
	default:
		return usageError("unknown keys command %q (add, list, remove)", sub)
	}
	return nil
}

// extractRoot takes --root DIR (or --root=DIR) out of args, wherever it is.
func extractRoot(args []string) (string, []string, error) {
	root := envDefault("root", defaultRoot())
	var rest []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			return root, append(rest, args[i:]...), nil
		case a == "--root" || a == "-root":
			if i+1 >= len(args) {
				return "", nil, usageError("--root needs a directory")
			}
			root = args[i+1]
			i++
		case strings.HasPrefix(a, "--root=") || strings.HasPrefix(a, "-root="):
			_, root, _ = strings.Cut(a, "=")
		default:
			rest = append(rest, a)
		}
	}
	return root, rest, nil
}

// keyEvent records a key change made on the server, as the daemon's
// keys:add and keys:remove do; a failure to record does not undo it.
func keyEvent(ctx context.Context, st *store.Store, stderr io.Writer, format string, a ...any) {
	e := store.Event{Kind: "key", Actor: gitserver.LocalIdentity.Name, Message: fmt.Sprintf(format, a...)}
	if err := st.AddEvent(ctx, e); err != nil {
		fmt.Fprintf(stderr, "hop3: record event: %v\n", err)
	}
}

// storeKeys adapts the store to the SSH server's key lookup.
type storeKeys struct{ st *store.Store }

var _ gitserver.Keys = storeKeys{}

// Identify resolves a key fingerprint to an identity.
func (k storeKeys) Identify(ctx context.Context, fingerprint string) (gitserver.Identity, error) {
	key, err := k.st.KeyByFingerprint(ctx, fingerprint)
	if err != nil {
		return gitserver.Identity{}, err
	}
	limits, err := gitserver.ParseKeyOptions(key.Options)
	if err != nil {
		// Stored options that no longer read must not widen the key.
		return gitserver.Identity{}, fmt.Errorf("key %s: %w", key.Name, err)
	}
	return gitserver.Identity{Name: key.Name, Admin: key.Role == store.RoleAdmin, Apps: key.Apps, Limits: limits}, nil
}
