"""The persistent job queue and history (ComfyUI's queue semantics on top of SQLite).

One worker thread takes the pending job with the lowest number, runs it through the executor and
records the result. Everything a client sees (``queue()``, ``history()``) is read back from the
database, so the state is the same after a restart; a job that was running when the process died
is marked as failed with a message on the next ``start()`` and pending jobs simply run.

Listeners registered with ``subscribe`` receive ``(event, job)`` for every executor event of a job
(typed events, engine/events.py; ``job.client_id`` is the submitter, so progress goes to the client
that queued it), and a ``Status`` event with job None (broadcast) on every queue change.
"""
from __future__ import annotations

import logging
import threading
import traceback
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable

from engine.events import (Event, ExecutionCached, ExecutionError, ExecutionInterrupted, ExecutionStart,
                           ExecutionWarning, Executing, Status)
from engine.store import (CANCELLED, ERROR, INTERRUPTED, PENDING, RUNNING, SUCCESS, Counter, Job,
                          JobStore)

if TYPE_CHECKING:
    from engine.graph import Validation

log = logging.getLogger(__name__)

RESTART_MESSAGE = "interrupted by a server restart"
MAX_HISTORY = 10000  # ComfyUI's history size; older finished jobs are forgotten
Listener = Callable[[Event, "Job | None"], None]

__all__ = ["JobQueue", "RESTART_MESSAGE", "PENDING", "RUNNING", "SUCCESS", "ERROR", "INTERRUPTED",
           "CANCELLED"]


def _history_entry(job: Job) -> dict:
    """One job in ComfyUI's /history shape.

    ComfyUI reports interrupted jobs with status_str "error" (and an execution_interrupted
    message); our own status column keeps the precise state.
    """
    return {
        "prompt": job.item(),
        "outputs": job.outputs,
        "status": {"status_str": "success" if job.status == SUCCESS else "error",
                   "completed": job.status == SUCCESS,
                   "messages": job.messages},
        "meta": {node: {"node_id": node, "display_node": node, "parent_node": None,
                        "real_node_id": node} for node in job.outputs},
    }


def _restart_failure(job: Job) -> tuple[list, dict]:
    """Messages and error recorded for a job found 'running' when the queue starts."""
    failure = _failure(job.prompt_id, RESTART_MESSAGE, "ServerRestart", [])
    started = ExecutionStart(job.prompt_id, int((job.started or job.created) * 1000))
    return [started.message(), failure.message()], _without_timestamp(failure)


def _failure(prompt_id: str, message: str, kind: str, traceback_lines: list) -> ExecutionError:
    """The execution_error of a job that failed outside any node (restart, executor crash)."""
    return ExecutionError(prompt_id, node_id=None, node_type=None, executed=[], exception_message=message,
                          exception_type=kind, traceback=traceback_lines, current_inputs={},
                          current_outputs={})


def _without_timestamp(event: Event) -> dict:
    """The stored ``error`` of a job: the event's payload, as it was before it was timed."""
    return {k: v for k, v in event.data.items() if k != "timestamp"}


class _RunLog:
    """What the running job has emitted so far: enough to record it as interrupted if the process
    must exit before the worker gets the job back from a node (see ``JobQueue.stop``)."""

    def __init__(self, job: Job) -> None:
        self.job, self.messages, self.executed, self.node = job, [], [], None

    def note(self, event: Event) -> None:
        if event.in_history:
            self.messages.append(event.message())
        if isinstance(event, ExecutionCached):
            self.executed.extend(event.nodes)
        elif isinstance(event, Executing) and event.node is not None:
            if self.node is not None:
                self.executed.append(self.node)
            self.node = event.node

    def interrupted(self) -> tuple[list, dict]:
        """(history messages, error) of the job stopped at the node it was running."""
        node_type = (self.job.prompt.get(self.node) or {}).get("class_type") if self.node else None
        stopped = ExecutionInterrupted(self.job.prompt_id, self.node, node_type, list(self.executed))
        return self.messages + [stopped.message()], stopped.data


