"""The score cache's schema: recognising our file, creating it, migrating old versions.

A path that holds anything else (another program's SQLite database, a text
file) is refused before anything is written to it: ``CREATE TABLE IF NOT
EXISTS`` on a stranger's database, or switching it to WAL, would change a file
the user never meant to give us. Our files carry ``PRAGMA application_id``
(``APP_ID``) and ``PRAGMA user_version`` (``SCHEMA_VERSION``); schema 1 files,
written before the application id existed, are recognised by their tables.
"""

from __future__ import annotations

import sqlite3

APP_ID = 0x524D4750  # "RMGP"
SCHEMA_VERSION = 2

# scorers: one row per fingerprint; scores refer to it by id, so a row does not repeat a long
#   fingerprint; spec/kind/unit/dtype/created_at describe it (``rmgap cache info``).
# runs: run ids, referred to by integer for the same reason.
# scores: key = 4-byte content size + 16-byte digest (cache.py): rows written together sit
#   together, so storing a chunk touches a few pages, not one page per score. value = packed
#   little-endian doubles (1 per pair, k per item); meta = JSON or NULL; run = the run that computed it.
# claims: who is computing which chunk (stored.py). progress: per process of a run, keys to
#   do and done, so one process can draw the whole run's progress.
TABLES = """
CREATE TABLE scorers (
    id INTEGER PRIMARY KEY, fingerprint TEXT NOT NULL UNIQUE, spec TEXT, kind TEXT, unit TEXT, dtype TEXT,
    created_at REAL, rmgap_version TEXT);
CREATE TABLE runs (id INTEGER PRIMARY KEY, run TEXT NOT NULL UNIQUE, started_at REAL);
CREATE TABLE scores (
    scorer INTEGER NOT NULL, key BLOB NOT NULL, value BLOB NOT NULL, meta TEXT, run INTEGER,
    PRIMARY KEY (scorer, key)) WITHOUT ROWID;
CREATE TABLE claims (
    scorer INTEGER NOT NULL, chunk TEXT NOT NULL, host TEXT NOT NULL, pid INTEGER NOT NULL,
    claimed_at REAL NOT NULL, PRIMARY KEY (scorer, chunk)) WITHOUT ROWID;
CREATE TABLE progress (
    run TEXT NOT NULL, host TEXT NOT NULL, pid INTEGER NOT NULL, unit TEXT, todo INTEGER NOT NULL,
    done INTEGER NOT NULL, finished INTEGER NOT NULL, updated_at REAL NOT NULL,
    PRIMARY KEY (run, host, pid)) WITHOUT ROWID;
"""
_V1_TABLES = {"scores": ["fingerprint", "pair", "score"],
              "claims": ["fingerprint", "chunk", "host", "pid", "claimed_at"]}


class NotACache(Exception):
    """The file is not a score cache (the caller turns this into a CacheError with the path)."""


def is_current(conn: sqlite3.Connection) -> bool:
    """True for an up-to-date cache; raises NotACache for a newer or foreign file. Reads only."""
    app_id = conn.execute("PRAGMA application_id").fetchone()[0]
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if app_id == APP_ID and version > SCHEMA_VERSION:
        raise NotACache(f"it was written by a newer rmgap-pytest (schema {version}, this one reads "
                        f"{SCHEMA_VERSION}). Fix: upgrade rmgap-pytest, or use another cache file")
    if app_id not in (0, APP_ID):
        raise NotACache(f"it is an SQLite database of another program (application id {app_id:#x})")
    return app_id == APP_ID and version == SCHEMA_VERSION


def create_or_migrate(conn: sqlite3.Connection) -> str | None:
    """Inside the caller's write transaction: bring the file to SCHEMA_VERSION.

    Returns a note for the user when something was migrated. Raises NotACache,
    leaving the file untouched, when the file holds tables that are not ours.
    """
    if is_current(conn):  # another process did it while we waited for the lock
        return None
    app_id = conn.execute("PRAGMA application_id").fetchone()[0]
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    tables = {name for (name,) in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")}
    note = None
    if app_id == 0 and not tables:
        _create(conn)
    elif app_id == 0 and version == 1 and _looks_v1(conn, tables):
        # Schema 1 keyed scores by a hash this version no longer computes (keys now start with
        # the content size, see cache.py); without the texts they cannot be re-keyed. Rebuild.
        dropped = conn.execute("SELECT COUNT(*) FROM scores").fetchone()[0]
        conn.execute("DROP TABLE scores")
        conn.execute("DROP TABLE claims")
        _create(conn)
        note = (f"written by an older rmgap-pytest (schema 1), whose keys this version cannot read: "
                f"rebuilt empty ({dropped} old scores dropped; they are recomputed as needed)")
    else:
        shown = ", ".join(sorted(tables)) or "none"
        raise NotACache(f"it is not an rmgap-pytest score cache (SQLite tables: {shown})")
    conn.execute(f"PRAGMA application_id = {APP_ID}")
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    return note


def _create(conn: sqlite3.Connection) -> None:
    for statement in TABLES.split(";"):
        if statement.strip():
            conn.execute(statement)


def _looks_v1(conn: sqlite3.Connection, tables: set[str]) -> bool:
    if tables != set(_V1_TABLES):
        return False
    return all([row[1] for row in conn.execute(f"PRAGMA table_info({name})")] == columns
               for name, columns in _V1_TABLES.items())
