"""Name maps between LoRA files and our parameter names.

LoRA trainers name modules in the diffusers layout (``down_blocks.0.attentions.0...``, kohya flattens
dots to ``_``: ``lora_unet_down_blocks_0_attentions_0_...``), while our UNet uses the LDM
"openaimodel" layout (``input_blocks.1.1...``). The correspondence depends on the UNet's shape
(levels, res blocks per level, which levels have attention), computed here from the UNet's parameter
names (and the config's counts when given) so tiny and real UNets map the same way.
"""
from __future__ import annotations

import re
from collections.abc import Iterable

_RESNET_RENAMES = (
    ("in_layers.0", "norm1"), ("in_layers.2", "conv1"), ("emb_layers.1", "time_emb_proj"),
    ("out_layers.0", "norm2"), ("out_layers.3", "conv2"), ("skip_connection", "conv_shortcut"),
)
_FIXED = (
    ("time_embed.0", "time_embedding.linear_1", False),
    ("time_embed.2", "time_embedding.linear_2", False),
    ("label_emb.0.0", "add_embedding.linear_1", False),
    ("label_emb.0.2", "add_embedding.linear_2", False),
    ("input_blocks.0.0", "conv_in", False),
    ("middle_block.0", "mid_block.resnets.0", True),
    ("middle_block.1", "mid_block.attentions.0", False),
    ("middle_block.2", "mid_block.resnets.1", True),
    ("out.0", "conv_norm_out", False),
    ("out.2", "conv_out", False),
)


def modules_of(param_names: Iterable[str]) -> set[str]:
    """Module names owning ``.weight`` parameters (the things a LoRA can patch)."""
    return {n[: -len(".weight")] for n in param_names if n.endswith(".weight")}


def unet_layout(param_names: Iterable[str]) -> tuple[int, int]:
    """(levels, res blocks per level) read from LDM UNet parameter names.

    Input blocks are 1 + levels·res_blocks + (levels − 1) downsamplers; downsamplers own ``.op``.
    """
    names = list(param_names)
    blocks = {int(m.group(1)) for n in names if (m := re.match(r"input_blocks\.(\d+)\.", n))}
    downs = {int(m.group(1)) for n in names if (m := re.match(r"input_blocks\.(\d+)\.0\.op\.", n))}
    levels = len(downs) + 1
    res_blocks = (len(blocks) - 1 - len(downs)) // levels
    return levels, res_blocks


def _has_child(names: set[str], prefix: str, child: str) -> bool:
    return any(n.startswith(f"{prefix}.{child}") for n in names)


def _block_pairs(levels: int, res_blocks: int, names: set[str]) -> list[tuple[str, str, bool]]:
    """(LDM prefix, diffusers prefix, is_resnet) for every block of the UNet."""
    pairs = list(_FIXED)
    for i in range(levels):
        for j in range(res_blocks):
            n = 1 + i * (res_blocks + 1) + j
            pairs.append((f"input_blocks.{n}.0", f"down_blocks.{i}.resnets.{j}", True))
            pairs.append((f"input_blocks.{n}.1", f"down_blocks.{i}.attentions.{j}", False))
        if i < levels - 1:
            n = (i + 1) * (res_blocks + 1)
            pairs.append((f"input_blocks.{n}.0.op", f"down_blocks.{i}.downsamplers.0.conv", False))
    for i in range(levels):
        for j in range(res_blocks + 1):
            n = i * (res_blocks + 1) + j
            pairs.append((f"output_blocks.{n}.0", f"up_blocks.{i}.resnets.{j}", True))
            if _has_child(names, f"output_blocks.{n}.1", "transformer_blocks."):
                pairs.append((f"output_blocks.{n}.1", f"up_blocks.{i}.attentions.{j}", False))
            for k in (1, 2):
                if _has_child(names, f"output_blocks.{n}.{k}", "conv."):
                    pairs.append((f"output_blocks.{n}.{k}.conv", f"up_blocks.{i}.upsamplers.0.conv",
                                  False))
    return pairs


def ldm_to_diffusers(param_names: Iterable[str], levels: int | None = None,
                     res_blocks: int | None = None) -> dict[str, str]:
    """{LDM module name: diffusers module name} for every weight-owning module of the UNet."""
    names = set(param_names)
    if levels is None or res_blocks is None:
        levels, res_blocks = unet_layout(names)
    pairs = sorted(_block_pairs(levels, res_blocks, names), key=lambda p: -len(p[0]))
    out: dict[str, str] = {}
    for module in modules_of(names):
        for ldm, diff, resnet in pairs:
            if module == ldm or module.startswith(ldm + "."):
                rest = module[len(ldm):]
                if resnet:
                    for old, new in _RESNET_RENAMES:
                        if rest == "." + old or rest.startswith("." + old + "."):
                            rest = "." + new + rest[len(old) + 1:]
                out[module] = diff + rest
                break
    return out


