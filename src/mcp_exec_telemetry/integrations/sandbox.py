"""Where agent-written code runs: a bubblewrap sandbox (or a plain process), started by a small fork server.

Two isolations, chosen per :class:`~.executor.CodeExecutor`:

* ``"bwrap"`` (the default when bubblewrap works on the machine) is a **security boundary**. The code
  runs under `bubblewrap <https://github.com/containers/bubblewrap>`_ in new user, PID, network, IPC
  and UTS namespaces with every capability dropped: the root file system is mounted read-only, ``/tmp``,
  ``/dev/shm`` and an empty ``/run`` are private, size-bounded tmpfs mounts, the run's work folder is
  the only other writable place (by default a size-bounded tmpfs too, holding the host's script and
  IPC door read-only), the host's Unix sockets are out of reach (``/run`` is empty, the
  others are masked, and a Landlock scope, where the kernel has one, keeps abstract sockets made
  outside the sandbox out of reach when the network is shared), ``/proc`` is a fresh
  one that shows only the sandbox's own processes (the agent's environment is out of reach), the
  session keyring is a new, empty one (the agent's keys are out of reach), and there
  is no network unless the caller allows it (a loopback of its own; when the agent runs as root the
  fork server keeps these network namespaces, each held by one sandbox at a time and given to the
  next once every process of the last one is gone, because making and freeing one costs more than
  the rest of a set-up). ``--die-with-parent`` and the PID namespace make the end
  of the run final: when the code's main process exits, or is killed at the timeout, every process it
  started dies with it, whatever it did with its session, its parent or its output.
* ``"process"`` runs the code as a plain child process in a session of its own, with the same resource
  limits and a minimal environment. It is **not** a security boundary: the code can read what the
  agent's user can read, write where it can write, reach the network, and a grandchild that calls
  ``setsid()`` survives the timeout. It exists for machines without bubblewrap (macOS, locked-down
  containers) and warns loudly, once, when chosen by default.

Resource limits are the kernel's ``setrlimit`` limits, set just before the exec of the code (or of
the bubblewrap that runs it) and inherited by everything it starts: data segment (``RLIMIT_DATA``, which counts every private writable
mapping, so node's ``Buffer`` allocations and V8's heap are held too, unlike ``RLIMIT_AS`` which V8's
reservations make useless), CPU seconds, file size, and process count (``RLIMIT_NPROC``). The kernel
does not apply ``RLIMIT_NPROC`` to root, and ``RLIMIT_DATA`` holds each process apart; when the
agent runs as root and the ``pids`` and ``memory`` cgroup hierarchies are writable (v1 or v2), the run
gets cgroups of its own whose ``pids.max`` and memory limit hold all its processes together (a
process the kernel kills for the memory limit makes the run's ``exit_reason`` ``memory``).

Every run is started by the **fork server**, one small ``python -I -S`` process per agent process
(Linux; elsewhere :class:`DirectSpawner` starts ``"process"`` runs from the agent). It exists for the
memory figure: the kernel's peak resident size of a child (``ru_maxrss``) includes the size of the
parent it was forked from, so a sandbox started straight from a large agent would report the agent's
size; started from the fork server it reports the code's own peak (a run started fresh has the fork
server's size, about 8-10 MiB, as its floor; in a sandbox set up ahead the waiting shell is far
smaller than any interpreter). The fork server is a child subreaper, so the
sandbox's init, whose ``ru_maxrss`` holds the code's, is reaped there too. It measures each run
where it happens, from its start to the reaping of its exit, and reports the wait status and
``ru_maxrss``. When the agent runs as root it also holds a ``pids`` cgroup ready for the next run.

So that a run does not wait for its sandbox, :class:`~.executor.CodeExecutor` asks for the next
run's sandbox as a run starts (:meth:`ForkServer.prepare`), so that it is set up on the other core
while the code runs: bubblewrap sets it up and starts :data:`STARTER` (a shell) in it, which waits;
:meth:`ForkServer.go` sets the run's limits on the starter and hands it the run (environment and
command), which it execs. The run's time starts at the hand-over.
"""

from __future__ import annotations

import json
import logging
import os
import re
import resource
import shlex
import shutil
import signal
import select
import socket
import stat
import subprocess
import sys
import threading
import time
import warnings
from dataclasses import dataclass
from typing import Any, Sequence

__all__ = ["DirectSpawner", "ForkServer", "ISOLATIONS", "Limits", "STARTER", "SOCKET_TREES", "bwrap_command", "bwrap_path", "bwrap_problem", "default_isolation", "fork_server", "start_script"]

ISOLATIONS = ("bwrap", "process")
_log = logging.getLogger("mcp_exec_telemetry.sandbox")

_RLIMIT_CPU = resource.RLIMIT_CPU
_RLIMIT_FSIZE = resource.RLIMIT_FSIZE
_RLIMIT_DATA = resource.RLIMIT_DATA
_RLIMIT_CORE = resource.RLIMIT_CORE
_RLIMIT_NPROC = resource.RLIMIT_NPROC


