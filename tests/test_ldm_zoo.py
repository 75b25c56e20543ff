"""The Latent Diffusion paper's own models: unconditional LDMs (plain self-attention UNets, no
context) and class-conditional ones (a ClassEmbedder cond stage), on VQ-f4, loaded from their key
layouts or through their CompVis YAML configs (x0 parameterisation, cosine schedules …), and run
with the same sampler nodes as Stable Diffusion."""
from __future__ import annotations

import math
import textwrap

import pytest
import torch
from safetensors.torch import save_file

from engine.cache import ModelCache
from engine.context import NodeContext
from engine.paths import Paths
from ldm.attention import AttentionBlock
from ldm.checkpoint import load_checkpoint
from ldm.model_sampling import ModelSampling, make_betas
from ldm.tiny_ldm import CIN_CLASSES, write_tiny_ldm
from ldm.tiny_variants import unconditional_ldm
from nodes import conditioning as cn
from nodes import latent as la
from nodes import ldm_zoo as zoo
from nodes import loaders as lo
from nodes import sampling as sa
from nodes import vae as va


@pytest.fixture(scope="module")
def ctx(tmp_path_factory) -> NodeContext:
    base = tmp_path_factory.mktemp("ldm_zoo")
    paths = Paths(base / "models", base / "in", base / "out", base / "tmp", base / "user")
    paths.ensure_dirs()
    ckpts = base / "models" / "checkpoints"
    for name in ("tiny_uncond_ldm", "tiny_cin_ldm"):
        write_tiny_ldm(name, ckpts / f"{name}.safetensors")
    (base / "models" / "configs").mkdir(exist_ok=True)
    return NodeContext(node_id="1", prompt_id="p", prompt={}, paths=paths, models=ModelCache(max_items=8))


def _sample(ctx, model, vae, pos, neg, seed=1, size=32):
    latent = la.EmptyLatentImage().run(ctx, size, size, 1)[0]
    out = sa.KSampler().run(ctx, model, seed, 3, 3.0, "euler", "normal", pos, neg, latent, 1.0)[0]
    return va.VAEDecode().run(ctx, out, vae)[0]


def test_the_compvis_layout_of_an_unconditional_ldm_loads_strictly(tmp_path):
    """Keys written by hand from the SD layout (SpatialTransformer → norm/qkv/proj_out)."""
    save_file({k: v.contiguous() for k, v in unconditional_ldm().items()}, str(tmp_path / "u.safetensors"))
    model, clip, vae = load_checkpoint(tmp_path / "u.safetensors")
    assert model.config.family == "ldm" and model.config.unet.attention == "legacy" and clip is None


def test_an_unconditional_ldm_draws_from_nothing(ctx):
    model, clip, vae = lo.CheckpointLoaderSimple().run(ctx, "tiny_uncond_ldm.safetensors")
    assert clip is None and model.latent_format.scale_factor == 1.0
    expected = torch.cumprod(1 - make_betas("linear", 1000, 0.0015, 0.0195), 0).float()
    assert torch.allclose(model.sampling.alphas_cumprod, expected)  # the file's own table
    empty = zoo.UnconditionalConditioning().run(ctx)[0]
    a = _sample(ctx, model, vae, empty, empty, seed=1)
    assert a.shape == (1, 32, 32, 3)
    assert torch.equal(a, _sample(ctx, model, vae, empty, empty, seed=1))
    assert not torch.equal(a, _sample(ctx, model, vae, empty, empty, seed=2))


def test_a_class_conditional_ldm_draws_the_class_asked_for(ctx):
    model, clip, vae = lo.CheckpointLoaderSimple().run(ctx, "tiny_cin_ldm.safetensors")
    assert clip.num_classes == CIN_CLASSES
    null = zoo.ClassEmbed().run(ctx, clip, CIN_CLASSES - 1)[0]
    cat = _sample(ctx, model, vae, zoo.ClassEmbed().run(ctx, clip, 3)[0], null)
    dog = _sample(ctx, model, vae, zoo.ClassEmbed().run(ctx, clip, 4)[0], null)
    assert cat.shape == (1, 32, 32, 3) and not torch.equal(cat, dog)
    with pytest.raises(ValueError, match="class_index': 11 is outside this model's 11 classes"):
        zoo.ClassEmbed().run(ctx, clip, CIN_CLASSES)
    with pytest.raises(ValueError, match="class embedder .* use Class Embed"):
        cn.CLIPTextEncode().run(ctx, "a cat", clip)


