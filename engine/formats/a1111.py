"""AUTOMATIC1111 ``parameters`` text → a txt2img API prompt.

A1111 (and Forge, SD.Next, many image sites) store generation settings as one text chunk::

    positive prompt (may span lines)
    Negative prompt: negative prompt (may span lines)
    Steps: 20, Sampler: DPM++ 2M Karras, CFG scale: 7, Seed: 123, Size: 512x768, Model: name, ...

The last line holds ``key: value`` pairs (values may be double-quoted when they contain commas).
Sampler names map onto ComfyUI sampler + scheduler names.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

__all__ = ["A1111Params", "parse_parameters", "to_prompt", "SAMPLERS", "SCHEDULER_SUFFIXES"]

# A1111 sampler label → ComfyUI sampler_name.
SAMPLERS = {
    "euler a": "euler_ancestral", "euler": "euler", "lms": "lms", "heun": "heun",
    "dpm2": "dpm_2", "dpm2 a": "dpm_2_ancestral", "dpm++ 2s a": "dpmpp_2s_ancestral",
    "dpm++ 2m": "dpmpp_2m", "dpm++ sde": "dpmpp_sde", "dpm++ 2m sde": "dpmpp_2m_sde",
    "dpm++ 2m sde heun": "dpmpp_2m_sde", "dpm++ 3m sde": "dpmpp_3m_sde", "dpm fast": "dpm_fast",
    "dpm adaptive": "dpm_adaptive", "ddim": "ddim", "plms": "lms", "unipc": "uni_pc", "lcm": "lcm",
    "ddpm": "ddpm", "restart": "euler", "heun++ 2": "heunpp2", "ipndm": "ipndm", "deis": "deis",
    "euler cfg++": "euler_cfg_pp", "euler a cfg++": "euler_ancestral_cfg_pp",
    "dpm++ 2m cfg++": "dpmpp_2m_cfg_pp",
}
# Scheduler suffixes of old sampler labels / values of the newer "Schedule type" field.
SCHEDULER_SUFFIXES = {
    "karras": "karras", "exponential": "exponential", "sgm uniform": "sgm_uniform",
    "simple": "simple", "normal": "normal", "ddim": "ddim_uniform", "beta": "beta",
    "automatic": "normal", "uniform": "normal", "kl optimal": "kl_optimal",
    "align your steps": "normal", "polyexponential": "exponential",
}
_PARAM = re.compile(r'\s*([\w][\w \-/+.()]*?):\s*("(?:\\.|[^\\"])*"|[^,]*)(?:,|$)')


@dataclass
class A1111Params:
    """The parsed parameters; ``extra`` keeps every key/value of the settings line."""

    prompt: str = ""
    negative: str = ""
    steps: int = 20
    sampler: str = "euler"
    scheduler: str = "normal"
    cfg: float = 7.0
    seed: int = 0
    width: int = 512
    height: int = 512
    model: str | None = None
    clip_skip: int = 1
    extra: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def _split(text: str) -> tuple[str, str, str]:
    """(positive, negative, settings line); the settings line is the last one starting with Steps:."""
    lines = text.strip().splitlines()
    settings = ""
    if lines and re.match(r"\s*Steps\s*:", lines[-1]):
        settings = lines.pop()
    body = "\n".join(lines)
    pos, sep, neg = body.partition("Negative prompt:")
    return pos.strip(), neg.strip() if sep else "", settings


def _pairs(line: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in _PARAM.findall(line):
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            try:
                value = json.loads(value)
            except ValueError:
                value = value[1:-1]
        out[key.strip()] = value
    return out


def _sampler(label: str, schedule: str | None, warnings: list[str]) -> tuple[str, str]:
    """ComfyUI (sampler_name, scheduler) for an A1111 label such as "DPM++ 2M Karras"."""
    name = " ".join(label.lower().split())
    scheduler = "normal"
    for suffix, sched in SCHEDULER_SUFFIXES.items():
        if name.endswith(" " + suffix) and name not in SAMPLERS:
            name, scheduler = name[: -len(suffix) - 1], sched
            break
    if schedule:
        scheduler = SCHEDULER_SUFFIXES.get(" ".join(schedule.lower().split()), scheduler)
    if name not in SAMPLERS:
        warnings.append(f"unknown A1111 sampler {label!r}; using euler")
        return "euler", scheduler
    return SAMPLERS[name], scheduler


def _num(values: dict[str, str], key: str, kind: type, default: Any, warnings: list[str]) -> Any:
    if key not in values:
        return default
    try:
        return kind(float(values[key])) if kind is int else kind(values[key])
    except ValueError:
        warnings.append(f"cannot read {key}: {values[key]!r}; using {default}")
        return default


def parse_parameters(text: str) -> A1111Params:
    """Parse an A1111 ``parameters`` chunk; missing settings keep A1111's defaults."""
    pos, neg, line = _split(text)
    values = _pairs(line)
    p = A1111Params(prompt=pos, negative=neg, extra=values)
    p.steps = _num(values, "Steps", int, p.steps, p.warnings)
    p.cfg = _num(values, "CFG scale", float, p.cfg, p.warnings)
    p.seed = _num(values, "Seed", int, p.seed, p.warnings)
    p.clip_skip = _num(values, "Clip skip", int, p.clip_skip, p.warnings)
    if "Sampler" in values:
        p.sampler, p.scheduler = _sampler(values["Sampler"], values.get("Schedule type"), p.warnings)
    size = re.fullmatch(r"\s*(\d+)\s*x\s*(\d+)\s*", values.get("Size", ""))
    if size:
        p.width, p.height = int(size.group(1)), int(size.group(2))
    p.model = values.get("Model") or None
    for key in ("Hires upscale", "Denoising strength", "Lora hashes"):
        if key in values:
            p.warnings.append(f"A1111 setting {key!r} is not converted (plain txt2img graph)")
    return p


