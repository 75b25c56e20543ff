"""Model config YAMLs (models/configs) for CheckpointLoader: the CompVis / Stability LDM format.

Of a CompVis file (`model.params`) we honour what the weights cannot say: `parameterization`
(eps | v), `scale_factor`, the noise schedule (`linear_start`, `linear_end`, `timesteps`), the head
layout of `unet_config.params` (`num_heads` / `num_head_channels`), and `cond_stage_config.params
.layer_idx` (clip skip, as ComfyUI does). What the weights do say (channels, widths, context,
inpainting via `conditioning_key: hybrid`) is checked against them: a YAML describing another model
is an error, not silently ignored. Stability's sgm files (SDXL: `network_config`,
`denoiser_config`) are read the same way. CompVis' own LDM configs add `parameterization: x0`,
`beta_schedule` (linear, cosine, sqrt_linear, sqrt), a VQ or KL `first_stage_config` (checked
against the weights), `ClassEmbedder` / `__is_unconditional__` cond stages and
`use_spatial_transformer: False` UNets, and `BERTEmbedder` (LDM-BERT). Unsupported kinds (unCLIP)
are refused by name.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ldm.configs import ModelConfig, UNetConfig
from ldm.model_sampling import BETA_SCHEDULES
from ldm.unsupported import refusal

# cond_stage targets → the family whose text encoder they are
_COND_FAMILIES = {"FrozenCLIPEmbedder": ("sd1",), "FrozenOpenCLIPEmbedder": ("sd2",),
                  "GeneralConditioner": ("sdxl", "sdxl_refiner"), "ClassEmbedder": ("ldm",),
                  "BERTEmbedder": ("ldm",),
                  "__is_unconditional__": ("ldm",)}
# first_stage_config targets → the kind of first stage the weights must have
_FIRST_STAGE_KINDS = {"AutoencoderKL": "kl", "VQModelInterface": "vq", "VQModel": "vq"}
_CHECKED = ("in_channels", "out_channels", "model_channels", "num_res_blocks", "context_dim",
            "use_linear_in_transformer", "adm_in_channels")


class ConfigError(ValueError):
    """A YAML that cannot be read or does not describe the checkpoint it is used with."""


@dataclass(frozen=True)
class ModelYaml:
    """What a model YAML says, None where it says nothing."""

    name: str
    prediction: str | None = None
    scale_factor: float | None = None
    linear_start: float | None = None
    linear_end: float | None = None
    timesteps: int | None = None
    conditioning_key: str | None = None
    unet: dict[str, Any] = field(default_factory=dict)
    cond_target: str | None = None
    clip_layer: int | None = None
    beta_schedule: str = "linear"
    first_stage: str | None = None  # "kl" | "vq" when the YAML names its first stage
    first_stage_params: dict[str, Any] = field(default_factory=dict)


def _target_name(section: Any) -> str | None:
    target = section.get("target") if isinstance(section, dict) else None
    return str(target).rsplit(".", 1)[-1] if target else None


def _prediction(params: dict) -> str | None:
    if "parameterization" in params:
        value = params["parameterization"]
        if value not in ("eps", "v", "x0"):
            raise ConfigError(f"parameterization {value!r} is not supported (eps, v or x0)")
        return value
    scaling = _target_name(((params.get("denoiser_config") or {}).get("params") or {})
                           .get("scaling_config"))
    return {"VScaling": "v", "EpsScaling": "eps"}.get(scaling or "")


def read_model_yaml(path: str | Path) -> ModelYaml:
    """Parse a model YAML (safe_load: no code runs); ConfigError when it is not one."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        params = data["model"]["params"]
        if not isinstance(params, dict):
            raise TypeError("model.params is not a mapping")
    except (OSError, yaml.YAMLError, KeyError, TypeError) as e:
        raise ConfigError(f"{path.name}: not a model config (expected model.params): {e}") from e
    if "noise_aug_config" in params:
        raise ConfigError(f"{path.name}: " + refusal("SD unCLIP config (noise_aug_config)"))
    schedule = params.get("beta_schedule", "linear")
    if schedule not in BETA_SCHEDULES:
        raise ConfigError(f"{path.name}: beta_schedule {schedule!r} is not supported "
                          f"({', '.join(BETA_SCHEDULES)})")
    unet = (params.get("unet_config") or params.get("network_config") or {}).get("params") or {}
    cond = params.get("cond_stage_config") or params.get("conditioner_config")
    layer = ((cond or {}).get("params") or {}).get("layer_idx") if isinstance(cond, dict) else None
    first = params.get("first_stage_config")
    return ModelYaml(
        beta_schedule=schedule,
        first_stage=_FIRST_STAGE_KINDS.get(_target_name(first) or ""),
        first_stage_params=dict((first or {}).get("params") or {}) if isinstance(first, dict) else {},
        name=path.name, prediction=_prediction(params),
        scale_factor=_float(params.get("scale_factor")),
        linear_start=_float(params.get("linear_start")), linear_end=_float(params.get("linear_end")),
        timesteps=int(params["timesteps"]) if "timesteps" in params else None,
        conditioning_key=params.get("conditioning_key"), unet=dict(unet),
        cond_target=cond if isinstance(cond, str) else _target_name(cond), clip_layer=int(layer) if layer is not None else None)


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _check_against(yml: ModelYaml, config: ModelConfig) -> None:
    """ConfigError when the YAML describes a different model than the weights."""
    unet = config.unet
    problems = [f"{k} {yml.unet[k]!r} in the config, {getattr(unet, k)!r} in the weights"
                for k in _CHECKED if k in yml.unet and yml.unet[k] != getattr(unet, k)]
    mult = yml.unet.get("channel_mult")
    if mult is not None and tuple(mult) != unet.channel_mult:
        problems.append(f"channel_mult {tuple(mult)} in the config, {unet.channel_mult} in the weights")
    key = yml.conditioning_key
    if key == "hybrid" and not config.inpaint:
        problems.append("conditioning_key hybrid (inpainting) but the UNet takes "
                        f"{unet.in_channels} input channels")
    if key == "crossattn" and config.inpaint:
        problems.append("conditioning_key crossattn but the UNet is a 9-channel inpainting UNet")
    if key not in (None, "crossattn", "hybrid"):
        problems.append(f"conditioning_key {key!r} is not supported (crossattn, hybrid)")
    problems += _first_stage_problems(yml, config)
    spatial = yml.unet.get("use_spatial_transformer")
    if spatial is not None and bool(spatial) != (unet.attention == "transformer"):
        problems.append(f"use_spatial_transformer {spatial} in the config, but the UNet has "
                        f"{'SpatialTransformers' if unet.attention == 'transformer' else 'plain attention blocks'}")
    if "num_classes" in yml.unet and yml.unet["num_classes"] != unet.num_classes:
        problems.append(f"num_classes {yml.unet['num_classes']!r} in the config, {unet.num_classes!r} in the weights")
    families = _COND_FAMILIES.get(yml.cond_target or "")
    if families and config.family not in families:
        problems.append(f"cond stage {yml.cond_target} but the checkpoint is {config.family}")
    if problems:
        raise ConfigError(f"{yml.name} does not describe this checkpoint: " + "; ".join(problems))


