"""Running a coroutine to completion from synchronous code (executor, validation)."""
from __future__ import annotations

import asyncio
import threading
from typing import Any


def run_coroutine(coro: Any) -> Any:
    """Runs `coro` to completion on a fresh event loop; from a thread that already runs a loop
    (an async caller), on a helper thread, since one thread cannot run two loops."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(coro)
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc
    worker = threading.Thread(target=target, name="latentgraph-run")
    worker.start()
    worker.join()
    if "error" in box:
        raise box["error"]
    return box.get("value")
