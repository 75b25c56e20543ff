"""The demo model's training script: reproducible, and its output loads through the normal loader."""
from __future__ import annotations

import json
import os

import numpy as np
import torch

from tools import train_demo as td


def _state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def test_fixed_steps_give_identical_autoencoders():
    torch.set_num_threads(1)
    a, info = td.train_vae(seconds=1e9, steps=3, seed=5, batch=2)
    b, _ = td.train_vae(seconds=1e9, steps=3, seed=5, batch=2)
    c, _ = td.train_vae(seconds=1e9, steps=3, seed=6, batch=2)
    assert info["vae_steps"] == 3
    sa, sb, sc = _state(a), _state(b), _state(c)
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)


def test_folded_normalisation_keeps_reconstructions_and_standardises_latents():
    torch.manual_seed(0)
    vae = td.AutoencoderKL(td.VAE_CONFIG).eval()
    images = (np.random.default_rng(0).random((6, 64, 64, 3)) * 255).astype(np.uint8)
    x = td._to_tensor(images)
    with torch.no_grad():
        before = vae.decode(vae.encode(x))
        raw = td.encode_images(vae, images)
        stats = td.fold_latent_normalisation(vae, raw)
        folded = vae.encode(x)
        after = vae.decode(folded)
    torch.testing.assert_close(after, before, atol=2e-4, rtol=1e-3)
    scaled = folded * td.SCALE  # what the SD1 loader does with the 0.18215 factor
    assert scaled.mean(dim=(0, 2, 3)).abs().max() < 1e-4
    torch.testing.assert_close(scaled.std(dim=(0, 2, 3)), torch.ones(4), atol=1e-4, rtol=1e-4)
    assert len(stats["latent_mean"]) == len(stats["latent_std"]) == 4


def test_high_noise_share_moves_timesteps_to_the_noisier_half(monkeypatch):
    abar = torch.linspace(0.999, 0.01, 1000)
    seen = []

    class Probe(torch.nn.Module):
        def forward(self, x, t, context):
            seen.append(t)
            return torch.zeros_like(x)

    monkeypatch.setattr(td, "encode_text", lambda *_: None)
    x0 = torch.zeros(4000, 4, 1, 1)
    for share in (0.0, 0.5):
        td.diffusion_loss(Probe(), None, x0, None, abar, torch.Generator().manual_seed(0), share)
    uniform, skewed = (float((t >= 500).float().mean()) for t in seen)
    assert abs(uniform - 0.5) < 0.05 and abs(skewed - 0.75) < 0.05


def test_train_demo_command_writes_a_checkpoint_the_loader_reads(tmp_path):
    """`python main.py train-demo` with fixed step counts: an SD1 single file with its run recorded."""
    import main
    from ldm.checkpoint import load_checkpoint, read_metadata

    out = tmp_path / "demo.safetensors"
    argv = ["train-demo", "--out", str(out), "--vae-steps", "2", "--unet-steps", "2",
            "--latents", "32", "--sample-dir", str(tmp_path / "samples"), "--minutes", "5",
            "--high-noise", "0.5"]
    assert main.main(argv) == 0
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask  # as any new file (safetensors makes 0600)
    meta = read_metadata(out)
    info = json.loads(meta["latentgraph.training"])
    assert (info["vae_steps"], info["unet_steps"], info["seed"], info["high_noise"]) == (2, 2, 0, 0.5)
    assert info["command"] == "train-demo " + " ".join(argv[1:])
    assert meta["latentgraph.native_resolution"] == "128"
    model, clip, vae = load_checkpoint(out)
    assert model.config.family == "sd1" and vae.latent_channels == 4
    assert (tmp_path / "samples" / "final.png").exists()
    assert main.main(["train-demo", "--no-such-option"]) == 2