def _first_stage_problems(yml: ModelYaml, config: ModelConfig) -> list[str]:
    """Mismatches between the YAML's first_stage_config and the first stage in the weights."""
    vae, fs = config.vae, yml.first_stage_params
    if vae is None or yml.first_stage is None:
        return []
    problems = []
    if yml.first_stage != vae.kind:
        problems.append(f"first stage {yml.first_stage.upper()} in the config, {vae.kind.upper()} in the weights")
    for key, have in (("embed_dim", vae.embed_dim), ("n_embed", vae.n_embed)):
        if key in fs and fs[key] != have:
            problems.append(f"first_stage {key} {fs[key]!r} in the config, {have!r} in the weights")
    return problems


def _heads(yml: ModelYaml, unet: UNetConfig) -> UNetConfig:
    """The head layout the YAML gives (shapes cannot tell it); unchanged when it says nothing."""
    head_ch = int(yml.unet.get("num_head_channels", -1))
    heads = int(yml.unet.get("num_heads", -1))
    if head_ch > 0:
        return unet.replace(num_heads=-1, num_head_channels=head_ch)
    if heads > 0:
        return unet.replace(num_heads=heads, num_head_channels=-1)
    return unet


def apply_model_yaml(yml: ModelYaml, config: ModelConfig):
    """(config, ModelSampling) for a detected config as the YAML describes it (see module doc)."""
    from ldm.model_sampling import ModelSampling

    _check_against(yml, config)
    unet = _heads(yml, config.unet)
    if yml.unet.get("use_new_attention_order"):
        unet = unet.replace(new_attention_order=True)
    config = config.replace(unet=unet, prediction=yml.prediction or config.prediction,
                            scale_factor=yml.scale_factor or config.scale_factor)
    schedule = {k: v for k, v in (("linear_start", yml.linear_start), ("linear_end", yml.linear_end),
                                  ("timesteps", yml.timesteps)) if v is not None}
    return config, ModelSampling(config.prediction, beta_schedule=yml.beta_schedule, **schedule)