def _attention_reference(x, qkv_w, qkv_b, out_w, out_b, heads, norm):
    """softmax(qᵀk/√d)·v per head, with the legacy per-head [q|k|v] channel grouping."""
    b, c, h, w = x.shape
    t = torch.einsum("oc,bcn->bon", qkv_w[:, :, 0], norm(x).reshape(b, c, -1)) + qkv_b[None, :, None]
    d = c // heads
    outs = []
    for i in range(heads):
        q, k, v = t[:, 3 * d * i:3 * d * (i + 1)].split(d, dim=1)
        att = torch.softmax(torch.einsum("bdi,bdj->bij", q, k) / math.sqrt(d), dim=-1)
        outs.append(torch.einsum("bij,bdj->bdi", att, v))
    o = torch.cat(outs, dim=1)
    return x + (torch.einsum("oc,bcn->bon", out_w[:, :, 0], o) + out_b[None, :, None]).reshape(b, c, h, w)


@torch.no_grad()
def test_attention_block_matches_the_written_out_formula_in_both_qkv_orders():
    torch.manual_seed(0)
    block = AttentionBlock(16, heads=2, norm_groups=4)
    x = torch.randn(2, 16, 3, 5)
    ref = _attention_reference(x, block.qkv.weight, block.qkv.bias, block.proj_out.weight,
                               block.proj_out.bias, 2, block.norm)
    assert torch.allclose(block(x), ref, atol=1e-5)
    # the same weights regrouped as [all q | all k | all v] give the same output in the new order
    new = AttentionBlock(16, heads=2, norm_groups=4, new_order=True)
    new.load_state_dict(block.state_dict())
    perm = torch.arange(48).reshape(2, 3, 8).transpose(0, 1).reshape(-1)
    new.qkv.weight.copy_(block.qkv.weight[perm])
    new.qkv.bias.copy_(block.qkv.bias[perm])
    assert torch.allclose(new(x), ref, atol=1e-5)


def test_cosine_schedule_is_the_improved_ddpm_one():
    s, n = 0.008, 1000
    f = lambda t: math.cos((t / n + s) / (1 + s) * math.pi / 2) ** 2  # noqa: E731
    ac = torch.cumprod(1 - make_betas("cosine", n, 0, 0), 0)
    for t in (0, 250, 500, 900):
        assert ac[t].item() == pytest.approx(f(t + 1) / f(0), rel=1e-9)
    assert ModelSampling("x0", beta_schedule="cosine").prediction == "x0"


def _yaml(ctx, name: str, body: str) -> str:
    (ctx.paths.models_dir / "configs" / name).write_text(textwrap.dedent(body))
    return name


CIN_YAML = """
model:
  target: ldm.models.diffusion.ddpm.LatentDiffusion
  params:
    linear_start: 0.0015
    linear_end: 0.0195
    parameterization: {param}
    beta_schedule: {schedule}
    cond_stage_key: class_label
    conditioning_key: crossattn
    unet_config:
      target: ldm.modules.diffusionmodules.openaimodel.UNetModel
      params:
        in_channels: 3
        out_channels: 3
        model_channels: 32
        use_spatial_transformer: true
        context_dim: 16
    first_stage_config:
      target: ldm.models.autoencoder.{first}
      params:
        embed_dim: 3
        n_embed: 64
    cond_stage_config:
      target: ldm.modules.encoders.modules.ClassEmbedder
      params:
        embed_dim: 16
        n_classes: 11
"""


