"""Start a real Latentgraph server in a subprocess on a free port, talk to it, stop it.

Used by tests/test_server_*.py and bench/bench_server.py. The subprocess is ``python main.py serve``
(the production wiring) with ``LATENTGRAPH_EXTRA_NODES=tests.server_helpers``, which makes main.py
call ``register(REGISTRY)`` here to add a few stub nodes (constant, slow with progress + previews,
failing, PNG-saving, file combos). Every server is bound to 127.0.0.1 and killed when the test ends.
"""
from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterable

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT = 90.0


# ------------------------------------------------------------------------------------------------
# stub nodes (registered only inside the server subprocess)
# ------------------------------------------------------------------------------------------------
def _tiny_png(value: int, size: int = 8) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (size, size), (value % 256, 255 - value % 256, 64)).save(buf, format="PNG")
    return buf.getvalue()


def _tiny_jpeg(value: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (value % 256, 32, 200)).save(buf, format="JPEG", quality=80)
    return buf.getvalue()


def register(registry: Any = None) -> None:
    """Declare the test nodes (LgConst, LgSlow, LgFail, LgSave, LgPickFile) in ``registry``."""
    from nodes.registry import Combo, Float, In, Int, NodeOutput, Out, String, files, node

    @node(category="lg_test", registry=registry)
    class LgConst:
        """A constant integer (test node)."""
        INPUTS = [Int("value", 1, min=0, max=255)]
        OUTPUTS = [Out("LG_INT", "value")]

        def run(self, ctx, value):
            return (value,)

    @node(category="lg_test", registry=registry)
    class LgSlow:
        """Sleeps in steps, reporting progress and a JPEG preview each step (test node)."""
        INPUTS = [In("value", "LG_INT"), Float("seconds", 0.2, min=0.0, max=120.0),
                  Int("steps", 4, min=1, max=10000)]
        OUTPUTS = [Out("LG_INT", "value")]

        def run(self, ctx, value, seconds, steps):
            preview = _tiny_jpeg(value)
            for i in range(steps):
                time.sleep(seconds / steps)
                ctx.progress(i + 1, steps, preview_jpeg=preview)
            return (value,)

    @node(category="lg_test", registry=registry)
    class LgFail:
        """Raises an error when run (test node)."""
        INPUTS = [In("value", "LG_INT"), String("message", "stub failure")]
        OUTPUTS = [Out("LG_INT", "value")]

        def run(self, ctx, value, message):
            raise RuntimeError(message)

    @node(category="lg_test", registry=registry)
    class LgWarn:
        """Passes the value through and warns through ctx.warn, as a skipped file does (test node)."""
        INPUTS = [In("value", "LG_INT"), String("message", "stub warning")]
        OUTPUTS = [Out("LG_INT", "value")]

        def run(self, ctx, value, message):
            ctx.warn(message)
            return (value,)

    @node(category="lg_test", registry=registry, output_node=True)
    class LgSave:
        """Writes an 8×8 PNG coloured by the value into output/ (test output node)."""
        INPUTS = [In("value", "LG_INT"), String("filename_prefix", "lgtest")]
        OUTPUTS = []

        def run(self, ctx, value, filename_prefix):
            out = Path(ctx.paths.output_dir)
            out.mkdir(parents=True, exist_ok=True)
            n = len(list(out.glob(f"{filename_prefix}_*.png")))
            while (out / f"{filename_prefix}_{n:05}_.png").exists():
                n += 1
            name = f"{filename_prefix}_{n:05}_.png"
            (out / name).write_bytes(_tiny_png(value))
            return NodeOutput(outputs=(), ui={"images": [{"filename": name, "subfolder": "", "type": "output"}]})

    @node(category="lg_test", registry=registry, output_node=True)
    class LgPickFile:
        """Combos listing the checkpoints and input images at request time (test output node)."""
        INPUTS = [Combo("ckpt_name", files("checkpoints")), Combo("image", files("input_images"), image_upload=True)]
        OUTPUTS = []

        def run(self, ctx, ckpt_name, image):
            return NodeOutput(outputs=(), ui={"text": [ckpt_name, image]})


# ------------------------------------------------------------------------------------------------
# graphs
# ------------------------------------------------------------------------------------------------
def stub_graph(value: int = 1, *, seconds: float = 0.0, steps: int = 1, fail: bool = False,
               prefix: str = "lgtest") -> dict:
    """LgConst → LgSlow → (LgFail →) LgSave as an API prompt."""
    g: dict = {
        "1": {"class_type": "LgConst", "inputs": {"value": value}},
        "2": {"class_type": "LgSlow", "inputs": {"value": ["1", 0], "seconds": seconds, "steps": steps}},
        "3": {"class_type": "LgSave", "inputs": {"value": ["2", 0], "filename_prefix": prefix}},
    }
    if fail:
        g["4"] = {"class_type": "LgFail", "inputs": {"value": ["2", 0], "message": f"stub failure {value}"}}
        g["3"]["inputs"]["value"] = ["4", 0]
    return g


