"""The storage writer: a child process of the service that owns the write connection and commits its batches.

Why a process: the sequencer's applier thread runs Python (matching, settlement) nearly all the time, and the
database driver releases the GIL around every statement it runs and must take it back after. In a thread of the
same process each of those hand-backs waited for the applier (measured: a batch's statements spent ~3x longer
waiting for the GIL than the database took to run them), and the writes could not run beside the matching on the
machine's other core. Here the sequencer's applier compiles each batch into plain steps
(:func:`critmin.server.engine.batch_steps`: SQL and driver parameters) and sends them over a socket pair as soon
as they are applied, and takes this process's replies (committed, or refused) whenever it would otherwise wait.

Group commit happens here: once a transaction is committed, this process takes every batch already waiting on its
socket (at most ``max_batch`` commands, one engine generation) into the next one. So it never waits for the core
between two commits (measured when the core's writer thread sent each group after the previous one's reply: ~35 %
of this process's time idle, waiting for that thread to take the GIL back from the applier, answer and send).

Protocol (a 4-byte big-endian length, then a pickle; both ends are this module, over a private socket pair):
the parent sends ``(url, durable, max_batch)`` once and gets ``("ready",)``; then ``("batch", gen, n, payload,
answers)`` per applied batch: the engine generation it was applied on, its number of commands, its steps
(pickled by the applier thread: :func:`encode_steps`; None when it writes nothing) and the bytes to send to the
HTTP front once it is committed. Batches are answered in order, one reply per transaction: ``("ok", k)`` after the
commit of the next ``k`` batches, ``("error", k, text)`` after a rollback; a batch of a generation that failed is
refused without being run (it was applied on top of what was rolled back: the core rebuilds its memory and
applies later commands on a new generation). ``("channel",)`` carries, as ``SCM_RIGHTS``, the socket on which to
send those answers (see :meth:`WriterProcess.set_answer_channel`); it has no reply. The child exits when the
socket closes, and is killed with its parent (``PR_SET_PDEATHSIG``): a transaction it has not committed is rolled
back by the database.

The answer channel: in ``critmin serve`` the answers to ``POST /v1/orders`` are already rendered when their batch
is handed over, so this process sends them to the front itself, right after the commit, instead of returning to
the core's applier thread and its event loop. A batch that is not committed is answered by the core (503),
never here.
"""

from __future__ import annotations

import logging
import marshal
import pickle
import select
import socket
import struct
import subprocess
import sys
import threading
from typing import Any

from critmin.server.children import die_with_parent, discard_writer, reap, spawn_writer

log = logging.getLogger(__name__)
_LEN = struct.Struct(">I")


#: Seconds the parent waits for a new writer process to be ready.
START_TIMEOUT = 90.0


class StorageError(Exception):
    """A batch was not committed: the database refused it, or the writer process is gone."""


def _frame(obj: Any) -> bytes:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    return _LEN.pack(len(data)) + data


def _send(sock: socket.socket, obj: Any) -> None:
    sock.sendall(_frame(obj))


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError("the other end closed the storage socket")
        buf += chunk
    return bytes(buf)


def _recv(sock: socket.socket) -> Any:
    (n,) = _LEN.unpack(_recv_exact(sock, 4))
    return pickle.loads(_recv_exact(sock, n))


def _recv_with_fds(sock: socket.socket) -> tuple[Any, list[int]]:
    """A message and the file descriptors sent with it (the length prefix is read with ``recvmsg``, the call that
    receives them)."""
    head, fds, _, _ = socket.recv_fds(sock, 4, 1)
    if not head:
        raise EOFError("the other end closed the storage socket")
    if len(head) < 4:
        head += _recv_exact(sock, 4 - len(head))
    (n,) = _LEN.unpack(head)
    return pickle.loads(_recv_exact(sock, n)), fds


def encode_steps(steps: list) -> bytes:
    """A batch's steps as the writer process takes them (encoded by the sequencer's applier thread): ``marshal``
    when every parameter is a plain built-in value (SQLite's always are: str, int, float, None), ~2x faster than
    pickle here (measured on batches of 8-64 orders: 7 against 12-23 µs per order), else pickle (PostgreSQL's
    parameters keep dates and datetimes, which the driver adapts). One tag byte says which."""
    try:
        return b"M" + marshal.dumps(steps)
    except ValueError:  # a type marshal does not know
        return b"P" + pickle.dumps(steps, protocol=pickle.HIGHEST_PROTOCOL)