def test_compvis_yaml_sets_parameterisation_and_schedule(ctx):
    name = _yaml(ctx, "cin_x0_cosine.yaml", CIN_YAML.format(param="x0", schedule="cosine", first="VQModelInterface"))
    model, clip, vae = lo.CheckpointLoader().run(ctx, name, "tiny_cin_ldm.safetensors")
    assert model.sampling.prediction == "x0" and model.sampling.beta_schedule == "cosine"
    expected = torch.cumprod(1 - make_betas("cosine", 1000, 0.0015, 0.0195), 0).float()
    assert torch.allclose(model.sampling.alphas_cumprod, expected)
    pos, neg = zoo.ClassEmbed().run(ctx, clip, 1)[0], zoo.ClassEmbed().run(ctx, clip, 10)[0]
    assert _sample(ctx, model, vae, pos, neg).shape == (1, 32, 32, 3)


@pytest.mark.parametrize("change, message", [
    (dict(first="AutoencoderKL"), "first stage KL in the config, VQ in the weights"),
    (dict(param="v_pred"), "parameterization 'v_pred' is not supported"),
])
def test_a_yaml_for_another_model_is_refused_by_name(ctx, change, message):
    fields = {"param": "eps", "schedule": "linear", "first": "VQModelInterface", **change}
    name = _yaml(ctx, f"bad_{'_'.join(change)}.yaml", CIN_YAML.format(**fields))
    with pytest.raises(Exception, match=message):
        lo.CheckpointLoader().run(ctx, name, "tiny_cin_ldm.safetensors")


def test_use_spatial_transformer_is_checked_against_the_weights(ctx):
    body = CIN_YAML.format(param="eps", schedule="linear", first="VQModelInterface")
    name = _yaml(ctx, "uncond_wrong.yaml", body.replace("use_spatial_transformer: true", "use_spatial_transformer: false"))
    with pytest.raises(Exception, match="use_spatial_transformer False in the config"):
        lo.CheckpointLoader().run(ctx, name, "tiny_cin_ldm.safetensors")


# ------------------------------------------------------------------------------ SD x4 upscaler
@pytest.fixture(scope="module")
def x4_model(ctx):
    from ldm.tiny_ldm import write_tiny_x4_upscaler

    write_tiny_x4_upscaler(ctx.paths.models_dir / "checkpoints" / "tiny_x4.safetensors")
    return lo.CheckpointLoaderSimple().run(ctx, "tiny_x4.safetensors")


def _capture_unet_inputs(model):
    """(x entering conv_in, class labels entering label_emb) of every UNet call."""
    seen = {"x": [], "y": []}
    unet = model.unet
    h1 = unet.input_blocks[0][0].register_forward_pre_hook(lambda m, a: seen["x"].append(a[0].clone()))
    h2 = unet.label_emb.register_forward_pre_hook(lambda m, a: seen["y"].append(a[0].clone()))
    return seen, (h1, h2)


def _upscale(ctx, model, clip, vae, image, noise_aug, seed=5):
    pos = cn.CLIPTextEncode().run(ctx, "sharp", clip)[0]
    neg = cn.CLIPTextEncode().run(ctx, "", clip)[0]
    pos, neg, latent = zoo.SD_4XUpscale_Conditioning().run(ctx, image, pos, neg, 4.0, noise_aug)
    out = sa.KSampler().run(ctx, model, seed, 2, 4.0, "euler", "normal", pos, neg, latent, 1.0)[0]
    return va.VAEDecode().run(ctx, out, vae)[0]


def test_the_x4_upscaler_is_detected_with_its_own_schedule_and_scale(x4_model):
    model, clip, vae = x4_model
    cfg = model.config
    assert (cfg.kind, cfg.prediction, cfg.scale_factor, vae.downscale_ratio) == ("x4_upscaler", "v", 0.08333, 4)
    assert cfg.unet.num_classes == 1000 and cfg.unet.disable_self_attn_levels == (0,)
    expected = torch.cumprod(1 - make_betas("linear", 1000, 0.0001, 0.02), 0).float()
    assert torch.allclose(model.sampling.alphas_cumprod, expected)


