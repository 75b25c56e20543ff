"""Checkpoints that look like SD but would compute wrongly are refused with a message naming them."""
from __future__ import annotations

import pytest

from ldm.checkpoint import CheckpointError, detect, load_checkpoint
from ldm.tiny import UNET_PREFIX
from ldm.tiny_variants import VARIANTS, sd2_depth, write_variant
from ldm.unsupported import SUPPORTED

EXPECTED = {
    "tiny_sd21_unclip": r"SD unCLIP checkpoint \(image embedder \+ noise augmentor, UNet label_emb of 96",
}


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_unsupported_checkpoints_are_refused_by_name(name, tmp_path):
    path = write_variant(name, tmp_path / f"{name}.safetensors")
    with pytest.raises(CheckpointError, match=EXPECTED[name]) as e:
        load_checkpoint(path)
    assert str(e.value).endswith("not supported yet - " + SUPPORTED)


@pytest.mark.parametrize("name", ["tiny_sd21_unclip"])
def test_unet_only_files_of_those_models_are_refused_too(name):
    """A diffusion_models/ file holds only the UNet: its own shapes must still give it away."""
    unet_only = {k: v for k, v in VARIANTS[name]().items() if k.startswith(UNET_PREFIX)}
    with pytest.raises(CheckpointError, match="not supported yet"):
        detect(unet_only, family="sd2")


def test_other_channel_counts_are_refused_not_guessed():
    sd = sd2_depth()
    conv = sd[UNET_PREFIX + "input_blocks.0.0.weight"]
    sd[UNET_PREFIX + "input_blocks.0.0.weight"] = conv.new_zeros(conv.shape[0], 8, 3, 3)
    with pytest.raises(CheckpointError, match="InstructPix2Pix-style checkpoint"):
        detect(sd)
    sd[UNET_PREFIX + "input_blocks.0.0.weight"] = conv.new_zeros(conv.shape[0], 6, 3, 3)
    with pytest.raises(CheckpointError, match="UNet with 6 input channels for a 4-channel latent"):
        detect(sd)
