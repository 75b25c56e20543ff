"""Submitting jobs: the one path from a request body to a validated, queued job.

POST /prompt (ComfyUI clients) and POST /lg/queue (the editor, after converting its document) both
go through `SubmitService`, so a job is checked the same way whoever sends it:

1. `parse_request(body)` checks every field of the ComfyUI /prompt body (type and range) with the
   typed model `PromptRequest`, after `body_problem` has refused what could not be stored or read
   back (nesting deeper than `MAX_DEPTH`, non-finite floats, integers too long to print).
2. `engine.graph.validate` checks the graph, once.
3. `JobQueue.submit(..., validation=v)` stores the job and keeps the Validation for the executor,
   which therefore does not validate a second time (see `Executor.execute`).

Nothing is stored unless all three pass. A refusal is `SubmitRejected` carrying ComfyUI's 400 body
(`error_body`). ComfyUI's semantics (its server.py post_prompt): `number` given → the job gets
exactly that number (a float is allowed) and `front` is ignored; no `number` → the next counter
value, negated when `front` is true so the job runs before every pending one; a client `prompt_id`
is honoured; `client_id` is also copied into `extra_data.client_id`. Stricter than ComfyUI (which
answers 500 or stores garbage): wrong types are refused, `number` must be finite and within
±`MAX_NUMBER` (integers a JavaScript client reads back exactly, far inside SQLite's range).
"""
from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from engine.graph import Validation, error_body, validate

__all__ = ["PromptRequest", "SubmitRejected", "Checked", "SubmitService", "parse_request",
           "body_problem", "error_body", "MAX_NUMBER", "MAX_DEPTH", "MAX_ID_CHARS"]

MAX_NUMBER = 2 ** 53 - 1  # Number.MAX_SAFE_INTEGER
MAX_DEPTH = 100  # JSON nesting; real workflows (subgraphs included) stay under ~20 levels
MAX_ID_CHARS = 200
MAX_TARGETS = 10000
MAX_INT_BITS = 13000  # ~3,900 digits: below Python's 4,300-digit int/str limit, so json can print it


class SubmitRejected(Exception):
    """A refused submission; `body` is ComfyUI's error body, `status` the HTTP status (400)."""

    def __init__(self, body: dict, status: int = 400) -> None:
        super().__init__(body["error"]["message"])
        self.body, self.status = body, status


def _check_id(value: str | int, what: str) -> str:
    text = str(value)
    if not text.strip() or len(text) > MAX_ID_CHARS or not text.isprintable():
        raise ValueError(f"{what} must be 1 to {MAX_ID_CHARS} printable characters")
    return text


class PromptRequest(BaseModel):
    """The POST /prompt body (ComfyUI's fields; unknown keys are ignored, as ComfyUI does).

    Strict types: no bool for a number, no number for a string. `prompt` itself is only required to
    be an object here; its nodes are `engine.graph.validate`'s business (ComfyUI's node errors).
    """

    model_config = ConfigDict(strict=True, extra="ignore")

    prompt: dict[str, Any] | None = None
    client_id: str | None = None
    prompt_id: str | int | None = None
    number: int | float | None = None
    front: bool | None = None
    extra_data: dict[str, Any] | None = None
    partial_execution_targets: list[str | int] | None = None

    @field_validator("number")
    @classmethod
    def _number_in_range(cls, value: int | float | None) -> int | float | None:
        if value is not None and not (math.isfinite(value) and abs(value) <= MAX_NUMBER):
            raise ValueError(f"must be a finite number between -{MAX_NUMBER} and {MAX_NUMBER}")
        return value

    @field_validator("client_id")
    @classmethod
    def _client_text(cls, value: str | None) -> str | None:
        return None if value in (None, "") else _check_id(value, "client_id")  # "": no client, as before

    @field_validator("prompt_id")
    @classmethod
    def _id_text(cls, value: str | int | None) -> str | None:
        return None if value is None else _check_id(value, "prompt_id")

    @field_validator("partial_execution_targets")
    @classmethod
    def _target_ids(cls, value: list | None) -> list[str] | None:
        if value is None:
            return None
        if len(value) > MAX_TARGETS:
            raise ValueError(f"at most {MAX_TARGETS} node ids")
        return [_check_id(v, "a node id") for v in value]


