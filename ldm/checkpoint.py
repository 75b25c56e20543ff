"""Reading single-file Stable Diffusion checkpoints safely and working out what they contain.

Only two readers exist: safetensors (no code can run) and `torch.load(weights_only=True)` for
pickled files (a pickle that needs a class or function is refused before anything runs).
`detect` reads the family and every architecture size from key names and tensor shapes, so real
and tiny files take the same path. `load_checkpoint` builds the modules on the meta device and
assigns the loaded tensors, so the weights exist once in memory.
"""
from __future__ import annotations

import json
import re
import struct
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from ldm import upscale_x4 as x4
from ldm.configs import (PREDICTIONS, SCALE_FACTORS, TEXT_ENCODER_LAYOUTS, ModelConfig, UNetConfig,
                         VAEConfig, default_norm_groups)
from ldm.unsupported import refusal, unsupported_layout

if TYPE_CHECKING:
    from ldm.clip import TextEncoder
    from ldm.model import DiffusionModel
    from ldm.vae import VAE

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
PICKLE_EXTENSIONS = {".ckpt", ".pt", ".pth", ".bin"}
SAFETENSORS_EXTENSIONS = {".safetensors", ".sft"}


class CheckpointError(Exception):
    """A file that cannot or must not be loaded, or whose layout is not recognised."""


# ------------------------------------------------------------------------------------ reading
def load_state_dict(path: str | Path) -> dict[str, Tensor]:
    """All tensors of a weights file, keyed by name (see module doc for what is accepted)."""
    path = Path(path)
    ext = path.suffix.lower()
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    if ext in SAFETENSORS_EXTENSIONS:
        return _load_safetensors(path)
    if ext in PICKLE_EXTENSIONS:
        return _load_pickle(path)
    raise CheckpointError(f"{path.name}: unsupported extension {path.suffix!r}; expected one of "
                          f"{sorted(SAFETENSORS_EXTENSIONS | PICKLE_EXTENSIONS)}")


