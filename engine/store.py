"""SQLite persistence for the job queue and its history.

Every job lives in one row of the ``jobs`` table from submission to deletion, so the queue and the
history survive a restart or a crash (WAL mode, each state change one committed transaction).
The store knows nothing about execution: ``engine.queue.JobQueue`` drives it.

Thread safety: one connection shared behind a lock (``check_same_thread=False``) plus a
``busy_timeout`` so a second process opening the same file waits instead of failing.
"""
from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

PENDING, RUNNING = "pending", "running"
SUCCESS, ERROR, INTERRUPTED, CANCELLED = "success", "error", "interrupted", "cancelled"
FINISHED = (SUCCESS, ERROR, INTERRUPTED)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    prompt_id    TEXT NOT NULL UNIQUE,
    number       INTEGER NOT NULL,
    status       TEXT NOT NULL,
    prompt       TEXT NOT NULL,
    extra_data   TEXT NOT NULL,
    client_id    TEXT,
    targets      TEXT,
    outputs_to_execute TEXT NOT NULL,
    outputs      TEXT,
    messages     TEXT,
    error        TEXT,
    timings      TEXT,
    created      REAL NOT NULL,
    started      REAL,
    finished     REAL,
    done_seq     INTEGER
);
CREATE INDEX IF NOT EXISTS jobs_status_number ON jobs(status, number, seq);
CREATE INDEX IF NOT EXISTS jobs_done ON jobs(done_seq);
"""


@dataclass
class Job:
    """One row of the jobs table with its JSON columns decoded."""

    prompt_id: str
    number: int | float
    status: str
    prompt: dict
    extra_data: dict
    client_id: str | None
    targets: list | None
    outputs_to_execute: list
    outputs: dict
    messages: list
    error: dict | None
    timings: dict
    created: float
    started: float | None
    finished: float | None

    def item(self) -> list:
        """The ComfyUI queue/history item ``[number, prompt_id, prompt, extra_data, outputs_to_execute]``."""
        return [self.number, self.prompt_id, self.prompt, self.extra_data, self.outputs_to_execute]


def _number(value: Any) -> int | float:
    """Job numbers are ints; ComfyUI also accepts a client float (kept when it has a fraction)."""
    value = float(value)
    return int(value) if value.is_integer() else value


def _dumps(value: Any) -> str | None:
    # default=repr: a node's odd UI value (a numpy scalar, a Path) must not leave a job unrecorded
    return None if value is None else json.dumps(value, separators=(",", ":"), default=repr)


def _loads(text: str | None, default: Any) -> Any:
    return default if text is None else json.loads(text)


def _row_to_job(row: sqlite3.Row) -> Job:
    return Job(
        prompt_id=row["prompt_id"], number=row["number"], status=row["status"],
        prompt=_loads(row["prompt"], {}), extra_data=_loads(row["extra_data"], {}),
        client_id=row["client_id"], targets=_loads(row["targets"], None),
        outputs_to_execute=_loads(row["outputs_to_execute"], []),
        outputs=_loads(row["outputs"], {}), messages=_loads(row["messages"], []),
        error=_loads(row["error"], None), timings=_loads(row["timings"], {}),
        created=row["created"], started=row["started"], finished=row["finished"])


class JobStore:
    """The jobs table: insert, claim the next pending job, finish, list, delete."""

    def __init__(self, db_path: str | Path) -> None:
        self.path = Path(db_path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(str(self.path), timeout=30.0, check_same_thread=False,
                                     isolation_level=None)
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute("PRAGMA busy_timeout=30000")
        self._conn.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def _tx(self, fn):
        """Run ``fn(conn)`` inside one IMMEDIATE transaction (committed or rolled back as a whole)."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                result = fn(self._conn)
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")
            return result

    def _query(self, sql: str, args: Iterable = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._conn.execute(sql, tuple(args)).fetchall()

    # -- numbers -----------------------------------------------------------------------------
    def max_abs_number(self) -> int:
        """Largest |number| ever given, so the running counter continues after a restart."""
        row = self._query("SELECT MAX(ABS(number)) AS m FROM jobs")[0]
        return int(row["m"] or 0)

    # -- writes ------------------------------------------------------------------------------
    def insert(self, *, prompt_id: str, number: int | None, front: bool, counter: "Counter",
               prompt: dict, extra_data: dict, client_id: str | None, targets: list | None,
               outputs_to_execute: list) -> int:
        """Insert a pending job and return its number (chosen inside the transaction).

        Raises ValueError when the prompt_id already exists.
        """
        def do(conn: sqlite3.Connection) -> int:
            if conn.execute("SELECT 1 FROM jobs WHERE prompt_id=?", (prompt_id,)).fetchone():
                raise ValueError(f"prompt_id {prompt_id!r} already exists")
            num = number
            if num is None:
                num = counter.next()
                if front:
                    low = conn.execute("SELECT MIN(number) AS m FROM jobs WHERE status=?",
                                       (PENDING,)).fetchone()["m"]
                    num = -num if low is None else min(-num, int(low) - 1)
            conn.execute(
                "INSERT INTO jobs (prompt_id, number, status, prompt, extra_data, client_id, targets,"
                " outputs_to_execute, created) VALUES (?,?,?,?,?,?,?,?,?)",
                (prompt_id, _number(num), PENDING, _dumps(prompt), _dumps(extra_data), client_id,
                 _dumps(targets), _dumps(outputs_to_execute), time.time()))
            return _number(num)
        return self._tx(do)

    def claim_next(self) -> Job | None:
        """Atomically move the pending job with the lowest number to running and return it."""
        def do(conn: sqlite3.Connection) -> Job | None:
            row = conn.execute("SELECT * FROM jobs WHERE status=? ORDER BY number, seq LIMIT 1",
                               (PENDING,)).fetchone()
            if row is None:
                return None
            now = time.time()
            conn.execute("UPDATE jobs SET status=?, started=? WHERE prompt_id=?",
                         (RUNNING, now, row["prompt_id"]))
            job = _row_to_job(row)
            job.status, job.started = RUNNING, now
            return job
        return self._tx(do)

    def finish(self, prompt_id: str, *, status: str, outputs: dict, messages: list,
               error: dict | None, timings: dict, keep: int | None = None) -> None:
        """Record a job's end state; ``done_seq`` orders the history by completion. With ``keep``,
        the oldest finished jobs beyond the newest ``keep`` go in the same transaction."""
        def do(conn: sqlite3.Connection) -> None:
            seq = conn.execute("SELECT COALESCE(MAX(done_seq), 0) + 1 AS s FROM jobs").fetchone()["s"]
            conn.execute(
                "UPDATE jobs SET status=?, outputs=?, messages=?, error=?, timings=?, finished=?,"
                " done_seq=? WHERE prompt_id=?",
                (status, _dumps(outputs), _dumps(messages), _dumps(error), _dumps(timings),
                 time.time(), seq, prompt_id))
            if keep is not None:
                _trim(conn, keep)
        self._tx(do)

    def fail_running(self, make_messages) -> list[str]:
        """Mark every job left 'running' (a crash) as error; ``make_messages(job)`` gives its messages."""
        running = [_row_to_job(r) for r in self._query(
            "SELECT * FROM jobs WHERE status=? ORDER BY number, seq", (RUNNING,))]
        for job in running:
            messages, error = make_messages(job)
            self.finish(job.prompt_id, status=ERROR, outputs={}, messages=messages, error=error,
                        timings={})
        return [j.prompt_id for j in running]

    def cancel(self, prompt_ids: Iterable[str] | None) -> list[str]:
        """Cancel pending jobs (all when ``prompt_ids`` is None); returns the ids cancelled."""
        def do(conn: sqlite3.Connection) -> list[str]:
            if prompt_ids is None:
                rows = conn.execute("SELECT prompt_id FROM jobs WHERE status=?", (PENDING,)).fetchall()
                ids = [r["prompt_id"] for r in rows]
            else:
                ids = [pid for pid in dict.fromkeys(str(p) for p in prompt_ids)
                       if conn.execute("SELECT 1 FROM jobs WHERE prompt_id=? AND status=?",
                                       (pid, PENDING)).fetchone()]
            conn.executemany("UPDATE jobs SET status=?, finished=? WHERE prompt_id=?",
                             [(CANCELLED, time.time(), pid) for pid in ids])
            return ids
        return self._tx(do)

    def delete_finished(self, prompt_ids: Iterable[str] | None) -> int:
        """Delete finished (and cancelled) rows: the given ids, or all of them."""
        states = FINISHED + (CANCELLED,)
        marks = ",".join("?" * len(states))

        def do(conn: sqlite3.Connection) -> int:
            if prompt_ids is None:
                return conn.execute(f"DELETE FROM jobs WHERE status IN ({marks})", states).rowcount
            n = 0
            for pid in dict.fromkeys(str(p) for p in prompt_ids):
                n += conn.execute(f"DELETE FROM jobs WHERE prompt_id=? AND status IN ({marks})",
                                  (pid, *states)).rowcount
            return n
        return self._tx(do)

    # -- reads -------------------------------------------------------------------------------
    def get(self, prompt_id: str) -> Job | None:
        rows = self._query("SELECT * FROM jobs WHERE prompt_id=?", (str(prompt_id),))
        return _row_to_job(rows[0]) if rows else None

    def by_status(self, status: str) -> list[Job]:
        """Jobs in one state, in execution order (number, then submission)."""
        rows = self._query("SELECT * FROM jobs WHERE status=? ORDER BY number, seq", (status,))
        return [_row_to_job(r) for r in rows]

    def count_active(self) -> int:
        rows = self._query("SELECT COUNT(*) AS n FROM jobs WHERE status IN (?, ?)", (PENDING, RUNNING))
        return int(rows[0]["n"])

    def finished(self, limit: int | None, offset: int) -> list[Job]:
        """Finished jobs oldest first; ``offset`` skips that many of the newest, ``limit`` caps the count."""
        marks = ",".join("?" * len(FINISHED))
        sql = f"SELECT * FROM jobs WHERE status IN ({marks}) ORDER BY done_seq DESC LIMIT ? OFFSET ?"
        rows = self._query(sql, (*FINISHED, -1 if limit is None else int(limit), max(0, int(offset))))
        return [_row_to_job(r) for r in reversed(rows)]


def _trim(conn: sqlite3.Connection, keep: int) -> int:
    """Delete finished jobs older than the newest ``keep`` (ComfyUI keeps 10,000)."""
    marks = ",".join("?" * len(FINISHED))
    row = conn.execute(f"SELECT done_seq FROM jobs WHERE status IN ({marks}) ORDER BY done_seq DESC"
                       " LIMIT 1 OFFSET ?", (*FINISHED, max(0, int(keep)))).fetchone()
    if row is None:
        return 0
    return conn.execute(f"DELETE FROM jobs WHERE status IN ({marks}) AND done_seq <= ?",
                        (*FINISHED, row["done_seq"])).rowcount


class Counter:
    """Thread-safe running counter for job numbers (starts after the largest number in the DB)."""

    def __init__(self, start: int) -> None:
        self._value = start
        self._lock = threading.Lock()

    def next(self) -> int:
        with self._lock:
            value = self._value
            self._value += 1
            return value
