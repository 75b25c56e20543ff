"""LoRA: reading files, turning them into weight patches, applying patches reversibly.

Patch format (shared by ldm.model.DiffusionModel and ldm.clip.TextEncoder):
``patches: dict[param name → list[(strength, patch)]]`` where ``patch.delta(shape) -> Tensor``
(float32) is the full-size weight change. :func:`patched_weights` adds ``Σ strength·delta`` to the
named parameters for the duration of a ``with`` block and puts the original tensors back afterwards
(the very same tensor objects, so the restore is bit-identical and mmap-backed weights are never
written to).

Typical use::

    sd = load_lora(path)
    match = lora_patches(sd, unet_params=model.unet.named_parameters(), te_params=clip.param_names())
    model.add_patches(match.unet, strength_model); clip.add_patches(match.te, strength_clip)
    # match.unmatched lists LoRA tensors that fit nothing (reported, never silently dropped)
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import Tensor, nn

from ldm.clip_keys import encoder_shape, find_encoders
from ldm.lora_keys import ldm_to_diffusers, split_lora_key, te_lookup, unet_lookup


class LoraError(Exception):
    """A LoRA file that cannot be read safely."""


def load_lora(path: str | Path) -> dict[str, Tensor]:
    """The tensors of a LoRA file: ``.safetensors``, or ``.pt/.ckpt/.bin/.pth`` via weights_only."""
    path = Path(path)
    ext = path.suffix.lower()
    try:
        if ext == ".safetensors":
        
            return load_file(str(path))
        if ext in (".pt", ".ckpt", ".bin", ".pth"):
            data = torch.load(path, map_location="cpu", weights_only=True)
            data = data.get("state_dict", data) if isinstance(data, dict) else data
            return {k: v for k, v in data.items() if isinstance(v, Tensor)}
    except Exception as exc:
        raise LoraError(f"cannot read LoRA {path.name}: {exc.__class__.__name__}: {exc}") from exc
    raise LoraError(f"unsupported LoRA file type {ext!r} ({path.name})")


@dataclass(frozen=True)
class LoraPatch:
    """Low-rank update ``up @ down · alpha/rank`` (LoCon: down may be a k×k conv kernel)."""

    up: Tensor
    down: Tensor
    alpha: float | None = None

    @property
    def rank(self) -> int:
        return int(self.down.shape[0])

    def delta(self, shape: torch.Size) -> Tensor:
        """The full weight change in float32, reshaped to the target parameter's shape."""
        scale = 1.0 if self.alpha is None else self.alpha / self.rank
        d = self.up.float().flatten(1) @ self.down.float().flatten(1)
        return (d * scale).reshape(shape)


@dataclass(frozen=True)
class LohaPatch:
    """LyCORIS LoHa: Hadamard product ``(w1a @ w1b) ⊙ (w2a @ w2b) · alpha/rank``."""

    w1a: Tensor
    w1b: Tensor
    w2a: Tensor
    w2b: Tensor
    alpha: float | None = None

    def delta(self, shape: torch.Size) -> Tensor:
        scale = 1.0 if self.alpha is None else self.alpha / self.w1b.shape[0]
        w1 = self.w1a.float() @ self.w1b.float().flatten(1)
        w2 = self.w2a.float() @ self.w2b.float().flatten(1)
        return (w1 * w2 * scale).reshape(shape)

    def target_size(self) -> tuple[int, int]:
        return self.w1a.shape[0], self.w1a.shape[0] * self.w1b[0].numel()


@dataclass(frozen=True)
class LokrPatch:
    """LyCORIS LoKr: Kronecker product ``w1 ⊗ w2`` (each factor full or low-rank ``a @ b``).

    The alpha/rank scale applies only when a factor is low-rank (rank = that factor's inner size),
    otherwise the product is used as stored.
    """

    w1: Tensor
    w2: Tensor
    rank: int | None = None
    alpha: float | None = None

    def delta(self, shape: torch.Size) -> Tensor:
        scale = 1.0 if self.alpha is None or self.rank is None else self.alpha / self.rank
        w1, w2 = self.w1.float(), self.w2.float()
        if w2.dim() == 4 and w1.dim() == 2:
            w1 = w1[:, :, None, None]
        return (torch.kron(w1, w2) * scale).reshape(shape)

    def target_size(self) -> tuple[int, int]:
        return self.w1.shape[0] * self.w2.shape[0], self.w1.numel() * self.w2.numel()


@dataclass(frozen=True)
class DiffPatch:
    """A stored full difference (LyCORIS ``.diff``)."""

    diff: Tensor

    def delta(self, shape: torch.Size) -> Tensor:
        return self.diff.float().reshape(shape)


