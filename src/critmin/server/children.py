"""The child processes of ``critmin serve``, started before the core builds its app, so that the three start side
by side.

``critmin serve`` runs three processes (see :mod:`critmin.server.front` and :mod:`critmin.server.storage`): the
core, its HTTP front and its storage writer. Each spends most of its start-up importing its modules (measured on a
2-core machine: ~1.4 s for the core's app, ~1 s for the front, ~0.6 s for the writer). Started one after the other,
as the core needed each, a start took ~3.3 s, and a restart after a crash is when start-up time matters. So the
command starts both children first, with this module's standard-library imports only, and they import theirs while
the core imports its own:

* the **storage writer** then waits for the database URL, as it always did; the core's first
  :meth:`critmin.server.storage.WriterProcess.start` takes this process instead of starting one;
* the **front** then waits for one byte on a pipe (``--ready-fd``) before it connects to the core and binds the
  public port: the core sends it once it listens on its sockets. If the core does not get that far (the database
  is locked, a migration fails), it closes the pipe and the front exits without binding anything.

Both also die with the core (:func:`die_with_parent`). The module also keeps the garbage collector off the latency
path of each process (:func:`freeze_gc`, :func:`tune_gc`), so that none of them imports the engine for it.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile

_PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int) -> bool:
    """First thing in a child process (the front, the storage writer): get SIGKILL when the parent dies (Linux),
    so a ``kill -9`` of the service never leaves a child answering on the port or writing. False when the parent
    ``parent`` is already gone (it died before the request took effect): the child should exit.

    Done in the child, not in a ``preexec_fn``: code between fork and exec can deadlock when the parent has
    threads. The signal fires when the parent *thread* that started the child ends, so children are started from a
    thread that lives as long as the service (the main thread, or the sequencer's applier thread for a restart)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    return os.getppid() == parent


#: Prefix of the core's private socket directories in the temporary folder: ``critmin-serve-<pid of the core>-…``.
SOCKET_DIR_PREFIX = "critmin-serve-"


def sweep_socket_dirs(base: str | None = None) -> list[str]:
    """Remove the socket directories of cores that are gone (a ``kill -9`` leaves its directory behind: nothing of
    the service outlives the core to remove it). Only this user's, and only when the pid in the name is no process
    at all; returns the paths removed."""
    base = base or tempfile.gettempdir()
    removed = []
    with contextlib.suppress(OSError):
        for entry in os.scandir(base):
            pid, dash, _ = entry.name[len(SOCKET_DIR_PREFIX):].partition("-")
            if not (entry.name.startswith(SOCKET_DIR_PREFIX) and dash and pid.isdigit()):
                continue
            try:
                if entry.stat(follow_symlinks=False).st_uid != os.getuid() or not entry.is_dir(follow_symlinks=False):
                    continue
                os.kill(int(pid), 0)
            except ProcessLookupError:  # no such process: its core is gone
                shutil.rmtree(entry.path, ignore_errors=True)
                removed.append(entry.path)
            except (OSError, OverflowError):  # alive, not ours to signal, or no pid at all: leave it
                continue
    return removed


def spawn_writer() -> tuple[subprocess.Popen, socket.socket]:
    """Start a storage writer process; returns it and the core's end of its socket. It imports its modules, then
    waits for the database URL (:meth:`critmin.server.storage.WriterProcess.start` sends it)."""
    parent, child = socket.socketpair()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "critmin.server.storage", str(child.fileno()), str(os.getpid())],
            pass_fds=(child.fileno(),), stdin=subprocess.DEVNULL)
    except BaseException:
        parent.close()
        raise
    finally:
        child.close()
    return proc, parent


