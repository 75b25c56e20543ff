"""SQLite persistence for the job queue and its history.

Every job lives in one row of the ``jobs`` table from submission to deletion, so the queue and the
history survive a restart or a crash (WAL mode, each state change one committed transaction).
The store knows nothing about execution: ``engine.queue.JobQueue`` drives it.

Thread safety: one connection shared behind a lock (``check_same_thread=False``) plus a
``busy_timeout`` so a second process opening the same file waits instead of failing.
"""
from __future__ import annotations

import json
import logging
import math
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from engine.events import ExecutionError

log = logging.getLogger(__name__)

PENDING, RUNNING = "pending", "running"
SUCCESS, ERROR, INTERRUPTED, CANCELLED = "success", "error", "interrupted", "cancelled"
FINISHED = (SUCCESS, ERROR, INTERRUPTED)
STATUSES = (PENDING, RUNNING, CANCELLED) + FINISHED
NUMBER_LIMIT = 2 ** 63 - 1  # SQLite INTEGER; -2**63 is left out because ABS() of it overflows
QUARANTINE_TYPE = "CorruptJob"

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
    """Job numbers are ints; ComfyUI also accepts a client float (kept when it has a fraction).

    The last line of defence for the ``number`` column (engine.submit refuses these first): NaN,
    ±inf and anything beyond SQLite's 64-bit integers raise ValueError instead of being stored."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"job number {value!r} is not a number")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"job number {value} is not finite")
    if abs(value) > NUMBER_LIMIT:
        raise ValueError(f"job number {value} is beyond ±{NUMBER_LIMIT}")
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _dumps(value: Any, *, strict: bool = False) -> str | None:
    """JSON text for a column. Never NaN/Infinity (not JSON; SQLite's and browsers' parsers refuse
    it): ``strict`` (client data) raises ValueError, otherwise (results) they become null."""
    if value is None:
        return None
    # default=repr: a node's odd UI value (a numpy scalar, a Path) must not leave a job unrecorded
    try:
        return json.dumps(value, separators=(",", ":"), default=repr, allow_nan=False)
    except ValueError:
        if strict:
            raise ValueError("NaN and infinite numbers cannot be stored") from None
        return json.dumps(_finite(value), separators=(",", ":"), default=repr, allow_nan=False)


def _finite(value: Any) -> Any:
    """``value`` with every non-finite float replaced by None (what JSON.stringify does)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _loads(text: str | None, default: Any) -> Any:
    return default if text is None else json.loads(text)


# What each JSON column must decode to (None allowed where the column may be NULL).
_JSON_COLUMNS = {"prompt": (dict,), "extra_data": (dict,), "targets": (list, type(None)),
                 "outputs_to_execute": (list,), "outputs": (dict, type(None)),
                 "messages": (list, type(None)), "error": (dict, type(None)), "timings": (dict, type(None))}


def _suspect_sql() -> str:
    """A WHERE clause true for rows that may fail `_row_problem` (a superset: Python decides)."""
    num = "(typeof({0}) IN ('integer', 'real') AND {0} BETWEEN -{1} AND {1})"
    parts = [f"NOT {num.format('number', NUMBER_LIMIT)}", f"NOT {num.format('created', NUMBER_LIMIT)}",
             f"status NOT IN ({', '.join(repr(s) for s in STATUSES)})", "typeof(prompt_id) != 'text'",
             "(client_id IS NOT NULL AND typeof(client_id) != 'text')"]
    parts += [f"({c} IS NOT NULL AND NOT {num.format(c, NUMBER_LIMIT)})" for c in ("started", "finished")]
    # Valid JSON whose first character is { is an object: no second parse (json.dumps writes no
    # leading space; a hand-edited row that has one is merely suspect, and Python decides).
    first_char = {dict: "'{'", list: "'['"}
    for column, kinds in _JSON_COLUMNS.items():
        allowed = ", ".join(first_char[k] for k in kinds if k in first_char)
        check = f"NOT json_valid({column}) OR substr({column}, 1, 1) NOT IN ({allowed})"
        nullable = type(None) in kinds
        parts.append(f"({column} IS NOT NULL AND ({check}))" if nullable else f"({column} IS NULL OR {check})")
    return " OR ".join(parts)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _finite_number(value: Any) -> bool:
    return (isinstance(value, (int, float)) and math.isfinite(value)) and abs(value) <= NUMBER_LIMIT


def _row_problem(row: sqlite3.Row) -> str | None:
    """Why a stored row cannot be read as a Job (written by hand, an old bug, a bad disk), or None."""
    if not _finite_number(row["number"]):
        return f"its number {_short(row['number'])} is not a finite number within ±{NUMBER_LIMIT}"
    if row["status"] not in STATUSES:
        return f"its status {_short(row['status'])} is unknown"
    if not isinstance(row["prompt_id"], str) or not (row["client_id"] is None or isinstance(row["client_id"], str)):
        return "its prompt_id or client_id is not text"
    for column in ("created", "started", "finished"):
        if not (_finite_number(row[column]) or (column != "created" and row[column] is None)):
            return f"its {column} time {_short(row[column])} is not a number"
    for column, kinds in _JSON_COLUMNS.items():
        try:
            value = _loads(row[column], None)
        except (TypeError, ValueError, RecursionError):
            return f"its {column} is not valid JSON"
        if not isinstance(value, kinds):
            return f"its {column} is a {type(value).__name__}, not a {kinds[0].__name__}"
    return None


