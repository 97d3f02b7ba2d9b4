# hop3's Granian launcher for a wsgi entry with one worker.
#
# Granian always runs a manager process that binds the socket and forks its
# workers. hop3 already supervises the process (restarts it with backoff when
# it dies, and Caddy retries dial errors meanwhile), so for one worker the
# manager only costs memory: this runs Granian's command line unchanged
# (same flags, same GRANIAN_* variables) but serves the one worker in this
# process. Anything unexpected -- another Granian version, a missing
# internal, more than one worker -- falls back to Granian's own command line.
import os
import sys


def _fallback(why):
    if why:
        print(f"hop3: running Granian's manager and workers: {why}", file=sys.stderr, flush=True)
    _granian_cli()


def _granian_cli():
    # As Granian's own `granian` command runs: GRANIAN_* variables are flags.
    import granian.cli

    granian.cli.cli(auto_envvar_prefix="GRANIAN")


# Methods of Granian's process server this relies on; the attributes are
# set per instance, so they are checked when it serves.
_INTERNALS = ("_init_shared_socket", "_start_ipc", "_call_hooks", "_spawn_worker", "_serve")
_ATTRIBUTES = ("_env_loader", "env_files", "hooks_startup", "hooks_shutdown", "workers")


def _one_process_server():
    """Returns the one-process server class, or why it cannot be used."""
    import granian
    import granian.server

    want = os.environ.pop("HOP3_GRANIAN_VERSION", "")
    have = getattr(granian, "__version__", "")
    if not want or have != want:
        return None, f"Granian {have or '(unknown version)'} is not {want or 'the version hop3 installs'}"
    try:
        from granian.server import mp
    except ImportError as e:
        return None, f"granian.server.mp is missing ({e})"
    base = getattr(mp, "MPServer", None)
    if base is None or granian.server.Server is not base:
        return None, "Granian does not run workers as processes here"
    missing = [n for n in _INTERNALS if not hasattr(base, n)]
    if missing:
        return None, "Granian lacks " + ", ".join(missing)

    class OneProcess(base):
        def _serve(self, spawn_target, target_loader):
            missing = [n for n in _ATTRIBUTES if not hasattr(self, n)]
            if missing:
                print(f"hop3: running Granian's manager and workers: Granian lacks {', '.join(missing)}", file=sys.stderr, flush=True)
                return super()._serve(spawn_target, target_loader)
            if self.workers != 1:
                return super()._serve(spawn_target, target_loader)
            if getattr(self, "workers_lifetime", None) or getattr(self, "workers_rss", None):
                print("hop3: running Granian's manager and workers: respawning by lifetime or memory needs the manager", file=sys.stderr, flush=True)
                return super()._serve(spawn_target, target_loader)
            self._env_loader(self.env_files)
            # The app is imported before the socket exists, so a connect
            # that succeeds means a worker that can answer.
            callback = target_loader()
            self._init_shared_socket()
            self._start_ipc()
            self._call_hooks(self.hooks_startup)
            wrk = self._spawn_worker(idx=0, target=spawn_target, callback_loader=lambda: callback)
            print(f"hop3: serving Granian's worker-1 in this process (PID {os.getpid()})", file=sys.stderr, flush=True)
            # The worker's own signal handling applies: SIGTERM stops it
            # accepting and lets the requests in flight finish.
            wrk.inner._target(*wrk.inner._args)
            self._call_hooks(self.hooks_shutdown)

    return OneProcess, ""


def main():
    sys.argv[0] = "granian"
    try:
        server, why = _one_process_server()
    except Exception as e:  # an unexpected Granian must still serve
        server, why = None, f"{type(e).__name__}: {e}"
    if server is None:
        return _fallback(why)
    import granian.cli
    import granian.server

    granian.server.Server = server
    granian.cli.Server = server
    _granian_cli()


if __name__ == "__main__":
    main()