@dataclass
class LoraMatch:
    """Patches per target (parameter name → patch) and the LoRA keys that matched nothing."""

    unet: dict[str, object] = field(default_factory=dict)
    te: dict[str, object] = field(default_factory=dict)
    unmatched: list[str] = field(default_factory=list)


def _group(lora_sd: dict[str, Tensor]
           ) -> tuple[dict[str, dict[str, Tensor]], dict[str, list[str]], list[str]]:
    """(module key → {role: tensor}, module key → its file keys, keys of no known form)."""
    groups: dict[str, dict[str, Tensor]] = {}
    owners: dict[str, list[str]] = {}
    unknown: list[str] = []
    for key, value in lora_sd.items():
        parsed = split_lora_key(key)
        if parsed is None:
            unknown.append(key)
        else:
            groups.setdefault(parsed[0], {})[parsed[1]] = value
            owners.setdefault(parsed[0], []).append(key)
    return groups, owners, unknown


def _make_patch(parts: dict[str, Tensor]) -> object | None:
    """The patch described by one module's tensors; None for forms not supported (e.g. Tucker
    ``lora_mid`` / ``hada_t1``), whose keys are then reported as unmatched."""
    alpha = float(parts["alpha"]) if "alpha" in parts else None
    if "diff" in parts:
        return DiffPatch(parts["diff"])
    if "up" in parts and "down" in parts and "mid" not in parts:
        return LoraPatch(parts["up"], parts["down"], alpha)
    hada = ("hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b")
    if all(k in parts for k in hada):
        return LohaPatch(*(parts[k] for k in hada), alpha=alpha)
    factors, rank = [], None
    for i in ("1", "2"):
        if f"lokr_w{i}" in parts:
            factors.append(parts[f"lokr_w{i}"])
        elif f"lokr_w{i}_a" in parts and f"lokr_w{i}_b" in parts:
            a, b = parts[f"lokr_w{i}_a"].float(), parts[f"lokr_w{i}_b"].float()
            rank = rank or int(b.shape[0])
            factors.append((a @ b.flatten(1)).reshape(a.shape[0], *b.shape[1:]))
        else:
            return None
    return LokrPatch(factors[0], factors[1], rank, alpha)


def _shapes(params) -> dict[str, torch.Size | None]:
    if isinstance(params, dict):
        return {k: (v.shape if isinstance(v, Tensor) else v) for k, v in params.items()}
    items = list(params)
    if items and isinstance(items[0], tuple):
        return {n: p.shape for n, p in items}
    return {n: None for n in items}


def _fits(patch: object, shape: torch.Size | None) -> bool:
    if shape is None:
        return True
    if isinstance(patch, DiffPatch):
        return patch.diff.numel() == shape.numel()
    if isinstance(patch, (LohaPatch, LokrPatch)):
        rows, numel = patch.target_size()
        return rows == shape[0] and numel == shape.numel()
    out_features = patch.up.shape[0]
    in_numel = patch.down[0].numel()
    return out_features == shape[0] and out_features * in_numel == shape.numel()


def lora_patches(lora_sd: dict[str, Tensor], *, unet_params=None, te_params=None,
                 unet_config=None) -> LoraMatch:
    """Maps a LoRA state dict onto UNet and text-encoder parameters.

    ``unet_params``: UNet parameter names (LDM layout, no ``model.diffusion_model.``), as names,
    ``named_parameters()`` pairs or {name: tensor/shape}; shapes, when given, are checked.
    ``te_params``: {slot: names or pairs} (``TextEncoder.param_names()``); TE patch keys come out
    as ``"<slot>.<name>"`` — the TextEncoder's own parameter names.
    ``unet_config`` (ldm.configs.UNetConfig) fixes levels/res blocks; otherwise read from names.
    """
    unet_shapes = _shapes(unet_params or [])
    te_shapes = {slot: _shapes(p) for slot, p in (te_params or {}).items()}
    levels = len(unet_config.channel_mult) if unet_config is not None else None
    res_blocks = unet_config.num_res_blocks if unet_config is not None else None
    u_lookup = unet_lookup(unet_shapes, levels, res_blocks) if unet_shapes else {}
    t_lookup = te_lookup({s: list(v) for s, v in te_shapes.items()})
    groups, owners, unknown = _group(lora_sd)
    match = LoraMatch(unmatched=unknown)
    for module_key, parts in groups.items():
        patch = _make_patch(parts)
        target = None
        if patch is not None and module_key in u_lookup:
            name = u_lookup[module_key] + ".weight"
            if _fits(patch, unet_shapes.get(name)):
                match.unet[name], target = patch, name
        elif patch is not None and module_key in t_lookup:
            slot, module = t_lookup[module_key]
            name = module + ".weight"
            if _fits(patch, te_shapes[slot].get(name)):
                match.te[f"{slot}.{name}"], target = patch, name
        if target is None:
            match.unmatched += owners[module_key]
    match.unmatched.sort()
    return match