def _load_safetensors(path: Path) -> dict[str, Tensor]:
    from safetensors import safe_open

    _check_safetensors_size(path)
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            return {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:  # safetensors raises its own error types for corrupt headers
        raise CheckpointError(f"{path.name}: not a readable safetensors file ({e})") from e


def _read_header(path: Path) -> tuple[int, dict]:
    """(header length, parsed JSON header) of a safetensors file; CheckpointError if truncated."""
    size = path.stat().st_size
    with path.open("rb") as fh:
        raw = fh.read(8)
        if len(raw) < 8:
            raise CheckpointError(f"{path.name}: truncated safetensors file ({size} bytes)")
        (n,) = struct.unpack("<Q", raw)
        if n > size - 8:
            raise CheckpointError(f"{path.name}: truncated safetensors file (header of {n} bytes, "
                                  f"file has {size})")
        try:
            return n, json.loads(fh.read(n))
        except ValueError as e:
            raise CheckpointError(f"{path.name}: corrupt safetensors header ({e})") from e


def _check_safetensors_size(path: Path) -> None:
    """Refuse truncated files with a message that says so (the header records the data length)."""
    n, header = _read_header(path)
    ends = [v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"]
    need = 8 + n + max(ends, default=0)
    size = path.stat().st_size
    if need > size:
        raise CheckpointError(f"{path.name}: truncated safetensors file ({size} bytes, the header "
                              f"describes {need}); download it again")


_ST_DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16,
              "BF16": torch.bfloat16}


class _CastingReader:
    """Reads one tensor of a safetensors file at a time with plain file reads, for the tensors that
    must be cast (fp16 file → fp32 weights). Casting the mmap-backed tensors instead would keep the
    whole file mapped and resident next to the converted copy until the last tensor is done."""

    def __init__(self, path: Path) -> None:
        n, self.header = _read_header(path)
        self.base = 8 + n
        self.fh = path.open("rb")

    def read(self, key: str, dtype: torch.dtype) -> Tensor | None:
        info = self.header.get(key)
        if info is None or info["dtype"] not in _ST_DTYPES:
            return None
        start, end = info["data_offsets"]
        if end == start:
            return torch.empty(info["shape"], dtype=dtype)
        buf = bytearray(end - start)
        self.fh.seek(self.base + start)
        self.fh.readinto(buf)
        return torch.frombuffer(buf, dtype=_ST_DTYPES[info["dtype"]]).reshape(info["shape"]).to(dtype)

    def close(self) -> None:
        self.fh.close()


def _load_pickle(path: Path) -> dict[str, Tensor]:
    try:
        try:
            obj = torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as e:
            if "mmap" not in str(e):  # legacy (non-zip) files cannot be memory-mapped
                raise
            obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(
            f"{path.name}: refused — only plain tensors can be loaded from pickle files "
            f"(weights_only); this file needs code to unpickle or is corrupt: "
            f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from e
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path.name}: expected a dict of tensors, got {type(obj).__name__}")
    return {k: v for k, v in obj.items() if isinstance(v, Tensor)}


def read_metadata(path: str | Path) -> dict[str, str]:
    """The `__metadata__` strings of a safetensors header ({} for other formats)."""
    path = Path(path)
    if path.suffix.lower() not in SAFETENSORS_EXTENSIONS:
        return {}
    return dict(_read_header(path)[1].get("__metadata__") or {})


# ------------------------------------------------------------------------------------ detection
_BLOCK_RE = re.compile(r"^model\.diffusion_model\.(input_blocks|middle_block|output_blocks)\.?(\d*)"
                       r"\.(\d+)\.transformer_blocks\.(\d+)\.")


_LEGACY_RE = re.compile(r"^model\.diffusion_model\.(input_blocks|middle_block|output_blocks)\.?(\d*)"
                        r"\.\d+\.qkv\.weight$")


def _prefix_summary(sd: dict[str, Tensor]) -> str:
    counts = Counter(".".join(k.split(".")[:2]) for k in sd)
    return ", ".join(f"{p}.* ({n})" for p, n in counts.most_common(12)) or "no tensors"


def _transformer_depths(sd: dict[str, Tensor]) -> dict[tuple[str, int], int]:
    """(block list, index) → number of transformer blocks in that block's SpatialTransformer."""
    depths: dict[tuple[str, int], int] = {}
    for k in sd:
        m = _BLOCK_RE.match(k)
        if m:
            key = (m.group(1), int(m.group(2) or 0))
            depths[key] = max(depths.get(key, 0), int(m.group(4)) + 1)
    return depths


def _legacy_attention(sd: dict[str, Tensor]) -> dict[tuple[str, int], int]:
    """(block list, index) → 1 for each plain self-attention AttentionBlock (`….1.qkv.weight`):
    the LDM paper's UNets without SpatialTransformers."""
    found: dict[tuple[str, int], int] = {}
    for k in sd:
        m = _LEGACY_RE.match(k)
        if m:
            found[(m.group(1), int(m.group(2) or 0))] = 1
    return found


def _context_self_attention_levels(sd: dict[str, Tensor], mult: list[int], nres: int,
                                   context_dim: int) -> tuple[int, ...]:
    """Levels whose transformer attn1 reads the context (`disable_self_attn`, the x4 upscaler):
    its to_k takes context_dim features instead of the block's own width."""
    levels = []
    block = 1
    for level in range(len(mult)):
        key = f"{UNET_PREFIX}input_blocks.{block}.1.transformer_blocks.0.attn1.to_k.weight"
        width = sd.get(f"{UNET_PREFIX}input_blocks.{block}.1.transformer_blocks.0.attn1.to_q.weight")
        if key in sd and width is not None and sd[key].shape[1] == context_dim != width.shape[1]:
            levels.append(level)
        block += nres + 1
    return tuple(levels)


def _unet_levels(sd: dict[str, Tensor], mc: int, depths: dict) -> tuple[list[int], list[int], int]:
    """Walk input_blocks: (channel_mult, transformer depth per level, res blocks per level)."""
    levels: list[list[int]] = [[]]
    level_depth: list[int] = [0]
    i = 1
    while f"{UNET_PREFIX}input_blocks.{i}.0.op.weight" in sd or \
            f"{UNET_PREFIX}input_blocks.{i}.0.out_layers.3.weight" in sd:
        if f"{UNET_PREFIX}input_blocks.{i}.0.op.weight" in sd:
            levels.append([])
            level_depth.append(0)
        else:
            out_ch = sd[f"{UNET_PREFIX}input_blocks.{i}.0.out_layers.3.weight"].shape[0]
            levels[-1].append(out_ch // mc)
            level_depth[-1] = max(level_depth[-1], depths.get(("input_blocks", i), 0))
        i += 1
    res_counts = {len(lv) for lv in levels}
    if len(res_counts) != 1 or 0 in res_counts:
        raise CheckpointError(f"UNet levels have differing res-block counts: {levels}")
    return [lv[-1] for lv in levels], level_depth, res_counts.pop()


def _family(sd: dict[str, Tensor], context_dim: int, adm: int | None) -> str | None:
    has = lambda p: any(k.startswith(p) for k in sd)  # noqa: E731
    if has("conditioner.embedders.1.model.") and has("conditioner.embedders.0.transformer."):
        return "sdxl"
    if has("conditioner.embedders.0.model.") and not has("conditioner.embedders.1."):
        return "sdxl_refiner"
    if has("cond_stage_model.model."):
        return "sd2"
    if has("cond_stage_model.transformer.attn_layers."):
        return "ldm"  # the LDM paper's text-to-image model (LDM-BERT)
    if has("cond_stage_model.transformer."):
        return "sd1"
    if has("cond_stage_model.embedding.") or (not has("cond_stage_model.") and context_dim == 0):
        return "ldm"  # class-conditional (ClassEmbedder) or unconditional LDM
    # UNet-only files: the real sizes are unambiguous (DESIGN.md).
    return {(768, None): "sd1", (1024, None): "sd2", (2048, 2816): "sdxl",
            (1280, 2560): "sdxl_refiner"}.get((context_dim, adm))


def _heads(family: str, mc: int, metadata: dict[str, str]) -> tuple[int, int]:
    """(num_heads, num_head_channels): metadata if given, else the rule of ARCHITECTURE.md §2."""
    if "latentgraph.num_heads" in metadata:
        return int(metadata["latentgraph.num_heads"]), -1
    if "latentgraph.num_head_channels" in metadata:
        return -1, int(metadata["latentgraph.num_head_channels"])
    if family == "sd1":
        return (8 if mc >= 128 else 2), -1
    if family == "ldm":  # the released LDM configs (but txt2img, see detect_unet) use 32-wide heads
        return -1, (32 if mc >= 128 else mc // 2)
    return -1, (64 if mc >= 128 else mc // 2)


def detect_unet(sd: dict[str, Tensor], family: str | None = None,
                metadata: dict[str, str] | None = None) -> tuple[str, UNetConfig]:
    """(family, UNetConfig) read from the `model.diffusion_model.*` shapes."""
    metadata = metadata or {}
    found = unsupported_layout(sd, UNET_PREFIX)
    if found:
        raise CheckpointError(refusal(found))
    conv_in = sd.get(UNET_PREFIX + "input_blocks.0.0.weight")
    if conv_in is None or UNET_PREFIX + "out.2.weight" not in sd:
        raise CheckpointError(f"not a Stable Diffusion checkpoint: no UNet "
                              f"({UNET_PREFIX}input_blocks/out) found; keys: {_prefix_summary(sd)}")
    mc, in_ch = conv_in.shape[0], conv_in.shape[1]
    legacy = _legacy_attention(sd)
    depths = {**_transformer_depths(sd), **legacy}
    mult, level_depth, nres = _unet_levels(sd, mc, depths)
    to_k = next((v for k, v in sd.items() if k.startswith(UNET_PREFIX) and
                 k.endswith("attn2.to_k.weight")), None)
    context_dim = to_k.shape[1] if to_k is not None else (0 if legacy else 768)
    classes = sd.get(UNET_PREFIX + "label_emb.weight")
    no_self_attn = _context_self_attention_levels(sd, mult, nres, context_dim)
    proj_in = next((v for k, v in sd.items() if k.startswith(UNET_PREFIX) and
                    k.endswith(".proj_in.weight")), None)
    label = sd.get(UNET_PREFIX + "label_emb.0.0.weight")
    adm = label.shape[1] if label is not None else None
    # A UNet-only file of non-standard size cannot show its family; metadata may name it.
    family = family or metadata.get("latentgraph.family") or _family(sd, context_dim, adm)
    if family not in SCALE_FACTORS and family is not None:
        raise CheckpointError(f"unknown family {family!r}; expected one of {sorted(SCALE_FACTORS)}")
    if family is None:
        raise CheckpointError(f"unknown checkpoint layout (UNet context {context_dim}, adm {adm}, no "
                              f"known text encoder); keys: {_prefix_summary(sd)}")
    if family in ("sd1", "sd2") and adm is not None:
        raise CheckpointError(refusal(f"{family.upper()} UNet with a label_emb of {adm} features "
                                      "(unCLIP-style image conditioning)"))
    heads, head_ch = _heads(family, mc, metadata)
    if family == "ldm" and "cond_stage_model.transformer.token_emb.weight" in sd and \
            not any(k in metadata for k in ("latentgraph.num_heads", "latentgraph.num_head_channels")):
        heads, head_ch = (8 if mc >= 128 else 2), -1  # the LDM-BERT txt2img config: num_heads 8
    if _is_x4(sd, in_ch) and not any(k in metadata for k in ("latentgraph.num_heads", "latentgraph.num_head_channels")):
        heads, head_ch = (8 if mc >= 128 else 2), -1  # the x4 upscaler's config: 8 heads
    groups = int(metadata.get("latentgraph.norm_groups", default_norm_groups(mc)))
    cfg = UNetConfig(in_channels=in_ch, out_channels=sd[UNET_PREFIX + "out.2.weight"].shape[0],
                     model_channels=mc, channel_mult=tuple(mult), num_res_blocks=nres,
                     transformer_depth=tuple(level_depth),
                     transformer_depth_middle=depths.get(("middle_block", 0), 0),
                     num_heads=heads, num_head_channels=head_ch, context_dim=context_dim,
                     use_linear_in_transformer=proj_in is not None and proj_in.ndim == 2,
                     adm_in_channels=adm, norm_groups=groups,
                     attention="legacy" if legacy else "transformer",
                     disable_self_attn_levels=no_self_attn,
                     num_classes=int(classes.shape[0]) if classes is not None else None,
                     new_attention_order=metadata.get("latentgraph.new_attention_order") == "true")
    return family, cfg


def detect_vae(sd: dict[str, Tensor], metadata: dict[str, str] | None = None,
               prefix: str = VAE_PREFIX) -> VAEConfig | None:
    """VAEConfig read from the `first_stage_model.*` shapes (None when the file has no VAE)."""
    conv_in = sd.get(prefix + "encoder.conv_in.weight")
    if conv_in is None:
        return None
    ch = conv_in.shape[0]
    mult = []
    while prefix + f"encoder.down.{len(mult)}.block.0.conv2.weight" in sd:
        mult.append(sd[prefix + f"encoder.down.{len(mult)}.block.0.conv2.weight"].shape[0] // ch)
    nres = 0
    while prefix + f"encoder.down.0.block.{nres}.conv1.weight" in sd:
        nres += 1
    groups = int((metadata or {}).get("latentgraph.vae_norm_groups", default_norm_groups(ch)))
    codebook = sd.get(prefix + "quantize.embedding.weight")
    halve = 1 if codebook is not None else 2  # KL layers carry mean and log-variance
    attn = tuple(i for i in range(len(mult)) if prefix + f"encoder.down.{i}.attn.0.q.weight" in sd)
    return VAEConfig(ch=ch, ch_mult=tuple(mult), num_res_blocks=nres,
                     z_channels=sd[prefix + "encoder.conv_out.weight"].shape[0] // halve,
                     embed_dim=sd[prefix + "quant_conv.weight"].shape[0] // halve,
                     in_channels=conv_in.shape[1],
                     out_ch=sd[prefix + "decoder.conv_out.weight"].shape[0], norm_groups=groups,
                     kind="kl" if codebook is None else "vq", attn_levels=attn,
                     mid_attn=prefix + "encoder.mid.attn_1.q.weight" in sd,
                     n_embed=0 if codebook is None else int(codebook.shape[0]))


def _is_x4(sd: dict[str, Tensor], in_channels: int) -> bool:
    """The SD x4 upscaler: 7 input channels (latent + low-res RGB), noise level as a class label."""
    return in_channels == 7 and UNET_PREFIX + "label_emb.weight" in sd


def _detect_prediction(sd: dict[str, Tensor], family: str, unet: UNetConfig) -> str:
    """`v_pred` key if present; for SD2 ComfyUI's heuristic: the std of norm1.bias of the first
    transformer block in the last output block with attention is > 0.09 for v models."""
    if "v_pred" in sd or _is_x4(sd, unet.in_channels):  # the x4 upscaler is a v model
        return "v"
    if family != "sd2":
        return "eps"
    n_out = len(unet.channel_mult) * (unet.num_res_blocks + 1)
    for i in reversed(range(n_out)):
        bias = sd.get(f"{UNET_PREFIX}output_blocks.{i}.1.transformer_blocks.0.norm1.bias")
        if bias is not None:
            return "v" if float(bias.float().std()) > 0.09 else "eps"
    return "eps"


def detect(sd: dict[str, Tensor], *, metadata: dict[str, str] | None = None,
           family: str | None = None, prediction: str | None = None) -> ModelConfig:
    """ModelConfig of a single-file checkpoint; `family` / `prediction` override detection."""
    family, unet = detect_unet(sd, family, metadata)
    if prediction is None:
        prediction = _detect_prediction(sd, family, unet)
    if prediction not in PREDICTIONS:
        raise CheckpointError(f"prediction must be one of {', '.join(PREDICTIONS)}; got {prediction!r}")
    factors, bias = _preview_factors(metadata or {}, unet.out_channels)
    vae = detect_vae(sd, metadata)
    # LDMs on a VQ first stage diffuse the pre-quantisation latent unscaled (their configs leave
    # scale_factor at 1.0); a YAML config may still say otherwise (ldm.yaml_config).
    scale = 1.0 if vae is not None and vae.kind == "vq" else SCALE_FACTORS[family]
    kind = "x4_upscaler" if _is_x4(sd, unet.in_channels) else \
        "depth2img" if unet.in_channels == unet.out_channels + 1 else "base"
    if kind == "x4_upscaler":
        scale = x4.SCALE_FACTOR
    elif family == "ldm" and vae is not None and vae.kind == "kl" and \
            "cond_stage_model.transformer.token_emb.weight" in sd:
        scale = SCALE_FACTORS["sd1"]  # the txt2img LDM-KL-8 config's 0.18215
    return ModelConfig(family=family, prediction=prediction, inpaint=unet.in_channels == 9, kind=kind,
                       unet=unet, vae=vae,
                       text_encoders=TEXT_ENCODER_LAYOUTS[family],
                       scale_factor=scale,
                       latent_rgb_factors=factors, latent_rgb_factors_bias=bias)


def _preview_factors(metadata: dict[str, str], channels: int) -> tuple[tuple | None, tuple | None]:
    """Own live-preview factors from metadata (JSON [[r,g,b] per latent channel], [r,g,b]); a
    malformed value is ignored (previews fall back to the family's factors, loading goes on)."""
    try:
        rows = json.loads(metadata.get("latentgraph.latent_rgb_factors", "null"))
        bias = json.loads(metadata.get("latentgraph.latent_rgb_factors_bias", "null"))
        if rows is None:
            return None, None
        factors = tuple(tuple(float(v) for v in row) for row in rows)
        if len(factors) != channels or any(len(row) != 3 for row in factors):
            return None, None
        bias_t = None if bias is None else tuple(float(v) for v in bias)
        return factors, bias_t if bias_t is None or len(bias_t) == 3 else None
    except (ValueError, TypeError):
        return None, None


# ------------------------------------------------------------------------------------ building
def take_prefixed(sd: dict[str, Tensor], prefix: str, dtype: torch.dtype,
                  reader: _CastingReader | None = None) -> dict[str, Tensor]:
    """Remove the keys under `prefix` from `sd` and return them without the prefix, floating
    tensors cast to `dtype`. Popping as we cast lets each source tensor be freed right away, and
    `reader` (safetensors) reads tensors needing a cast straight from the file, so an fp16 file
    upcast to fp32 peaks at about the fp32 size; a tensor already in `dtype` is used as is (for
    safetensors: memory-mapped, no copy)."""
    out = {}
    for k in [k for k in sd if k.startswith(prefix)]:
        v = sd.pop(k)
        if v.is_floating_point() and v.dtype != dtype:
            cast = reader.read(k, dtype) if reader is not None else None
            v = cast if cast is not None else v.to(dtype)
        out[k[len(prefix):]] = v
    return out


def _casting_reader(path: str | Path) -> _CastingReader | None:
    path = Path(path)
    return _CastingReader(path) if path.suffix.lower() in SAFETENSORS_EXTENSIONS else None


def build_module(cls, cfg, weights: dict[str, Tensor], what: str) -> torch.nn.Module:
    """Construct `cls(cfg)` without allocating weights (meta device) and assign `weights`."""
    with torch.device("meta"):
        module = cls(cfg)
    try:
        module.load_state_dict(weights, strict=True, assign=True)
    except RuntimeError as e:
        raise CheckpointError(f"{what} weights do not match the detected architecture: "
                              f"{str(e)[:600]}") from e
    return module.eval().requires_grad_(False)


def load_checkpoint(path: str | Path, *, prediction: str | None = None, family: str | None = None,
                    output_vae: bool = True, output_clip: bool = True, adjust=None
                    ) -> tuple["DiffusionModel", "TextEncoder | None", "VAE | None"]:
    """(DiffusionModel, TextEncoder|None, VAE|None) from a single-file checkpoint. `adjust(config)
    -> (config, ModelSampling)` may change the detected config before the modules are built
    (CheckpointLoader's YAML, ldm.yaml_config)."""
    from ldm import devices
    from ldm.model import DiffusionModel
    from ldm.class_embed import ClassEmbedder, has_class_embedder
    from ldm.ldm_bert import LDMBertEncoder, has_ldm_bert
    from ldm.model_sampling import ModelSampling
    from ldm.unet import UNetModel
    from ldm.vae import VAE
    from ldm.vq import first_stage_class

    sd = load_state_dict(path)
    config = detect(sd, metadata=read_metadata(path), family=family, prediction=prediction)
    sampling = ModelSampling(config.prediction)
    if config.kind == "x4_upscaler":
        sampling = ModelSampling(config.prediction, **x4.SCHEDULE)
    elif config.family == "ldm" and isinstance(sd.get("alphas_cumprod"), Tensor):
        sampling = ModelSampling(config.prediction, alphas_cumprod=sd["alphas_cumprod"])  # its own table
    if adjust is not None:
        config, sampling = adjust(config)
    if output_vae and config.vae is None:
        raise CheckpointError(f"{Path(path).name} has no VAE (first_stage_model.*); "
                              "load one with a VAE loader")
    clip = None
    if output_clip:  # first, while the dict is whole; it only reads the text-encoder keys
        from ldm.clip import TextEncoder

        # A file without text encoder (UNet + VAE only) loads with CLIP None, as in ComfyUI; the
        # text-encode node then says the clip input is missing.
        if config.family == "ldm":  # LDM-BERT, a class embedder or nothing (unconditional)
            clip = (LDMBertEncoder.from_checkpoint(sd) if has_ldm_bert(sd) else
                    ClassEmbedder.from_checkpoint(sd) if has_class_embedder(sd) else None)
        elif any(k.startswith(("cond_stage_model.", "conditioner.embedders.")) for k in sd):
            clip = TextEncoder.from_checkpoint(sd, config)
    dtype = devices.compute_dtype(devices.offload_device())
    reader = _casting_reader(path)
    try:
        unet = build_module(UNetModel, config.unet, take_prefixed(sd, UNET_PREFIX, dtype, reader),
                            "UNet")
        vae = None
        if output_vae:
            vae = VAE(build_module(first_stage_class(config.vae), config.vae,
                                   take_prefixed(sd, VAE_PREFIX, dtype, reader), "VAE"))
    finally:
        if reader is not None:
            reader.close()
    del sd
    model = DiffusionModel(unet, config, sampling)
    return model, clip, vae

