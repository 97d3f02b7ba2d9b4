package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"regexp"
	"strings"
	"text/tabwriter"

	gossh "golang.org/x/crypto/ssh"

	"hop3/gitserver"
	"hop3/internal/store"
)

var keyName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$`)

func openStore(root string) (*store.Store, error) {
	return store.Open(filepath.Join(root, "hop3.db"))
}

func keys(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError("usage: hop3 keys add|list|remove ...")
	}
	fs := flag.NewFlagSet("keys "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	root := fs.String("root", envDefault("root", defaultRoot()), "state directory")
	role := fs.String("role", "admin", "admin or deployer")
	apps := fs.String("apps", "", "apps a deployer may use, comma separated")
	sub := args[0]
	if err := fs.Parse(args[1:]); err != nil {
		return &exitError{code: 2}
	}
	st, err := openStore(*root)
	if err != nil {
		return err
	}
	defer st.Close()
	switch sub {
	case "add":
		if fs.NArg() != 1 {
			return usageError("usage: hop3 keys add NAME < key.pub")
		}
		name := fs.Arg(0)
		if !keyName.MatchString(name) {
			return usageError("invalid key name %q: use letters, digits, '.', '_', '@' and '-'", name)
		}
		r, err := store.ParseRole(*role)
		if err != nil {
			return usageError("%v", err)
		}
		line, err := bufio.NewReader(io.LimitReader(stdin, 16<<10)).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		pub, _, _, _, err := gossh.ParseAuthorizedKey([]byte(line))
		if err != nil {
			return fmt.Errorf("no public key on stdin: %v", err)
		}
		k := store.Key{
			Name:        name,
			Fingerprint: gossh.FingerprintSHA256(pub),
			PublicKey:   strings.TrimSpace(string(gossh.MarshalAuthorizedKey(pub))),
			Role:        r,
		}
		if *apps != "" {
			k.Apps = strings.Split(*apps, ",")
		}
		if err := st.AddKey(ctx, k); err != nil {
			return err
		}
		scope := ""
		if len(k.Apps) > 0 {
			scope = " of " + strings.Join(k.Apps, ",")
		}
		keyEvent(ctx, st, stderr, "added key %s (%s%s)", name, k.Role, scope)
		fmt.Fprintf(stdout, "added key %s (%s, %s)\n", name, k.Role, k.Fingerprint)
	case "list":
		ks, err := st.Keys(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tROLE\tAPPS\tFINGERPRINT")
		for _, k := range ks {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", k.Name, k.Role, strings.Join(k.Apps, ","), k.Fingerprint)
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

// keyEvent records a key change made on the server, as the daemon's
// keys:add and keys:remove do; a failure to record does not undo it.
func keyEvent(ctx context.Context, st *store.Store, stderr io.Writer, format string, a ...any) {
	e := store.Event{Kind: "key", Actor: gitserver.LocalIdentity.Name, Message: fmt.Sprintf(format, a...)}
	if err := st.AddEvent(ctx, e); err != nil {
		fmt.Fprintf(stderr, "hop3: record event: %v\n", err)
	}
}