def lora_patches_for(model_or_clip, lora_sd: dict[str, Tensor]) -> dict[str, object]:
    """Patches of ``lora_sd`` for a DiffusionModel (``.unet``) or a TextEncoder (``.stack``)."""
    if hasattr(model_or_clip, "stack"):
        return lora_patches(lora_sd, te_params=model_or_clip.param_names()).te
    unet = model_or_clip.unet
    config = getattr(getattr(model_or_clip, "config", None), "unet", None)
    return lora_patches(lora_sd, unet_params=dict(unet.named_parameters()), unet_config=config).unet


@contextmanager
def patched_weights(module: nn.Module, patches: dict[str, list[tuple[float, object]]]
                    ) -> Iterator[nn.Module]:
    """Temporarily replaces each patched parameter's data by ``W + Σ strength·delta``.

    The sum is formed in float32 and cast back to the parameter's dtype; on exit the original
    tensors are put back (bit-identical). Names not in the module are ignored.
    """
    if not patches:
        yield module
        return
    params = dict(module.named_parameters())
    originals: dict[str, Tensor] = {}
    try:
        with torch.no_grad():
            for name, items in patches.items():
                param = params.get(name)
                if param is None or not items:
                    continue
                original = param.data
                weight = original.float().clone()
                for strength, patch in items:
                    weight += strength * patch.delta(original.shape).to(weight.device)
                originals[name] = original
                param.data = weight.to(original.dtype)
        yield module
    finally:
        for name, original in originals.items():
            params[name].data = original


def make_random_lora(checkpoint_sd: dict[str, Tensor], rank: int = 4, seed: int = 0
                     ) -> dict[str, Tensor]:
    """A random kohya-style LoRA for a checkpoint, for tests and the tiny models.

    UNet: every attention q/k/v/out projection and the first res block's 3×3 conv1 (LoCon), under
    diffusers module names (``lora_unet_down_blocks_0_attentions_0_..._attn1_to_q``). Text
    encoders: q/v projections of every layer (``lora_te_`` / ``lora_te1_`` / ``lora_te2_``).
    ``up`` is random (not zero as in training) so the LoRA visibly changes outputs; alpha = rank/2.
    """
    gen = torch.Generator().manual_seed(seed)
    prefix = "model.diffusion_model."
    unet = {k[len(prefix):]: v for k, v in checkpoint_sd.items() if k.startswith(prefix)}
    targets: list[tuple[str, tuple[int, ...]]] = []
    for module, diff in sorted(ldm_to_diffusers(unet).items()):
        weight = unet[module + ".weight"]
        attn = any(diff.endswith(s) for s in (".to_q", ".to_k", ".to_v", ".to_out.0"))
        if attn or (diff == "down_blocks.0.resnets.0.conv1" and weight.dim() == 4):
            targets.append(("lora_unet_" + diff.replace(".", "_"), tuple(weight.shape)))
    encoders = find_encoders(checkpoint_sd)
    for slot, (enc_prefix, openclip) in sorted(encoders.items()):
        shape = encoder_shape(checkpoint_sd, enc_prefix, openclip)
        kohya = "lora_te_" if len(encoders) == 1 else {"l": "lora_te1_", "g": "lora_te2_"}[slot]
        for i in range(shape.layers):
            for proj in ("q_proj", "v_proj"):
                name = f"{kohya}text_model_encoder_layers_{i}_self_attn_{proj}"
                targets.append((name, (shape.width, shape.width)))
    out: dict[str, Tensor] = {}
    for name, shape in targets:
        fan_in = shape[1] * (shape[2] * shape[3] if len(shape) == 4 else 1)
        down_shape = (rank, *shape[1:])
        up_shape = (shape[0], rank) + ((1, 1) if len(shape) == 4 else ())
        out[name + ".lora_down.weight"] = torch.randn(down_shape, generator=gen) * fan_in ** -0.5
        out[name + ".lora_up.weight"] = torch.randn(up_shape, generator=gen) * 0.5 * rank ** -0.5
        out[name + ".alpha"] = torch.tensor(rank / 2)
    return out
