"""Latentgraph against ComfyUI on this machine, side by side (figures printed, nothing asserted).

    python bench/bench_vs_comfy.py --comfy /path/to/ComfyUI --comfy-python /path/to/venv/bin/python
        [--rounds 5] [--size 256] [--steps 8] [--only txt2img,lora] [--resident] [--full-unet]
        [--json results.json]

Both servers start on free ports with the same environment, the same models folder and the same
input images (made here: random-init SD1.5-shaped checkpoints that ComfyUI's detection accepts —
UNet width 320 with context 768, full-size CLIP-L and VAE, a 9-channel inpainting variant, a LoRA
and an ESRGAN). Each workflow of the corpus then runs interleaved A/B/B/A… for `--rounds` rounds:

- default (cold): `POST /free {"unload_models": true, "free_memory": true}` before every timed
  run, so each run loads its models again; a run where the server reports cached nodes
  (`execution_cached` not empty) is retried once with a new seed and otherwise dropped;
- `--resident`: models stay loaded; after one warm-up run per workflow only the seed changes
  between runs (the artist's loop of re-rolling a seed).

Printed per workflow: median wall time of each side (POST /prompt → `executing` None on the
WebSocket), the median and spread (min–max) of the per-round ratio ours/ComfyUI, and the server CPU
time ratio (utime+stime from /proc); then per node class the ratio of the time between consecutive
`executing` events (what ComfyUI's own clients see), and the median ratio over the corpus.
`--full-unet` adds a 512² txt2img on a random-init full-size SD1.5 UNet (a 1.7 GB file).
ComfyUI's code is never imported here: it runs as its own process from its own checkout
(see ../shared/PERF.md for preparing one).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

CKPT, INPAINT, FULL = "bench_sd15.safetensors", "bench_sd15_inpaint.safetensors", "bench_sd15_full.safetensors"
LORA, ESRGAN = "bench_lora.safetensors", "bench_esrgan_x4.pth"


# ----------------------------------------------------------------------------------- the models
def make_models(base: Path, full_unet: bool) -> None:
    """models/ and input/ under `base`, the same files for both servers."""
    import numpy as np
    import torch
    from PIL import Image
    from safetensors.torch import save_file

    from ldm.configs import SD15_UNET, SD_VAE, UNetConfig
    from ldm.lora import make_random_lora
    from ldm.tiny import UNET_PREFIX, VAE_PREFIX, _prefixed, tiny_unet, tiny_vae
    from ldm.tiny_text import text_encoder_state_dict

    ck = base / "models" / "checkpoints"
    ck.mkdir(parents=True, exist_ok=True)
    small = UNetConfig(model_channels=320, channel_mult=(1, 2), num_res_blocks=1, transformer_depth=(1, 1),
                       transformer_depth_middle=1, num_heads=8, context_dim=768)
    common = {**_prefixed(tiny_vae(1, SD_VAE), VAE_PREFIX), **text_encoder_state_dict("sd1", width=768, layers=12, seed=2)}

    def write(name: str, unet_cfg: UNetConfig, seed: int) -> dict:
        sd = {**_prefixed(tiny_unet(unet_cfg, seed), UNET_PREFIX), **common}
        save_file({k: v.half().contiguous() for k, v in sd.items()}, str(ck / name))
        return sd

    sd = write(CKPT, small, 3)
    write(INPAINT, small.replace(in_channels=9), 4)
    if full_unet:
        write(FULL, SD15_UNET, 5)
    (base / "models" / "loras").mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in make_random_lora(sd, rank=8, seed=6).items()},
              str(base / "models" / "loras" / LORA))
    from spandrel.architectures.ESRGAN import ESRGAN as ESRGANNet

    (base / "models" / "upscale_models").mkdir(parents=True, exist_ok=True)
    torch.manual_seed(7)
    torch.save(ESRGANNet(num_filters=16, num_blocks=2, scale=4).state_dict(), base / "models" / "upscale_models" / ESRGAN)
    (base / "input").mkdir(parents=True, exist_ok=True)
    (base / "custom_nodes").mkdir(exist_ok=True)  # ComfyUI's --base-directory expects one
    y, x = np.mgrid[0:512, 0:512]
    rgb = np.stack([x / 2, y / 2, (x + y) / 4], -1).astype(np.uint8)
    Image.fromarray(rgb).save(base / "input" / "bench.png")
    alpha = np.full((512, 512), 255, np.uint8)
    alpha[128:384, 128:384] = 0
    Image.fromarray(np.dstack([rgb, alpha])).save(base / "input" / "bench_mask.png")


# ----------------------------------------------------------------------------------- the corpus
def _n(class_type: str, **inputs) -> dict:
    return {"class_type": class_type, "inputs": inputs}


def _base(size: int, steps: int, ckpt: str = CKPT, sampler: str = "euler", scheduler: str = "normal",
          batch: int = 1, text: str = "a red circle on a blue background") -> dict:
    return {"4": _n("CheckpointLoaderSimple", ckpt_name=ckpt),
            "6": _n("CLIPTextEncode", text=text, clip=["4", 1]),
            "7": _n("CLIPTextEncode", text="blurry", clip=["4", 1]),
            "5": _n("EmptyLatentImage", width=size, height=size, batch_size=batch),
            "3": _n("KSampler", model=["4", 0], seed=1, steps=steps, cfg=6.0, sampler_name=sampler,
                    scheduler=scheduler, positive=["6", 0], negative=["7", 0], latent_image=["5", 0], denoise=1.0),
            "8": _n("VAEDecode", samples=["3", 0], vae=["4", 2]),
            "9": _n("SaveImage", images=["8", 0], filename_prefix="bench")}


def corpus(size: int, steps: int, full_unet: bool) -> dict[str, dict]:
    """The workflows, API format, ComfyUI's core nodes only."""
    w = {"txt2img": _base(size, steps), "batch2": _base(size, steps, batch=2),
         "ancestral": _base(size, steps, sampler="euler_ancestral"),
         "sde_karras": _base(size, steps, sampler="dpmpp_sde", scheduler="karras"),
         "dpmpp_2m": _base(size, steps, sampler="dpmpp_2m", scheduler="karras")}
    img = _base(size, steps)
    img["1"] = _n("LoadImage", image="bench.png")
    img["10"] = _n("ImageScale", image=["1", 0], upscale_method="bilinear", width=size, height=size, crop="center")
    img["11"] = _n("VAEEncode", pixels=["10", 0], vae=["4", 2])
    img["3"]["inputs"].update(latent_image=["11", 0], denoise=0.6)
    w["img2img"] = img
    inp = _base(size, steps, ckpt=INPAINT)
    inp["1"] = _n("LoadImage", image="bench_mask.png")
    inp["10"] = _n("ImageScale", image=["1", 0], upscale_method="bilinear", width=size, height=size, crop="center")
    inp["12"] = _n("MaskToImage", mask=["1", 1])
    inp["13"] = _n("ImageScale", image=["12", 0], upscale_method="bilinear", width=size, height=size, crop="center")
    inp["14"] = _n("ImageToMask", image=["13", 0], channel="red")
    inp["11"] = _n("VAEEncodeForInpaint", pixels=["10", 0], vae=["4", 2], mask=["14", 0], grow_mask_by=6)
    inp["3"]["inputs"]["latent_image"] = ["11", 0]
    w["inpaint_9ch"] = inp
    lora = _base(size, steps)
    lora["20"] = _n("LoraLoader", model=["4", 0], clip=["4", 1], lora_name=LORA, strength_model=0.8, strength_clip=0.8)
    lora["3"]["inputs"]["model"] = ["20", 0]
    for k in ("6", "7"):
        lora[k]["inputs"]["clip"] = ["20", 1]
    w["lora"] = lora
    hires = _base(size // 2, steps)
    hires["21"] = _n("LatentUpscale", samples=["3", 0], upscale_method="nearest-exact", width=size, height=size, crop="disabled")
    hires["22"] = _n("KSampler", model=["4", 0], seed=2, steps=steps, cfg=6.0, sampler_name="euler", scheduler="normal",
                     positive=["6", 0], negative=["7", 0], latent_image=["21", 0], denoise=0.5)
    hires["8"]["inputs"]["samples"] = ["22", 0]
    w["hires_fix"] = hires
    area = _base(size, steps)
    area["23"] = _n("CLIPTextEncode", text="a green square", clip=["4", 1])
    area["24"] = _n("ConditioningSetArea", conditioning=["23", 0], width=size // 2, height=size, x=0, y=0, strength=1.0)
    area["25"] = _n("ConditioningCombine", conditioning_1=["6", 0], conditioning_2=["24", 0])
    area["3"]["inputs"]["positive"] = ["25", 0]
    w["area_composition"] = area
    up = _base(size // 2, steps)
    up["26"] = _n("UpscaleModelLoader", model_name=ESRGAN)
    up["27"] = _n("ImageUpscaleWithModel", upscale_model=["26", 0], image=["8", 0])
    up["9"]["inputs"]["images"] = ["27", 0]
    w["esrgan"] = up
    tiled = _base(size * 2, max(2, steps // 2))
    tiled["8"] = _n("VAEDecodeTiled", samples=["3", 0], vae=["4", 2], tile_size=256, overlap=64,
                    temporal_size=64, temporal_overlap=8)
    w["tiled_vae"] = tiled
    if full_unet:
        w["full_unet_512"] = _base(512, 4, ckpt=FULL)
    return w


# ----------------------------------------------------------------------------------- the servers
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One server process and a client for it (HTTP + WebSocket, as ComfyUI's own scripts talk)."""

    def __init__(self, name: str, cmd: list[str], cwd: Path, port: int, env: dict) -> None:
        self.name, self.port = name, port
        self.log = open(Path(tempfile.gettempdir()) / f"bench_vs_comfy_{name}_{port}.log", "w")
        self.proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        self.client_id = uuid.uuid4().hex

    def wait_ready(self, timeout: float = 300.0) -> float:
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < timeout:
            if self.proc.poll() is not None:
                raise SystemExit(f"{self.name} exited (see {self.log.name})")
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/object_info", timeout=5).read()
                return time.perf_counter() - t0
            except OSError:
                time.sleep(0.5)
        raise SystemExit(f"{self.name} did not answer within {timeout:.0f} s (see {self.log.name})")

    def post(self, path: str, body: dict) -> dict:
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        raw = urllib.request.urlopen(req, timeout=60).read()
        return json.loads(raw) if raw.strip() else {}

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def run(self, prompt: dict) -> dict:
        """One prompt: wall seconds, cpu seconds, per-node seconds, cached node ids."""
        import websocket

        ws = websocket.create_connection(f"ws://127.0.0.1:{self.port}/ws?clientId={self.client_id}", timeout=3600)
        try:
            cpu0, t0 = self.cpu_seconds(), time.perf_counter()
            pid = self.post("/prompt", {"prompt": prompt, "client_id": self.client_id})["prompt_id"]
            nodes, cached, last = {}, [], None
            while True:
                msg = ws.recv()
                if not isinstance(msg, str):
                    continue
                m = json.loads(msg)
                data, now = m.get("data", {}), time.perf_counter()
                if data.get("prompt_id") != pid:
                    continue
                if m["type"] == "execution_cached":
                    cached += data.get("nodes", [])
                elif m["type"] == "execution_error":
                    raise RuntimeError(f"{self.name}: {data.get('exception_message')}")
                elif m["type"] == "executing":
                    if last is not None:
                        nodes[last[0]] = now - last[1]
                    if data.get("node") is None:
                        break
                    last = (data["node"], now)
            return {"wall": time.perf_counter() - t0, "cpu": self.cpu_seconds() - cpu0, "nodes": nodes, "cached": cached}
        finally:
            ws.close()

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def start_servers(args, base: Path) -> tuple[Server, Server]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    dirs = {k: base / k for k in ("ours_out", "comfy_out", "ours_tmp", "comfy_tmp", "ours_user", "comfy_user")}
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    p1, p2 = _free_port(), _free_port()
    ours = Server("latentgraph", [sys.executable, str(ROOT / "main.py"), "serve", "--cpu", "--listen", "127.0.0.1",
                                  "--port", str(p1), "--models-dir", str(base / "models"), "--input-dir", str(base / "input"),
                                  "--output-dir", str(dirs["ours_out"]), "--temp-dir", str(dirs["ours_tmp"]),
                                  "--user-dir", str(dirs["ours_user"])], ROOT, p1, env)
    comfy = Server("comfyui", [args.comfy_python, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(p2),
                               "--base-directory", str(base), "--output-directory", str(dirs["comfy_out"]),
                               "--temp-directory", str(dirs["comfy_tmp"]), "--user-directory", str(dirs["comfy_user"]),
                               "--database-url", f"sqlite:///{dirs['comfy_user']}/comfyui.db"], Path(args.comfy), p2, env)
    for s in (ours, comfy):
        print(f"{s.name}: ready after {s.wait_ready():.1f} s (port {s.port})", flush=True)
    return ours, comfy


# ----------------------------------------------------------------------------------- measuring
def _timed(server: Server, prompt: dict, resident: bool) -> dict | None:
    p = json.loads(json.dumps(prompt))
    for _ in range(2):
        for node in p.values():
            if "seed" in node["inputs"]:
                node["inputs"]["seed"] = random.randrange(2 ** 31)
        if not resident:
            server.post("/free", {"unload_models": True, "free_memory": True})
        r = server.run(p)
        if resident or not r["cached"]:
            return r
    return None  # served from cache twice: not a measurement of work


def measure(servers: tuple[Server, Server], work: dict[str, dict], rounds: int, resident: bool) -> dict:
    results: dict = {name: {s.name: [] for s in servers} for name in work}
    if resident:
        for prompt in work.values():
            for s in servers:
                s.run(prompt)  # load the models once
    for r in range(rounds):
        for i, (name, prompt) in enumerate(work.items()):
            order = servers if (r + i) % 2 == 0 else servers[::-1]  # A B / B A interleaving
            for s in order:
                res = _timed(s, prompt, resident)
                if res is not None:
                    results[name][s.name].append(res)
        print(f"round {r + 1}/{rounds} done", flush=True)
    return results


def _class_of(work: dict, name: str, node_id: str) -> str:
    return work[name].get(node_id, {}).get("class_type", node_id)


def report(results: dict, work: dict) -> None:
    print(f"\n{'workflow':<18}{'ours s':>9}{'comfy s':>9}{'ratio':>8}{'spread':>14}{'cpu ratio':>11}{'n':>4}")
    ratios, per_class = [], {}
    for name, sides in results.items():
        ours, comfy = sides["latentgraph"], sides["comfyui"]
        n = min(len(ours), len(comfy))
        if n == 0:
            print(f"{name:<18}  (no valid runs)")
            continue
        pair = [o["wall"] / c["wall"] for o, c in zip(ours, comfy)]
        cpu = statistics.median(o["cpu"] for o in ours) / max(1e-9, statistics.median(c["cpu"] for c in comfy))
        ratio = statistics.median(pair)
        ratios.append(ratio)
        print(f"{name:<18}{statistics.median(o['wall'] for o in ours):>9.2f}{statistics.median(c['wall'] for c in comfy):>9.2f}"
              f"{ratio:>8.2f}{f'{min(pair):.2f}-{max(pair):.2f}':>14}{cpu:>11.2f}{n:>4}")
        for side, runs in (("ours", ours), ("comfy", comfy)):
            for run in runs:
                for node_id, sec in run["nodes"].items():
                    per_class.setdefault(_class_of(work, name, node_id), {"ours": [], "comfy": []})[side].append(sec)
    if ratios:
        print(f"\nmedian wall ratio over {len(ratios)} workflows: {statistics.median(ratios):.2f} "
              f"(max {max(ratios):.2f}, min {min(ratios):.2f})")
    print(f"\n{'node class':<26}{'ours s':>9}{'comfy s':>9}{'ratio':>8}")
    for cls, t in sorted(per_class.items()):
        if t["ours"] and t["comfy"]:
            o, c = statistics.median(t["ours"]), statistics.median(t["comfy"])
            print(f"{cls:<26}{o:>9.3f}{c:>9.3f}{o / max(c, 1e-9):>8.2f}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--comfy", required=True, help="ComfyUI checkout (its main.py)")
    ap.add_argument("--comfy-python", default=sys.executable, help="python that runs ComfyUI")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--size", type=int, default=256, help="pixel size of the small workflows")
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--only", default="", help="comma-separated workflow names")
    ap.add_argument("--resident", action="store_true", help="models stay loaded; only the seed changes")
    ap.add_argument("--full-unet", action="store_true", help="add a 512² run on a full-size SD1.5 UNet")
    ap.add_argument("--json", default=None, help="also write the raw results here")
    args = ap.parse_args(argv)
    work = corpus(args.size, args.steps, args.full_unet)
    if args.only:
        work = {k: v for k, v in work.items() if k in args.only.split(",")}
    base = Path(tempfile.mkdtemp(prefix="bench_vs_comfy_"))
    servers = ()
    try:
        print(f"making models in {base} …", flush=True)
        make_models(base, args.full_unet)
        servers = start_servers(args, base)
        results = measure(servers, work, args.rounds, args.resident)
        print(f"\nmode: {'resident (seed changes only)' if args.resident else 'cold (/free before each run)'}; "
              f"{os.cpu_count()} CPUs; allocator: {os.environ.get('LD_PRELOAD') or 'glibc malloc'}")
        report(results, work)
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=1))
    finally:
        for s in servers:
            s.stop()
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
