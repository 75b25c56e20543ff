"""Our VQModel against diffusers' VQModel (test-only numerical reference) on the same CompVis-layout
weights, converted with diffusers' own LDM → diffusers key conversion."""
from __future__ import annotations

import pytest
import torch

pytest.importorskip("diffusers")
from diffusers import VQModel as DVQModel  # noqa: E402
from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint  # noqa: E402

from ldm.tiny_first_stage import TINY_FIRST_STAGES, tiny_first_stage  # noqa: E402


def _reference(name: str, ours: torch.nn.Module) -> DVQModel:
    cfg = TINY_FIRST_STAGES[name]
    n = len(cfg.ch_mult)
    conf = dict(in_channels=3, out_channels=3, down_block_types=["DownEncoderBlock2D"] * n,
                up_block_types=["UpDecoderBlock2D"] * n, block_out_channels=[cfg.ch * m for m in cfg.ch_mult],
                layers_per_block=cfg.num_res_blocks, latent_channels=cfg.z_channels, vq_embed_dim=cfg.embed_dim,
                num_vq_embeddings=cfg.n_embed, norm_num_groups=cfg.norm_groups,
                mid_block_add_attention=cfg.mid_attn)
    sd = {"first_stage_model." + k: v.float() for k, v in ours.state_dict().items()}
    converted = convert_ldm_vae_checkpoint(sd, conf)
    converted["quantize.embedding.weight"] = ours.quantize.embedding.weight.float()
    ref = DVQModel(**conf)
    missing, unexpected = ref.load_state_dict(converted, strict=False)
    assert not missing and not unexpected, (missing[:5], unexpected[:5])
    return ref.eval()


@pytest.mark.parametrize("name", ["tiny_vq_f4", "tiny_vq_f4_noattn"])
@torch.no_grad()
def test_vq_encode_and_decode_match_diffusers(name):
    ours = tiny_first_stage(name).eval()
    ref = _reference(name, ours)
    x = torch.rand(2, 3, 32, 48, generator=torch.Generator().manual_seed(0)) * 2 - 1
    h = ours.encode(x)
    assert torch.allclose(h, ref.encode(x).latents, atol=1e-4)
    assert torch.allclose(ours.decode(h), ref.decode(h).sample, atol=2e-4)
