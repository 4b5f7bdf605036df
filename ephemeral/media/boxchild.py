"""Inside the box: mount the job tmpfs, set rlimits, drop to the job uid and exec the parser."""

# Run as `python -I -m ephemeral.media.boxchild [options] -- argv...` with an empty environment.
# A wrapper instead of preexec_fn because preexec_fn is unsafe once the parent has threads
# (boto3's pool, executors), and because the mount must happen inside the new namespace.

from __future__ import annotations

import argparse
import ctypes
import os
import resource
import signal
import sys
from typing import NoReturn

CHILD_ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
EXIT_SETUP_FAILED = 125  # like env(1) and unshare(1): the box itself could not be built

_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_NOEXEC, _MS_BIND = 1, 2, 4, 8, 4096
_PR_SET_PDEATHSIG = 1
_PR_SET_DUMPABLE = 4
_PR_CAPBSET_DROP = 24
_PR_SET_NO_NEW_PRIVS = 38


def _parse(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    if "--" not in argv or argv.index("--") == len(argv) - 1:
        raise SystemExit("boxchild: usage: [options] -- argv...")
    split = argv.index("--")
    parser = argparse.ArgumentParser(prog="boxchild")
    parser.add_argument("--dir", required=True)
    parser.add_argument("--cpu", type=int, required=True)
    parser.add_argument("--as", dest="address_space", type=int, required=True)
    parser.add_argument("--fsize", type=int, required=True)
    parser.add_argument("--nofile", type=int, required=True)
    parser.add_argument("--uid", type=int)
    parser.add_argument("--gid", type=int)
    parser.add_argument("--tmpfs", type=int, help="mount a tmpfs of this size over --dir")
    parser.add_argument("--pid1", action="store_true", help="we are init of a new pid namespace")
    parser.add_argument("--hide", action="append", default=[], help="cover this path")
    parser.add_argument("--status-fd", type=int, help="write the target's exit status here")
    return parser.parse_args(argv[:split]), argv[split + 1 :]


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _check(rc: int, what: str) -> None:
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _mount_tmpfs(path: str, size: int, uid: int | None, gid: int | None) -> None:
    libc = _libc()
    libc.mount.argtypes = [ctypes.c_char_p] * 3 + [ctypes.c_ulong, ctypes.c_char_p]
    opts = f"size={size},mode=0700"
    if uid is not None and gid is not None:
        opts += f",uid={uid},gid={gid}"
    flags = _MS_NOSUID | _MS_NODEV | _MS_NOEXEC
    _check(libc.mount(b"tmpfs", path.encode(), b"tmpfs", flags, opts.encode()), "mount tmpfs")


def _hide(path: str) -> None:
    """Cover a directory with an empty read-only tmpfs, a file with /dev/null (this namespace
    only): what the service keeps on disk is out of the parser's sight."""
    if not os.path.exists(path):
        return
    libc = _libc()
    libc.mount.argtypes = [ctypes.c_char_p] * 3 + [ctypes.c_ulong, ctypes.c_char_p]
    if os.path.isdir(path):
        flags = _MS_RDONLY | _MS_NOSUID | _MS_NODEV | _MS_NOEXEC
        rc = libc.mount(b"tmpfs", path.encode(), b"tmpfs", flags, b"size=4k,mode=000")
    else:
        rc = libc.mount(b"/dev/null", path.encode(), None, _MS_BIND, None)
    _check(rc, f"hide {path}")


def harden_process() -> None:
    """For the worker and API processes, at start: no core dumps, and not dumpable, so that a
    boxed child running as the same uid (the non-root fallback) cannot read our memory or
    environment through /proc. Lives here, next to the other prctl calls."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    _check(_libc().prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0), "prctl(SET_DUMPABLE)")


def _close_extra_fds() -> None:
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd > 2:
            try:
                os.close(fd)
            except OSError:
                pass  # the fd of the listdir itself, already gone


def _drop_capabilities() -> None:
    """Empty the bounding set, so a child that must stay root still execs with no capability.

    It stays root when the job uid cannot reach our interpreter (see box.drops_privileges);
    then it cannot remount, reconfigure the namespace, or bypass file permissions.
    """
    libc = _libc()
    with open("/proc/sys/kernel/cap_last_cap") as f:
        last = int(f.read())
    for cap in range(last + 1):
        _check(libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0), "prctl(CAPBSET_DROP)")


def _set_limit(which: int, soft: int, hard: int) -> None:
    # Without root a hard limit cannot be raised: where the host's is lower, it is the limit.
    _, current = resource.getrlimit(which)
    if current != resource.RLIM_INFINITY:
        soft, hard = min(soft, current), min(hard, current)
    resource.setrlimit(which, (soft, hard))


def _become_target(opts: argparse.Namespace, target: list[str]) -> NoReturn:
    _close_extra_fds()
    # Hard limits too, and before dropping privileges, so the parser cannot raise them again.
    _set_limit(resource.RLIMIT_CPU, opts.cpu, opts.cpu + 1)  # SIGXCPU, a second later SIGKILL
    _set_limit(resource.RLIMIT_AS, opts.address_space, opts.address_space)
    _set_limit(resource.RLIMIT_FSIZE, opts.fsize, opts.fsize)
    _set_limit(resource.RLIMIT_NOFILE, opts.nofile, opts.nofile)
    _set_limit(resource.RLIMIT_CORE, 0, 0)
    _check(_libc().prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(NO_NEW_PRIVS)")
    if os.geteuid() == 0:
        _drop_capabilities()
    if opts.uid is not None and opts.gid is not None:
        os.setgroups([])
        os.setgid(opts.gid)
        os.setuid(opts.uid)
        # A credential change clears the parent-death signal setpriv gave us: set it again, so
        # a worker killed mid-job takes its parser with it.
        parent = os.getppid()
        _check(_libc().prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "prctl(PDEATHSIG)")
        if os.getppid() != parent:
            os._exit(1)
    # Python ignores these two at start-up and ignored signals survive exec; the parser
    # should die of them as any program would.
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
    os.execvpe(target[0], target, CHILD_ENV)  # noqa: S606 - argv only, never a shell


def _supervise(opts: argparse.Namespace, target: list[str]) -> NoReturn:
    """Init of the pid namespace: run the target, reap orphans, report, and leave.

    When init exits the kernel kills everything left in the namespace, even processes that
    escaped the process group with setsid(), so nothing the parser started outlives the job.
    """
    pid = os.fork()
    if pid == 0:
        try:
            _become_target(opts, target)
        except BaseException as exc:  # report anything, then never return into the fork
            print(f"boxchild: {exc}", file=sys.stderr)
        os._exit(EXIT_SETUP_FAILED)
    while True:
        reaped, status = os.waitpid(-1, 0)
        if reaped == pid:
            break
    code = os.waitstatus_to_exitcode(status)
    if opts.status_fd is not None:
        # unshare(1) cannot pass a signal death on (it exits 1), hence a side channel that
        # the target never holds.
        os.write(opts.status_fd, f"{code}\n".encode())
    os._exit(code if code >= 0 else 128 - code)


def main(argv: list[str]) -> NoReturn:
    opts, target = _parse(argv)
    try:
        if opts.tmpfs is not None:
            _mount_tmpfs(opts.dir, opts.tmpfs, opts.uid, opts.gid)
        for path in opts.hide:
            _hide(path)
        os.chdir(opts.dir)
        if opts.pid1:
            _supervise(opts, target)
        _become_target(opts, target)
    except OSError as exc:
        print(f"boxchild: {exc}", file=sys.stderr)
        os._exit(EXIT_SETUP_FAILED)


if __name__ == "__main__":
    main(sys.argv[1:])
