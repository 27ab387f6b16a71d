"""SQLite score cache: (scorer fingerprint, pair hash) -> score.

The cache is also how processes share scoring work. Every process asking for
the same pairs cuts them into the same chunks; a process claims a chunk in the
database, scores only its missing pairs, and stores the scores and drops the
claim in one transaction. So pytest-xdist workers score each pair once in
total, a killed run resumes at the chunk it was in, and a fully cached run never
calls (so never loads) the model. The claim loop lives in ``stored.py``;
this module is the storage. See docs/cache.md.
"""

from __future__ import annotations

import hashlib
import os
import socket
import sqlite3
import struct
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path


from .errors import RMGapError

__all__ = ["CacheError", "Claim", "ScoreStore", "default_cache_path",
           "env_disables_cache", "pair_hash", "resolve_cache_path"]

ENV_VAR = "RMGAP_CACHE"
_OFF_VALUES = {"0", "off", "false", "no", "none"}
SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS scores (
    fingerprint TEXT NOT NULL, pair TEXT NOT NULL, score BLOB NOT NULL,
    PRIMARY KEY (fingerprint, pair)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS claims (
    fingerprint TEXT NOT NULL, chunk TEXT NOT NULL, host TEXT NOT NULL,
    pid INTEGER NOT NULL, claimed_at REAL NOT NULL,
    PRIMARY KEY (fingerprint, chunk)) WITHOUT ROWID;
"""
_BATCH = 500  # keys per IN (...) query, far below SQLite's bound-variable limit
# Scores are stored as the 8 bytes of the IEEE double: SQLite would turn NaN
# into NULL and may store -0.0 as the integer 0; the bytes round-trip exactly.
_DOUBLE = struct.Struct("<d")


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


class CacheError(RMGapError):
    """The score cache file cannot be used."""


def env_disables_cache() -> bool:
    """True when ``RMGAP_CACHE`` is 0/off/false/no/none (any case): the default cache is off."""
    return os.environ.get(ENV_VAR, "").strip().lower() in _OFF_VALUES


def _as_file(path: Path) -> Path:
    return path / "scores.sqlite" if path.is_dir() else path  # a directory holds scores.sqlite


def default_cache_path() -> Path:
    """$RMGAP_CACHE, else $XDG_CACHE_HOME/rmgap-pytest/scores.sqlite, else ~/.cache/...

    When ``env_disables_cache()`` this is the XDG location; use
    ``resolve_cache_path`` to honour the off switch.
    """
    value = os.environ.get(ENV_VAR, "").strip()
    if value and value.lower() not in _OFF_VALUES:
        return _as_file(Path(value).expanduser())
    base = os.environ.get("XDG_CACHE_HOME", "").strip()
    root = Path(base).expanduser() if base else Path.home() / ".cache"
    return root / "rmgap-pytest" / "scores.sqlite"


def resolve_cache_path(setting: bool | str | os.PathLike[str] | None = True) -> Path | None:
    """The cache file for a user's setting, or None when caching is off.

    One place for the rules, so ``load_scorer``, the CLI and the plugin agree:
    True, None or "" = the default (off when ``RMGAP_CACHE`` says so); False or
    0/off/false/no/none = off; anything else = that file.
    """
    if setting is None or setting is True or setting == "":
        return None if env_disables_cache() else default_cache_path()
    if setting is False or str(setting).strip().lower() in _OFF_VALUES:
        return None
    return _as_file(Path(setting).expanduser())


def pair_hash(prompt: str, response: str) -> str:
    """sha256 over length-prefixed UTF-8, so ("ab", "c") and ("a", "bc") differ."""
    h = hashlib.sha256()
    for text in (prompt, response):
        data = text.encode("utf-8", "surrogatepass")  # lone surrogates must not crash hashing
        h.update(len(data).to_bytes(8, "big"))
        h.update(data)
    return h.hexdigest()


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


@dataclass
class Claim:
    """What ``ScoreStore.claim`` found: the chunk now owned (None if none was free)."""

    chunk: str | None
    missing: list[str] = field(default_factory=list)  # the owned chunk's unscored pairs
    stored: dict[str, float] = field(default_factory=dict)  # scores read on the way


class ScoreStore:
    """One SQLite file in WAL mode, shared by every process and thread.

    Each (process, thread) gets its own connection, reopened after a fork.
    Writes are short ``BEGIN IMMEDIATE`` transactions so readers never wait
    and writers queue on the busy timeout instead of failing.
    """

    def __init__(self, path: str | os.PathLike[str], *, busy_timeout_s: float = 60.0) -> None:
        self.path = Path(path).expanduser()
        self.busy_timeout_s = busy_timeout_s
        self._local = threading.local()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise self._error(f"cannot create its directory ({e})") from e
        self._conn()  # fail now, with the path in the message, not mid-run

    def _error(self, cause: str) -> CacheError:
        return CacheError(
            f"Score cache {self.path}: {cause}. Fix: delete the file, point {ENV_VAR} at "
            f"another path, or turn the cache off ({ENV_VAR}=off or load_scorer(..., cache=False))."
        )

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
                # Switching a fresh file to WAL can report "locked" without
                # waiting on the busy handler when several processes start at once.
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")  # WAL+NORMAL survives a killed process
                self._init_schema(conn)
                return conn
            except sqlite3.OperationalError as e:
                conn.close()
                if "locked" not in str(e) or time.monotonic() > deadline:
                    raise self._error(str(e)) from e
                time.sleep(0.05)
            except sqlite3.DatabaseError as e:  # e.g. "file is not a database"
                conn.close()
                raise self._error(str(e)) from e

    def _init_schema(self, conn: sqlite3.Connection) -> None:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version == SCHEMA_VERSION:
            return
        if version > SCHEMA_VERSION:
            raise self._error(f"it was written by a newer rmgap-pytest (schema {version})")
        # One transaction, so concurrent first openers create the schema once.
        conn.executescript(f"BEGIN IMMEDIATE; {_SCHEMA} PRAGMA user_version={SCHEMA_VERSION}; COMMIT;")

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

    def _read(self, conn: sqlite3.Connection, fingerprint: str, keys: Sequence[str]) -> dict[str, float]:
        out: dict[str, float] = {}
        for i in range(0, len(keys), _BATCH):
            batch = keys[i:i + _BATCH]
            rows = conn.execute(
                f"SELECT pair, score FROM scores WHERE fingerprint = ? AND pair IN ({','.join('?' * len(batch))})",
                (fingerprint, *batch))
            out.update((pair, _DOUBLE.unpack(blob)[0]) for pair, blob in rows)
        return out

    def lookup(self, fingerprint: str, keys: Iterable[str]) -> dict[str, float]:
        """The stored scores among ``keys`` (pair hashes); absent keys are left out."""
        return self._read(self._conn(), fingerprint, list(keys))

    def put(self, fingerprint: str, scores: Mapping[str, float], *, release: str | None = None) -> dict[str, float]:
        """Store scores (first writer wins) and drop our claim on ``release``, atomically.

        Returns the stored values, so every process serves the same number for a pair.
        """
        with self._write() as conn:
            conn.executemany("INSERT OR IGNORE INTO scores VALUES (?, ?, ?)",
                             [(fingerprint, k, _DOUBLE.pack(float(v))) for k, v in scores.items()])
            if release is not None:
                self.release(fingerprint, release, conn)
            return self._read(conn, fingerprint, list(scores))

    def claim(self, fingerprint: str, chunks: Mapping[str, Sequence[str]], *, lease_s: float = 1800.0) -> Claim:
        """Atomically take the first chunk (in the given order) that is unfinished and free.

        A claim is free to take over when its owner process is dead on this
        host or it is older than ``lease_s``. ``chunks`` maps chunk id -> the
        pairs the caller still misses.
        """
        found = Claim(None)
        now = time.time()
        with self._write() as conn:
            for chunk, keys in chunks.items():
                row = conn.execute("SELECT host, pid, claimed_at FROM claims WHERE fingerprint = ? AND chunk = ?",
                                   (fingerprint, chunk)).fetchone()
                if row is not None and not _stale(*row, now=now, lease_s=lease_s):
                    continue
                found.stored.update(self._read(conn, fingerprint, keys))
                missing = [k for k in keys if k not in found.stored]
                if not missing:  # another process finished it since the caller looked
                    if row is not None:  # a dead owner's leftover claim on finished work
                        conn.execute("DELETE FROM claims WHERE fingerprint = ? AND chunk = ?", (fingerprint, chunk))
                    continue
                conn.execute("INSERT OR REPLACE INTO claims VALUES (?, ?, ?, ?, ?)",
                             (fingerprint, chunk, _HOST, os.getpid(), now))
                found.chunk, found.missing = chunk, missing
                break
        return found

    def release(self, fingerprint: str, chunk: str, conn: sqlite3.Connection | None = None) -> None:
        """Drop this process's claim on ``chunk`` (only ours: after a lease expiry it may be another's)."""
        if conn is None:
            with self._write() as conn:
                return self.release(fingerprint, chunk, conn)
        conn.execute("DELETE FROM claims WHERE fingerprint = ? AND chunk = ? AND host = ? AND pid = ?",
                     (fingerprint, chunk, _HOST, os.getpid()))

    def info(self) -> dict[str, int]:
        """Stored scores per fingerprint (for ``rmgap cache``)."""
        rows = self._conn().execute("SELECT fingerprint, COUNT(*) FROM scores GROUP BY fingerprint ORDER BY 1")
        return dict(rows.fetchall())

    def clear(self, fingerprint: str | None = None) -> int:
        """Delete the scores (and claims) of one fingerprint, or of all; returns scores deleted."""
        where, args = ("WHERE fingerprint = ?", (fingerprint,)) if fingerprint is not None else ("", ())
        with self._write() as conn:
            conn.execute(f"DELETE FROM claims {where}", args)
            return conn.execute(f"DELETE FROM scores {where}", args).rowcount


def _stale(host: str, pid: int, claimed_at: float, *, now: float, lease_s: float) -> bool:
    return now - claimed_at > lease_s or (host == _HOST and not _pid_alive(pid))
