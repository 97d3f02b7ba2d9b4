// Package staticserve serves an app's static files (STATIC_PATHS and
// static: sites) over HTTP on a unix socket, for Caddy to proxy to.
//
// hop3 runs it as one of the app's own processes (`hop3 serve-static`), so
// it reads files with the app's rights, never with hop3's or Caddy's. And
// it never follows a symlink out of the directory it serves: every request
// opens the mount's root anew (the app's current release through its link,
// or its DATA_DIR), resolves the served directory beneath that root, then
// the requested file beneath that directory, each with openat2(2) and
// RESOLVE_BENEATH|RESOLVE_NO_MAGICLINKS. The kernel refuses (EXDEV) any
// walk that would leave the directory: "..", an absolute symlink, or a
// relative one that climbs out, whenever it was created, including after
// the route was made or between two requests. A check of the path before
// opening it could not hold: the app can change its files between the
// check and the open.
package staticserve

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Mount serves the files of Dir, a directory beneath Root, under a URL
// prefix.
type Mount struct {
	// Prefix is the URL path the files appear under, e.g. "/static"
	// (/static/app.css is Dir/app.css); "/" serves a whole site.
	Prefix string `json:"prefix"`
	// Root is an absolute directory hop3 controls, such as the app's
	// current release link or its DATA_DIR. It is opened anew for every
	// request, following symlinks, so a deploy that moves the link is seen
	// at once.
	Root string `json:"root"`
	// Dir is the served directory, relative to Root ("." for Root itself).
	// Nothing outside it is ever served, whatever its symlinks say.
	Dir string `json:"dir"`
	// CatchAll, relative to Dir, answers paths that name no file (a
	// single-page app's client-side routes), e.g. "index.html".
	CatchAll string `json:"catch_all,omitempty"`
	// Script makes the mount a PHP document root whose front controller
	// (relative to Dir, e.g. "index.php") runs for paths that name no
	// file. Such a mount never serves a .php file: a path that names a
	// script, a directory holding index.php, or nothing at all is answered
	// 404 with ScriptHeader, the URL path of the script php-fpm should run,
	// as Caddy's php_fastcgi picks it (try_files {path} {path}/index.php
	// index.php).
	Script string `json:"script,omitempty"`
}

// ScriptHeader names, in a 404 of a Script mount, the URL path the request
// is to be rewritten to and handed to php-fpm. Caddy reads it and never
// passes it on.
const ScriptHeader = "X-Hop3-Script"

// scriptExt marks the files a Script mount runs instead of serving; like
// Caddy's split_path, it is matched without regard to case.
const scriptExt = ".php"

// hidden names are never served, in any directory: a static directory
// built from a repository may still hold them.
var hidden = []string{".git", ".env"}

// resolve confines every lookup: no step may leave the directory the
// lookup starts from, and /proc's magic links are refused too.
const resolve = unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS

// Handler answers GET and HEAD requests from its mounts.
type Handler struct {
	mounts []Mount // longest prefix first
}

var _ http.Handler = (*Handler)(nil)

// New checks the mounts and returns their handler. It fails where the
// kernel has no openat2 (Linux before 5.6): serving without confinement
// is never an option.
func New(mounts []Mount) (*Handler, error) {
	if len(mounts) == 0 {
		return nil, errors.New("static files: no mounts")
	}
	seen := map[string]bool{}
	for _, m := range mounts {
		if err := m.validate(); err != nil {
			return nil, err
		}
		if seen[m.Prefix] {
			return nil, fmt.Errorf("static files: prefix %s listed twice", m.Prefix)
		}
		seen[m.Prefix] = true
	}
	fd, err := openBeneath(unix.AT_FDCWD, ".", unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		return nil, fmt.Errorf("static files: openat2 unavailable (Linux 5.6 or later is needed to serve files without following symlinks out of their directory): %w", err)
	}
	unix.Close(fd)
	ms := slices.Clone(mounts)
	slices.SortStableFunc(ms, func(a, b Mount) int { return len(b.Prefix) - len(a.Prefix) })
	return &Handler{mounts: ms}, nil
}

