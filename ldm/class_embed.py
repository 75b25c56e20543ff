"""The class-conditional LDMs' cond stage (CompVis `ClassEmbedder`, e.g. cin256): one learnt vector
per class in `cond_stage_model.embedding.weight` [n_classes, dim], fed to the UNet's cross-attention
as a one-token context. The cin256-v2 checkpoint has 1001 rows: ImageNet's 1000 classes plus the
"no class" row (index 1000) its classifier-free guidance uses as the unconditional input.
"""
from __future__ import annotations

import torch
from torch import Tensor

EMBEDDING_KEY = "cond_stage_model.embedding.weight"


class ClassEmbedder:
    """Class index → conditioning context [1, 1, dim]."""

    def __init__(self, weight: Tensor) -> None:
        self.weight = weight.detach().float()

    @classmethod
    def from_checkpoint(cls, sd: dict[str, Tensor]) -> "ClassEmbedder":
        """The embedder of a class-conditional LDM checkpoint (its EMBEDDING_KEY)."""
        return cls(sd[EMBEDDING_KEY])

    @property
    def num_classes(self) -> int:
        """Rows of the table (real classes plus any "no class" row)."""
        return int(self.weight.shape[0])

    def encode(self, text: str) -> tuple[Tensor, Tensor | None]:
        """A text prompt cannot condition a class model: say what to use instead."""
        raise ValueError("this checkpoint's cond stage is a class embedder (a class-conditional "
                         "LDM), not a text encoder: use Class Embed (ClassEmbed) with a class index")

    def embed(self, index: int) -> Tensor:
        """The one-token context of class `index`; ValueError outside the table."""
        if not 0 <= index < self.num_classes:
            raise ValueError(f"class index {index} is outside 0..{self.num_classes - 1}")
        return self.weight[index].reshape(1, 1, -1).clone()

    def clone(self) -> "ClassEmbedder":
        """CLIP-socket contract: nodes may clone what they patch (nothing to patch here)."""
        return ClassEmbedder(self.weight)


def has_class_embedder(sd: dict[str, Tensor]) -> bool:
    """Whether a state dict carries a ClassEmbedder cond stage."""
    return EMBEDDING_KEY in sd and torch.is_floating_point(sd[EMBEDDING_KEY])
