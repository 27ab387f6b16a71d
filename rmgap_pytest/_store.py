"""The SQLite file behind the score cache: scores, claims, run progress, descriptions.

Every method is one short transaction; nothing here scans more than the keys it
is given, so a run's cost is linear in its size (see ``stored.py`` for the
claim loop and ``_cache_schema.py`` for the tables).
"""

from __future__ import annotations

import os
import socket
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

from . import _cache_schema as schema
from .errors import CacheError

_BATCH = 500  # keys per IN (...) query, far below SQLite's bound-variable limit
# A read of many keys scans the scorer's rows once instead when it wants at least 1 in _SCAN_RATIO
# of them (a rerun of the same benchmark): measured at 10x the release size, 1.5-2.2 s of CPU for
# the scan against 2.7-3.9 s for key lookups in key order and 3.6-4.6 s in request order.
_SCAN_MIN, _SCAN_RATIO = 5000, 4
_PROGRESS_TTL_S = 86400.0  # progress rows of runs that died without cleaning up are dropped after a day


def _host_id() -> str:
    """Hostname plus pid namespace: a pid means something only inside its namespace (containers)."""
    try:
        return f"{socket.gethostname()} {os.readlink('/proc/self/ns/pid')}"
    except OSError:
        return socket.gethostname()


_HOST = _host_id()
# Connections inherited through fork are never closed in the child: closing
# them there could checkpoint or drop the parent's WAL. They are parked here.
_INHERITED: list[sqlite3.Connection] = []


def pack(values: float | Sequence[float] | np.ndarray) -> bytes:
    """Little-endian IEEE doubles: SQLite would turn NaN into NULL and may store -0.0 as the
    integer 0; the bytes round-trip exactly."""
    return np.asarray(values, dtype="<f8").tobytes()


def unpack(blob: bytes) -> np.ndarray:
    """The doubles of one stored value: shape (1,) for a pair, (k,) for an item."""
    return np.frombuffer(blob, dtype="<f8")


def _pid_alive(pid: int) -> bool:
    """Whether a process on this host still runs; unknown counts as alive (the lease decides)."""
    if os.name != "posix":
        return True  # os.kill(pid, 0) would terminate the process on Windows
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a killed child its parent has not reaped yet still answers signal 0
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return True


class Row(NamedTuple):  # a tuple, not a dataclass: a run builds one per pair, and tuples are 3x cheaper
    """One stored score: ``value`` packed doubles, ``meta`` JSON text or None, ``run`` its run id."""

    value: bytes
    meta: str | None = None
    run: str | None = None


@dataclass
class ChunkClaim:
    """What ``ScoreStore.claim_chunk`` found.

    state: "owned" (now ours: compute ``missing``), "busy" (a live process holds it),
    or "done" (every key is stored). ``stored`` holds the rows read on the way.
    """

    state: str
    stored: dict[bytes, Row] = field(default_factory=dict)
    missing: list[bytes] = field(default_factory=list)