func (m Mount) validate() error {
	if m.Prefix != "/" && (!strings.HasPrefix(m.Prefix, "/") || path.Clean(m.Prefix) != m.Prefix) {
		return fmt.Errorf("static files: prefix %q must be / or a clean absolute URL path", m.Prefix)
	}
	if !filepath.IsAbs(m.Root) || filepath.Clean(m.Root) != m.Root {
		return fmt.Errorf("static files: root %q must be absolute and clean", m.Root)
	}
	if !relInside(m.Dir) {
		return fmt.Errorf("static files: dir %q must be a clean relative path inside its root", m.Dir)
	}
	if m.CatchAll != "" && (!relInside(m.CatchAll) || m.CatchAll == ".") {
		return fmt.Errorf("static files: catch-all file %q must be a clean relative path inside the served dir", m.CatchAll)
	}
	if m.Script != "" && (!relInside(m.Script) || !strings.HasSuffix(strings.ToLower(m.Script), scriptExt)) {
		return fmt.Errorf("static files: script %q must be a clean relative path to a .php file inside the served dir", m.Script)
	}
	if m.Script != "" && m.CatchAll != "" {
		return errors.New("static files: a mount has either a catch-all file or a script")
	}
	return nil
}

// relInside reports whether p is a clean relative path that does not
// climb out lexically.
func relInside(p string) bool {
	return !filepath.IsAbs(p) && filepath.Clean(p) == p && p != ".." && !strings.HasPrefix(p, "../")
}

// match finds the mount serving urlPath and the path relative to its dir.
func (h *Handler) match(urlPath string) (Mount, string, bool) {
	for _, m := range h.mounts {
		if m.Prefix == "/" {
			return m, urlPath, true
		}
		if rest, ok := strings.CutPrefix(urlPath, m.Prefix); ok && (rest == "" || rest[0] == '/') {
			return m, rest, true
		}
	}
	return Mount{}, "", false
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "405 method not allowed", http.StatusMethodNotAllowed)
		return
	}
	m, rest, ok := h.match(r.URL.Path)
	if !ok {
		http.NotFound(w, r)
		return
	}
	// Lexical cleaning keeps a request's ".." inside the served dir; the
	// kernel keeps symlinks there.
	rel := strings.TrimPrefix(path.Clean("/"+rest), "/")
	if strings.IndexByte(rel, 0) >= 0 {
		http.NotFound(w, r)
		return
	}
	for _, part := range strings.Split(rel, "/") {
		if slices.Contains(hidden, part) {
			http.NotFound(w, r)
			return
		}
	}
	if rel == "" {
		rel = "."
	}
	root, err := unix.Open(m.Root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		httpError(w, r, err)
		return
	}
	defer unix.Close(root)
	dir, err := openBeneath(root, m.Dir, unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		httpError(w, r, err)
		return
	}
	defer unix.Close(dir)

	if m.Script != "" {
		serveScripted(w, r, m, dir, rel)
		return
	}
	f, fi, err := openFile(dir, rel)
	if err == nil && fi.IsDir() {
		f.Close()
		if !strings.HasSuffix(r.URL.Path, "/") {
			redirectToDir(w, r)
			return
		}
		f, fi, err = openFile(dir, path.Join(rel, "index.html"))
	}
	if err == nil && !fi.Mode().IsRegular() {
		f.Close()
		err = unix.ENOENT
	}
	if err != nil && m.CatchAll != "" && notFound(err) {
		f, fi, err = openFile(dir, m.CatchAll)
		if err == nil && !fi.Mode().IsRegular() {
			f.Close()
			err = unix.ENOENT
		}
	}
	if err != nil {
		httpError(w, r, err)
		return
	}
	defer f.Close()
	w.Header().Set("Etag", etag(fi))
	http.ServeContent(w, r, fi.Name(), fi.ModTime(), f)
}

// serveScripted answers a request to a Script mount: a static file, or
// which script runs instead (see Mount.Script).
func serveScripted(w http.ResponseWriter, r *http.Request, m Mount, dir int, rel string) {
	front := "/" + m.Script
	if end := scriptEnd(rel); end >= 0 {
		// /index.php/extra runs index.php, with /extra as PATH_INFO.
		if isRegular(dir, rel[:end]) {
			runScript(w, r.URL.EscapedPath())
		} else {
			runScript(w, front)
		}
		return
	}
	f, fi, err := openFile(dir, rel)
	if err == nil && fi.IsDir() {
		f.Close()
		if !strings.HasSuffix(r.URL.Path, "/") {
			redirectToDir(w, r)
			return
		}
		if isRegular(dir, path.Join(rel, "index.php")) {
			runScript(w, r.URL.EscapedPath()+"index.php")
			return
		}
		f, fi, err = openFile(dir, path.Join(rel, "index.html"))
	}
	if err == nil && !fi.Mode().IsRegular() {
		f.Close()
		err = unix.ENOENT
	}
	switch {
	case err == nil:
		defer f.Close()
		w.Header().Set("Etag", etag(fi))
		http.ServeContent(w, r, fi.Name(), fi.ModTime(), f)
	case notFound(err), errors.Is(err, unix.EXDEV), errors.Is(err, unix.ELOOP):
		runScript(w, front)
	default:
		httpError(w, r, err)
	}
}