def unet_lookup(param_names: Iterable[str], levels: int | None = None,
                res_blocks: int | None = None) -> dict[str, str]:
    """{LoRA module key: LDM module name}: kohya flat names (diffusers- and LDM-style) and dotted
    diffusers / LDM names, so every common trainer's naming resolves through one dict."""
    names = set(param_names)
    lookup: dict[str, str] = {}
    for module, diff in ldm_to_diffusers(names, levels, res_blocks).items():
        lookup["lora_unet_" + diff.replace(".", "_")] = module
        lookup["unet." + diff] = module
        lookup[diff] = module
    for module in modules_of(names):
        lookup.setdefault("lora_unet_" + module.replace(".", "_"), module)
        lookup.setdefault("diffusion_model." + module, module)
    return lookup


def te_lookup(te_param_names: dict[str, Iterable[str]]) -> dict[str, tuple[str, str]]:
    """{LoRA module key: (slot, module name in that slot's model)} for the text encoders.

    kohya: ``lora_te_`` (single-encoder models, or CLIP-L of SDXL), ``lora_te1_`` (CLIP-L),
    ``lora_te2_`` (bigG); diffusers/peft: ``text_encoder.`` / ``text_encoder_2.`` + transformers
    names (with ``text_model.``).
    """
    slots = list(te_param_names)
    first = "l" if "l" in te_param_names else slots[0] if slots else None
    kohya = {"lora_te_": first, "lora_te1_": "l", "lora_te2_": "g"}
    dotted = {"text_encoder.": first, "text_encoder_2.": "g"}
    lookup: dict[str, tuple[str, str]] = {}
    for slot, names in te_param_names.items():
        for module in modules_of(names):
            canonical = module[len("text_model."):] if module.startswith("text_model.") else module
            if canonical.startswith("text_projection"):
                canonical_flat, canonical_dot = "text_projection", "text_projection"
            else:
                canonical_flat = "text_model_" + canonical.replace(".", "_")
                canonical_dot = "text_model." + canonical
            for prefix, target in kohya.items():
                if target == slot:
                    lookup[prefix + canonical_flat] = (slot, module)
            for prefix, target in dotted.items():
                if target == slot:
                    lookup[prefix + canonical_dot] = (slot, module)
    return lookup


# LoRA tensor suffixes → role. Longest first so that ".lora.up.weight" wins over ".up.weight".
_SUFFIXES = (
    (".lora_linear_layer.up.weight", "up"), (".lora_linear_layer.down.weight", "down"),
    (".lora_up.weight", "up"), (".lora_down.weight", "down"), (".lora_mid.weight", "mid"),
    (".lora_B.weight", "up"), (".lora_A.weight", "down"),
    (".lora.up.weight", "up"), (".lora.down.weight", "down"),
    ("_lora.up.weight", "up"), ("_lora.down.weight", "down"),
    (".alpha", "alpha"), (".diff", "diff"),
    (".hada_w1_a", "hada_w1_a"), (".hada_w1_b", "hada_w1_b"),
    (".hada_w2_a", "hada_w2_a"), (".hada_w2_b", "hada_w2_b"),
    (".lokr_w1_a", "lokr_w1_a"), (".lokr_w1_b", "lokr_w1_b"),
    (".lokr_w2_a", "lokr_w2_a"), (".lokr_w2_b", "lokr_w2_b"),
    (".lokr_w1", "lokr_w1"), (".lokr_w2", "lokr_w2"),
)


def split_lora_key(key: str) -> tuple[str, str] | None:
    """(module key, role) of one LoRA tensor name (role: up/down/mid/alpha/diff, or a LoHa/LoKr
    factor name such as ``hada_w1_a``); None if the name has no known form.

    Normalises the diffusers attention-processor spelling (``attn1.processor.to_q_lora.up``) and
    peft's ``base_model.model.`` wrapper.
    """
    for suffix, role in _SUFFIXES:
        if key.endswith(suffix):
            module = key[: -len(suffix)]
            break
    else:
        return None
    if module.startswith("base_model.model."):
        module = module[len("base_model.model."):]
    module = module.replace(".processor.", ".")
    if suffix.startswith("_lora"):
        module = module + ".0" if module.endswith("to_out") else module
    return module, role