def _ckpt_name(model: str | None, checkpoints: list[str] | None = None) -> str | None:
    """The checkpoint file for A1111's ``Model`` (a file stem): a listed file with that stem when
    ``checkpoints`` is given (case-insensitive, any subfolder), else ``<model>.safetensors``."""
    if not model:
        return None
    for name in checkpoints or []:
        stem = re.sub(r"\.[^./]+$", "", name.replace("\\", "/").rsplit("/", 1)[-1])
        if stem.lower() == model.lower() or name.lower() == model.lower():
            return name
    return model if re.search(r"\.(safetensors|ckpt|pt|pth|bin)$", model, re.I) else model + ".safetensors"


def to_prompt(params: A1111Params | str, checkpoints: list[str] | None = None) -> dict[str, dict]:
    """The txt2img API prompt (ComfyUI's default graph ids) for A1111 parameters; ``checkpoints``
    (e.g. ``paths.list_files("checkpoints")``) lets the model name find its file."""
    p = parse_parameters(params) if isinstance(params, str) else params
    ckpt: dict[str, Any] = {}
    name = _ckpt_name(p.model, checkpoints)
    if name:
        ckpt["ckpt_name"] = name
    clip_src = ["4", 1]
    prompt: dict[str, dict] = {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": ckpt, "_meta": {"title": "Load Checkpoint"}},
    }
    if p.clip_skip > 1:
        prompt["10"] = {"class_type": "CLIPSetLastLayer",
                        "inputs": {"stop_at_clip_layer": -p.clip_skip, "clip": ["4", 1]},
                        "_meta": {"title": "CLIP Set Last Layer"}}
        clip_src = ["10", 0]
    prompt.update({
        "6": _encode(p.prompt, clip_src, "CLIP Text Encode (Positive)"),
        "7": _encode(p.negative, clip_src, "CLIP Text Encode (Negative)"),
        "5": {"class_type": "EmptyLatentImage",
              "inputs": {"width": p.width, "height": p.height, "batch_size": 1},
              "_meta": {"title": "Empty Latent Image"}},
        "3": {"class_type": "KSampler",
              "inputs": {"seed": p.seed, "steps": p.steps, "cfg": p.cfg, "sampler_name": p.sampler,
                         "scheduler": p.scheduler, "denoise": 1.0, "model": ["4", 0],
                         "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["5", 0]},
              "_meta": {"title": "KSampler"}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]},
              "_meta": {"title": "VAE Decode"}},
        "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "A1111", "images": ["8", 0]},
              "_meta": {"title": "Save Image"}},
    })
    return prompt


def _encode(text: str, clip: list, title: str) -> dict:
    return {"class_type": "CLIPTextEncode", "inputs": {"text": text, "clip": list(clip)},
            "_meta": {"title": title}}
