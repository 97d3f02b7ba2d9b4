package isolation

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"golang.org/x/sys/unix"
)

// chownTree gives every entry of the tree at path to uid:gid and clears the
// mode bits in clear (which uses Go's fs.FileMode bits only for the
// permission part; set-id bits are given as their kernel values).
//
// The walk goes through directory descriptors opened with O_NOFOLLOW and
// changes each entry through a descriptor of its own, so a process of the
// app that swaps a directory for a symbolic link during the walk cannot
// make it change anything outside the tree.
func chownTree(path string, uid, gid int, clear fs.FileMode) error {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	return walkFD(fd, path, uid, gid, uint32(clear), 0)
}

const maxDepth = 256

func walkFD(fd int, name string, uid, gid int, clear uint32, depth int) error {
	dir := os.NewFile(uintptr(fd), name)
	defer dir.Close()
	if depth > maxDepth {
		return fmt.Errorf("%s: tree deeper than %d", name, maxDepth)
	}
	if err := fixFD(fd, uid, gid, clear); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	for {
		names, err := dir.Readdirnames(256)
		for _, n := range names {
			if err := walkEntry(fd, name, n, uid, gid, clear, depth); err != nil {
				return err
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
}

func walkEntry(dirfd int, dirName, n string, uid, gid int, clear uint32, depth int) error {
	full := dirName + "/" + n
	var st unix.Stat_t
	if err := unix.Fstatat(dirfd, n, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return fmt.Errorf("%s: %w", full, err)
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		sub, err := unix.Openat(dirfd, n, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("%s: %w", full, err)
		}
		return walkFD(sub, full, uid, gid, clear, depth+1)
	case unix.S_IFREG:
		f, err := unix.Openat(dirfd, n, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
		if err != nil {
			if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOENT) {
				return nil // swapped for a link meanwhile: not ours to follow
			}
			return fmt.Errorf("%s: %w", full, err)
		}
		defer unix.Close(f)
		if err := fixFD(f, uid, gid, clear); err != nil {
			return fmt.Errorf("%s: %w", full, err)
		}
		return nil
	default:
		// Links, sockets and pipes: owner only, never followed.
		if err := unix.Fchownat(dirfd, n, uid, gid, unix.AT_SYMLINK_NOFOLLOW); err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("%s: %w", full, err)
		}
		return nil
	}
}

// fixFD sets the owner of an open file and clears mode bits. The mode is
// set after the owner: chown may itself drop set-id bits, and chmod after it
// makes sure they stay dropped.
func fixFD(fd, uid, gid int, clear uint32) error {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	if int(st.Uid) != uid || int(st.Gid) != gid {
		if err := unix.Fchown(fd, uid, gid); err != nil {
			return err
		}
	}
	if clear == 0 {
		return nil
	}
	// Go's fs.ModeSetuid and friends are not the kernel's bits: the caller
	// passes kernel values for those.
	mode := st.Mode & 0o7777
	if nm := mode &^ clear; nm != mode {
		return unix.Fchmod(fd, nm)
	}
	return nil
}
