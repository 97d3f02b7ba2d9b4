package sandbox

import "path/filepath"

// System is what every app process needs of the machine, found by running
// Python with Granian, Node.js, Go binaries (with and without cgo), a JVM
// and /bin/sh confined:
//   - programs and libraries: /usr and the merged-/usr links (read,
//     execute);
//   - of /etc, only what libc, TLS and the runtimes read: users and groups,
//     name service and DNS, CA certificates, time zone, locale, the dynamic
//     linker's cache, shell start-up files, and the configuration of
//     Debian's JDKs (/etc/java-N-openjdk: java.security, which every JVM
//     reads through a link from /usr/lib/jvm). Not /etc as a whole: it holds
//     the shadow file, SSH host keys and hop3's own settings. Landlock
//     grants a file, not its name: a file of /etc replaced while an app
//     runs (a resolv.conf rewritten by a DHCP client) is closed to it until
//     it restarts, except a resolv.conf that links into /run/systemd/resolve
//     or /run/resolvconf, which are granted whole;
//   - of /proc, the system-wide files (cpuinfo, meminfo, stat, sys) and the
//     process's own /proc/PID. Not /proc as a whole: Landlock lets a
//     confined process read /proc/PID/environ of a process outside its
//     sandbox, which holds another app's secrets. A child's /proc/self is
//     therefore closed, and ps does not work; no runtime tried needs it;
//   - of /sys, the CPU and memory topology and cgroup limits that size
//     worker pools;
//   - devices: /dev/null, /dev/zero, /dev/full, /dev/tty (an ssh -t
//     session's own terminal) and /dev/shm (POSIX semaphores: Python's
//     multiprocessing locks) read-write; /dev/random and /dev/urandom
//     read-only.
func System() Policy {
	p := Policy{
		ReadExec: []string{"/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"},
		ReadOnly: []string{
			"/etc/passwd", "/etc/group", "/etc/nsswitch.conf", "/etc/host.conf",
			"/etc/hosts", "/etc/hostname", "/etc/resolv.conf", "/etc/gai.conf", "/etc/services", "/etc/protocols",
			"/run/systemd/resolve", "/run/resolvconf", // where /etc/resolv.conf links to, when it does
			"/etc/ssl/certs", "/etc/ssl/openssl.cnf", "/etc/ca-certificates", "/etc/ca-certificates.conf",
			"/etc/pki/tls/certs", "/etc/pki/ca-trust", "/etc/crypto-policies",
			"/etc/localtime", "/etc/timezone", "/etc/locale.alias", "/etc/locale.conf", "/etc/default/locale",
			"/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d",
			"/etc/alternatives", "/etc/mime.types", "/etc/os-release", "/etc/debian_version",
			"/etc/terminfo", "/etc/inputrc", "/etc/profile", "/etc/profile.d", "/etc/bash.bashrc", "/etc/environment",
			"/etc/python3", "/etc/npmrc", "/etc/magic", "/etc/mailcap",
			"/proc/self", "/proc/cpuinfo", "/proc/meminfo", "/proc/stat", "/proc/loadavg", "/proc/uptime",
			"/proc/version", "/proc/filesystems", "/proc/sys",
			"/sys/devices/system/cpu", "/sys/devices/system/node", "/sys/fs/cgroup",
			"/sys/kernel/mm/transparent_hugepage",
			"/dev/random", "/dev/urandom",
		},
		ReadWrite: []string{"/dev/null", "/dev/zero", "/dev/full", "/dev/tty", "/dev/shm"},
	}
	jdks, _ := filepath.Glob("/etc/java-*-openjdk")
	p.ReadOnly = append(p.ReadOnly, jdks...)
	return p
}
