package isolation

import (
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"

	"hop3/runtime/supervisor"
)

// SocketMode is the mode of an app's served socket: Caddy connects through
// its group (Granian's is made so through GRANIAN_UDS_PERMISSIONS).
const SocketMode os.FileMode = 0o660

// Socket gives a socket hop3 bound on an app's behalf in the app's socket
// directory the owner and mode of the app's own served sockets: the app's,
// group Caddy's, 0660; hop3's, 0660, with isolation off. The directory is
// the app's: whatever stands at path is opened without following a link
// and changed only if it is a socket, so an app that swaps in a link to
// another file meanwhile changes nothing.
func (p Policy) Socket(path string, u *supervisor.Credential) error {
	fd, err := unix.Open(path, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open socket %s: %w", path, err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("stat socket %s: %w", path, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFSOCK {
		return fmt.Errorf("socket %s: something else stands there", path)
	}
	if p.On && u != nil {
		if err := unix.Fchownat(fd, "", int(u.UID), int(p.Base), unix.AT_EMPTY_PATH); err != nil {
			return fmt.Errorf("give socket %s to uid %d: %w", path, u.UID, err)
		}
	}
	// A descriptor opened with O_PATH takes no fchmod; its /proc name
	// reaches the inode it holds, whatever path names now.
	if err := os.Chmod("/proc/self/fd/"+strconv.Itoa(fd), SocketMode); err != nil {
		return fmt.Errorf("chmod socket %s: %w", path, err)
	}
	return nil
}