def test_the_x4_upscaler_sees_the_image_and_its_noise_level(ctx, x4_model):
    model, clip, vae = x4_model
    image = torch.rand(1, 12, 16, 3, generator=torch.Generator().manual_seed(2))
    seen, hooks = _capture_unet_inputs(model)
    try:
        big = _upscale(ctx, model, clip, vae, image, 0.0)
        clean_x, clean_y = seen["x"][0], seen["y"][0]
        seen["x"].clear(), seen["y"].clear()
        _upscale(ctx, model, clip, vae, image, 0.5, seed=5)
    finally:
        for h in hooks:
            h.remove()
    assert big.shape == (1, 48, 64, 3)
    # channels 4..6: the image itself in -1..1 at the latent size (4x of 12x16 px → 12x16 latent)
    assert torch.allclose(clean_x[:, 4:], (image.movedim(-1, 1) * 2 - 1).expand(clean_x.shape[0], -1, -1, -1), atol=1e-6)
    assert (clean_y == 0).all() and (seen["y"][0] == 175).all()  # round(350 · 0.5)
    ac = float(torch.cumprod(1 - make_betas("linear", 1000, 0.0001, 0.02), 0)[175])
    noise = torch.randn((1, 3, 12, 16), generator=torch.Generator().manual_seed(5 - 10))
    noised = ac ** 0.5 * (image.movedim(-1, 1) * 2 - 1) + (1 - ac) ** 0.5 * noise
    assert torch.allclose(seen["x"][0][:1, 4:], noised, atol=1e-5)


def test_a_different_low_res_image_gives_a_different_upscale(ctx, x4_model):
    model, clip, vae = x4_model
    a = torch.rand(1, 8, 8, 3, generator=torch.Generator().manual_seed(3))
    assert not torch.equal(_upscale(ctx, model, clip, vae, a, 0.0), _upscale(ctx, model, clip, vae, 1 - a, 0.0))


# ------------------------------------------------------------------------------ LDM-BERT txt2img
@pytest.fixture(scope="module")
def bert_model(ctx):
    from ldm.tiny_ldm import write_tiny_ldm_bert

    write_tiny_ldm_bert(ctx.paths.models_dir / "checkpoints" / "tiny_ldm_bert.safetensors",
                        ctx.paths.models_dir / "text_encoders")
    return lo.CheckpointLoaderSimple().run(ctx, "tiny_ldm_bert.safetensors")