def decode_steps(blob: bytes) -> list:
    """The steps :func:`encode_steps` encoded (in the writer process; both ends are this module)."""
    return marshal.loads(memoryview(blob)[1:]) if blob[:1] == b"M" else pickle.loads(memoryview(blob)[1:])


class WriterProcess:
    """The parent's handle on the writer process (started on first use, restarted after it died).

    Parameters
    ----------
    url : str
        SQLAlchemy URL of the database (sent over the socket, never on a command line).
    durable : bool
        SQLite ``synchronous=FULL`` (default) or ``NORMAL``, as :func:`critmin.server.db.make_engine`.
    spare : (Popen, socket), optional
        A writer process started ahead with :func:`critmin.server.children.spawn_writer` (it has imported its
        modules meanwhile): the first :meth:`start` hands it the database instead of starting one, unless it died.
    """

    def __init__(self, url: str, durable: bool = True,
                 spare: tuple[subprocess.Popen, socket.socket] | None = None) -> None:
        self.url, self.durable = url, durable
        self._spare = spare  # a process started ahead (critmin.server.children.Children), for the first start()
        self.proc: subprocess.Popen | None = None
        self.sock: socket.socket | None = None
        self.channel: socket.socket | None = None   # where the process sends committed answers (or None)
        self._channel_sent = False                  # handed to the current process
        self.max_batch = 512                        # most commands per transaction (the sequencer sets it)
        self._replies = bytearray()                 # replies read and not yet taken (see receive)

    @property
    def alive(self) -> bool:
        """A writer process is connected (False after it died and :meth:`close`, until :meth:`start` again)."""
        return self.sock is not None

    def set_answer_channel(self, channel: socket.socket) -> None:
        """From now on, the ``answers`` of each batch :meth:`send` hands over are sent on ``channel`` by the process,
        after its commit (handed to it before the next batch, and again to a process restarted after a crash). The
        caller keeps ``channel`` open and never writes to it itself."""
        self.channel, self._channel_sent = channel, False

    def start(self) -> None:
        self._channel_sent = False
        self._replies = bytearray()
        spare, self._spare = self._spare, None
        if spare is not None and spare[0].poll() is None:  # started ahead, its modules imported meanwhile
            self.proc, parent = spare
        else:
            discard_writer(spare)  # it died before it was needed: a new one
            self.proc, parent = spawn_writer()
        self.sock = parent
        try:
            parent.settimeout(START_TIMEOUT)  # it waits up to 30 s for a previous writer's lock, then answers
            _send(parent, (self.url, self.durable, self.max_batch))
            reply = _recv(parent)
            parent.settimeout(None)
        except (OSError, EOFError) as exc:  # socket.timeout is an OSError
            self.close()
            raise StorageError(f"the storage writer did not start ({exc})") from None
        if reply[0] != "ready":
            self.close()
            raise StorageError(f"the storage writer cannot open the database: {reply[1]}")

    def send(self, gen: int, n: int, payload: bytes | None, answers: bytes = b"") -> None:
        """Hand over one applied batch of ``n`` commands (engine generation ``gen``; ``payload`` from
        :func:`encode_steps`, or None when it writes nothing) without waiting: its outcome comes, in order, from
        :meth:`receive`. ``answers`` are sent on the answer channel once it is committed (never when it is not; only
        with a channel set). Raises :class:`StorageError` when the process is gone (not started: see :meth:`start`)."""
        sock = self.sock
        if sock is None:
            raise StorageError("the storage writer process is not running")
        try:
            if self.channel is not None and not self._channel_sent:
                socket.send_fds(sock, [_frame(("channel",))], [self.channel.fileno()])
                self._channel_sent = True
            _send(sock, ("batch", gen, n, payload, answers if self.channel is not None else b""))
        except OSError as exc:
            raise StorageError(f"the storage writer process ended ({type(exc).__name__}: {exc})") from None

    def receive(self, block: bool = True) -> tuple | None:
        """The next reply, in order: ``("ok", k)`` or ``("error", k, text)``; without ``block``, None when none has
        arrived whole. Raises :class:`StorageError` when the process is gone. Reads whatever has arrived in one
        call and keeps the replies beyond the first for the next calls."""
        sock = self.sock
        if sock is None:
            raise StorageError("the storage writer process is not running")
        buf = self._replies
        while True:
            if len(buf) >= 4:
                (n,) = _LEN.unpack_from(buf)
                if len(buf) >= 4 + n:
                    reply = pickle.loads(memoryview(buf)[4:4 + n])
                    del buf[:4 + n]
                    return reply
            try:
                chunk = sock.recv(65536, 0 if block else socket.MSG_DONTWAIT)
            except BlockingIOError:
                return None
            except OSError as exc:
                raise StorageError(f"the storage writer process ended ({type(exc).__name__}: {exc})") from None
            if not chunk:
                raise StorageError("the storage writer process ended (it closed its socket)")
            buf += chunk

    def close(self, timeout: float = 10.0) -> None:
        """Close the socket (the process then exits) and reap the process (and a spare never started)."""
        discard_writer(self._spare, timeout)
        self._spare = None
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        if self.proc is not None:
            reap(self.proc, timeout)
            self.proc = None