def tiny_sd_graph(seed: int = 1, ckpt: str = "tiny_sd1.safetensors") -> dict:
    """The classic txt2img graph at 64×64, 2 steps, for the tiny checkpoint."""
    return {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": ckpt}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red circle", "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["4", 1]}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "3": {"class_type": "KSampler", "inputs": {
            "seed": seed, "steps": 2, "cfg": 7.0, "sampler_name": "euler", "scheduler": "normal",
            "denoise": 1.0, "model": ["4", 0], "positive": ["6", 0], "negative": ["7", 0],
            "latent_image": ["5", 0]}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "tiny", "images": ["8", 0]}},
    }


# ------------------------------------------------------------------------------------------------
# the subprocess
# ------------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """A running server subprocess: ``url``, ``ws_url(client_id)``, ``stop()``, ``kill()``."""

    def __init__(self, base: Path, *, models_dir: Path | None = None, auth_token: str | None = None,
                 extra_args: Iterable[str] = (), port: int | None = None, stubs: bool = True) -> None:
        self.base = Path(base)
        self.port = port or free_port()
        self.models_dir = Path(models_dir) if models_dir else self.base / "models"
        self.dirs = {k: self.base / k for k in ("input", "output", "temp", "user")}
        self.auth_token = auth_token
        self.extra_args = list(extra_args)
        self.stubs = stubs
        self.proc: subprocess.Popen | None = None
        self.log_path = self.base / f"server-{self.port}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ws_url(self, client_id: str | None = None, path: str = "/ws") -> str:
        query = [f"clientId={client_id}"] if client_id else []
        if self.auth_token:
            query.append(f"token={self.auth_token}")
        return f"ws://127.0.0.1:{self.port}{path}" + ("?" + "&".join(query) if query else "")

    def headers(self) -> dict:
        return {"Authorization": f"Bearer {self.auth_token}"} if self.auth_token else {}

    def command(self) -> list[str]:
        cmd = [sys.executable, str(ROOT / "main.py"), "serve", "--port", str(self.port), "--cpu",
               "--models-dir", str(self.models_dir)]
        for k, d in self.dirs.items():
            cmd += [f"--{k}-dir", str(d)]
        if self.auth_token:
            cmd += ["--auth-token", self.auth_token]
        return cmd + self.extra_args

    def start(self, timeout: float = START_TIMEOUT) -> "ServerProcess":
        """Launch and wait until GET /system_stats answers (bounded)."""
        import httpx

        self.base.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False",
                   PYTHONUNBUFFERED="1")
        if self.stubs:
            env["LATENTGRAPH_EXTRA_NODES"] = "tests.server_helpers"
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.command(), cwd=str(ROOT), env=env, stdout=log, stderr=log,
                                     start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                r = httpx.get(self.url + "/system_stats", headers=self.headers(), timeout=2.0)
                if r.status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.kill()
        raise RuntimeError(f"server did not answer within {timeout}s:\n{self.log_tail()}")

    def log_tail(self, n: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 15.0) -> None:
        """Graceful stop (SIGTERM), then SIGKILL if it hangs."""
        if not self.alive():
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """Hard kill (a crash, as far as the server can tell)."""
        if self.alive():
            self.proc.kill()
            self.proc.wait(10)

    def __enter__(self) -> "ServerProcess":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


# ------------------------------------------------------------------------------------------------
# client helpers
# ------------------------------------------------------------------------------------------------
async def collect_until_done(ws: Any, prompt_id: str, timeout: float = 60.0) -> list:
    """Read WS frames until ``executing node=null`` for prompt_id; returns JSON messages and bytes."""
    import asyncio

    frames: list = []
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"no completion for {prompt_id}; got {[_kind(f) for f in frames]}")
        raw = await asyncio.wait_for(ws.recv(), left)
        if isinstance(raw, bytes):
            frames.append(raw)
            continue
        msg = json.loads(raw)
        frames.append(msg)
        data = msg.get("data") or {}
        if msg.get("type") == "executing" and data.get("node") is None and data.get("prompt_id") == prompt_id:
            return frames


def _kind(frame: Any) -> str:
    return "<binary>" if isinstance(frame, bytes) else frame.get("type", "?")


def wait_running(client: Any, prompt_id: str, timeout: float = 30.0) -> None:
    """Poll GET /queue until the job is the running one (bounded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(item[1] == prompt_id for item in client.get("/queue").json()["queue_running"]):
            return
        time.sleep(0.05)
    raise TimeoutError(f"{prompt_id} never started")


def wait_history(client: Any, prompt_id: str, timeout: float = 60.0) -> dict:
    """Poll GET /history/{id} until the job is there (bounded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = client.get(f"/history/{prompt_id}")
        r.raise_for_status()
        body = r.json()
        if prompt_id in body:
            return body[prompt_id]
        time.sleep(0.05)
    raise TimeoutError(f"{prompt_id} not in history after {timeout}s")




def wait_idle(client: Any, timeout: float = 60.0) -> None:
    """Poll GET /prompt until nothing is queued or running (bounded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = client.get("/prompt")
        if r.status_code == 200 and r.json()["exec_info"]["queue_remaining"] == 0:
            return
        time.sleep(0.1)
    raise TimeoutError(f"queue not empty after {timeout}s")


def peak_rss_mb(pid: int) -> tuple[float, float]:
    """(current RSS, peak RSS) of a process in MB, from /proc/PID/status (VmRSS, VmHWM)."""
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                fields[key] = int(value.split()[0]) / 1024
    return fields.get("VmRSS", 0.0), fields.get("VmHWM", 0.0)