class JobQueue:
    """Jobs in SQLite, one worker thread, ComfyUI-shaped queue and history views."""

    def __init__(self, db_path: str | Path, executor: Any, max_history: int = MAX_HISTORY) -> None:
        self.max_history = max_history
        self.store = JobStore(db_path)
        self.executor = executor
        self._counter = Counter(self.store.max_abs_number() + 1)
        self._listeners: list[Listener] = []
        self._listen_lock = threading.Lock()
        self._wake = threading.Condition()
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None
        self._running_id: str | None = None
        self._running_event: threading.Event | None = None
        self._running_log: _RunLog | None = None
        self._run_lock = threading.Lock()
        self._recovered = False
        self._validated: dict[str, Validation] = {}  # pending jobs validated at submit
        self._validated_lock = threading.Lock()

    # -- lifecycle ---------------------------------------------------------------------------
    def recover(self) -> list[str]:
        """Mark jobs left 'running' by a crash as error (kept in history); returns their ids.

        Called by ``start()``; safe to call before it (e.g. to inspect the state) and only acts once,
        so it never touches a job this process is running.
        """
        if self._recovered:
            return []
        self._recovered = True
        ids = self.store.fail_running(_restart_failure)
        for pid in ids:
            log.warning("job %s was running at the last shutdown: marked as error", pid)
        return ids

    def start(self) -> None:
        """Recover from a crash, then start the worker thread (idempotent)."""
        self.recover()
        if self._worker is not None and self._worker.is_alive():
            return
        self._stop.clear()
        self._worker = threading.Thread(target=self._work, name="latentgraph-queue", daemon=True)
        self._worker.start()

    def halt(self) -> None:
        """Take no more jobs and interrupt the running one, without waiting or taking a lock: safe
        in a signal handler (the server calls it the moment SIGTERM / SIGINT arrives)."""
        self._stop.set()
        event = self._running_event
        if event is not None:
            event.set()

    def stop(self, timeout: float | None = 30.0, interrupt_running: bool = True) -> None:
        """Stop the worker; by default the running job is interrupted (recorded as interrupted).

        A job still running after ``timeout`` (a node with no interrupt point for that long) is
        recorded as interrupted right away, with what it emitted so far, so that a process that
        exits now loses nothing; the daemon worker overwrites the record if it finishes after all.
        """
        if interrupt_running:
            self.halt()
        self._stop.set()
        with self._wake:
            self._wake.notify_all()
        worker = self._worker
        if worker is not None and worker is not threading.current_thread():
            worker.join(timeout)
            if not worker.is_alive():
                self._worker = None
            elif interrupt_running:
                self._record_unfinished()

    def _record_unfinished(self) -> None:
        run_log = self._running_log
        if run_log is None:
            return
        pid = run_log.job.prompt_id
        messages, error = run_log.interrupted()
        try:
            current = self.store.get(pid)
            if current is not None and current.status == RUNNING:
                self.store.finish(pid, status=INTERRUPTED, outputs={}, messages=messages, error=error,
                                  timings={}, keep=self.max_history)
                log.warning("job %s did not stop in time at node %s: recorded as interrupted", pid, run_log.node)
        except Exception:  # the row stays 'running'; the next start() records it as failed
            log.exception("cannot record job %s as interrupted", pid)

    def close(self) -> None:
        """Stop the worker and close the database."""
        self.stop()
        self.store.close()

    # -- submitting and inspecting -----------------------------------------------------------
    def submit(self, prompt: dict, *, prompt_id: str | None = None, number: int | float | None = None,
               front: bool = False, extra_data: dict | None = None, client_id: str | None = None,
               targets: list[str] | None = None, outputs_to_execute: list[str] | None = None,
               validation: Validation | None = None) -> tuple[str, int | float]:
        """Queue a prompt and return ``(prompt_id, number)``; clients go through engine.submit.

        A client-chosen ``prompt_id`` is honoured; a duplicate raises ValueError (so does a number
        the store refuses). ``front`` gives a number below every pending one (negative, as ComfyUI
        does) so the job runs next. ``outputs_to_execute`` (the validated output node ids, default
        ``validation.outputs``) only fills the 5th item of the ComfyUI queue/history entry;
        ``targets`` restricts execution. ``validation`` (the ``engine.graph.validate`` result of
        this very ``prompt`` and ``targets``) is kept in memory and handed to the executor, which
        then does not validate again; jobs without one (and jobs still pending after a restart,
        when the nodes may have changed) are validated by the executor.
        """
        pid = str(prompt_id) if prompt_id else str(uuid.uuid4())
        if outputs_to_execute is None and validation is not None:
            outputs_to_execute = list(validation.outputs)
        to_execute = list(outputs_to_execute if outputs_to_execute is not None else targets or [])
        kept = False
        if validation is not None:  # before the insert: the worker may claim the job at once
            with self._validated_lock:  # (a duplicate id keeps the original job's)
                kept = self._validated.setdefault(pid, validation) is validation
        try:
            num = self.store.insert(prompt_id=pid, number=number, front=front, counter=self._counter,
                                    prompt=prompt, extra_data=dict(extra_data or {}), client_id=client_id,
                                    targets=list(targets) if targets is not None else None,
                                    outputs_to_execute=[str(t) for t in to_execute])
        except BaseException:
            if kept:
                self._take_validation(pid)
            raise
        self._queue_changed()
        return pid, num

    def _take_validation(self, prompt_id: str) -> Validation | None:
        """Forget (and return) the Validation kept for a job submitted with one."""
        with self._validated_lock:
            return self._validated.pop(prompt_id, None)

    def queue(self) -> tuple[list[list], list[list]]:
        """``(running, pending)`` as ComfyUI items, pending in execution order."""
        running = [j.item() for j in self.store.by_status(RUNNING)]
        pending = [j.item() for j in self.store.by_status(PENDING)]
        return running, pending

    def queue_remaining(self) -> int:
        """Pending + running jobs (ComfyUI's exec_info.queue_remaining)."""
        return self.store.count_active()

    def job(self, prompt_id: str) -> Job | None:
        """The full stored record of a job (any state), or None."""
        return self.store.get(prompt_id)

    def list_jobs(self, statuses: Iterable[str], **options: Any) -> tuple[list[Job], int]:
        """A page of jobs in the given store states and their total: `JobStore.list_jobs`."""
        return self.store.list_jobs(statuses, **options)

    def delete(self, prompt_ids: Iterable[str]) -> list[str]:
        """Cancel pending jobs; running or finished ids are ignored. Returns the ids cancelled."""
        ids = self.store.cancel(_id_list(prompt_ids))
        self._forget_validations(ids)
        if ids:
            self._queue_changed()
        return ids

    def clear(self) -> list[str]:
        """Cancel every pending job (the running one continues, as in ComfyUI)."""
        ids = self.store.cancel(None)
        self._forget_validations(ids)
        if ids:
            self._queue_changed()
        return ids

    def _forget_validations(self, prompt_ids: list[str]) -> None:
        for pid in prompt_ids:
            self._take_validation(pid)

    def interrupt(self, prompt_id: str | None = None) -> bool:
        """Interrupt the running job if it is ``prompt_id`` (or any running job when None)."""
        with self._run_lock:
            if self._running_event is None:
                return False
            if prompt_id is not None and str(prompt_id) != self._running_id:
                return False
            self._running_event.set()
            return True

    # -- history -----------------------------------------------------------------------------
    def history(self, max_items: int | None = None, offset: int = 0) -> dict[str, dict]:
        """Finished jobs in ComfyUI's shape, oldest first in the dict.

        ``max_items`` keeps the newest ones; ``offset`` skips that many of the newest first (so
        offset=0, max_items=10 is the latest page, offset=10 the page before). Negative offsets
        count as 0.
        """
        return {j.prompt_id: _history_entry(j) for j in self.store.finished(max_items, offset)}

    def history_item(self, prompt_id: str) -> dict[str, dict]:
        """``{id: entry}`` for one finished job, ``{}`` when unknown or not finished (like ComfyUI)."""
        job = self.store.get(prompt_id)
        if job is None or job.status not in (SUCCESS, ERROR, INTERRUPTED):
            return {}
        return {job.prompt_id: _history_entry(job)}

    def delete_history(self, prompt_ids: Iterable[str]) -> int:
        """Forget finished jobs; returns how many rows were deleted."""
        return self.store.delete_finished(_id_list(prompt_ids))

    def clear_history(self) -> int:
        """Forget every finished (and cancelled) job."""
        return self.store.delete_finished(None)

    # -- events ------------------------------------------------------------------------------
    def subscribe(self, fn: Listener) -> Callable[[], None]:
        """Register ``fn(event, job)`` (job None for Status); returns a function that unsubscribes it."""
        with self._listen_lock:
            self._listeners.append(fn)

        def unsubscribe() -> None:
            with self._listen_lock:
                if fn in self._listeners:
                    self._listeners.remove(fn)
        return unsubscribe

    def _publish(self, event: Event, job: Job | None) -> None:
        with self._listen_lock:
            listeners = list(self._listeners)
        for fn in listeners:
            try:
                fn(event, job)
            except Exception:  # a broken listener (closed socket) must not stop the queue
                log.exception("queue listener failed on %s", event.type)

    def _queue_changed(self) -> None:
        self._publish(Status(self.queue_remaining()), None)
        with self._wake:
            self._wake.notify_all()

    # -- worker ------------------------------------------------------------------------------
    def _work(self) -> None:
        while not self._stop.is_set():
            try:
                job = self.store.claim_next()
            except Exception:  # e.g. a locked or failing disk: keep the worker alive and retry
                log.exception("cannot read the job queue; retrying")
                self._stop.wait(1.0)
                continue
            if job is None:
                with self._wake:
                    self._wake.wait(0.5)
                continue
            self._run(job)

    def _run(self, job: Job) -> None:
        """Execute one claimed job and record its result; never raises."""
        event, run_log = threading.Event(), _RunLog(job)
        with self._run_lock:
            self._running_id, self._running_event, self._running_log = job.prompt_id, event, run_log
        self._queue_changed()
        done_signal: list = []  # the executor's final `executing {node: None}`, sent after saving
        try:
            status, outputs, messages, error, timings = self._execute(job, event, done_signal, run_log)
        finally:
            with self._run_lock:
                self._running_id, self._running_event, self._running_log = None, None, None
        if status not in (SUCCESS, ERROR, INTERRUPTED):
            status = ERROR
        try:
            self.store.finish(job.prompt_id, status=status, outputs=outputs, messages=messages,
                              error=error, timings=timings, keep=self.max_history)
        except Exception:  # the row stays 'running'; the next start() records it as failed
            log.exception("cannot record the result of job %s", job.prompt_id)
        self._queue_changed()
        # ComfyUI's order: the history entry exists and `status` went out before the completion
        # signal, so a client that reads /history on `executing null` always finds the job.
        for done in done_signal or [Executing(None, job.prompt_id)]:
            self._publish(done, job)

    def _execute(self, job: Job, event: threading.Event, done_signal: list,
                 run_log: _RunLog) -> tuple[str, dict, list, dict | None, dict]:
        """Call the executor, turning an unexpected exception into an error result. The final
        `executing {node: None}` is kept in `done_signal` for _run to send after saving."""
        def emit(event: Event) -> None:
            run_log.note(event)
            if isinstance(event, Executing) and event.node is None:
                done_signal.append(event)
                return
            if isinstance(event, ExecutionWarning):  # the server log sees what clients see
                log.warning("job %s node %s: %s", job.prompt_id, event.node, event.message)
            self._publish(event, job)

        try:
            res = self.executor.execute(job.prompt, prompt_id=job.prompt_id, extra_data=job.extra_data,
                                        targets=job.targets, emit=emit, interrupt=event,
                                        validation=self._take_validation(job.prompt_id))
        except Exception as exc:  # the executor should not raise; record it rather than die
            log.exception("executor failed on job %s", job.prompt_id)
            failure = _failure(job.prompt_id, str(exc), type(exc).__name__, traceback.format_exception(exc))
            emit(failure)
            emit(Executing(None, job.prompt_id))
            return ERROR, {}, [failure.message()], _without_timestamp(failure), {}
        return (str(getattr(res, "status", ERROR)), dict(getattr(res, "outputs", None) or {}),
                list(getattr(res, "messages", None) or []), getattr(res, "error", None),
                _jsonable_timings(getattr(res, "timings", None)))


def _id_list(prompt_ids: Iterable[str] | str) -> list[str]:
    """A single id is one id, not a sequence of characters."""
    if isinstance(prompt_ids, (str, int)):
        return [str(prompt_ids)]
    return [str(p) for p in prompt_ids]


def _jsonable_timings(timings: Any) -> dict:
    """Timings as a JSON object (the executor may return a dict of floats or None)."""
    if not timings:
        return {}
    if isinstance(timings, dict):
        return {str(k): v for k, v in timings.items()}
    return {"value": timings}