def _quarantined_values(row: sqlite3.Row, reason: str) -> dict:
    """The row as a failed job: the readable columns kept, the others reset, the reason recorded."""
    message = f"job quarantined at start-up: the stored row could not be read ({reason}); it was not run"
    pid = row["prompt_id"] if isinstance(row["prompt_id"], str) else f"quarantined-{row['seq']}"
    event = ExecutionError(pid, node_id=None, node_type=None, executed=[], exception_message=message,
                           exception_type=QUARANTINE_TYPE, traceback=[], current_inputs={}, current_outputs=[])
    error = event.data
    values = {"status": ERROR, "number": row["number"] if _finite_number(row["number"]) else 0,
              "prompt_id": pid,
              "client_id": row["client_id"] if isinstance(row["client_id"], str) else None,
              "outputs": "{}", "messages": _dumps([event.message()]), "error": _dumps(error),
              "timings": "{}", "finished": time.time(),
              "created": row["created"] if _finite_number(row["created"]) else time.time(),
              "started": row["started"] if _finite_number(row["started"]) else None}
    for column in ("prompt", "extra_data", "targets", "outputs_to_execute"):
        kinds = _JSON_COLUMNS[column]
        try:
            ok = isinstance(_loads(row[column], None), kinds)
        except (TypeError, ValueError, RecursionError):
            ok = False
        values[column] = row[column] if ok else _dumps(None if type(None) in kinds else kinds[0]())
    return values


_SUSPECT_SQL = _suspect_sql()


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
        self.quarantined = self.quarantine()

    def quarantine(self) -> list[str]:
        """Turn every row that cannot be read back into a failed job (status error, the reason in its
        error message and history), so one bad row never stops the server from starting or the
        queue from running. Returns the prompt ids; called when the store opens."""
        bad = [(row, problem) for row in self._suspect_rows()
               if (problem := _row_problem(row)) is not None]

        def do(conn: sqlite3.Connection) -> list[str]:
            ids = []
            for row, problem in bad:
                values = _quarantined_values(row, problem)
                values["done_seq"] = conn.execute(
                    "SELECT COALESCE(MAX(done_seq), 0) + 1 AS s FROM jobs").fetchone()["s"]
                sets = ", ".join(f"{k}=?" for k in values)
                conn.execute(f"UPDATE jobs SET {sets} WHERE seq=?", (*values.values(), row["seq"]))
                log.error("job %s quarantined as failed: %s", values["prompt_id"], problem)
                ids.append(values["prompt_id"])
            return ids
        return self._tx(do) if bad else []

    def _suspect_rows(self) -> list[sqlite3.Row]:
        """Rows `_row_problem` must look at: every pending/running one (the worker and /queue read
        them all the time), and the finished ones SQLite itself finds suspect, so opening a full
        history does not decode every row in Python. Without SQLite's JSON functions: all rows."""
        try:
            return self._query(f"SELECT * FROM jobs WHERE status IN (?, ?) OR {_SUSPECT_SQL}", (PENDING, RUNNING))
        except sqlite3.OperationalError:  # a SQLite built without json_valid()
            return self._query("SELECT * FROM jobs")

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
        """Largest |number| ever given, so the running counter continues after a restart.

        Only numeric values in range count (quarantine has dealt with the others at open)."""
        row = self._query("SELECT MIN(number) AS lo, MAX(number) AS hi FROM jobs"
                          " WHERE typeof(number) IN ('integer', 'real')")[0]
        found = [abs(v) for v in (row["lo"], row["hi"]) if v is not None and math.isfinite(v)]
        return int(min(max(found, default=0), NUMBER_LIMIT))

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
                (prompt_id, _number(num), PENDING, _dumps(prompt, strict=True),
                 _dumps(extra_data, strict=True), client_id, _dumps(targets, strict=True),
                 _dumps(outputs_to_execute, strict=True), time.time()))
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

    def list_jobs(self, statuses: Iterable[str], *, workflow_id: str | None = None, by_duration: bool = False,
                  descending: bool = True, limit: int | None = None, offset: int = 0) -> tuple[list[Job], int]:
        """One page of the jobs in ``statuses`` and how many there are in all (GET /api/jobs).

        Ordered by submission time, or by run time (finished − started; 0 for jobs that have not
        finished), ties in submission order; ``workflow_id`` keeps the jobs whose
        ``extra_data.extra_pnginfo.workflow.id`` equals it."""
        states = [s for s in dict.fromkeys(statuses) if s in STATUSES]
        if not states:
            return [], 0
        where = f"status IN ({','.join('?' * len(states))})"
        args: list[Any] = list(states)
        if workflow_id is not None:
            where += " AND json_extract(extra_data, '$.extra_pnginfo.workflow.id') = ?"
            args.append(workflow_id)
        key = "COALESCE(finished - started, 0)" if by_duration else "created"
        way = "DESC" if descending else "ASC"
        total = int(self._query(f"SELECT COUNT(*) AS n FROM jobs WHERE {where}", args)[0]["n"])
        rows = self._query(f"SELECT * FROM jobs WHERE {where} ORDER BY {key} {way}, seq {way} LIMIT ? OFFSET ?",
                           (*args, -1 if limit is None else max(0, int(limit)), max(0, int(offset))))
        return [_row_to_job(r) for r in rows], total


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