@dataclass(frozen=True)
class Limits:
    """Resource limits of one run; ``0`` or ``None`` turns a limit off.

    ``memory_mb`` bounds the data segment (heap, ``mmap``-ed buffers) of each process and, where the
    agent runs as root with a writable memory cgroup, the memory of all the run's processes together
    (the kernel kills one when they pass it; ``exit_reason`` says ``memory``); ``cpu_time_s``
    the CPU seconds of each process (``SIGXCPU`` when passed); ``file_size_mb`` the size of any file
    written (``EFBIG``/``SIGXFSZ``); ``processes`` the number of processes (and threads) at once.
    """

    memory_mb: int | None = 512
    cpu_time_s: float | None = None
    file_size_mb: int | None = 64
    processes: int | None = 64

    @property
    def memory_bytes(self) -> int | None:
        """The memory limit in bytes (for a cgroup), or None."""
        return self.memory_mb << 20 if self.memory_mb else None

    def rlimits(self) -> list[tuple[int, int, int]]:
        out = [(_RLIMIT_CORE, 0, 0)]
        if self.memory_mb:
            out.append((_RLIMIT_DATA, self.memory_mb << 20, self.memory_mb << 20))
        if self.cpu_time_s:
            soft = max(1, int(-(-self.cpu_time_s // 1)))
            out.append((_RLIMIT_CPU, soft, soft + 1))  # SIGXCPU at soft, SIGKILL one second later
        if self.file_size_mb:
            out.append((_RLIMIT_FSIZE, self.file_size_mb << 20, self.file_size_mb << 20))
        if self.processes:
            out.append((_RLIMIT_NPROC, self.processes, self.processes))
        return out


# ---------------------------------------------------------------------------------------------
# bubblewrap


def bwrap_path() -> str | None:
    """The ``bwrap`` executable, or None when bubblewrap is not installed."""
    path = shutil.which("bwrap")
    if path is None and os.access("/usr/bin/bwrap", os.X_OK):
        path = "/usr/bin/bwrap"
    return path


# Where daemons keep their Unix sockets (docker, containerd, dbus, systemd, the user's session): the
# sandbox sees these trees empty. A Unix socket is reachable through a read-only mount, and one like
# /run/docker.sock is the host's root; only the work folder's IPC socket may be a door out.
SOCKET_TREES = ("/run", "/var/run")


def socket_trees() -> list[str]:
    """The :data:`SOCKET_TREES` that are real folders here (``/var/run`` is usually a link to ``/run``)."""
    return [tree for tree in SOCKET_TREES if os.path.isdir(tree) and not os.path.islink(tree)]


def hidden_trees() -> list[str]:
    """The host folders a sandbox sees empty: ``/tmp`` (its private one) and the socket trees."""
    return ["/tmp", *socket_trees()]


def under(path: str, trees: Sequence[str]) -> bool:
    """Whether ``path`` is one of ``trees`` or inside one."""
    return any(path == t or path.startswith(t.rstrip("/") + "/") for t in trees)


def host_unix_sockets(hidden: Sequence[str] = (), shown: Sequence[str] = ()) -> list[str]:
    """The host's bound Unix socket files outside the ``hidden`` trees (or inside folders ``shown``
    again within them), from ``/proc/net/unix``.

    These are the ones a sandbox would still see through its read-only root, so bubblewrap masks
    each with ``/dev/null``. Listed are the sockets bound in this network namespace that exist now:
    one bound later outside the hidden trees is not masked in sandboxes already set up, nor one
    bound by a process with a network namespace of its own (a container's). Most sockets of a host
    (and the executor's own doors) live under ``/run`` or ``/tmp``: those are passed over by name,
    and only the rest are resolved and checked.
    """
    try:
        with open("/proc/net/unix", "rb") as f:
            lines = f.read().split(b"\n")[1:]
    except OSError:
        return []
    skip = tuple(os.fsencode(t.rstrip("/") + "/") for t in (*hidden, *SOCKET_TREES, "/dev", "/proc", "/sys"))
    keep = tuple(os.fsencode(t.rstrip("/") + "/") for t in shown)
    found: set[bytes] = set()
    for line in lines:
        fields = line.split(None, 7)  # Num RefCount Protocol Flags Type St Inode Path
        if len(fields) == 8 and fields[7].startswith(b"/") and (not fields[7].startswith(skip) or (keep and fields[7].startswith(keep))):
            found.add(fields[7])
    out = []
    for raw in sorted(found):
        real = os.path.realpath(os.fsdecode(raw))
        if (under(real, hidden) and not under(real, shown)) or under(real, ("/dev", "/proc", "/sys")):
            continue
        try:
            if stat.S_ISSOCK(os.lstat(real).st_mode):
                out.append(real)
        except OSError:
            pass  # gone since it was listed
    return out


def bwrap_command(
    bwrap: str,
    argv: Sequence[str],
    workdir: str,
    *,
    allow_network: bool = False,
    tmp_size_mb: int | None = 64,
    read_only: Sequence[str] = (),
    info_fd: int | None = None,
    work_size_mb: int | None = None,
) -> list[str]:
    """The bubblewrap command line that runs ``argv`` with ``workdir`` as its only writable host folder.

    With ``work_size_mb``, the code's ``workdir`` is a tmpfs of that size instead, so that what it
    writes there is bounded too (the host's disk is not); the files already in the host's
    ``workdir`` (the code's script, the IPC door) are bound into it read-only, and the host may
    still rewrite them in place.

    ``/tmp`` and the folders daemons keep their sockets in (:data:`SOCKET_TREES`) are empty tmpfs
    mounts, and every other Unix socket the host has bound is masked, so the only socket the code
    can connect to is one in ``workdir`` (the executor's IPC door). ``read_only`` folders are bound
    again after those mounts, for inputs that live under them on the host (a generated SDK, an
    interpreter in a temporary venv). ``info_fd`` is where bubblewrap writes the host pid of the
    sandbox's init (the fork server reads it).
    """
    sockets = socket_trees()
    cmd = [
        bwrap,
        "--unshare-user", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
        "--die-with-parent", "--new-session", "--cap-drop", "ALL",
        "--ro-bind", "/", "/",
        "--dev", "/dev",
        "--proc", "/proc",
    ]
    if not allow_network:
        cmd.append("--unshare-net")
    if info_fd is not None:
        cmd += ["--info-fd", str(info_fd)]
    # The private /tmp and /dev/shm (POSIX semaphores and shared memory: Python's multiprocessing)
    # are the sandbox's writable memory-backed folders, each bounded; the rest of bubblewrap's /dev
    # is made read-only, since a tmpfs without a size takes the host's memory as long as the run.
    for tmp in ("/tmp", "/dev/shm"):
        if tmp_size_mb:
            cmd += ["--size", str(tmp_size_mb << 20)]
        cmd += ["--tmpfs", tmp]
    cmd += ["--remount-ro", "/dev"]
    for tree in sockets:
        cmd += ["--size", str(1 << 20), "--tmpfs", tree]
    resolv = os.path.realpath("/etc/resolv.conf")
    if allow_network and under(resolv, sockets) and os.path.isfile(resolv):
        read_only = [*read_only, resolv]  # systemd-resolved's file under /run: the network needs it
    for path in read_only:
        cmd += ["--ro-bind", path, path]
    for path in host_unix_sockets(["/tmp", *sockets], shown=read_only):  # after the binds that show them
        if not under(path, (workdir,)):
            cmd += ["--ro-bind", "/dev/null", path]
    if work_size_mb:
        cmd += ["--size", str(work_size_mb << 20), "--tmpfs", workdir]
        for name in sorted(os.listdir(workdir)):
            path = os.path.join(workdir, name)
            cmd += ["--ro-bind", path, path]  # a socket is still reached through a read-only bind
    else:
        cmd += ["--bind", workdir, workdir]
    cmd += ["--chdir", workdir, "--", *argv]
    return cmd


_probe_lock = threading.Lock()
_probe: dict[str, Any] = {}


def bwrap_problem(bwrap: str | None = None) -> str | None:
    """Why bubblewrap cannot run sandboxes here (not installed, user namespaces disabled ...), or None.

    Runs one empty sandbox with the executor's own options the first time it is asked.
    """
    if not _FORK_SERVER_WORKS:
        return "the sandbox needs Linux (epoll, pidfd_open)"
    bwrap = bwrap or bwrap_path()
    if bwrap is None:
        return "bubblewrap (bwrap) is not installed; install it with `apt-get install bubblewrap`"
    with _probe_lock:
        if bwrap not in _probe:
            import tempfile

            with tempfile.TemporaryDirectory(prefix="mcp-exec-probe-") as d:
                true = shutil.which("true") or "/bin/true"
                try:
                    done = subprocess.run(bwrap_command(bwrap, [true], d), capture_output=True, timeout=30)
                    _probe[bwrap] = None if done.returncode == 0 else f"{bwrap} cannot start a sandbox here: {done.stderr.decode(errors='replace').strip() or done.returncode}"
                except (OSError, subprocess.SubprocessError) as exc:
                    _probe[bwrap] = f"{bwrap} cannot start a sandbox here: {exc}"
        return _probe[bwrap]


_warned = False


def default_isolation() -> str:
    """``"bwrap"`` when bubblewrap works here; otherwise ``"process"``, with a loud warning once."""
    global _warned
    problem = bwrap_problem()
    if problem is None:
        return "bwrap"
    if not _warned:
        _warned = True
        message = (
            f"CodeExecutor runs code WITHOUT a sandbox (isolation='process'): {problem}. "
            "The code can read the agent's files, reach the network and outlive its timeout. "
            "Pass isolation='process' to choose this explicitly and silence this warning."
        )
        _log.warning(message)
        warnings.warn(message, RuntimeWarning, stacklevel=3)
    return "process"


# ---------------------------------------------------------------------------------------------
# cgroups (for root: the process count, where the kernel ignores RLIMIT_NPROC, and the memory of
# all the run's processes together, which RLIMIT_DATA bounds only one process at a time)

_CONTROLLERS = ("pids", "memory")


def _find_cgroup_roots() -> list[str]:
    """Folders for this agent process's run cgroups, one per writable hierarchy that holds the
    ``pids`` or ``memory`` controller (one folder for both under cgroup v2), or none.

    Only for root (everyone else gets ``RLIMIT_NPROC`` and ``RLIMIT_DATA`` alone). Folders left by
    agent processes that are gone are removed on the way.
    """
    if os.geteuid() != 0:
        return []
    v1: dict[str, str] = {}
    v2: list[str] = []
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                parts = line.split()
                fstype = parts[parts.index("-") + 1]
                if fstype == "cgroup":
                    for controller in _CONTROLLERS:
                        if controller in parts[-1].split(","):
                            v1.setdefault(controller, parts[4])
                elif fstype == "cgroup2":
                    v2.append(parts[4])
    except (OSError, ValueError, IndexError):
        return []
    roots: list[str] = []
    for mount in dict.fromkeys(v1.values()):
        root = _make_root(mount, None)
        if root is not None:
            roots.append(root)
    if not roots:
        for mount in v2:
            try:
                with open(os.path.join(mount, "cgroup.controllers")) as f:
                    wanted = [c for c in _CONTROLLERS if c in f.read().split()]
            except OSError:
                continue
            root = _make_root(mount, wanted) if wanted else None
            if root is not None:
                roots.append(root)
                break
    return roots


def _make_root(mount: str, v2_controllers: list[str] | None) -> str | None:
    """``mount``/mcp-exec-<pid>, with ``v2_controllers`` enabled for its children under cgroup v2."""
    try:
        if v2_controllers is not None:
            for controller in v2_controllers:
                with open(os.path.join(mount, "cgroup.subtree_control"), "w") as f:
                    f.write("+" + controller)
        for name in os.listdir(mount):  # leftovers of agent processes that are gone
            if name.startswith("mcp-exec-") and name[9:].isdigit() and not os.path.exists(f"/proc/{name[9:]}"):
                for sub in os.listdir(os.path.join(mount, name)):
                    if sub.startswith("run-"):
                        try:
                            os.rmdir(os.path.join(mount, name, sub))
                        except OSError:
                            pass
                try:
                    os.rmdir(os.path.join(mount, name))
                except OSError:
                    pass
        root = os.path.join(mount, f"mcp-exec-{os.getpid()}")
        os.makedirs(root, exist_ok=True)
        if v2_controllers is not None:
            for controller in v2_controllers:
                with open(os.path.join(root, "cgroup.subtree_control"), "w") as f:
                    f.write("+" + controller)
        return root
    except OSError:
        return None


# ---------------------------------------------------------------------------------------------
# The starter: the command of a sandbox set up ahead of its run

#: The command of a prepared sandbox: a POSIX shell (milliseconds to start, where a second Python
#: interpreter would cost as much as the code's own start) that says it is up on fd 5, then reads the
#: run from fd 4 and runs it: a script of :func:`start_script` that sets the environment and execs
#: the command, which keeps the starter's pid. The fork server has set the run's limits on the
#: starter by then (``prlimit``), so the command inherits them; nothing in the sandbox chooses them.
#: An empty script (a sandbox discarded unused) ends the starter.
STARTER = ("/bin/sh", "-c", "printf r >&5; exec 5>&-; . /dev/fd/4")

_SHELL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_ENV_COMMAND = "/usr/bin/env"


def start_script(argv: Sequence[str], env: dict[str, str]) -> str:
    """The shell script :data:`STARTER` runs: exactly ``env`` (nothing of the starter's own), then an
    exec of ``argv`` with fd 4 closed. Every word is quoted with :func:`shlex.quote`. A command that
    cannot be found fails with the fork server's own ``mcp-exec: cannot start`` line, as a run
    started without a sandbox set up ahead does."""
    command = " ".join(shlex.quote(arg) for arg in argv)
    lines = ["unset PATH PWD OLDPWD"]
    exportable = all(_SHELL_NAME.match(name) for name in env)
    if exportable:
        lines += [f"{name}={shlex.quote(value)}; export {name}" for name, value in env.items()]
    elif "PATH" in env:  # the command is looked up on the run's PATH; env(1) sets the rest below
        lines.append(f"PATH={shlex.quote(env['PATH'])}")
    failed = shlex.quote(f"mcp-exec: cannot start {argv[0]}: no such executable")
    lines.append(f"command -v {shlex.quote(argv[0])} >/dev/null 2>&1 || {{ echo {failed} >&2; exit 127; }}")
    if exportable:
        lines.append(f"exec {command} 4<&-")
    else:  # names a shell cannot export (``a.b``): env(1) sets them
        pairs = " ".join(shlex.quote(f"{name}={value}") for name, value in env.items())
        lines.append(f"exec {_ENV_COMMAND} -i {pairs} {command} 4<&-")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# The fork server

# Reads spawn/kill requests (one JSON datagram each; a spawn carries three file descriptors:
# stdout, stderr and the report pipe) on the SOCK_SEQPACKET socket given as argv[1]. A spawn forks;
# the child starts a session, joins its cgroups (when the agent is root), sets its rlimits, wires its stdio and execs the
# command. When the child exits (its pidfd becomes readable) the server reaps it with wait4 and
# writes one JSON line to the report pipe: wait status, ru_maxrss (KiB), the fork-to-reap time and
# whether the memory cgroup killed one of its processes.
# A kill SIGKILLs the child's process group (for a sandbox: the processes under its init first, so
# that their peak memory counts). The fork server is a child subreaper: the sandbox's init, orphaned
# when bubblewrap exits after the code, is reaped here too and its ru_maxrss (which holds the code's)
# taken. When the agent goes away (EOF), everything is killed.
_SERVER = r"""
import ctypes, fcntl, json, os, re, resource, select, signal, socket, struct, sys, time
def shlex_quote(text):
    return "'" + text.replace("'", "'\"'\"'") + "'"
libc = ctypes.CDLL(None, use_errno=True)
try:  # PR_SET_CHILD_SUBREAPER: a sandbox's init, orphaned when bubblewrap exits, comes back here
    libc.prctl(36, 1, 0, 0, 0)
except Exception:
    pass
NEWNET = 0x40000000  # CLONE_NEWNET
def landlock_abi():
    # landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION): the kernel's Landlock ABI, or < 0
    try:
        return libc.syscall(444, None, 0, 1)
    except Exception:
        return -1
LANDLOCK_ABI = landlock_abi()
KEYCTL = {"x86_64": 250, "aarch64": 219}.get(os.uname().machine)  # the keyctl syscall's number
def leave_session_keyring():
    # In a sandbox's child, before bubblewrap's exec: a new, empty session keyring. Every process
    # inherits its parent's, and holding it is what lets a process read the keys in it (the agent's
    # Kerberos tickets, say), through any namespace. (The user keyrings are per user namespace.)
    if KEYCTL is not None:
        libc.syscall(KEYCTL, 1, None)  # KEYCTL_JOIN_SESSION_KEYRING with no name: a fresh anonymous one
def scope_abstract_sockets():
    # In a sandbox's child, before bubblewrap's exec: a Landlock domain that handles no file system or
    # network access and only scopes abstract Unix sockets (ABI 6, Linux 6.12), so that nothing in the
    # sandbox can connect to one made outside it. Without a network namespace of its own (network
    # allowed) the host's abstract sockets would be reachable otherwise. Mounts stay allowed (the
    # domain handles no file system access), so bubblewrap sets the sandbox up as before.
    if LANDLOCK_ABI < 6:
        return False
    attr = struct.pack("QQQ", 0, 0, 1)  # handled_access_fs, handled_access_net, scoped: ABSTRACT_UNIX_SOCKET
    fd = libc.syscall(444, attr, len(attr), 0)
    if fd < 0:
        return False
    try:
        libc.prctl(38, 1, 0, 0, 0)  # PR_SET_NO_NEW_PRIVS, which landlock_restrict_self asks for
        return libc.syscall(446, fd, 0) == 0
    finally:
        os.close(fd)
netns_free = []      # network namespaces no sandbox holds, for the next ones
netns_home = -1      # this server's own network namespace; -2: it cannot make others (not root)
NETNS_KEPT = 8       # free namespaces kept at most (after a burst of many executors, the rest are freed)
def loopback_up():
    # What bubblewrap's --unshare-net does: lo up (SIOCGIFFLAGS, then SIOCSIFFLAGS with IFF_UP).
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        flags = struct.unpack_from("16sh", fcntl.ioctl(s.fileno(), 0x8913, struct.pack("16sh22x", b"lo", 0)))[1]
        fcntl.ioctl(s.fileno(), 0x8914, struct.pack("16sh22x", b"lo", flags | 1))
    finally:
        s.close()
def lease_netns():
    # A network namespace with only loopback for a sandbox without network, held by that sandbox
    # alone until its last process is gone: one a sandbox before it held, or a new one. Making and
    # tearing down a network namespace is the dearest part of a sandbox's set-up (it is what sets
    # up and frees IPv4, IPv6 and the firewall tables), so the server keeps them. Only where it may
    # (root); -1 elsewhere, and bubblewrap makes one per sandbox as before.
    global netns_home
    if netns_free:
        return netns_free.pop()
    if netns_home == -2:
        return -1
    try:
        if netns_home == -1:
            netns_home = os.open("/proc/self/ns/net", os.O_RDONLY)
    except OSError:
        netns_home = -2
        return -1
    if libc.unshare(NEWNET) != 0:
        os.close(netns_home)
        netns_home = -2
        return -1
    fd = -1
    try:
        fd = os.open("/proc/self/ns/net", os.O_RDONLY)
        loopback_up()
    except OSError:
        if fd >= 0:
            os.close(fd)
        fd = -1
    if libc.setns(netns_home, NEWNET) != 0:
        os._exit(70)
    return fd
def give_back_netns(run):
    fd = run.pop("netns", -1)
    if fd < 0:
        return
    if run.get("emptied") and len(netns_free) < NETNS_KEPT:
        netns_free.append(fd)  # the sandbox's init was reaped: nothing of it is left in there
    else:
        os.close(fd)
ctl = socket.socket(fileno=int(sys.argv[1]))
CGROOTS = [r for r in (sys.argv[2] if len(sys.argv) > 2 else "").split("\n") if r]
def new_cgroups():
    # One folder per hierarchy for the next run (none when the agent is not root).
    global spares
    spares += 1
    made = []
    for root in CGROOTS:
        cg = os.path.join(root, "run-%d" % spares)
        try:
            os.mkdir(cg)
            made.append(cg)
        except OSError:
            pass
    return made
def join_cgroups(cgs):
    for cg in cgs:
        with open(os.path.join(cg, "cgroup.procs"), "w") as f: f.write("0")
LIMIT_FILES = {}  # root -> the limit files its run folders have
for root in CGROOTS:
    LIMIT_FILES[root] = [n for n in ("pids.max", "memory.max", "memory.limit_in_bytes") if os.path.exists(os.path.join(root, n))]
def set_limits(cgs, pids, mem):
    # pids.max (v1 and v2); memory.max (v2) or memory.limit_in_bytes (v1). A new folder has no
    # limit, so only limits are written (on the hand-over's path: as few writes as can be).
    values = {"pids.max": pids, "memory.max": mem, "memory.limit_in_bytes": mem}
    for cg in cgs:
        for name in LIMIT_FILES.get(os.path.dirname(cg), ()):
            if values[name]:
                with open(os.path.join(cg, name), "w") as f: f.write(str(values[name]))
def oom_killed(cgs):
    # Whether the kernel killed a process of the run for its cgroup's memory limit.
    for cg in cgs:
        for name in ("memory.events", "memory.oom_control"):
            try:
                with open(os.path.join(cg, name)) as f:
                    for line in f:
                        key, _, value = line.partition(" ")
                        if key == "oom_kill" and int(value) > 0:
                            return True
            except (OSError, ValueError):
                pass
    return False
poll = select.epoll()
poll.register(ctl.fileno(), select.EPOLLIN)
runs = {}   # run id -> run
fds = {}    # fd -> (what, run)
late = {}   # run id -> (monotonic deadline, action)
def watch(fd, what, run):
    fds[fd] = (what, run)
    poll.register(fd, select.EPOLLIN)
def unwatch(fd):
    if fds.pop(fd, None) is not None:
        poll.unregister(fd)
        os.close(fd)
def kill(pid):
    for f in (os.killpg, os.kill):
        try: f(pid, signal.SIGKILL)
        except OSError: pass
def exec_child(req, out, err, info_w, block_r, ready_w=-1, netns=-1):
    # In the child: the network namespace leased for it, limits, stdio (bubblewrap's info on fd 3;
    # the starter's run on fd 4 and its ready signal on fd 5), the command; never returns.
    try:
        if netns >= 0:
            if libc.setns(netns, NEWNET) != 0:
                req["argv"].insert(1, "--unshare-net")  # a namespace of its own after all
            os.close(netns)
        for res, soft, hard in req["rlimits"]:
            resource.setrlimit(res, (soft, hard))
        if req.get("info"):  # a bubblewrap sandbox
            scope_abstract_sockets()
            leave_session_keyring()
        # Out of the way first (fd 3 may be the block pipe that fd 4 wants), then into place.
        wanted = [(fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10), target) for fd, target in ((os.open("/dev/null", os.O_RDONLY), 0), (out, 1), (err, 2), (info_w, 3), (block_r, 4), (ready_w, 5)) if fd >= 0]
        for fd, target in wanted:
            os.dup2(fd, target)
        os.chdir(req["cwd"])
        os.execve(req["argv"][0], req["argv"], req["env"])
    except BaseException as exc:
        try: os.write(2, ("mcp-exec: cannot start %s: %s\n" % (req["argv"][0], exc)).encode("utf-8", "replace"))
        except BaseException: pass
    os._exit(127)
pool = []    # spares, oldest first: two, so that the one a run takes has long joined its cgroups
spares = 0
stale = []
def make_spare():
    # A child forked ahead of time into fresh cgroups of its own (pids, memory): moving a process between
    # cgroups waits for an RCU grace period (milliseconds), so it is done while the previous run
    # runs, not when the next one is asked for.
    if not CGROOTS or len(pool) >= 2:
        return
    cgs = new_cgroups()
    if not cgs:
        return
    try:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    except OSError:
        stale.extend(cgs)
        return
    try:
        pid = os.fork()
    except OSError:
        ours.close(); theirs.close(); stale.extend(cgs)
        return
    if pid == 0:
        try:
            keep = theirs.fileno()
            os.closerange(3, keep); os.closerange(keep + 1, 1 << 20)
            os.setsid()
            join_cgroups(cgs)
            msg, got, _, _ = socket.recv_fds(theirs, 1 << 20, 6)
            if not msg:
                os._exit(0)
            req = json.loads(msg)
            theirs.close()
            rest = got[2:]
            info_w = rest.pop(0) if req.get("info") else -1
            block_r = rest.pop(0) if req.get("block") else -1
            ready_w = rest.pop(0) if req.get("ready") else -1
            netns = rest.pop(0) if req.get("netns") else -1
        except BaseException:
            os._exit(127)  # never back into the server's loop
        exec_child(req, got[0], got[1], info_w, block_r, ready_w, netns)
    theirs.close()
    pool.append({"pid": pid, "sock": ours, "cg": cgs})
    make_spare()
def spawn(req, passed):
    out, err, rep = passed[:3]
    ready_w = passed[3] if len(passed) > 3 else -1
    info_r, info_w = os.pipe() if req.get("info") else (-1, -1)
    block_r, block_w = os.pipe() if req.get("block") else (-1, -1)
    t0 = None if req.get("block") else time.perf_counter()
    # A sandbox without network asks for one of the server's network namespaces ("netns"), which
    # replaces the one bubblewrap would make for it.
    netns = lease_netns() if req.get("netns") and "--unshare-net" in req["argv"] else -1
    if netns >= 0:
        req["argv"].remove("--unshare-net")
    req["netns"], req["ready"] = netns >= 0, ready_w >= 0
    pid, cg = None, []
    if pool:
        use = pool.pop(0)
        try:
            set_limits(use["cg"], req.get("pids"), req.get("mem"))
            socket.send_fds(use["sock"], [json.dumps(req).encode()], [f for f in (out, err, info_w, block_r, ready_w, netns) if f >= 0])
            pid, cg = use["pid"], use["cg"]
        except OSError:
            kill(use["pid"]); stale.extend(use["cg"])
        use["sock"].close()
    if pid is None and CGROOTS:
        cg = new_cgroups()
        try:
            set_limits(cg, req.get("pids"), req.get("mem"))
        except OSError:
            stale.extend(cg)
            cg = []
    if pid is None:
        try:
            pid = os.fork()
        except OSError as exc:
            os.write(rep, json.dumps({"error": "fork: %s" % exc}).encode() + b"\n")
            for fd in (out, err, rep, info_r, info_w, block_r, block_w, ready_w, netns):
                if fd >= 0: os.close(fd)
            return
        if pid == 0:
            try:
                os.setsid()
                join_cgroups(cg)  # no spare ready: join the run's cgroups here, slower but the limits hold
            except BaseException:
                os._exit(127)
            exec_child(req, out, err, info_w, block_r, ready_w, netns)
    os.close(out); os.close(err)
    if ready_w >= 0:
        os.close(ready_w)
    if block_r >= 0:
        os.close(block_r)
    run = runs[req["id"]] = {"id": req["id"], "pid": pid, "rep": rep, "t0": t0, "inner": None, "info": b"", "maxrss": 0, "cg": cg, "block": block_w, "netns": netns}
    watch(os.pidfd_open(pid), "outer", run)
    if info_w >= 0:
        os.close(info_w)
        watch(info_r, "info", run)
    if req.get("block"):  # a sandbox prepared between runs: a good time for the next spare too
        make_spare()
def remove_cgroups():
    for cg in list(stale):
        try:
            os.rmdir(cg)
            stale.remove(cg)
        except FileNotFoundError:
            stale.remove(cg)
        except OSError:
            pass
def finish(run):
    runs.pop(run["id"], None)
    late.pop(run["id"], None)
    for fd, (_, r) in list(fds.items()):
        if r is run: unwatch(fd)
    started = run["block"] < 0
    if not started:
        os.close(run["block"])
    duration = (run["t1"] - run["t0"]) * 1000.0 if run["t0"] is not None and run.get("t1") else 0.0
    # Only a run that did not exit cleanly can have lost a process to the memory limit (and reading
    # the memory cgroup's counters costs a third of a millisecond under cgroup v1).
    oom = bool(run["cg"]) and started and run.get("status", 0) != 0 and oom_killed(run["cg"])
    try: os.write(run["rep"], json.dumps({"status": run.get("status", 0), "maxrss_kb": run["maxrss"], "duration_ms": duration, "started": started, "oom": oom}).encode() + b"\n")
    except OSError: pass
    os.close(run["rep"])
    give_back_netns(run)
    stale.extend(run["cg"])  # removed when the fork server is idle (removing a memory cgroup is slow)
    # The next spare joins its cgroups now, between runs: the move blocks every fork and thread
    # start on the machine for an RCU grace period, which must not land on a run's start-up.
    make_spare()
def reap(fd, what, run):
    unwatch(fd)
    pid = run["pid"] if what == "outer" else run["inner"]
    try:
        got, status, ru = os.wait4(pid, os.WNOHANG)
    except ChildProcessError:  # not ours: no subreaper here, or already reaped by bubblewrap
        if what == "inner":
            run["emptied"] = True
        return finish(run)
    if got == 0:
        return finish(run)
    run["maxrss"] = max(run["maxrss"], ru.ru_maxrss)
    if what == "inner":
        run["emptied"] = True  # the PID namespace's init is gone, and every process of it before
        return finish(run)
    run["t1"] = time.perf_counter()
    run["status"] = status
    if run["t0"] is None:
        run["t0"] = run["t1"]
    kill(pid)
    for info_fd, (kind, r) in list(fds.items()):
        if r is run and kind == "info":
            read_info(info_fd, run)
    if run["inner"] is not None:
        try:
            watch(os.pidfd_open(run["inner"]), "inner", run)
            late[run["id"]] = (time.monotonic() + 0.5, "inner")
            return
        except ProcessLookupError:  # bubblewrap reaped the init already
            run["emptied"] = True
        except OSError:
            pass
    finish(run)
def read_info(fd, run):
    # bubblewrap's info names the sandbox's init in its first line. The sandboxed command may hold
    # the pipe's write end too (bubblewrap passes it down), so once the server has the pid, or 16 KiB
    # without it, it reads on only to drain the pipe (bubblewrap writes more later and must not
    # fail): what the code writes there is neither kept nor parsed.
    try: chunk = os.read(fd, 65536)
    except OSError: chunk = b""
    if not chunk:
        return unwatch(fd)
    if run["info"] is None:
        return
    run["info"] += chunk
    found = re.search(rb'"child-pid":\s*(\d+)', run["info"])
    if found and run["inner"] is None:
        run["inner"] = int(found.group(1))
    if found or len(run["info"]) > 16384:
        run["info"] = None
def starter_pid(run):
    # The starter: the one child of the sandbox's init (bubblewrap's info names the init; it was
    # written before the starter said it was up, so it is read here if the loop has not yet).
    if run["inner"] is None:
        for info_fd, (kind, r) in list(fds.items()):
            if r is run and kind == "info":
                read_info(info_fd, run)
    if run["inner"] is None:
        return None
    try:
        with open("/proc/%d/task/%d/children" % (run["inner"], run["inner"])) as f:
            found = f.read().split()
    except OSError:
        return None
    return int(found[0]) if len(found) == 1 else None
def go(run, start, pids, mem, rlimits):
    # Start a prepared sandbox: its cgroup limits and the run's rlimits set on the starter from
    # here, then the run's script to the starter waiting inside on fd 4, which execs the command. A
    # limit that cannot be set fails the run: the code never runs without the limits it was given.
    pid = starter_pid(run)
    try:
        set_limits(run["cg"], pids, mem)
        if pid is None:
            raise OSError("the sandbox's starter is not there")
        for res, soft, hard in rlimits:
            resource.prlimit(pid, res, (soft, hard))
    except (OSError, ValueError) as exc:
        start = "echo %s >&2; exit 127\n" % shlex_quote("mcp-exec: cannot set the run's limits: %s" % exc)
    run["t0"] = time.perf_counter()
    try: os.write(run["block"], start.encode("utf-8", "surrogatepass"))
    except OSError: pass
    os.close(run["block"])
    run["block"] = -1
def kill_run(run):
    inner = run["inner"]
    if run["t0"] is None:  # prepared, never started
        kill(run["pid"])
        if inner is not None: kill(inner)
    elif inner is not None and "status" not in run:
        # The processes under the sandbox's init first: init reaps them (so their peak memory
        # counts), bubblewrap sees the code gone and exits, and the PID namespace dies with init.
        # Whatever lingers 0.3 s later (init, bubblewrap and its group) is killed outright.
        try:
            with open("/proc/%d/task/%d/children" % (inner, inner)) as f:
                for child in f.read().split():
                    kill(int(child))
        except (OSError, ValueError):
            pass
        late[run["id"]] = (time.monotonic() + 0.3, "outer")
    else:
        kill(run["pid"])
def overdue(run, action):
    if action == "outer":  # the sandbox lingers after its code was killed
        if run["inner"] is not None:
            kill(run["inner"])
        kill(run["pid"])
    elif action == "inner":  # the orphaned init has not gone: kill it, wait a little more
        kill(run["inner"])
        late[run["id"]] = (time.monotonic() + 0.5, "give up")
    else:
        finish(run)
make_spare()
while True:
    now = time.monotonic()
    for run_id, (due, action) in list(late.items()):
        if due <= now and run_id in runs:
            del late[run_id]
            overdue(runs[run_id], action)
    wait = max(0.0, min(d for d, _ in late.values()) - now) if late else -1
    if stale and (wait < 0 or wait > 0.05):
        wait = 0.05  # ended runs' cgroups go once nothing has happened for 50 ms
    events = poll.poll(wait)
    if stale and (not events or len(stale) > 64):  # or when runs never stop coming: bounded
        remove_cgroups()
    for fd, _ in events:
        if fd != ctl.fileno():
            if fd in fds:
                what, run = fds[fd]
                read_info(fd, run) if what == "info" else reap(fd, what, run)
            continue
        try:
            msg, passed, _, _ = socket.recv_fds(ctl, 1 << 20, 4)
        except InterruptedError:
            continue
        except OSError:
            msg, passed = b"", []
        if not msg:
            for run in list(runs.values()):
                kill(run["pid"])
                if run["inner"]: kill(run["inner"])
                stale.extend(run["cg"])
            for use in pool:
                kill(use["pid"]); stale.extend(use["cg"])
            end = time.monotonic() + 2
            while time.monotonic() < end:
                try:
                    if os.waitpid(-1, os.WNOHANG)[0] == 0: time.sleep(0.01)
                except ChildProcessError:
                    break
            remove_cgroups()
            for root in CGROOTS:
                try: os.rmdir(root)
                except OSError: pass
            sys.exit(0)
        for f in passed: os.set_inheritable(f, False)
        req = json.loads(msg)
        if req["op"] in ("spawn", "prepare") and len(passed) in (3, 4):
            spawn(req, passed)
        elif req["op"] == "go" and req["id"] in runs and runs[req["id"]]["block"] >= 0:
            go(runs[req["id"]], req["start"], req.get("pids"), req.get("mem"), req.get("rlimits") or [])
        elif req["op"] == "kill" and req["id"] in runs:
            kill_run(runs[req["id"]])
        else:
            for f in passed: os.close(f)
"""


class ForkServer:
    """The agent's end of the fork server: ``spawn`` a command with three pipes, ``kill`` it."""

    def __init__(self, python: str) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.cgroups = _find_cgroup_roots()
        try:
            self.proc = subprocess.Popen(
                [python, "-I", "-S", "-c", _SERVER, str(theirs.fileno()), "\n".join(self.cgroups)],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        finally:
            theirs.close()
        self.sock = ours
        self.lock = threading.Lock()
        self.next_id = 0
        self.owner = os.getpid()

    def alive(self) -> bool:
        return self.owner == os.getpid() and self.proc.poll() is None

    def spawn(self, argv: Sequence[str], env: dict[str, str], cwd: str, rlimits: list[tuple[int, int, int]], fds: tuple[int, int, int], pids: int | None = None, info: bool = False, memory_bytes: int | None = None, reuse_netns: bool = False) -> int:
        """Start ``argv`` with stdout, stderr and the report pipe ``fds``. Where the fork server has
        cgroup hierarchies (root), the run gets cgroups of its own holding ``pids`` processes and
        ``memory_bytes`` of memory for all its processes together; ``info``: the command is
        bubblewrap with ``--info-fd 3``; ``reuse_netns``: where the server may (root), bubblewrap's
        ``--unshare-net`` is replaced by a network namespace the server keeps for one sandbox at a time."""
        with self.lock:
            self.next_id += 1
            run_id = self.next_id
            msg = json.dumps({"op": "spawn", "id": run_id, "argv": list(argv), "env": env, "cwd": cwd, "rlimits": rlimits, "pids": pids, "mem": memory_bytes, "info": info, "netns": reuse_netns}).encode("utf-8", "surrogatepass")
            socket.send_fds(self.sock, [msg], list(fds))
        return run_id

    def prepare(self, argv: Sequence[str], env: dict[str, str], cwd: str, fds: tuple[int, int, int, int], pids: int | None = None, reuse_netns: bool = False) -> int:
        """Start bubblewrap ``argv`` (with ``--info-fd 3``) whose command is :data:`STARTER` reading
        fd 4: the sandbox is set up, and the starter started, ahead of the run that will use it; :meth:`go` hands it the run. ``fds``: stdout, stderr, report, and a pipe the
        starter writes one byte to once it waits. ``reuse_netns`` as in :meth:`spawn`."""
        with self.lock:
            self.next_id += 1
            run_id = self.next_id
            msg = json.dumps({"op": "prepare", "id": run_id, "argv": list(argv), "env": env, "cwd": cwd, "rlimits": [(_RLIMIT_CORE, 0, 0)], "pids": pids, "info": True, "block": True, "netns": reuse_netns}).encode("utf-8", "surrogatepass")
            socket.send_fds(self.sock, [msg], list(fds))
        return run_id

    def go(self, run_id: int, argv: Sequence[str], env: dict[str, str], rlimits: list[tuple[int, int, int]], pids: int | None = None, memory_bytes: int | None = None) -> None:
        """Start a prepared run: the fork server sets ``rlimits`` on the :data:`STARTER`, which then
        execs ``argv`` with ``env``. Its time is measured from here."""
        start = start_script(argv, env)
        with self.lock:
            self.sock.send(json.dumps({"op": "go", "id": run_id, "start": start, "pids": pids, "mem": memory_bytes, "rlimits": rlimits}).encode("utf-8", "surrogatepass"))

    def kill(self, run_id: int, inner: bool = False) -> None:
        """SIGKILL the run's process group; with ``inner``, the children of its first process first."""
        try:
            with self.lock:
                self.sock.send(json.dumps({"op": "kill", "id": run_id, "inner": inner}).encode())
        except OSError:
            pass

    def close(self) -> None:
        try:
            self.sock.close()
        finally:
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:  # pragma: no cover
                self.proc.kill()


_servers: dict[str, "ForkServer | DirectSpawner"] = {}
_servers_lock = threading.Lock()


class DirectSpawner:
    """Where the fork server cannot run (it needs Linux: epoll, pidfds): the agent starts each run
    itself and a thread reaps it. Only ``isolation="process"`` runs here, and the peak memory
    reported includes the agent's own size copied into the child at fork."""

    def __init__(self) -> None:
        self.owner = os.getpid()
        self.lock = threading.Lock()
        self.next_id = 0
        self.pids: dict[int, int] = {}

    def alive(self) -> bool:
        return self.owner == os.getpid()

    def spawn(self, argv: Sequence[str], env: dict[str, str], cwd: str, rlimits: list[tuple[int, int, int]], fds: tuple[int, int, int], pids: int | None = None, info: bool = False, memory_bytes: int | None = None, reuse_netns: bool = False) -> int:
        """Start ``argv`` with its rlimits (no cgroups or kept namespaces here: ``pids``, ``memory_bytes``
        and ``reuse_netns`` are unused)."""
        out, err, rep = fds

        def limit() -> None:
            for res, soft, hard in rlimits:
                try:
                    resource.setrlimit(res, (soft, hard))
                except (OSError, ValueError):
                    pass

        t0 = time.perf_counter()
        proc = subprocess.Popen(list(argv), env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out, stderr=err, start_new_session=True, preexec_fn=limit)  # noqa: PLW1509
        with self.lock:
            self.next_id += 1
            run_id = self.next_id
            self.pids[run_id] = proc.pid
        rep_w = os.dup(rep)
        threading.Thread(target=self._reap, args=(run_id, proc, rep_w, t0), daemon=True).start()
        return run_id

    def _reap(self, run_id: int, proc: subprocess.Popen[bytes], rep: int, t0: float) -> None:
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        t1 = time.perf_counter()
        with self.lock:
            self.pids.pop(run_id, None)
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass
        maxrss = usage.ru_maxrss // 1024 if sys.platform == "darwin" else usage.ru_maxrss  # bytes there, KiB here
        try:
            os.write(rep, json.dumps({"status": status, "maxrss_kb": maxrss, "duration_ms": (t1 - t0) * 1000.0, "started": True}).encode() + b"\n")
        except OSError:
            pass
        os.close(rep)

    def kill(self, run_id: int, inner: bool = False) -> None:
        with self.lock:
            pid = self.pids.get(run_id)
            if pid is None:
                return
            for f in (os.killpg, os.kill):
                try:
                    f(pid, signal.SIGKILL)
                except OSError:
                    pass


def fork_server(python: str | None = None) -> "ForkServer | DirectSpawner":
    """The fork server of this process (started on first use, again after a fork or a crash);
    a :class:`DirectSpawner` where the fork server cannot run."""
    python = python or sys.executable
    with _servers_lock:
        server = _servers.get(python)
        if server is None or not server.alive():
            server = _servers[python] = ForkServer(python) if _FORK_SERVER_WORKS else DirectSpawner()
        return server


_FORK_SERVER_WORKS = sys.platform.startswith("linux") and hasattr(os, "pidfd_open") and hasattr(select, "epoll")


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)