def _x_transformer_reference(sd: dict, tokens: torch.Tensor, heads: int = 8) -> torch.Tensor:
    """CompVis' TransformerWrapper(return_embeddings=True) written out from its key layout."""
    p = "cond_stage_model.transformer."
    x = sd[p + "token_emb.weight"][tokens] + sd[p + "pos_emb.emb.weight"][: tokens.shape[1]][None]
    ln = lambda t, i: torch.nn.functional.layer_norm(t, t.shape[-1:], sd[f"{i}.weight"], sd[f"{i}.bias"])  # noqa: E731
    i = 0
    while f"{p}attn_layers.layers.{i}.0.weight" in sd:
        pre, h = f"{p}attn_layers.layers.{i}", ln(x, f"{p}attn_layers.layers.{i}.0")
        if f"{pre}.1.to_q.weight" in sd:
            q, k, v = (h @ sd[f"{pre}.1.to_{n}.weight"].T for n in "qkv")
            b, n, inner = q.shape
            q, k, v = (t.reshape(b, n, heads, -1).permute(0, 2, 1, 3) for t in (q, k, v))
            att = torch.softmax(q @ k.transpose(-1, -2) * (inner // heads) ** -0.5, dim=-1)
            out = (att @ v).permute(0, 2, 1, 3).reshape(b, n, inner)
            x = x + out @ sd[f"{pre}.1.to_out.weight"].T + sd[f"{pre}.1.to_out.bias"]
        else:
            mid = torch.nn.functional.gelu(h @ sd[f"{pre}.1.net.0.0.weight"].T + sd[f"{pre}.1.net.0.0.bias"])
            x = x + mid @ sd[f"{pre}.1.net.2.weight"].T + sd[f"{pre}.1.net.2.bias"]
        i += 1
    return ln(x, p + "norm")


def test_ldm_bert_matches_the_written_out_x_transformer(ctx, bert_model):
    from ldm.checkpoint import load_state_dict

    model, clip, vae = bert_model
    assert model.config.family == "ldm" and model.latent_format.scale_factor == 0.18215
    sd = {k: v.float() for k, v in load_state_dict(ctx.paths.models_dir / "checkpoints" / "tiny_ldm_bert.safetensors").items()}
    tokens = clip.tokenize("A red circle, on the LEFT.")
    assert tokens[0, :9].tolist() == [2, 5, 6, 8, 15, 10, 11, 12, 16] and tokens.shape == (1, 77)
    assert torch.allclose(clip.encode("A red circle, on the LEFT.")[0], _x_transformer_reference(sd, tokens), atol=1e-5)


def test_ldm_bert_text_to_image_runs_and_follows_the_prompt(ctx, bert_model):
    model, clip, vae = bert_model
    neg = cn.CLIPTextEncode().run(ctx, "", clip)[0]
    a = _sample(ctx, model, vae, cn.CLIPTextEncode().run(ctx, "a red circle", clip)[0], neg)
    b = _sample(ctx, model, vae, cn.CLIPTextEncode().run(ctx, "a blue square", clip)[0], neg)
    assert a.shape == (1, 32, 32, 3) and not torch.equal(a, b)


def test_ldm_bert_without_its_vocabulary_says_where_to_put_it(bert_model):
    clip = bert_model[1].clone()
    clip.vocab_dirs = []
    with pytest.raises(ValueError, match="bert-base-uncased/vocab.txt"):
        clip.encode("a red circle")


# ------------------------------------------------------------------------------ SD2 depth-to-image
@pytest.fixture(scope="module")
def depth_model(ctx):
    from ldm.tiny_variants import sd2_depth

    save_file({k: v.contiguous() for k, v in sd2_depth().items()},
              str(ctx.paths.models_dir / "checkpoints" / "tiny_sd2_depth.safetensors"))
    return lo.CheckpointLoaderSimple().run(ctx, "tiny_sd2_depth.safetensors")


def test_depth_to_image_concatenates_the_normalised_depth_map(ctx, depth_model):
    model, clip, vae = depth_model
    assert model.config.kind == "depth2img" and model.config.unet.in_channels == 5
    pos = cn.CLIPTextEncode().run(ctx, "a room", clip)[0]
    neg = cn.CLIPTextEncode().run(ctx, "", clip)[0]
    with pytest.raises(ValueError, match="needs a depth map"):
        _sample(ctx, model, vae, pos, neg)
    ramp = torch.linspace(0, 1, 32).reshape(1, 32, 1, 1).expand(1, 32, 32, 3).contiguous()  # brighter down
    seen = []
    hook = model.unet.input_blocks[0][0].register_forward_pre_hook(lambda m, a: seen.append(a[0].clone()))
    try:
        dpos, dneg = zoo.Depth2ImgConditioning().run(ctx, pos, neg, ramp * 0.5 + 0.2)  # any range
        near_top = _sample(ctx, model, vae, dpos, dneg)
        far_top = _sample(ctx, model, vae, *zoo.Depth2ImgConditioning().run(ctx, pos, neg, 1 - ramp))
    finally:
        hook.remove()
    depth = seen[0][0, 4]
    assert depth.shape == (4, 4) and depth.min() >= -1.0 and depth.max() <= 1.0
    assert depth[0, 0] < -0.9 and depth[-1, 0] > 0.9 and torch.allclose(depth[:, 0], depth[:, -1])
    assert near_top.shape == (1, 32, 32, 3) and not torch.equal(near_top, far_top)