def _encodable(text: str) -> bool:
    """False for a string with lone surrogates (JSON's "\\ud800" decodes to one): SQLite and
    UTF-8 files cannot store it."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def body_problem(body: Any, max_depth: int = MAX_DEPTH) -> str | None:
    """Why `body` cannot be stored and read back as JSON, or None: too deep, NaN/±inf, an integer
    too long to print, a key that is not a string, a lone surrogate. Iterative, so a deep body cannot exhaust the stack."""
    stack = [(body, 1, "body")]
    while stack:
        value, depth, where = stack.pop()
        if isinstance(value, (dict, list)):
            if depth > max_depth:
                return f"{where}: nested deeper than {max_depth} levels"
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, item in items:
                if isinstance(value, dict) and not isinstance(key, str):
                    return f"{where}: key {key!r} is not a string"
                if isinstance(key, str) and not _encodable(key):
                    return f"{where}: a key holds a lone UTF-16 surrogate (not valid Unicode)"
                stack.append((item, depth + 1, f"{where}.{key}" if isinstance(value, dict) else f"{where}[{key}]"))
        elif isinstance(value, str) and not _encodable(value):
            return f"{where}: a string holds a lone UTF-16 surrogate (not valid Unicode)"
        elif isinstance(value, float) and not math.isfinite(value):
            return f"{where}: {value} is not a finite number"
        elif isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > MAX_INT_BITS:
            return f"{where}: integer too large"
    return None


def parse_request(body: Any) -> PromptRequest:
    """`body` (decoded JSON) as a PromptRequest, or SubmitRejected with ComfyUI's error body."""
    if not isinstance(body, dict):
        raise SubmitRejected(error_body("invalid_prompt", "Invalid prompt: the request body must be an object",
                                        f"got {type(body).__name__}"))
    problem = body_problem(body)
    if problem:
        raise SubmitRejected(error_body("invalid_prompt", f"Invalid prompt: {problem}", problem))
    try:
        request = PromptRequest.model_validate(body)
    except ValidationError as exc:
        lines = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg'].removeprefix('Value error, ')}"
                 for e in exc.errors()]
        raise SubmitRejected(error_body("invalid_prompt", f"Invalid prompt: {lines[0]}", "\n".join(lines))) from None
    if request.prompt is None:
        raise SubmitRejected(error_body("no_prompt", "No prompt provided", "No prompt provided"))
    return request


@dataclass(frozen=True)
class Checked:
    """A request that passed every check; nothing is stored yet."""

    request: PromptRequest
    validation: Validation
    prompt_id: str  # the client's, or a new uuid: chosen now so callers can prepare for it
    extra_data: dict  # the request's, with client_id copied in (ComfyUI)


class SubmitService:
    """Parse, validate once, queue: used by POST /prompt and POST /lg/queue alike."""

    def __init__(self, queue: Any, registry: Any, paths: Any) -> None:
        self.queue, self.registry, self.paths = queue, registry, paths

    def check(self, body: Any) -> Checked:
        """Every check, nothing stored; raises SubmitRejected with the 400 body."""
        request = parse_request(body)
        if request.partial_execution_targets == []:  # ComfyUI: an empty target list selects no output
            raise SubmitRejected(error_body("prompt_no_outputs", "Prompt has no outputs",
                                            "partial_execution_targets is empty"))
        targets = request.partial_execution_targets or None
        validation = validate(request.prompt, self.registry, self.paths, targets=targets)
        if not validation.ok:
            raise SubmitRejected({"error": validation.error, "node_errors": validation.node_errors or {}})
        extra = dict(request.extra_data or {})
        if request.client_id is not None:
            extra["client_id"] = request.client_id
        prompt_id = request.prompt_id if request.prompt_id is not None else str(uuid.uuid4())
        return Checked(request, validation, prompt_id, extra)

    def enqueue(self, checked: Checked, prompt_id: str | None = None) -> dict:
        """Store the job → ComfyUI's 200 body ``{prompt_id, number, node_errors}``. `prompt_id`
        overrides the checked one (the editor queues one check several times). A duplicate id →
        SubmitRejected."""
        req = checked.request
        pid = checked.prompt_id if prompt_id is None else prompt_id
        try:
            pid, number = self.queue.submit(
                checked.validation.prompt, prompt_id=pid, number=req.number, front=bool(req.front),
                extra_data=checked.extra_data, client_id=req.client_id,
                targets=req.partial_execution_targets or None, validation=checked.validation)
        except ValueError as exc:  # a duplicate prompt_id; the store's own range checks
            raise SubmitRejected(error_body("invalid_prompt", f"Invalid prompt: {exc}", str(exc))) from None
        return {"prompt_id": pid, "number": number, "node_errors": checked.validation.node_errors or {}}

    def submit(self, body: Any) -> dict:
        """`check` then `enqueue`: the whole POST /prompt."""
        return self.enqueue(self.check(body))