// redirectToDir sends a request for a directory to its path with a
// slash, as Caddy's file server does: relative links in the index then
// resolve against the directory.
func redirectToDir(w http.ResponseWriter, r *http.Request) {
	u := *r.URL
	u.Path += "/"
	http.Redirect(w, r, u.RequestURI(), http.StatusPermanentRedirect)
}

// scriptEnd returns the length of the leading part of rel that names a
// script (its first element ending in .php), or -1.
func scriptEnd(rel string) int {
	end := 0
	for part := range strings.SplitSeq(rel, "/") {
		end += len(part)
		if strings.HasSuffix(strings.ToLower(part), scriptExt) {
			return end
		}
		end++
	}
	return -1
}

// runScript answers that the request is php-fpm's, at script.
func runScript(w http.ResponseWriter, script string) {
	w.Header().Set(ScriptHeader, script)
	w.WriteHeader(http.StatusNotFound)
}

// isRegular reports whether name beneath dir is a regular file.
func isRegular(dir int, name string) bool {
	f, fi, err := openFile(dir, name)
	if err != nil {
		return false
	}
	f.Close()
	return fi.Mode().IsRegular()
}

// openFile opens name beneath dir for reading. O_NONBLOCK keeps a FIFO
// the app left there from blocking the request.
func openFile(dir int, name string) (*os.File, fs.FileInfo, error) {
	fd, err := openBeneath(dir, name, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOCTTY)
	if err != nil {
		return nil, nil, err
	}
	f := os.NewFile(uintptr(fd), path.Base(name))
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, fi, nil
}

// openBeneath is openat2 confined to dir. EAGAIN means a rename raced
// with the walk and the kernel could not prove it stayed beneath dir; a
// retry usually succeeds.
func openBeneath(dir int, name string, flags int) (int, error) {
	how := unix.OpenHow{Flags: uint64(flags) | unix.O_CLOEXEC, Resolve: resolve}
	for i := 0; ; i++ {
		fd, err := unix.Openat2(dir, name, &how)
		if err == unix.EINTR || (err == unix.EAGAIN && i < 8) {
			continue
		}
		return fd, err
	}
}

func notFound(err error) bool {
	return errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR)
}

// httpError answers a failed open. A path that leaves the directory
// (EXDEV) or loops is answered as missing: the answer must not tell what
// lies outside.
func httpError(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case notFound(err), errors.Is(err, unix.EXDEV), errors.Is(err, unix.ELOOP), errors.Is(err, unix.ENAMETOOLONG):
		http.NotFound(w, r)
	case errors.Is(err, unix.EACCES), errors.Is(err, unix.EPERM):
		http.Error(w, "403 forbidden", http.StatusForbidden)
	default:
		http.Error(w, "500 internal server error", http.StatusInternalServerError)
	}
}

// etag is the file's validator, in the form Caddy's file server uses.
func etag(fi fs.FileInfo) string {
	return `"` + strconv.FormatInt(fi.ModTime().UnixNano(), 36) + strconv.FormatInt(fi.Size(), 36) + `"`
}

// Serve answers on a unix socket at sock until ctx ends, then lets
// requests in flight finish (whoever runs it bounds that, with SIGKILL).
// The socket is made group-writable: Caddy connects to it through its
// group.
func Serve(ctx context.Context, sock string, h http.Handler) error {
	ln, err := net.Listen("unix", sock)
	if err != nil {
		return fmt.Errorf("serve static files: %w", err)
	}
	if err := os.Chmod(sock, 0o660); err != nil {
		ln.Close()
		return fmt.Errorf("serve static files: %w", err)
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 30 * time.Second,
		// Caddy keeps connections to upstreams open for reuse.
		IdleTimeout: 5 * time.Minute,
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return fmt.Errorf("serve static files: %w", err)
	case <-ctx.Done():
	}
	if err := srv.Shutdown(context.Background()); err != nil {
		return fmt.Errorf("stop serving static files: %w", err)
	}
	return nil
}
