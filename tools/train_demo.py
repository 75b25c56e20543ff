"""Train the embedded demo model: a tiny SD1-layout latent diffusion model on procedural shapes.

`python main.py train-demo [--out FILE] [--minutes N]` runs it. Two stages, one budget:

1. AutoencoderKL (f = 8, 4 latent channels, SD1 key layout) trained for reconstruction on 64×64
   crops of the 128×128 images (the network is convolutional; crops are 4× cheaper), then a
   per-channel normalisation is folded into quant_conv / post_quant_conv so that
   `latent · 0.18215` has zero mean and unit std — the SD1 scale factor every loader assumes —
   while decode(encode(x)) is unchanged.
2. UNet with cross-attention + a CLIP-layout text encoder (transformers CLIPTextModel, real CLIP
   BPE tokens, SD1 end-token padding, quick_gelu) trained jointly for ε-prediction on the frozen
   autoencoder's scaled latents with the SD discrete schedule; 10 % of captions are replaced by
   the empty prompt exactly as inference encodes it (classifier-free guidance); EMA weights.

The result is one fp16 .safetensors in the SD1 single-file layout that ldm.checkpoint loads.
Everything is seeded. With `--vae-steps/--unet-steps` the run is reproducible step for step; with
only `--minutes`, the step counts follow the machine's speed (they are recorded in the file's
metadata).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from ldm.configs import SCALE_FACTORS, UNetConfig, VAEConfig
from tools.demo_data import make_batch
from ldm.model_sampling import ModelSampling
from ldm.unet import UNetModel
from ldm.vae import AutoencoderKL

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "models" / "checkpoints" / "latentgraph-demo.safetensors"
SCALE = SCALE_FACTORS["sd1"]
# Native resolution: 128 px images are 16×16 latents (f = 8), enough room for shape and position.
RESOLUTION = 128

# Sizes follow the default rules of ARCHITECTURE.md §2 (GroupNorm gcd(base, 8) = 8 groups;
# UNet below 128 channels → 2 heads; text width 64 → 4 heads), so no metadata is needed to load.
# The VAE uses 2 GroupNorm groups (8 channels each, written to the file's metadata): with the
# default 8 groups of 2 channels, normalisation erases the absolute colour of flat regions, which
# these images are made of, and reconstructions came out in the wrong colours.
VAE_CONFIG = VAEConfig(ch=16, ch_mult=(1, 2, 4, 4), num_res_blocks=1, z_channels=4, embed_dim=4,
                       norm_groups=2)
UNET_CONFIG = UNetConfig(model_channels=32, channel_mult=(1, 2, 2), num_res_blocks=1,
                         transformer_depth=(1, 1, 1), transformer_depth_middle=1, num_heads=2,
                         num_head_channels=-1, context_dim=64, norm_groups=8)
TEXT_WIDTH, TEXT_LAYERS, TEXT_POSITIONS, VOCAB = 64, 3, 77, 49408
PREVIEW_PROMPTS = ("a red circle on a blue background",
                   "a large yellow star in the center, on a black background",
                   "a small green square on the left, on a white background",
                   "a large purple triangle at the bottom, on an orange background",
                   "a white circle at the top and a red square at the bottom, on a green background",
                   "a blue star on the right, on a yellow gradient background",
                   "", "an orange triangle on a purple background")
VAE_SEED_STREAM, LATENT_SEED_STREAM = 1, 2


# ------------------------------------------------------------------------------ small helpers
class Progress:
    """Fraction of a stage done: by steps when a step count is given, else by wall-clock time."""

    def __init__(self, steps: int | None, seconds: float) -> None:
        self.steps, self.seconds, self.start = steps, seconds, time.monotonic()

    def fraction(self, step: int) -> float:
        if self.steps:
            return step / self.steps
        return (time.monotonic() - self.start) / self.seconds

    def lr_factor(self, step: int, warmup: int = 100) -> float:
        """Linear warm-up, then cosine decay to 10 % over the stage."""
        p = min(1.0, self.fraction(step))
        return min(1.0, (step + 1) / warmup) * (0.1 + 0.45 * (1 + math.cos(math.pi * p)))


def _to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 [N,H,W,3] → float [N,3,H,W] in -1..1 (the autoencoder's input range)."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def _set_lr(opt: torch.optim.Optimizer, base: float, factor: float) -> None:
    for group in opt.param_groups:
        group["lr"] = base * factor


# ------------------------------------------------------------------------------ stage 1: VAE
def vae_loss(model: AutoencoderKL, x: torch.Tensor, gen: torch.Generator,
             kl_weight: float = 1e-4) -> tuple[torch.Tensor, dict[str, float]]:
    """L1 + L2 + L1 of image gradients (keeps shape edges sharp) + a small KL to N(0, 1)."""
    mean, logvar = model.encode_moments(x)
    z = mean + torch.exp(0.5 * logvar) * torch.randn(mean.shape, generator=gen)
    y = model.decode(z)
    l1, l2 = (y - x).abs().mean(), (y - x).pow(2).mean()
    grad = ((y.diff(dim=2) - x.diff(dim=2)).abs().mean() + (y.diff(dim=3) - x.diff(dim=3)).abs().mean())
    kl = 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar).mean()
    loss = l1 + l2 + 0.5 * grad + kl_weight * kl
    return loss, {"l1": float(l1.detach()), "kl": float(kl.detach())}


def _random_crops(x: torch.Tensor, crop: int, rng: np.random.Generator) -> torch.Tensor:
    """One crop per image at offsets aligned to the 8-pixel latent grid."""
    n, _, h, w = x.shape
    ys = rng.integers(0, (h - crop) // 8 + 1, n) * 8
    xs = rng.integers(0, (w - crop) // 8 + 1, n) * 8
    return torch.stack([x[i, :, y:y + crop, xx:xx + crop] for i, (y, xx) in enumerate(zip(ys, xs))])


def train_vae(seconds: float, steps: int | None, seed: int, batch: int = 8, crop: int = 64,
              lr: float = 2e-3) -> tuple[AutoencoderKL, dict]:
    """Stage 1: reconstruction training of the autoencoder; returns it with summary numbers."""
    torch.manual_seed(seed)
    model = AutoencoderKL(VAE_CONFIG)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    rng, gen = np.random.default_rng([seed, 11]), torch.Generator().manual_seed(seed)
    progress, step, ema_l1 = Progress(steps, seconds), 0, None
    bar = tqdm(desc="stage 1 autoencoder", unit="step", total=steps)
    while progress.fraction(step) < 1.0:
        images, _, _ = make_batch(seed * 1000 + VAE_SEED_STREAM, step * batch, batch, RESOLUTION)
        x = _random_crops(_to_tensor(images), crop, rng) if crop < RESOLUTION else _to_tensor(images)
        _set_lr(opt, lr, progress.lr_factor(step))
        loss, parts = vae_loss(model, x, gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        ema_l1 = parts["l1"] if ema_l1 is None else 0.98 * ema_l1 + 0.02 * parts["l1"]
        step += 1
        bar.update(1)
        bar.set_postfix(l1=f"{ema_l1:.4f}", kl=f"{parts['kl']:.2f}")
    bar.close()
    model.eval().requires_grad_(False)
    return model, {"vae_steps": step, "vae_seconds": round(time.monotonic() - progress.start, 1)}


@torch.no_grad()
def encode_images(model: AutoencoderKL, images: np.ndarray, chunk: int = 128) -> torch.Tensor:
    """Posterior means (raw latents) of uint8 images, in chunks to bound memory."""
    out = [model.encode(_to_tensor(images[i:i + chunk])) for i in range(0, len(images), chunk)]
    return torch.cat(out)


@torch.no_grad()
def fold_latent_normalisation(model: AutoencoderKL, latents: torch.Tensor) -> dict[str, list[float]]:
    """Rewrite quant_conv / post_quant_conv so new latents are (z − m)·a with a = 1/(0.18215·std).

    quant_conv's mean rows become a·(W z + b − m) (its log-variance rows shift by 2·log a, the same
    distribution in the new units); post_quant_conv's input columns are divided by a and its bias
    absorbs W·m, so decode(new latent) == old decode(old latent) exactly.
    """
    c = model.config.embed_dim
    m = latents.mean(dim=(0, 2, 3))
    a = 1.0 / (SCALE * latents.std(dim=(0, 2, 3)))
    qw, qb = model.quant_conv.weight, model.quant_conv.bias
    pw, pb = model.post_quant_conv.weight, model.post_quant_conv.bias
    pb += (pw[:, :, 0, 0] * m[None]).sum(dim=1)
    pw /= a[None, :, None, None]
    qb[:c] = (qb[:c] - m) * a
    qw[:c] *= a[:, None, None, None]
    qb[c:2 * c] += 2.0 * torch.log(a)
    return {"latent_mean": m.tolist(), "latent_std": (1.0 / (SCALE * a)).tolist()}


@torch.no_grad()
def fit_preview_factors(vae: AutoencoderKL, seed: int, count: int = 512) -> dict[str, list]:
    """Least-squares latent→RGB map for live previews, fitted for this VAE's (folded) latent space.

    Each model-space latent pixel (raw · 0.18215, as the sampler reports x0) is regressed onto
    the mean colour (−1..1) of the 8×8 image patch it covers, with a bias; the result is what
    ComfyUI calls latent_rgb_factors / latent_rgb_factors_bias.
    """
    images, _, _ = make_batch(seed * 1000 + 4, 0, count, RESOLUTION)
    x = _to_tensor(images)
    z = encode_images(vae, images) * SCALE
    f = VAE_CONFIG.downscale_ratio
    target = F.avg_pool2d(x, f).permute(0, 2, 3, 1).reshape(-1, 3)
    design = torch.cat([z.permute(0, 2, 3, 1).reshape(-1, z.shape[1]), torch.ones(target.shape[0], 1)], 1)
    solution = torch.linalg.lstsq(design.double(), target.double()).solution.float()
    return {"latent_rgb_factors": [[round(v, 4) for v in row] for row in solution[:-1].tolist()],
            "latent_rgb_factors_bias": [round(v, 4) for v in solution[-1].tolist()]}


# ------------------------------------------------------------------------------ stage 2: text + UNet
def make_text_encoder(seed: int) -> nn.Module:
    """CLIP-layout text encoder (OpenAI activation quick_gelu), sized for the demo."""
    from transformers import CLIPTextConfig, CLIPTextModel

    from ldm.clip_keys import heads_for_width

    torch.manual_seed(seed)
    cfg = CLIPTextConfig(vocab_size=VOCAB, hidden_size=TEXT_WIDTH, intermediate_size=4 * TEXT_WIDTH,
                         num_hidden_layers=TEXT_LAYERS, num_attention_heads=heads_for_width(TEXT_WIDTH),
                         max_position_embeddings=TEXT_POSITIONS, hidden_act="quick_gelu",
                         bos_token_id=49406, eos_token_id=49407, pad_token_id=49407)
    return CLIPTextModel(cfg)


def tokenize(captions: list[str]) -> torch.Tensor:
    """SD1 token rows: start, words (≤ 75), end, then end-token padding to 77 — as inference does."""
    from ldm.tokenizer import END_TOKEN, START_TOKEN, tokenize_words

    rows = []
    for text in captions:
        words = tokenize_words(text)[:TEXT_POSITIONS - 2] if text else []
        ids = [START_TOKEN] + words + [END_TOKEN]
        rows.append(ids + [END_TOKEN] * (TEXT_POSITIONS - len(ids)))
    return torch.tensor(rows, dtype=torch.long)


def encode_text(text_encoder: nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """Cross-attention context: the final hidden state after final_layer_norm (clip skip −1)."""
    return text_encoder(input_ids=tokens).last_hidden_state


class EMA:
    """Exponential moving average of parameters, with the usual (1+n)/(10+n) warm-up."""

    def __init__(self, modules: list[nn.Module], decay: float) -> None:
        self.decay, self.n = decay, 0
        self.params = [p for m in modules for p in m.parameters()]
        self.shadow = [p.detach().clone() for p in self.params]

    @torch.no_grad()
    def update(self) -> None:
        self.n += 1
        d = min(self.decay, (1 + self.n) / (10 + self.n))
        torch._foreach_lerp_(self.shadow, [p.detach() for p in self.params], 1.0 - d)

    @torch.no_grad()
    def copy_to(self) -> None:
        for s, p in zip(self.shadow, self.params):
            p.copy_(s)


def build_latent_dataset(vae: AutoencoderKL, seed: int, count: int,
                         first: int = 0) -> tuple[torch.Tensor, list[str]]:
    """`count` training images (numbers first.. of the stream) encoded once by the frozen
    autoencoder (+ their captions)."""
    latents, captions = [], []
    for start in tqdm(range(first, first + count, 256), desc="encoding latents", unit="chunk"):
        images, caps, _ = make_batch(seed * 1000 + LATENT_SEED_STREAM, start,
                                     min(256, first + count - start), RESOLUTION)
        latents.append(encode_images(vae, images))
        captions += caps
    return torch.cat(latents), captions


def diffusion_loss(unet: UNetModel, text_encoder: nn.Module, x0: torch.Tensor, tokens: torch.Tensor,
                   alphas_cumprod: torch.Tensor, gen: torch.Generator,
                   high_noise: float = 0.0) -> torch.Tensor:
    """ε-prediction MSE at uniformly drawn discrete timesteps (the SD training objective); a
    `high_noise` share of the batch draws from the noisier half only, where layout is decided.

    √ᾱ·x0 + √(1−ᾱ)·ε is exactly what inference feeds the UNet: c_in·(x0 + σ·ε) with σ from ᾱ.
    """
    n = alphas_cumprod.shape[0]
    t = torch.randint(0, n, (x0.shape[0],), generator=gen)
    if high_noise > 0.0:
        upper = torch.randint(n // 2, n, (x0.shape[0],), generator=gen)
        t = torch.where(torch.rand(x0.shape[0], generator=gen) < high_noise, upper, t)
    noise = torch.randn(x0.shape, generator=gen)
    abar = alphas_cumprod[t][:, None, None, None]
    xt = abar.sqrt() * x0 + (1.0 - abar).sqrt() * noise
    eps = unet(xt, t.float(), encode_text(text_encoder, tokens))
    return F.mse_loss(eps, noise)


@torch.no_grad()
def preview_samples(unet: UNetModel, text_encoder: nn.Module, vae: AutoencoderKL, prompts: list[str],
                    seed: int, steps: int = 20, cfg: float = 5.0) -> np.ndarray:
    """Quick Euler samples during training (the real inference path is checked by bench/eval_demo.py).

    Returns uint8 images [N, RESOLUTION, RESOLUTION, 3].
    """
    from ldm.schedules import get_sigmas

    ms = ModelSampling("eps")
    sigmas = get_sigmas("normal", ms, steps)
    cond = encode_text(text_encoder, tokenize(list(prompts)))
    uncond = encode_text(text_encoder, tokenize([""])).expand_as(cond)
    size = RESOLUTION // VAE_CONFIG.downscale_ratio
    x = torch.randn((len(prompts), 4, size, size), generator=torch.Generator().manual_seed(seed))
    x = x * (1.0 + sigmas[0] ** 2).sqrt()
    for s, s_next in zip(sigmas[:-1], sigmas[1:]):
        t = ms.timestep(s).expand(x.shape[0])
        xin = torch.cat([x, x]) / (s * s + 1.0).sqrt()
        e_cond, e_uncond = unet(xin, torch.cat([t, t]), torch.cat([cond, uncond])).chunk(2)
        eps = e_uncond + cfg * (e_cond - e_uncond)
        x = x + eps * (s_next - s)  # Euler step on dx/dσ = ε
    pixels = vae.decode(x / SCALE)
    return ((pixels.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()


def save_grid(images: np.ndarray, path: Path, cols: int = 4, zoom: int = 2) -> None:
    """Tile uint8 images [N,H,W,3] into one PNG (nearest-neighbour zoom for viewing)."""
    from PIL import Image

    n, h, w, _ = images.shape
    rows = -(-n // cols)
    grid = np.zeros((rows * h, cols * w, 3), dtype=np.uint8)
    for i, img in enumerate(images):
        grid[(i // cols) * h:(i // cols + 1) * h, (i % cols) * w:(i % cols + 1) * w] = img
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid).resize((cols * w * zoom, rows * h * zoom), Image.NEAREST).save(path)


def train_unet(vae: AutoencoderKL, latents: torch.Tensor, captions: list[str], seconds: float,
               steps: int | None, seed: int, sample_dir: Path, on_preview=None, batch: int = 32,
               lr: float = 1e-3, dropout: float = 0.1, high_noise: float = 0.0,
               init: tuple[dict, dict] | None = None) -> tuple[UNetModel, nn.Module, dict]:
    """Stage 2: joint UNet + text-encoder ε training; returns the EMA weights and summary numbers.

    `on_preview(unet, text_encoder, info)` is called with the EMA weights in place at every
    preview (each quarter of the stage), so a usable checkpoint exists before the end.
    """
    torch.manual_seed(seed)
    unet, text_encoder = UNetModel(UNET_CONFIG), make_text_encoder(seed)
    if init is not None:  # --resume: continue from a finished file's (EMA) weights
        unet.load_state_dict(init[0])
        missing, unexpected = text_encoder.load_state_dict(init[1], strict=False)
        if unexpected or any(not k.endswith("position_ids") for k in missing):
            raise ValueError(f"text encoder weights do not fit: {missing} {unexpected}")
    params = list(unet.parameters()) + list(text_encoder.parameters())
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    ema = EMA([unet, text_encoder], decay=0.998)
    tokens, empty = tokenize(captions), tokenize([""])[0]
    x_all = latents * SCALE
    abar = ModelSampling("eps").alphas_cumprod
    rng, gen = np.random.default_rng([seed, 22]), torch.Generator().manual_seed(seed + 1)
    progress, step, avg, next_preview = Progress(steps, seconds), 0, None, 0.25
    bar = tqdm(desc="stage 2 unet+text", unit="step", total=steps)
    while progress.fraction(step) < 1.0:
        idx = torch.from_numpy(rng.integers(0, len(x_all), batch))
        tok = tokens[idx].clone()
        tok[torch.from_numpy(rng.random(batch) < dropout)] = empty
        _set_lr(opt, lr, progress.lr_factor(step, warmup=200))
        loss = diffusion_loss(unet, text_encoder, x_all[idx], tok, abar, gen, high_noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        ema.update()
        avg = float(loss.detach()) if avg is None else 0.99 * avg + 0.01 * float(loss.detach())
        step += 1
        bar.update(1)
        bar.set_postfix(eps_loss=f"{avg:.4f}")
        if progress.fraction(step) >= next_preview:
            info = {"unet_steps": step, "eps_loss": round(avg, 5)}
            _preview_with_ema(unet, text_encoder, ema, vae, sample_dir / f"step{step:06d}.png", seed,
                              lambda u, t: on_preview and on_preview(u, t, info))
            next_preview += 0.25
    bar.close()
    ema.copy_to()
    unet.eval().requires_grad_(False)
    text_encoder.eval().requires_grad_(False)
    return unet, text_encoder, {"unet_steps": step, "unet_seconds": round(time.monotonic() - progress.start, 1),
                                "eps_loss": round(avg or float("nan"), 5)}


def _preview_with_ema(unet: UNetModel, text_encoder: nn.Module, ema: EMA, vae: AutoencoderKL,
                      path: Path, seed: int, also=None) -> None:
    """Sample the preview prompts with the EMA weights (and run `also` on them), then restore
    the training weights."""
    backup = [p.detach().clone() for p in ema.params]
    ema.copy_to()
    unet.eval(), text_encoder.eval()
    save_grid(preview_samples(unet, text_encoder, vae, list(PREVIEW_PROMPTS), seed), path)
    if also is not None:
        also(unet, text_encoder)
    with torch.no_grad():
        for p, b in zip(ema.params, backup):
            p.copy_(b)
    unet.train(), text_encoder.train()
    tqdm.write(f"preview grid: {path}")


def finetune_decoder(path: Path, out: Path, seconds: float, seed: int, init_from: Path | None = None,
                     batch: int = 8, lr: float = 5e-4) -> dict:
    """Sharpen a finished checkpoint's decoder on full 64×64 images, encoder frozen.

    The encoder and quant_conv stay fixed, so the latent space the UNet learned is unchanged and
    the decoder can keep improving after (or alongside) stage 2. `init_from` copies decoder weights
    from another file first (to splice a decoder fine-tuned in parallel into the final file).
    """
    from ldm.checkpoint import load_state_dict, read_metadata

    sd = {k: v.float() for k, v in load_state_dict(path).items()}
    if init_from is not None:
        other = load_state_dict(init_from)
        sd.update({k: v.float() for k, v in other.items() if k.startswith(_DECODER_PREFIXES)})
    vae = AutoencoderKL(VAE_CONFIG)
    vae.load_state_dict({k[len("first_stage_model."):]: v for k, v in sd.items()
                         if k.startswith("first_stage_model.")})
    params = list(vae.decoder.parameters()) + list(vae.post_quant_conv.parameters())
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    progress, step, ema_l1 = Progress(None, max(seconds, 1e-9)), 0, None
    bar = tqdm(desc="decoder fine-tune", unit="step")
    while seconds > 0 and progress.fraction(step) < 1.0:
        images, _, _ = make_batch(seed * 1000 + 3, step * batch, batch, RESOLUTION)
        x = _to_tensor(images)
        with torch.no_grad():
            z = vae.encode(x)
        y = vae.decode(z)
        grad = (y.diff(dim=2) - x.diff(dim=2)).abs().mean() + (y.diff(dim=3) - x.diff(dim=3)).abs().mean()
        l1 = (y - x).abs().mean()
        loss = l1 + (y - x).pow(2).mean() + 0.5 * grad
        _set_lr(opt, lr, progress.lr_factor(step, warmup=20))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        ema_l1 = float(l1.detach()) if ema_l1 is None else 0.98 * ema_l1 + 0.02 * float(l1.detach())
        step += 1
        bar.update(1)
        bar.set_postfix(l1=f"{ema_l1:.4f}")
    bar.close()
    for k, v in vae.state_dict().items():
        sd["first_stage_model." + k] = v
    info = json.loads(read_metadata(path).get("latentgraph.training", "{}"))
    if init_from is not None:
        spliced = json.loads(read_metadata(init_from).get("latentgraph.training", "{}"))
        info.update({k: v for k, v in spliced.items() if k.startswith("decoder_finetune")})
    if step:
        info.update(decoder_finetune_steps=step, decoder_finetune_l1=round(ema_l1, 5))
    if not all(k in info for k in _PREVIEW_KEYS):
        info.update(fit_preview_factors(vae, seed))
    save_checkpoint(out, {k: v.to(torch.float16).contiguous() for k, v in sd.items()}, info)
    return info


_DECODER_PREFIXES = ("first_stage_model.decoder.", "first_stage_model.post_quant_conv.")
_PREVIEW_KEYS = ("latent_rgb_factors", "latent_rgb_factors_bias")


# ------------------------------------------------------------------------------ output
def checkpoint_state_dict(unet: UNetModel, text_encoder: nn.Module,
                          vae: AutoencoderKL) -> dict[str, torch.Tensor]:
    """The SD1 single-file layout, fp16: model.diffusion_model.*, first_stage_model.*,
    cond_stage_model.transformer.text_model.* (transformers 5 drops `text_model.` itself)."""
    sd: dict[str, torch.Tensor] = {}
    parts = (("model.diffusion_model.", unet.state_dict()), ("first_stage_model.", vae.state_dict()),
             ("cond_stage_model.transformer.text_model.", text_encoder.state_dict()))
    for prefix, weights in parts:
        for key, value in weights.items():
            if key.endswith("position_ids"):
                continue
            key = key[len("text_model."):] if key.startswith("text_model.") else key
            sd[prefix + key] = value.detach().to(torch.float16).contiguous()
    return sd


def save_checkpoint(path: Path, sd: dict[str, torch.Tensor], info: dict) -> None:
    """Write atomically (tmp file + rename) with the training summary as safetensors metadata."""
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"latentgraph.demo": "1", "latentgraph.native_resolution": str(RESOLUTION),
            "latentgraph.vae_norm_groups": str(VAE_CONFIG.norm_groups),
            **{f"latentgraph.{k}": json.dumps(info[k]) for k in _PREVIEW_KEYS if k in info},
            "latentgraph.training": json.dumps(info, sort_keys=True)}
    tmp = path.with_suffix(".tmp")
    save_file(sd, str(tmp), metadata=meta)
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o666 & ~umask)  # safetensors creates 0600; a model file is as readable as any other
    tmp.replace(path)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="main.py train-demo", description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="checkpoint to write")
    p.add_argument("--minutes", type=float, default=30.0, help="total wall-clock budget")
    p.add_argument("--vae-fraction", type=float, default=0.2, help="share of the budget for stage 1")
    p.add_argument("--vae-steps", type=int, default=None, help="fixed stage-1 steps (reproducible)")
    p.add_argument("--unet-steps", type=int, default=None, help="fixed stage-2 steps (reproducible)")
    p.add_argument("--latents", type=int, default=8000, help="training images encoded for stage 2")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1,
                   help="1 is fastest on a shared 2-core machine (2 threads thrash)")
    p.add_argument("--stage2-threads", type=int, default=None,
                   help="threads for stage 2 (default: --threads); 1 leaves a core for a parallel "
                        "--finetune-decoder run on the stage-1 file written to --sample-dir")
    p.add_argument("--finetune-decoder", type=Path, default=None, metavar="CKPT",
                   help="instead of training: fine-tune CKPT's decoder for --minutes, write --out")
    p.add_argument("--init-decoder", type=Path, default=None,
                   help="with --finetune-decoder: start from this file's decoder weights")
    p.add_argument("--resume", type=Path, default=None, metavar="CKPT",
                   help="instead of training from scratch: continue stage 2 of CKPT for --minutes")
    p.add_argument("--resume-lr", type=float, default=5e-4, help="peak learning rate with --resume")
    p.add_argument("--high-noise", type=float, default=0.0,
                   help="stage 2: share of each batch drawn from the noisier half of the timesteps "
                        "(where layout and position are decided); the committed model used 0.5 "
                        "in its two --resume runs")
    p.add_argument("--sample-dir", type=Path, default=ROOT / "temp" / "train_demo",
                   help="where preview grids go during training")
    return p.parse_args(argv)


def load_for_resume(path: Path) -> tuple[AutoencoderKL, tuple[dict, dict], dict]:
    """The VAE, (UNet, text encoder) weights and training summary of a finished demo file."""
    from ldm.checkpoint import load_state_dict, read_metadata

    sd = {k: v.float() for k, v in load_state_dict(path).items()}

    def part(prefix: str) -> dict:
        return {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}

    vae = AutoencoderKL(VAE_CONFIG)
    vae.load_state_dict(part("first_stage_model."))
    vae.eval().requires_grad_(False)
    init = (part("model.diffusion_model."), part("cond_stage_model.transformer.text_model."))
    info = json.loads(read_metadata(path).get("latentgraph.training", "{}"))
    return vae, init, info


def resume(args: argparse.Namespace) -> int:
    """Stage 2 only, continued from --resume's weights on fresh images, at a lower learning rate."""
    t0 = time.monotonic()
    vae, init, info = load_for_resume(args.resume)
    earlier = {k: info.pop(k) for k in ("unet_steps", "unet_seconds", "eps_loss", "partial") if k in info}
    latents, captions = build_latent_dataset(vae, args.seed, args.latents, first=args.latents)
    torch.set_num_threads(args.stage2_threads or args.threads)

    def snapshot(u: UNetModel, t: nn.Module, partial: dict) -> None:
        save_checkpoint(args.out, checkpoint_state_dict(u, t, vae), {**info, **partial, "partial": True})

    unet, text_encoder, more = train_unet(vae, latents, captions, args.minutes * 60.0, args.unet_steps,
                                          args.seed + 1, args.sample_dir, snapshot, lr=args.resume_lr,
                                          high_noise=args.high_noise, init=init)
    info.update(first_run=earlier, resume_command=args.command, resume_high_noise=args.high_noise,
                resumed_steps=more["unet_steps"], resumed_seconds=more["unet_seconds"],
                unet_steps=earlier.get("unet_steps", 0) + more["unet_steps"], eps_loss=more["eps_loss"],
                resume_seconds_total=round(time.monotonic() - t0, 1))
    save_checkpoint(args.out, checkpoint_state_dict(unet, text_encoder, vae), info)
    save_grid(preview_samples(unet, text_encoder, vae, list(PREVIEW_PROMPTS), args.seed),
              args.sample_dir / "final_resumed.png")
    print(json.dumps(info, indent=1))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run both stages and write the checkpoint; returns a process exit code."""
    args = parse_args(argv)
    args.command = "train-demo " + shlex.join(argv if argv is not None else sys.argv[1:])
    torch.set_num_threads(args.threads)
    if args.finetune_decoder is not None:
        info = finetune_decoder(args.finetune_decoder, args.out, args.minutes * 60.0, args.seed,
                                args.init_decoder)
        print(json.dumps(info, indent=1))
        return 0
    if args.resume is not None:
        return resume(args)
    t0, budget = time.monotonic(), args.minutes * 60.0
    vae, info = train_vae(budget * args.vae_fraction, args.vae_steps, args.seed)
    raw = build_latent_dataset(vae, args.seed, args.latents)
    stats = fold_latent_normalisation(vae, raw[0])
    m = torch.tensor(stats["latent_mean"])[None, :, None, None]
    s = torch.tensor(stats["latent_std"])[None, :, None, None]
    latents = (raw[0] - m) / (s * SCALE)  # the same numbers the folded encoder now outputs
    info.update(stats, **fit_preview_factors(vae, args.seed))
    save_checkpoint(args.sample_dir / "stage1_vae.safetensors",
                    {"first_stage_model." + k: v.float().contiguous() for k, v in vae.state_dict().items()},
                    dict(info))
    torch.set_num_threads(args.stage2_threads or args.threads)
    remaining = max(60.0, budget - (time.monotonic() - t0))

    def snapshot(u: UNetModel, t: nn.Module, partial: dict) -> None:
        save_checkpoint(args.out, checkpoint_state_dict(u, t, vae), {**info, **partial, "partial": True})

    unet, text_encoder, unet_info = train_unet(vae, latents, raw[1], remaining, args.unet_steps,
                                               args.seed, args.sample_dir, snapshot,
                                               high_noise=args.high_noise)
    info.update(unet_info, seed=args.seed, command=args.command, high_noise=args.high_noise,
                total_seconds=round(time.monotonic() - t0, 1))
    save_checkpoint(args.out, checkpoint_state_dict(unet, text_encoder, vae), info)
    final = preview_samples(unet, text_encoder, vae, list(PREVIEW_PROMPTS), args.seed)
    save_grid(final, args.sample_dir / "final.png")
    print(json.dumps(info, indent=1))
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":  # python -m tools.train_demo (from the repository root)
    raise SystemExit(main(sys.argv[1:]))
