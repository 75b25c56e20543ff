"""LDM-BERT, the text encoder of the Latent Diffusion paper's text-to-image model (LDM-KL-8, the
"1.45B" txt2img model): BERT's WordPiece tokens (bert-base-uncased, 77 tokens with [CLS]/[SEP] and
[PAD] up to 77) through a pre-norm transformer encoder trained from scratch with the LDM.

Key layout (CompVis' x_transformer `TransformerWrapper`, under `cond_stage_model.transformer.`):
`token_emb.weight`, `pos_emb.emb.weight`, `attn_layers.layers.{i}.0.*` (LayerNorm) and
`.1.*` (attention: to_q/to_k/to_v without bias, to_out; or feed-forward: net.0.0 and net.2) for
alternating attention / feed-forward layers, the final `norm.*`, and an unused `to_logits`.
The encoder uses 8 heads (BERTEmbedder never changes x_transformer's default) and attends over all
77 positions, padding included, as the original does.

The tokenizer's vocabulary is not shipped (it is bert-base-uncased's `vocab.txt`); put it at
`models/text_encoders/bert-base-uncased/vocab.txt` (or `bert-base-uncased-vocab.txt` there).
"""
from __future__ import annotations

import re
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

PREFIX = "cond_stage_model.transformer."
MAX_TOKENS = 77
HEADS = 8
VOCAB_NAMES = ("bert-base-uncased/vocab.txt", "bert-base-uncased-vocab.txt")


class _Attention(nn.Module):
    def __init__(self, dim: int, inner: int) -> None:
        super().__init__()
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_k = nn.Linear(dim, inner, bias=False)
        self.to_v = nn.Linear(dim, inner, bias=False)
        self.to_out = nn.Linear(inner, dim)

    def forward(self, x: Tensor) -> Tensor:
        b, n, _ = x.shape
        q, k, v = (t.view(b, n, HEADS, -1).transpose(1, 2) for t in (self.to_q(x), self.to_k(x), self.to_v(x)))
        return self.to_out(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, -1))


class _FeedForward(nn.Module):
    def __init__(self, dim: int, inner: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Sequential(nn.Linear(dim, inner), nn.GELU()), nn.Dropout(0.0),
                                 nn.Linear(inner, dim))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class LDMBertModel(nn.Module):
    """tokens [B, 77] → embeddings [B, 77, dim] (x_transformer's `return_embeddings=True`)."""

    def __init__(self, vocab: int, dim: int, depth: int, attn_inner: int, ff_inner: int,
                 max_len: int = MAX_TOKENS) -> None:
        super().__init__()
        self.token_emb = nn.Embedding(vocab, dim)
        self.pos_emb = nn.Module()
        self.pos_emb.emb = nn.Embedding(max_len, dim)
        self.attn_layers = nn.Module()
        self.attn_layers.layers = nn.ModuleList()
        for _ in range(depth):
            for block in (_Attention(dim, attn_inner), _FeedForward(dim, ff_inner)):
                # [norm, block, residual]: the residual holds no weights, so index 2 has no keys
                self.attn_layers.layers.append(nn.ModuleList([nn.LayerNorm(dim), block]))
        self.norm = nn.LayerNorm(dim)

    def forward(self, tokens: Tensor) -> Tensor:
        x = self.token_emb(tokens) + self.pos_emb.emb(torch.arange(tokens.shape[1], device=tokens.device))[None]
        for norm, block in self.attn_layers.layers:
            x = x + block(norm(x))  # pre-norm residual
        return self.norm(x)


def has_ldm_bert(sd: dict[str, Tensor]) -> bool:
    """Whether a state dict carries LDM-BERT as its cond stage."""
    return PREFIX + "attn_layers.layers.0.1.to_q.weight" in sd


def _shape(sd: dict[str, Tensor]) -> dict[str, int]:
    layers = {int(m.group(1)) for k in sd for m in [re.match(re.escape(PREFIX) + r"attn_layers\.layers\.(\d+)\.", k)] if m}
    vocab, dim = sd[PREFIX + "token_emb.weight"].shape
    return dict(vocab=int(vocab), dim=int(dim), depth=(max(layers) + 1) // 2,
                attn_inner=int(sd[PREFIX + "attn_layers.layers.0.1.to_q.weight"].shape[0]),
                ff_inner=int(sd[PREFIX + "attn_layers.layers.1.1.net.0.0.weight"].shape[0]),
                max_len=int(sd[PREFIX + "pos_emb.emb.weight"].shape[0]))


def find_vocab(dirs: list[str | Path]) -> Path | None:
    """bert-base-uncased's vocab.txt in one of `dirs` (see the module doc), or None."""
    for d in dirs:
        for name in VOCAB_NAMES:
            if (Path(d) / name).is_file():
                return Path(d) / name
    return None


class LDMBertEncoder:
    """The CLIP-socket object of an LDM-BERT checkpoint: encode(text) → (context [1,77,dim], None)."""

    def __init__(self, model: LDMBertModel, vocab_dirs: list[str] | None = None) -> None:
        self.model = model.eval().requires_grad_(False)
        self.vocab_dirs = list(vocab_dirs or [])
        self._tokenizer = None

    @classmethod
    def from_checkpoint(cls, sd: dict[str, Tensor]) -> "LDMBertEncoder":
        """The encoder of an LDM-BERT checkpoint (its `cond_stage_model.transformer.*` keys)."""
        model = LDMBertModel(**_shape(sd))
        weights = {k[len(PREFIX):]: v.float() for k, v in sd.items()
                   if k.startswith(PREFIX) and not k.startswith(PREFIX + "to_logits.")}
        model.load_state_dict(weights, strict=True)
        return cls(model)

    def clone(self) -> "LDMBertEncoder":
        """Shares the weights; its own vocabulary folders."""
        return LDMBertEncoder(self.model, self.vocab_dirs)

    def tokenize(self, text: str) -> Tensor:
        """[1, 77] WordPiece ids ([CLS] text [SEP], truncated, [PAD]ded) as BERTTokenizer makes them."""
        if self._tokenizer is None:
            path = find_vocab(self.vocab_dirs)
            if path is None:
                raise ValueError("LDM-BERT needs bert-base-uncased's vocab.txt, which is not shipped: put it "
                                 "at models/text_encoders/bert-base-uncased/vocab.txt")
            from transformers import BertTokenizer

            self._tokenizer = BertTokenizer(vocab=str(path), do_lower_case=True)
        ids = self._tokenizer(text, truncation=True, max_length=self.model.pos_emb.emb.num_embeddings,
                              padding="max_length", return_tensors="pt")["input_ids"]
        return ids[:1]

    @torch.no_grad()
    def encode(self, text: str) -> tuple[Tensor, None]:
        """(context [1, 77, dim], no pooled output): what the LDM's cross-attention reads."""
        return self.model(self.tokenize(text)).float(), None
