"""CLIP text encoders of SD1 / SD2 / SDXL checkpoints, with ComfyUI's prompt semantics.

The networks are transformers' ``CLIPTextModel`` / ``CLIPTextModelWithProjection`` built from the
checkpoint's shapes (ldm.clip_keys). Encoding is done here, layer by layer, because ComfyUI's
semantics need things transformers' forward does not offer at once: ``inputs_embeds`` (textual
inversion vectors), an intermediate layer (clip skip) with or without the final layer norm, and the
pooled output from the last layer.

Per family (ComfyUI's defaults):
* sd1: CLIP-L, last layer, padded with the end token (49407).
* sd2: OpenCLIP ViT-H, penultimate layer + final layer norm, padded with 0.
* sdxl: CLIP-L (pad 49407) and bigG (pad 0), both penultimate layer *without* the final layer norm,
  concatenated on channels; pooled = bigG's projected pooled output.
* sdxl_refiner: bigG only, like SDXL's bigG.

Embedding folders: :func:`set_embedding_dirs` sets the process-wide list; ``encoder.embedding_dirs``
(a list) overrides it for one encoder and its clones.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch
from torch import Tensor, nn

from ldm import devices
from ldm import embeddings as emb
from ldm.clip_keys import (EncoderShape, as_float, encoder_shape, find_encoders, openai_to_hf,
                           openclip_to_hf)
from ldm.embeddings import set_embedding_dirs  # noqa: F401  (public API lives here too)
from ldm.lora import patched_weights
from ldm.prompt import embedding_candidates, embedding_reference, parse_weights, split_words
from ldm.tokenizer import END_TOKEN, START_TOKEN, get_tokenizer, import_transformers

CHUNK = 77
MAX_WORD_LENGTH = 8  # words at least this long may be split across chunks (ComfyUI)

Token = int | Tensor  # a token id, or one textual-inversion vector
Chunk = list[tuple[Token, float]]


@dataclass(frozen=True)
class SlotSpec:
    """How one encoder of a family is used (ComfyUI's per-model settings)."""

    pad: int
    default_layer: int  # -1 last, -2 penultimate
    norm_hidden: bool  # apply final_layer_norm to an intermediate layer's output
    embedding_key: str | None


_FAMILY_SLOTS: dict[str, dict[str, SlotSpec]] = {
    "sd1": {"l": SlotSpec(END_TOKEN, -1, True, None)},
    "sd2": {"g": SlotSpec(0, -2, True, None)},
    "sdxl": {"l": SlotSpec(END_TOKEN, -2, False, "clip_l"), "g": SlotSpec(0, -2, False, "clip_g")},
    "sdxl_refiner": {"g": SlotSpec(0, -2, False, "clip_g")},
}


def _family_of(slots: dict[str, tuple[str, bool]]) -> str:
    if "l" in slots and "g" in slots:
        return "sdxl"
    if "l" in slots:
        return "sd1"
    prefix = slots["g"][0]
    return "sdxl_refiner" if prefix.startswith("conditioner.") else "sd2"


def preload_text_model_code() -> None:
    """Import transformers' CLIP modules and build the tokenizer now: a cold import takes seconds,
    which would otherwise land on the first prompt (the server calls this in the background)."""
    import_transformers("CLIPTextConfig", "CLIPTextModel", "CLIPTextModelWithProjection")
    get_tokenizer()


def build_clip_model(shape: EncoderShape, tensors: dict[str, Tensor], proj: Tensor | None,
                     dtype: torch.dtype = torch.float32) -> nn.Module:
    """A transformers CLIP text model holding ``tensors`` themselves (assign=True: no second copy)."""
    CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection = import_transformers(
        "CLIPTextConfig", "CLIPTextModel", "CLIPTextModelWithProjection")
    config = CLIPTextConfig(
        vocab_size=shape.vocab_size, hidden_size=shape.width, intermediate_size=shape.intermediate,
        num_hidden_layers=shape.layers, num_attention_heads=shape.heads,
        max_position_embeddings=shape.max_positions, hidden_act=shape.hidden_act,
        layer_norm_eps=1e-5, projection_dim=shape.proj_dim or shape.width,
        bos_token_id=START_TOKEN, eos_token_id=END_TOKEN, pad_token_id=1)
    config._attn_implementation = "eager"
    state = {k: as_float(v, dtype) for k, v in tensors.items()}
    with torch.device("meta"):
        model = CLIPTextModelWithProjection(config) if proj is not None else CLIPTextModel(config)
    if proj is not None:
        state = {"text_model." + k: v for k, v in state.items()}
        state["text_projection.weight"] = as_float(proj, dtype)
    model.load_state_dict(state, strict=True, assign=True)
    text = model.text_model if proj is not None else model
    text.embeddings.register_buffer(
        "position_ids", torch.arange(shape.max_positions).unsqueeze(0), persistent=False)
    return model.eval().requires_grad_(False)


def _output(t: Tensor) -> Tensor:
    """Conditioning leaves the encoder as float32 on the CPU (small; every consumer can use it)."""
    return t.to(device="cpu", dtype=torch.float32)


@dataclass
class _Settings:
    clip_skip: int | None = None
    embedding_dirs: list | None = None
    brackets: bool = False
    patches: dict[str, list[tuple[float, object]]] = field(default_factory=dict)


class TextEncoder:
    """The CLIP socket value: one or two text models plus prompt settings and LoRA patches.

    ``stack`` (nn.ModuleDict, slots "l" and/or "g") is shared between clones; settings and the
    patch list are per clone. Parameter names for patches are the stack's own
    (``l.encoder.layers.0.self_attn.q_proj.weight``, ``g.text_model.encoder...``).
    """

    def __init__(self, stack: nn.ModuleDict, family: str, shapes: dict[str, EncoderShape]):
        self.stack = stack
        self.family = family
        self.shapes = shapes
        self.specs = _FAMILY_SLOTS[family]
        self.settings = _Settings()
        self.last_warnings: list[str] = []

    @classmethod
    def from_checkpoint(cls, sd: dict[str, Tensor], config=None, dtype: torch.dtype = torch.float32,
                        *, consume: bool = False) -> "TextEncoder":
        """Builds the encoders found in a single-file checkpoint state dict.

        ``config`` (ldm.configs.ModelConfig) is optional: the family follows from the keys, and a
        config whose family disagrees is an error rather than a silent mix-up. fp32 tensors are used
        as they are; others are cast. ``consume=True`` pops each encoder's keys from ``sd`` once it
        is built, so a caller loading a whole checkpoint never holds both the stored and the cast
        copy of more than one encoder.
        """
        slots = find_encoders(sd)
        if not slots:
            raise ValueError("no text encoder keys found (cond_stage_model.* / conditioner.embedders.*)")
        family = _family_of(slots)
        if config is not None and getattr(config, "family", family) != family:
            raise ValueError(f"checkpoint text encoders look like {family}, config says {config.family}")
        models, shapes = {}, {}
        for slot, (prefix, openclip) in slots.items():
            shape = encoder_shape(sd, prefix, openclip)
            if openclip:
                tensors, proj = openclip_to_hf(sd, prefix)
            else:
                tensors, proj = openai_to_hf(sd, prefix), None
            models[slot] = build_clip_model(shape, tensors, proj, dtype)
            shapes[slot] = shape
            del tensors, proj
            if consume:
                owner = prefix.replace("text_model.", "") if not openclip else prefix
                for key in [k for k in sd if k.startswith(owner)]:
                    del sd[key]
        return cls(nn.ModuleDict(models), family, shapes)

    # ----------------------------------------------------------------- settings
    def clone(self) -> "TextEncoder":
        """Same weights, independent settings and patch list (ComfyUI's clip.clone())."""
        other = TextEncoder(self.stack, self.family, self.shapes)
        patches = {k: list(v) for k, v in self.settings.patches.items()}
        other.settings = replace(self.settings, patches=patches)
        return other

    def set_clip_skip(self, stop_at_clip_layer: int) -> None:
        """CLIPSetLastLayer: -1 = last layer, -2 = penultimate, ... (beyond the depth = last)."""
        if stop_at_clip_layer >= 0:
            raise ValueError("stop_at_clip_layer must be negative (-1 = last layer)")
        self.settings.clip_skip = stop_at_clip_layer

    def set_a1111_brackets(self, enabled: bool) -> None:
        """Option: ``[text]`` divides the weight by 1.1 as in A1111 (ComfyUI keeps it literal)."""
        self.settings.brackets = bool(enabled)

    @property
    def embedding_dirs(self) -> list:
        return emb.default_dirs() if self.settings.embedding_dirs is None else self.settings.embedding_dirs

    @embedding_dirs.setter
    def embedding_dirs(self, dirs: list | None) -> None:
        self.settings.embedding_dirs = None if dirs is None else list(dirs)

    def param_names(self) -> dict[str, set[str]]:
        """{slot: parameter names of that slot's model} — what ldm.lora matches LoRA keys against."""
        return {slot: {n for n, _ in m.named_parameters()} for slot, m in self.stack.items()}

    def add_patches(self, patches: dict[str, object], strength: float = 1.0) -> list[str]:
        """Adds weight patches (keys = stack parameter names) at ``strength``; returns keys used."""
        known = {n for n, _ in self.stack.named_parameters()}
        used = [k for k in patches if k in known]
        for key in used:
            self.settings.patches.setdefault(key, []).append((strength, patches[key]))
        return used

    # ----------------------------------------------------------------- encoding
    def encode(self, text: str) -> tuple[Tensor, Tensor | None]:
        """(cond [1, 77·k, C], pooled [1, P] or None) for one prompt, like CLIPTextEncode."""
        if self.family == "sdxl":
            return self.encode_sdxl(text, text)
        slot = next(iter(self.specs))
        self.last_warnings = []
        chunks = self._chunks(slot, text)
        devices.to_device(self.stack)
        with torch.no_grad(), patched_weights(self.stack, self.settings.patches):
            cond, pooled = self._encode_slot(slot, chunks)
        return _output(cond), _output(pooled)

    def encode_sdxl(self, text_g: str, text_l: str) -> tuple[Tensor, Tensor | None]:
        """SDXL: CLIP-L(text_l) ‖ bigG(text_g) on channels; pooled from bigG (CLIPTextEncodeSDXL).

        The shorter token list is padded with empty-prompt chunks so both have the same length.
        """
        if self.family != "sdxl":
            return self.encode(text_g)
        self.last_warnings = []
        chunks_l, chunks_g = self._chunks("l", text_l), self._chunks("g", text_g)
        while len(chunks_l) < len(chunks_g):
            chunks_l.append(self._empty_chunk("l"))
        while len(chunks_g) < len(chunks_l):
            chunks_g.append(self._empty_chunk("g"))
        devices.to_device(self.stack)
        with torch.no_grad(), patched_weights(self.stack, self.settings.patches):
            z_l, _ = self._encode_slot("l", chunks_l)
            z_g, pooled = self._encode_slot("g", chunks_g)
        n = min(z_l.shape[1], z_g.shape[1])
        return _output(torch.cat([z_l[:, :n], z_g[:, :n]], dim=-1)), _output(pooled)

    def tokenize(self, text: str, slot: str | None = None) -> list[Chunk]:
        """77-token chunks of (token id or embedding vector, weight) — for inspection and tests."""
        self.last_warnings = []
        return self._chunks(slot or next(iter(self.specs)), text)

    def _empty_chunk(self, slot: str) -> Chunk:
        pad = self.specs[slot].pad
        return [(START_TOKEN, 1.0), (END_TOKEN, 1.0)] + [(pad, 1.0)] * (CHUNK - 2)

    def _word_groups(self, slot: str, text: str) -> list[list[tuple[Token, float]]]:
        """Token groups per word (a group is never split unless it is long), embeddings resolved."""
        groups: list[list[tuple[Token, float]]] = []
        pending: list[tuple[int, str, float]] = []  # (group index, word, weight) to BPE-tokenize
        for segment, weight in parse_weights(text, brackets=self.settings.brackets):
            for word in split_words(segment):
                name = embedding_reference(word)
                if name is not None:
                    vectors, word = self._lookup_embedding(slot, name)
                    if vectors is not None:
                        groups.append([(v, weight) for v in vectors])
                    if not word:
                        continue
                groups.append([])
                pending.append((len(groups) - 1, word, weight))
        if pending:
            ids = get_tokenizer()([w for _, w, _ in pending])["input_ids"]
            for (index, _, weight), word_ids in zip(pending, ids):
                groups[index] = [(t, weight) for t in word_ids[1:-1]]
        return groups

    def _lookup_embedding(self, slot: str, name: str) -> tuple[Tensor | None, str]:
        """(vectors or None, leftover text) for ``embedding:name``; failures become warnings.

        As in ComfyUI, the leftover of ``embedding:foo,`` (the comma) is kept as text even when
        ``foo`` does not exist; the missing name itself is dropped.
        """
        warning, leftover = None, ""
        for candidate, leftover in embedding_candidates(name):
            vectors, warning = emb.load_embedding(candidate, [*self.embedding_dirs],
                                                  self.specs[slot].embedding_key, self.shapes[slot].width)
            if vectors is not None:
                return vectors, leftover
        if warning and warning not in self.last_warnings:
            self.last_warnings.append(warning)
        return None, leftover

    def _chunks(self, slot: str, text: str) -> list[Chunk]:
        """ComfyUI's chunking: start token, up to 75 tokens, end token, padding to 77.

        A word that does not fit in the current chunk moves to the next one, unless it has at least
        MAX_WORD_LENGTH tokens, in which case it is split across chunks.
        """
        pad = self.specs[slot].pad
        chunks: list[Chunk] = []
        batch: Chunk = [(START_TOKEN, 1.0)]
        for group in self._word_groups(slot, text):
            large = len(group) >= MAX_WORD_LENGTH
            while group:
                if len(group) + len(batch) > CHUNK - 1:
                    room = CHUNK - 1 - len(batch)
                    if large:
                        batch.extend(group[:room])
                        group = group[room:]
                    batch.append((END_TOKEN, 1.0))
                    batch.extend([(pad, 1.0)] * (CHUNK - len(batch)))
                    chunks.append(batch)
                    batch = [(START_TOKEN, 1.0)]
                else:
                    batch.extend(group)
                    group = []
        batch.append((END_TOKEN, 1.0))
        batch.extend([(pad, 1.0)] * (CHUNK - len(batch)))
        chunks.append(batch)
        return chunks

    def _encode_slot(self, slot: str, chunks: list[Chunk]) -> tuple[Tensor, Tensor]:
        """Encodes the chunks (plus the empty prompt when weights differ from 1) and weights them."""
        weighted = any(w != 1.0 for chunk in chunks for _, w in chunk)
        batch = chunks + ([self._empty_chunk(slot)] if weighted else [])
        hidden, pooled = self._forward(slot, batch)
        z = hidden[: len(chunks)]
        if weighted:
            z_empty = hidden[-1:]
            weights = torch.tensor([[w for _, w in c] for c in chunks], dtype=z.dtype,
                                   device=z.device).unsqueeze(-1)
            # only tokens whose weight differs from 1 are touched (ComfyUI leaves the rest bit-identical)
            z = torch.where(weights != 1.0, (z - z_empty) * weights + z_empty, z)
        return z.reshape(1, -1, z.shape[-1]), pooled[:1]

    def _forward(self, slot: str, chunks: list[Chunk]) -> tuple[Tensor, Tensor]:
        """(hidden state per clip skip [B, 77, W], pooled of the last layer [B, P])."""
        model = self.stack[slot]
        text = model.text_model if hasattr(model, "text_model") else model
        embeds = self._input_embeddings(text, chunks)
        h = text.embeddings(inputs_embeds=embeds)
        n = h.shape[1]
        mask = torch.full((n, n), torch.finfo(h.dtype).min, dtype=h.dtype, device=h.device)
        mask = mask.triu(1)[None, None]
        layers = text.encoder.layers
        index, norm = self._layer_index(slot, len(layers))
        picked = h
        for i, layer in enumerate(layers):
            h = layer(h, mask)
            if i == index:
                picked = h
        final = text.final_layer_norm(h)
        if norm:
            picked = final if index == len(layers) - 1 else text.final_layer_norm(picked)
        ends = [next(j for j, (t, _) in enumerate(c) if isinstance(t, int) and t == END_TOKEN)
                for c in chunks]
        rows = torch.arange(len(chunks), device=final.device)
        pooled = final[rows, torch.tensor(ends, device=final.device)]
        if hasattr(model, "text_projection"):
            pooled = model.text_projection(pooled)
        return picked, pooled

    def _layer_index(self, slot: str, n_layers: int) -> tuple[int, bool]:
        """(layer whose output is the conditioning, apply the final layer norm to it).

        A skip deeper than the model means "last layer" with the norm (ComfyUI's rule); otherwise
        the norm follows the family (SD1/SD2 yes, SDXL no).
        """
        skip = self.settings.clip_skip or self.specs[slot].default_layer
        if -skip > n_layers:
            return n_layers - 1, True
        return n_layers + skip, self.specs[slot].norm_hidden

    @staticmethod
    def _input_embeddings(text: nn.Module, chunks: list[Chunk]) -> Tensor:
        table = text.embeddings.token_embedding
        ids = torch.tensor([[t if isinstance(t, int) else 0 for t, _ in c] for c in chunks],
                           device=table.weight.device)
        embeds = table(ids)
        for b, chunk in enumerate(chunks):
            for j, (t, _) in enumerate(chunk):
                if isinstance(t, Tensor):
                    embeds[b, j] = t.to(device=embeds.device, dtype=embeds.dtype)
        return embeds
