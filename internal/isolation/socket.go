package isolation

import (
	"fmt"
	"os"

	"hop3/runtime/supervisor"
)

// SocketMode is the mode of an app's served socket: Caddy connects through
// its group (Granian's is made so through GRANIAN_UDS_PERMISSIONS).
const SocketMode os.FileMode = 0o660

// Socket gives a socket hop3 bound on an app's behalf in the app's socket
// directory the owner and mode of the app's own served sockets: the app's,
// group Caddy's, 0660; hop3's, 0660, with isolation off.
func (p Policy) Socket(path string, u *supervisor.Credential) error {
	if p.On && u != nil {
		if err := os.Lchown(path, int(u.UID), int(p.Base)); err != nil {
			return fmt.Errorf("give socket %s to uid %d: %w", path, u.UID, err)
		}
	}
	if err := os.Chmod(path, SocketMode); err != nil {
		return fmt.Errorf("chmod socket %s: %w", path, err)
	}
	return nil
}
