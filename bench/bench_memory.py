"""Calibrates ldm.memory's estimators: estimate vs. measured peak memory of real forward passes.

    python bench/bench_memory.py            # tiny + demo + medium cases (a few minutes)
    python bench/bench_memory.py --full     # adds the real SD1.5 UNet / SD VAE (3.4 GB of weights, minutes)

Each case runs in a fresh subprocess (1 torch thread, fp32, CPU): build the module with random
weights, run once at a small size (kernels, allocator warm-up), reset the peak-RSS mark
(/proc/self/clear_refs), run at the measured size and report VmHWM − RSS before the call. The
estimate should be an upper bound within ~2× (ratio = estimate / measured in [1, 2]).
Prints one table; the figures measured on this machine are in ldm/memory.py's docstring.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# (kind, config name, batch, h, w): h/w are latent cells for unet/decode, pixels for encode.
CASES = [
    ("unet", "tiny_sd1", 2, 64, 64), ("unet", "tiny_sd1", 2, 128, 128),
    ("unet", "demo", 2, 64, 64), ("unet", "demo", 2, 128, 128),
    ("unet", "medium", 2, 32, 32), ("unet", "medium", 2, 64, 64),
    ("decode", "tiny", 1, 64, 64), ("decode", "tiny", 1, 128, 128),
    ("decode", "demo", 1, 64, 64), ("decode", "demo", 1, 128, 128),
    ("decode", "medium", 1, 64, 64),
    ("decode_tiled", "demo", 1, 128, 128),
    ("encode", "demo", 1, 512, 512), ("encode", "demo", 1, 1024, 1024),
    ("encode", "medium", 1, 512, 512),
]
FULL_CASES = [("unet", "sd15", 2, 64, 64), ("unet", "sd15", 2, 96, 96),
              ("decode", "sd", 1, 64, 64), ("encode", "sd", 1, 512, 512)]


def _configs() -> dict:
    from ldm.configs import SD15_UNET, SD_VAE, UNetConfig, VAEConfig
    from ldm.tiny import TINY_SPECS, TINY_VAE

    return {
        "unet": {"tiny_sd1": TINY_SPECS["tiny_sd1"].unet, "sd15": SD15_UNET,
                 "demo": UNetConfig(model_channels=32, channel_mult=(1, 2, 2), num_res_blocks=1,
                                    transformer_depth=(1, 1, 1), num_heads=2, context_dim=64, norm_groups=8),
                 "medium": SD15_UNET.replace(model_channels=96, context_dim=256)},
        "vae": {"tiny": TINY_VAE, "demo": VAEConfig(ch=16, ch_mult=(1, 2, 4, 4), num_res_blocks=1, norm_groups=2),
                "medium": SD_VAE.replace(ch=64), "sd": SD_VAE},
    }


def _status() -> tuple[int, int]:
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    return int(fields["VmRSS"].split()[0]) * 1024, int(fields["VmHWM"].split()[0]) * 1024


def measure(kind: str, name: str, batch: int, h: int, w: int) -> dict:
    """Runs in the child: (estimate, measured) bytes of one case."""
    import torch

    from ldm import memory
    from ldm.unet import UNetModel
    from ldm.vae import VAE, AutoencoderKL

    torch.set_num_threads(1)
    cfgs = _configs()
    with torch.no_grad():
        if kind == "unet":
            cfg = cfgs["unet"][name]
            model = UNetModel(cfg).eval()
            ctx = torch.randn(batch, 77, cfg.context_dim)

            def run(hh: int, ww: int) -> None:
                model(torch.randn(batch, cfg.in_channels, hh, ww), torch.full((batch,), 500.0), ctx)
            estimate = memory.unet_step_bytes(cfg, batch, h, w)
        else:
            cfg = cfgs["vae"][name]
            vae = VAE(AutoencoderKL(cfg))
            if kind in ("decode", "decode_tiled"):
                tile = 256 if kind == "decode_tiled" else None

                def run(hh: int, ww: int) -> None:
                    z = torch.randn(batch, cfg.embed_dim, hh, ww)
                    vae.decode(z) if tile is None else vae.decode_tiled(z, tile=tile, overlap=32)
                estimate = memory.vae_decode_bytes(cfg, batch, h, w, tile=tile, overlap=32)
            else:
                def run(hh: int, ww: int) -> None:
                    vae.encode(torch.rand(batch, hh, ww, 3))
                estimate = memory.vae_encode_bytes(cfg, batch, h, w)
        warm = 64 if kind == "encode" else 8
        run(warm, warm)
        Path("/proc/self/clear_refs").write_text("5")
        before, _ = _status()
        run(h, w)
        _, peak = _status()
    return {"estimate": estimate, "measured": peak - before}


def main(argv: list[str]) -> int:
    if argv[:1] == ["--child"]:
        kind, name, batch, h, w = argv[1], argv[2], *map(int, argv[3:6])
        print(json.dumps(measure(kind, name, batch, h, w)))
        return 0
    cases = CASES + (FULL_CASES if "--full" in argv else [])
    env = dict(os.environ, OMP_NUM_THREADS="1")
    print(f"{'case':<34} {'estimate':>10} {'measured':>10} {'ratio':>6}")
    for kind, name, batch, h, w in cases:
        out = subprocess.run([sys.executable, __file__, "--child", kind, name, str(batch), str(h), str(w)],
                             capture_output=True, text=True, env=env, cwd=ROOT)
        label = f"{kind} {name} b{batch} {h}x{w}"
        if out.returncode:
            print(f"{label:<34} failed: {out.stderr.strip().splitlines()[-1:]}")
            continue
        r = json.loads(out.stdout.strip().splitlines()[-1])
        mib = 1 << 20
        print(f"{label:<34} {r['estimate'] / mib:>8.1f}Mi {r['measured'] / mib:>8.1f}Mi "
              f"{r['estimate'] / max(r['measured'], 1):>6.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
