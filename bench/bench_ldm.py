"""Benchmarks of the ldm models on this machine; prints one table.

    python bench/bench_ldm.py            # tiny + full-size (full-size parts run once, ~1-2 min)
    python bench/bench_ldm.py --tiny     # tiny models only (seconds)

Full-size rows use random weights in the real SD1.5 shapes (no weights can be downloaded here).
The RSS rows write a full-size SD1.5-shaped checkpoint (UNet + VAE) to /tmp, load it with
`load_checkpoint` in a fresh subprocess and report (peak RSS − RSS after imports) ÷ file size:
~1.0 for an fp32 file means the weights exist once; an fp16 file is upcast to fp32 on CPU, so ~2.0
is the floor there.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ldm.configs import SD15_UNET, SD_VAE  # noqa: E402
from ldm.tiny import TINY_SPECS, tiny_unet, tiny_vae  # noqa: E402
from ldm.unet import UNetModel  # noqa: E402
from ldm.vae import AutoencoderKL  # noqa: E402


def timed(fn, runs: int) -> float:
    """Median wall time of `runs` calls (seconds) after one warm-up call when runs > 1."""
    if runs > 1:
        fn()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def random_module(cls, cfg) -> torch.nn.Module:
    """A full-size module filled with small random values without the slow default init."""
    with torch.device("meta"):
        m = cls(cfg)
    m = m.to_empty(device="cpu")
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in m.parameters():
            p.normal_(0.0, 0.02, generator=gen)
    return m.eval()


@torch.no_grad()
def cfg_step(unet: UNetModel, latent: int) -> float:
    """Seconds of one classifier-free-guidance UNet call (batch 2: cond + uncond)."""
    x = torch.randn(2, 4, latent, latent)
    ctx = torch.randn(2, 77, unet.config.context_dim)
    t = torch.tensor([500.0, 500.0])
    runs = 5 if unet.config.model_channels < 128 else 1
    return timed(lambda: unet(x, t, ctx), runs)


@torch.no_grad()
def vae_decode(vae: AutoencoderKL, pixels: int) -> float:
    """Seconds of one VAE decode to pixels×pixels."""
    z = torch.randn(1, 4, pixels // 8, pixels // 8)
    runs = 3 if vae.config.ch < 128 else 1
    return timed(lambda: vae.decode(z), runs)


RSS_CHILD = """
import sys
sys.path.insert(0, {root!r})
def status(field):  # /proc values are per process image (ru_maxrss would inherit the parent's)
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
from ldm.checkpoint import load_checkpoint
import torch, ldm.unet, ldm.vae, ldm.model
base = status("VmRSS")
model, _, vae = load_checkpoint({path!r}, output_clip=False)
loaded = status("VmHWM")
touched = sum(float(p.sum()) for m in (model.unet, vae.model) for p in m.parameters())
print(base, loaded, status("VmHWM"))
"""


def write_full_checkpoint(path: Path, dtype: torch.dtype) -> int:
    """Write a random full-size SD1.5-shaped UNet+VAE checkpoint; returns its size in bytes."""
    from safetensors.torch import save_file

    sd = {}
    for prefix, cls, cfg in (("model.diffusion_model.", UNetModel, SD15_UNET),
                             ("first_stage_model.", AutoencoderKL, SD_VAE)):
        with torch.device("meta"):
            shapes = {k: v.shape for k, v in cls(cfg).state_dict().items()}
        for k, shape in shapes.items():
            sd[prefix + k] = (torch.randn(shape) * 0.02).to(dtype)
    sd["cond_stage_model.transformer.text_model.final_layer_norm.weight"] = torch.ones(768, dtype=dtype)
    save_file(sd, str(path))
    del sd
    return path.stat().st_size


def rss_ratio(dtype: torch.dtype) -> tuple[float, float, float]:
    """(file GB, peak RSS growth ÷ file size after load, the same after reading every weight) of
    loading a full-size file in a fresh subprocess (mmap'd weights are only resident once read)."""
    with tempfile.TemporaryDirectory(dir="/tmp") as d:
        path = Path(d) / "sd15_random.safetensors"
        size = write_full_checkpoint(path, dtype)
        out = subprocess.run([sys.executable, "-c", RSS_CHILD.format(root=str(ROOT), path=str(path))],
                             capture_output=True, text=True, check=True).stdout.split()
        base, loaded, touched = (int(v) for v in out[-3:])
        return size / 1e9, (loaded - base) / size, (touched - base) / size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="tiny models only")
    parser.add_argument("--rss-only", action="store_true", help="only the load RSS rows")
    args = parser.parse_args()
    if args.rss_only:
        print_table(rss_rows())
        return
    torch.manual_seed(0)
    spec = TINY_SPECS["tiny_sd1"]
    rows = [("tiny SD1 UNet, one CFG step (batch 2), 64x64 latent, median of 5",
             f"{cfg_step(tiny_unet(spec.unet, 1), 64) * 1000:.1f} ms"),
            ("tiny VAE decode 512x512, median of 3", f"{vae_decode(tiny_vae(1), 512) * 1000:.0f} ms")]
    if not args.tiny:
        unet = random_module(UNetModel, SD15_UNET)
        rows.append(("full SD1.5 UNet (random), one CFG step (batch 2), 64x64 latent, 1 run",
                     f"{cfg_step(unet, 64):.1f} s"))
        del unet
        vae = random_module(AutoencoderKL, SD_VAE)
        rows.append(("full SD VAE decode 512x512, 1 run", f"{vae_decode(vae, 512):.1f} s"))
        del vae
        rows += rss_rows()
    print_table(rows)


def rss_rows() -> list[tuple[str, str]]:
    """Peak-RSS rows for an fp32 and an fp16 full-size file."""
    rows = []
    for dtype in (torch.float32, torch.float16):
        gb, loaded, touched = rss_ratio(dtype)
        rows.append((f"peak RSS growth / file size, {gb:.2f} GB {str(dtype)[6:]} file: "
                     "after load_checkpoint | after reading all weights",
                     f"{loaded:.2f} | {touched:.2f}"))
    return rows


def print_table(rows: list[tuple[str, str]]) -> None:
    """One aligned two-column table."""
    width = max(len(r[0]) for r in rows)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"{'measurement':<{width}}  value")
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()