#: SQLite: bytes of batches written between two WAL checkpoints (see :class:`_Checkpointer`). An order's rows are
#: ~3 kB here and put ~6 pages in the WAL, so ~1,000 pages: SQLite's own default interval, whatever the size of the
#: groups.
CHECKPOINT_BYTES = 512 * 1024


class _Checkpointer:
    """SQLite WAL checkpoints beside the commits, not between them.

    A checkpoint copies the pages committed since the last one from the WAL into the database file and syncs it:
    measured under load, ~7.6 ms (up to 16) every ~100 ms. Run by the writer between two commits, it held back
    the next batch for that long, and its clients' answers: a good part of the intake's p99. So a thread with its
    own connection runs them (a PASSIVE checkpoint takes no lock a writer needs, and the driver releases the GIL
    while it runs), and the writer, once one has finished, runs a short one itself between two commits: it copies
    only the pages committed meanwhile and leaves none behind, so the next transaction starts the WAL again from
    its beginning (measured: median 3.9 ms, mostly its two syncs, against 7.6 ms for a whole checkpoint). Without
    that step the WAL would only grow: under steady load a checkpoint running beside the commits never catches up
    with them."""

    #: Bytes of batches the catch-up may let pass while batches are waiting before it runs anyway: the WAL grows by
    #: about that much more before it starts again. (Batches are sent as soon as they are applied, so under load
    #: the next one is often waiting.)
    MAX_DEFERRED = CHECKPOINT_BYTES // 4

    def __init__(self, engine: Any) -> None:
        self.pooled, self.conn = _connect(engine)
        self.wanted = threading.Event()
        self.written = 0       # bytes of batches committed since the last checkpoint was asked for
        self.busy = False      # the thread is checkpointing
        self.finished = False  # a checkpoint has finished since the writer last caught up
        self.deferred = 0      # bytes of batches committed since it finished, the catch-up giving way to them
        self.thread = threading.Thread(target=self._run, name="critmin-checkpoint", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            self.wanted.wait()
            self.wanted.clear()
            _checkpoint(self.conn)
            self.finished = True
            self.busy = False

    def after_commit(self, conn: Any, written: int, waiting: Any) -> None:
        """In the writer, after answering a commit of ``written`` bytes of batches: first catch up the last
        checkpoint if it has finished, unless ``waiting()`` says the next batch is already there (then after a
        later commit; for at most :attr:`MAX_DEFERRED` bytes of batches, so that the WAL still starts again under
        unbroken load); then ask the thread for the next checkpoint every :data:`CHECKPOINT_BYTES`."""
        if self.finished:
            if self.deferred < self.MAX_DEFERRED and waiting():
                self.deferred += written
            else:
                self.finished, self.deferred = False, 0
                _checkpoint(conn)
        self.written += written
        if self.written >= CHECKPOINT_BYTES and not self.busy:
            self.written, self.busy = 0, True
            self.wanted.set()


def _checkpoint(conn: Any) -> None:
    try:
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
    except Exception as exc:  # pragma: no cover - a checkpoint is retried next time
        log.warning("WAL checkpoint failed: %s", exc)


def _connect(engine: Any) -> tuple[Any, Any]:
    """(pooled connection, DBAPI connection) for the writer. SQLite: transactions begun and committed here,
    explicitly, and the WAL checkpointed by this process (:class:`_Checkpointer`; SQLite's automatic checkpoint
    would run inside a commit, and the clients of that batch would wait for it)."""
    pooled = engine.raw_connection()
    conn = pooled.dbapi_connection
    if engine.dialect.name == "sqlite":
        conn.isolation_level = None
        conn.execute("PRAGMA wal_autocheckpoint=0")
    return pooled, conn


def _serve(sock: socket.socket) -> None:
    from critmin.server.db import ServerLock, make_engine
    from critmin.server.engine import run_steps

    url, durable, max_batch = _recv(sock)
    try:
        engine = make_engine(url, durable=durable)
        # Held while this function runs, i.e. for the process's life (released by its exit, kill included): a
        # server starting on the same database waits until it is free before loading (ServerLock.wait_free).
        writer_lock = ServerLock(engine, writer=True)
        writer_lock.acquire(wait=30)
        pooled, conn = _connect(engine)
    except Exception as exc:
        _send(sock, ("error", f"{type(exc).__name__}: {exc}"))
        return
    dialect = engine.dialect.name
    from critmin.server.children import freeze_gc

    freeze_gc()
    _send(sock, ("ready",))
    checkpointer = _Checkpointer(engine) if dialect == "sqlite" else None
    incoming = select.poll()  # is the next batch already here? (the group, and _Checkpointer.after_commit)
    incoming.register(sock, select.POLLIN)
    channel: socket.socket | None = None
    failed_gen = -1  # batches of this generation or older are refused unrun (built on a rolled-back one)
    held: tuple[Any, list[int]] | None = None  # a message read while gathering a group, not part of it
    while True:
        if held is not None:
            (msg, fds), held = held, None
        else:
            try:
                msg, fds = _recv_with_fds(sock)
            except EOFError:
                return
        if msg[0] == "channel":
            if channel is not None:
                channel.close()
            channel = socket.socket(fileno=fds[0]) if fds else None
            continue
        # A batch: with every batch already waiting behind it, up to max_batch commands of one generation.
        group, gen, n = [msg], msg[1], msg[2]
        while n < max_batch and incoming.poll(0):
            try:
                nxt = _recv_with_fds(sock)
            except EOFError:
                return  # the core is gone: nothing of this group was answered, nothing needs committing
            m = nxt[0]
            if m[0] != "batch" or m[1] != gen or n + m[2] > max_batch:
                held = nxt
                break
            group.append(m)
            n += m[2]
        if gen <= failed_gen:
            _send(sock, ("error", len(group), "an earlier commit failed"))
            continue
        payloads = [m[3] for m in group if m[3] is not None]
        if payloads:
            try:
                if dialect == "sqlite":
                    conn.execute("BEGIN")
                for blob in payloads:
                    run_steps(conn, dialect, decode_steps(blob))
                conn.commit()
            except Exception as exc:
                try:
                    conn.rollback()
                except Exception:  # the connection is broken: a new one for the next batch
                    pooled.invalidate()
                    pooled, conn = _connect(engine)
                failed_gen = gen
                _send(sock, ("error", len(group), f"{type(exc).__name__}: {exc}"))
                continue
        answers = b"".join([m[4] for m in group if m[4]])
        if answers and channel is not None:
            try:
                channel.sendall(answers)
            except OSError as exc:  # the front is gone (its clients with it): the commit stands
                log.warning("cannot send answers to the HTTP front: %s", exc)
                channel.close()
                channel = None
        _send(sock, ("ok", len(group)))
        if checkpointer is not None and payloads:  # after the answer, never inside a commit (see _Checkpointer)
            checkpointer.after_commit(conn, sum(map(len, payloads)), lambda: bool(incoming.poll(0)))


def main(argv: list[str]) -> int:
    import signal

    # Ctrl-C reaches every process of the terminal's group: this one ends when the core closes the socket (after
    # committing what it holds), never in the middle of it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    fd, parent = int(argv[0]), int(argv[1])
    if not die_with_parent(parent):
        return 1
    with socket.socket(fileno=fd) as sock:
        try:
            _serve(sock)
        except (EOFError, BrokenPipeError, ConnectionResetError):
            pass  # the parent is gone
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