class ScoreStore:
    """One SQLite file in WAL mode, shared by every process and thread.

    Each (process, thread) gets its own connection, reopened after a fork.
    Writes are short ``BEGIN IMMEDIATE`` transactions so readers never wait
    and writers queue on the busy timeout instead of failing. ``notes`` holds
    what a user should hear about the file (it was rebuilt). A file that is not
    a score cache is refused untouched (``_cache_schema.py``).
    """

    def __init__(self, path: str | os.PathLike[str], *, busy_timeout_s: float = 60.0) -> None:
        self.path = Path(path).expanduser()
        self.busy_timeout_s = busy_timeout_s
        self.notes: list[str] = []
        self._local = threading.local()
        if self.path.is_dir():
            raise self._error("it is a directory", fix="pass a file path (a directory given to RMGAP_CACHE "
                              "holds scores.sqlite)")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise self._error(f"cannot create its directory ({e})") from e
        self._conn()  # fail now, with the path in the message, not mid-run

    def _error(self, cause: str, fix: str | None = None) -> CacheError:
        fix = fix or ("delete the file if it is an old score cache, point RMGAP_CACHE (or --rmgap-cache / --cache) "
                      "at another path, or turn the cache off (RMGAP_CACHE=off, --no-cache or "
                      "load_scorer(..., cache=False))")
        return CacheError(f"Score cache {self.path}: {cause}. Fix: {fix}.")

    def close(self) -> None:
        """Close this thread's connection (before deleting a throwaway store's file)."""
        local = self._local
        if getattr(local, "pid", None) == os.getpid() and getattr(local, "conn", None) is not None:
            local.conn.close()
            local.conn = local.pid = None

    def _conn(self) -> sqlite3.Connection:
        local = self._local
        if getattr(local, "pid", None) != os.getpid():
            if getattr(local, "conn", None) is not None:
                _INHERITED.append(local.conn)
            local.conn, local.pid = self._open(), os.getpid()
        return local.conn

    def _open(self) -> sqlite3.Connection:
        deadline = time.monotonic() + self.busy_timeout_s
        while True:
            try:
                conn = sqlite3.connect(self.path, timeout=self.busy_timeout_s,
                                       isolation_level=None, check_same_thread=True)
            except sqlite3.Error as e:
                raise self._error(str(e)) from e
            try:
                if not schema.is_current(conn):  # reads only: a stranger's file stays untouched
                    self._migrate(conn)
                # Switching a fresh file to WAL can report "locked" without
                # waiting on the busy handler when several processes start at once.
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")  # WAL+NORMAL survives a killed process
                return conn
            except schema.NotACache as e:
                conn.close()
                raise self._error(str(e)) from None
            except sqlite3.OperationalError as e:
                conn.close()
                if "locked" not in str(e) or time.monotonic() > deadline:
                    raise self._error(str(e)) from e
                time.sleep(0.05)
            except sqlite3.DatabaseError as e:  # e.g. "file is not a database"
                conn.close()
                raise self._error(f"it is not an rmgap-pytest score cache ({e})") from e

    def _migrate(self, conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")  # one transaction, so concurrent first openers create it once
        try:
            note = schema.create_or_migrate(conn)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        if note:
            self.notes.append(f"score cache {self.path}: {note}")

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")  # take the write lock now: no upgrade deadlocks
        try:
            yield conn
        except BaseException:
            if conn.in_transaction:  # SQLite may have rolled back already (e.g. disk full)
                conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    @staticmethod
    def _id(conn: sqlite3.Connection, table: str, column: str, value: str, create: bool) -> int | None:
        """The integer id of a fingerprint (scorers) or run id (runs); created inside a write."""
        row = conn.execute(f"SELECT id FROM {table} WHERE {column} = ?", (value,)).fetchone()
        if row is None and create:
            return conn.execute(f"INSERT INTO {table} ({column}) VALUES (?)", (value,)).lastrowid
        return None if row is None else row[0]

    # -- reading and writing scores -------------------------------------------------------------------
    def _read(self, conn: sqlite3.Connection, scorer: int | None, keys: Sequence[bytes]) -> dict[bytes, Row]:
        out: dict[bytes, Row] = {}
        if scorer is None or not keys:
            return out
        select = "SELECT s.key, s.value, s.meta, r.run FROM scores s LEFT JOIN runs r ON r.id = s.run WHERE s.scorer = ?"
        if len(keys) >= _SCAN_MIN:
            stored = conn.execute("SELECT COUNT(*) FROM scores WHERE scorer = ?", (scorer,)).fetchone()[0]
            if stored <= _SCAN_RATIO * len(keys):  # most of the scorer's rows are wanted: one sequential scan
                want = set(keys)
                return {k: Row(v, m, r) for k, v, m, r in conn.execute(select, (scorer,)) if k in want}
        keys = sorted(keys)  # in key order, the lookups walk the B-tree's pages in order
        for i in range(0, len(keys), _BATCH):
            batch = keys[i:i + _BATCH]
            rows = conn.execute(f"{select} AND s.key IN ({','.join('?' * len(batch))})", (scorer, *batch))
            out.update((key, Row(value, meta, run)) for key, value, meta, run in rows)
        return out

    def fetch(self, fingerprint: str, keys: Iterable[bytes]) -> dict[bytes, Row]:
        """The stored rows among ``keys``; absent keys are left out. Linear in len(keys)."""
        conn = self._conn()
        return self._read(conn, self._id(conn, "scorers", "fingerprint", fingerprint, False), list(keys))

    def store(self, fingerprint: str, rows: Mapping[bytes, Row], *, release: str | None = None,
              progress: tuple[str, int] | None = None) -> dict[bytes, Row]:
        """Store rows (first writer wins), drop our claim on ``release`` and record
        ``progress`` = (run, done so far), all in one transaction.

        Returns the rows as stored, so every process serves the same number for a key.
        """
        with self._write() as conn:
            scorer = self._id(conn, "scorers", "fingerprint", fingerprint, True)
            runs = {run: self._id(conn, "runs", "run", run, True) for run in {r.run for r in rows.values()} if run}
            cur = conn.executemany("INSERT OR IGNORE INTO scores VALUES (?, ?, ?, ?, ?)",
                                   [(scorer, k, r.value, r.meta, runs.get(r.run)) for k, r in rows.items()])
            if release is not None:
                self._release(conn, scorer, release)
            if progress is not None:
                self._progress(conn, progress[0], done=progress[1])
            if cur.rowcount == len(rows):  # nothing was there before: what we wrote is what is stored
                return dict(rows)
            return self._read(conn, scorer, list(rows))

    def lookup(self, fingerprint: str, keys: Iterable[bytes]) -> dict[bytes, float]:
        """Pair scores among ``keys`` (a convenience over ``fetch``)."""
        return {k: float(unpack(r.value)[0]) for k, r in self.fetch(fingerprint, keys).items()}

    def put(self, fingerprint: str, scores: Mapping[bytes, float]) -> dict[bytes, float]:
        """Store pair scores without metadata (a convenience over ``store``)."""
        stored = self.store(fingerprint, {k: Row(pack(v)) for k, v in scores.items()})
        return {k: float(unpack(r.value)[0]) for k, r in stored.items()}

    # -- sharing work ---------------------------------------------------------------------------------
    def claim_chunk(self, fingerprint: str, chunk: str, keys: Sequence[bytes], *,
                    lease_s: float = 1800.0) -> ChunkClaim:
        """Atomically take ``chunk`` if it is unfinished and free. O(len(keys)).

        ``keys`` are the chunk's keys the caller still misses. A claim is free to
        take over when its owner process is dead on this host or it is older
        than ``lease_s``.
        """
        now = time.time()
        with self._write() as conn:
            scorer = self._id(conn, "scorers", "fingerprint", fingerprint, True)
            row = conn.execute("SELECT host, pid, claimed_at FROM claims WHERE scorer = ? AND chunk = ?",
                               (scorer, chunk)).fetchone()
            if row is not None and not _stale(*row, now=now, lease_s=lease_s):
                return ChunkClaim("busy")
            stored = self._read(conn, scorer, keys)
            missing = [k for k in keys if k not in stored]
            if not missing:  # another process finished it since the caller looked
                if row is not None:  # a dead owner's leftover claim on finished work
                    conn.execute("DELETE FROM claims WHERE scorer = ? AND chunk = ?", (scorer, chunk))
                return ChunkClaim("done", stored)
            conn.execute("INSERT OR REPLACE INTO claims VALUES (?, ?, ?, ?, ?)", (scorer, chunk, _HOST, os.getpid(), now))
            return ChunkClaim("owned", stored, missing)

    def release(self, fingerprint: str, chunk: str) -> None:
        """Drop this process's claim on ``chunk`` (only ours: after a lease expiry it may be another's)."""
        with self._write() as conn:
            self._release(conn, self._id(conn, "scorers", "fingerprint", fingerprint, False), chunk)

    @staticmethod
    def _release(conn: sqlite3.Connection, scorer: int | None, chunk: str) -> None:
        conn.execute("DELETE FROM claims WHERE scorer = ? AND chunk = ? AND host = ? AND pid = ?",
                     (scorer, chunk, _HOST, os.getpid()))

    # -- progress of a run, shared between its processes ----------------------------------------------
    def _progress(self, conn: sqlite3.Connection, run: str, *, todo: int | None = None, done: int | None = None,
                  finished: bool = False, unit: str | None = None) -> None:
        now = time.time()
        conn.execute("INSERT INTO progress VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run, host, pid) DO UPDATE "
                     "SET todo = coalesce(?, todo), done = coalesce(?, done), finished = max(finished, ?), "
                     "unit = coalesce(?, unit), updated_at = ?",
                     (run, _HOST, os.getpid(), unit, todo or 0, done or 0, int(finished), now,
                      todo, done, int(finished), unit, now))

    def report_progress(self, run: str, *, todo: int | None = None, done: int | None = None,
                        finished: bool = False, unit: str | None = None) -> None:
        """Record this process's share of ``run``: keys it found missing at start, keys it computed."""
        with self._write() as conn:
            if todo is not None:  # a new process joins: forget runs that died without cleaning up
                conn.execute("DELETE FROM progress WHERE updated_at < ?", (time.time() - _PROGRESS_TTL_S,))
            self._progress(conn, run, todo=todo, done=done, finished=finished, unit=unit)

    def run_progress(self, run: str) -> dict[str, object]:
        """The whole run: ``todo`` (most keys any process found missing), ``done`` (summed),
        ``processes`` and ``finished`` (processes that reported the end of their share), ``unit``."""
        row = self._conn().execute("SELECT max(todo), sum(done), count(*), sum(finished), max(unit) "
                                   "FROM progress WHERE run = ?", (run,)).fetchone()
        return {"todo": row[0] or 0, "done": row[1] or 0, "processes": row[2], "finished": row[3] or 0,
                "unit": row[4] or "pair"}

    def forget_run(self, run: str) -> None:
        """Drop a finished run's progress rows."""
        with self._write() as conn:
            conn.execute("DELETE FROM progress WHERE run = ?", (run,))

    # -- what is in the file --------------------------------------------------------------------------
    def describe(self, fingerprint: str, *, spec: str, kind: str, unit: str, dtype: str | None,
                 version: str) -> None:
        """Record what a fingerprint is; the first description (and its date) is kept."""
        with self._write() as conn:
            conn.execute("INSERT INTO scorers (fingerprint) VALUES (?) ON CONFLICT (fingerprint) DO NOTHING",
                         (fingerprint,))
            conn.execute("UPDATE scorers SET spec = ?, kind = ?, unit = ?, dtype = ?, created_at = ?, "
                         "rmgap_version = ? WHERE fingerprint = ? AND spec IS NULL",
                         (spec, kind, unit, dtype, time.time(), version, fingerprint))

    def info(self) -> dict[str, int]:
        """Stored scores per fingerprint."""
        rows = self._conn().execute("SELECT f.fingerprint, COUNT(*) FROM scores s JOIN scorers f ON f.id = s.scorer "
                                    "GROUP BY f.fingerprint ORDER BY 1")
        return dict(rows.fetchall())

    def describe_all(self) -> list[dict[str, object]]:
        """One entry per fingerprint with scores: scores, spec, kind, unit, dtype, created_at (None if unknown)."""
        rows = self._conn().execute(
            "SELECT f.fingerprint, COUNT(*), f.spec, f.kind, f.unit, f.dtype, f.created_at FROM scores s "
            "JOIN scorers f ON f.id = s.scorer GROUP BY f.id ORDER BY f.created_at, f.fingerprint")
        return [dict(fingerprint=fp, scores=n, spec=spec, kind=kind, unit=unit, dtype=dtype, created_at=created)
                for fp, n, spec, kind, unit, dtype, created in rows]

    def clear(self, fingerprint: str | None = None) -> int:
        """Delete the scores and claims of one fingerprint, or of all; returns scores deleted.

        Descriptions stay (a running process may still refer to the id); ``info`` lists only
        fingerprints with scores.
        """
        with self._write() as conn:
            if fingerprint is None:
                conn.execute("DELETE FROM claims")
                return conn.execute("DELETE FROM scores").rowcount
            scorer = self._id(conn, "scorers", "fingerprint", fingerprint, False)
            conn.execute("DELETE FROM claims WHERE scorer = ?", (scorer,))
            return conn.execute("DELETE FROM scores WHERE scorer = ?", (scorer,)).rowcount


def _stale(host: str, pid: int, claimed_at: float, *, now: float, lease_s: float) -> bool:
    return now - claimed_at > lease_s or (host == _HOST and not _pid_alive(pid))