class Children:
    """The HTTP front (always) and a spare storage writer (``writer=True``) of a ``critmin serve`` starting up.

    The front is told the private directory of the core's two Unix sockets (mode 0700: only this user reaches the
    core) and waits for :meth:`ready`. :meth:`close` stops whatever the core did not take over and removes the
    directory; use the object as a context manager."""

    def __init__(self, host: str, port: int, *, writer: bool = False) -> None:
        sweep_socket_dirs()
        self.sockets = tempfile.mkdtemp(prefix=f"{SOCKET_DIR_PREFIX}{os.getpid()}-")
        self.api_socket = os.path.join(self.sockets, "api.sock")
        self.intake_socket = os.path.join(self.sockets, "intake.sock")
        self.writer: tuple[subprocess.Popen, socket.socket] | None = None
        self.front: subprocess.Popen | None = None
        self.answers: socket.socket | None = None  # the core's end of the answer channel (see storage)
        self._go: int | None = None
        self.ready_sent = False
        try:
            if writer:
                self.writer = spawn_writer()
            self.answers, theirs = socket.socketpair()
            go_read, self._go = os.pipe()
            try:
                self.front = subprocess.Popen(
                    [sys.executable, "-m", "critmin.server.front", "--host", host, "--port", str(port),
                     "--api-socket", self.api_socket, "--intake-socket", self.intake_socket,
                     "--parent", str(os.getpid()), "--answer-fd", str(theirs.fileno()), "--ready-fd", str(go_read)],
                    stdin=subprocess.DEVNULL, pass_fds=(theirs.fileno(), go_read))
            finally:
                theirs.close()
                os.close(go_read)
        except BaseException:
            self.close()
            raise

    def take_writer(self) -> tuple[subprocess.Popen, socket.socket] | None:
        """The spare writer process and its socket, once (None when there is none, or it was taken)."""
        spare, self.writer = self.writer, None
        return spare

    def ready(self) -> None:
        """The core listens on its sockets: let the front connect to them and bind the public port."""
        if self._go is not None:
            with contextlib.suppress(OSError):  # the front is gone: the core sees it exit
                os.write(self._go, b"1")
            os.close(self._go)
            self._go = None
            self.ready_sent = True

    def close(self, timeout: float = 10.0) -> None:
        """Stop what is left: a front that never got :meth:`ready` reads the end of its pipe and exits, a spare
        writer reads the end of its socket and exits (both are reaped); a running front is the core's to stop
        first (see :func:`critmin.server.run.serve`). Then remove the sockets' directory."""
        if self._go is not None:
            os.close(self._go)
            self._go = None
        discard_writer(self.take_writer(), timeout)
        if self.front is not None:
            if self.front.poll() is None and self.ready_sent:  # not stopped by the core (an error on the way)
                self.front.terminate()
            reap(self.front, timeout)
            self.front = None
        if self.answers is not None:
            self.answers.close()
            self.answers = None
        shutil.rmtree(self.sockets, ignore_errors=True)

    def __enter__(self) -> Children:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def discard_writer(spare: tuple[subprocess.Popen, socket.socket] | None, timeout: float = 10.0) -> None:
    """Stop a writer process from :func:`spawn_writer` that was never handed a database (None: nothing): the end of
    its socket ends it."""
    if spare is not None:
        spare[1].close()
        reap(spare[0], timeout)


def reap(proc: subprocess.Popen, timeout: float) -> None:
    """Wait for ``proc`` to exit; kill it after ``timeout`` seconds."""
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:  # pragma: no cover - stuck
        proc.kill()
        proc.wait()


# ---------------------------------------------------------------------- the collector in each process
#: Floor of the collector's thresholds while a sequencer runs (see tune_gc).
GC_THRESHOLDS = (50_000, 20, 100)


def tune_gc() -> tuple[int, ...]:
    """Keep the cyclic garbage collector off the latency path of a running service; returns the thresholds before.

    With CPython's default thresholds (700, 10, 10) a young collection runs every request or so (an order
    allocates ~1,000 objects) and full ones, which walk every object of the growing state (books, open orders) and
    stop all threads meanwhile, come every few seconds under load (measured: 2 full passes in 15 s, up to 129 ms,
    at ~15,000 orders), which is the intake's p99. The thresholds are raised to at least :data:`GC_THRESHOLDS`
    while the sequencer runs (restored by stop()). Acyclic objects are still freed at once by reference counting;
    cyclic garbage waits longer. A threshold of 0 (collection switched off) is left alone."""
    before = gc.get_threshold()
    if before[0] > 0:
        gc.set_threshold(*(max(c, f) for c, f in zip(before, GC_THRESHOLDS, strict=True)))
    return before


def freeze_gc() -> tuple[int, ...]:
    """For each process of ``critmin serve`` (core, HTTP front, storage writer) once it has started: collect once,
    then move everything alive (modules, classes, the app, the state loaded so far) out of the collector's sight
    (``gc.freeze``), and raise the thresholds as :func:`tune_gc` does, for the life of the process. A full pass
    then walks only what was made since: measured under load before this, full passes took 60-75 ms in the core
    and 25-35 ms in the front and the writer, stalling every request in flight. Returns the thresholds before
    (for :func:`thaw_gc`, where the freeze is for a while only: the load client)."""
    gc.collect()
    gc.freeze()
    return tune_gc()


def thaw_gc(before: tuple[int, ...]) -> None:
    """Undo :func:`freeze_gc`."""
    gc.set_threshold(*before)
    gc.unfreeze()
