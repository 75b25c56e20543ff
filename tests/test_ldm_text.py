"""TextEncoder: parity with independent references on the same tiny weights, and ComfyUI semantics
(chunking, weighting, clip skip, textual inversion, clones, LoRA patches)."""
from __future__ import annotations

import pytest
import torch

from ldm.clip import TextEncoder
from ldm.clip_keys import SD1_PREFIX, SD2_PREFIX, SDXL_G_PREFIX, SDXL_L_PREFIX, heads_for_width
from ldm.tiny_text import text_encoder_state_dict, write_embedding
from ldm.tokenizer import END_TOKEN, START_TOKEN, get_tokenizer

ATOL = 1e-4
W_L, W_G = 32, 48


@pytest.fixture(scope="module")
def sd1_sd():
    return text_encoder_state_dict("sd1", width=W_L, layers=3, seed=1)


@pytest.fixture(scope="module")
def sd2_sd():
    return text_encoder_state_dict("sd2", width=W_G, layers=3, seed=2, proj_dim=40)


@pytest.fixture(scope="module")
def sdxl_sd():
    sd = text_encoder_state_dict("sdxl_l", width=W_L, layers=3, seed=3)
    sd.update(text_encoder_state_dict("sdxl_g", width=W_G, layers=3, seed=4, proj_dim=40))
    return sd


@pytest.fixture(scope="module")
def sd1(sd1_sd):
    return TextEncoder.from_checkpoint(sd1_sd)


def ids_for(text, pad):
    ids = get_tokenizer()(text)["input_ids"]
    return torch.tensor([ids + [pad] * (77 - len(ids))])


def hf_reference(sd, prefix, width, layers):
    """transformers' CLIPTextModel loaded the straightforward way (prefix stripped)."""
    from transformers import CLIPTextConfig, CLIPTextModel

    config = CLIPTextConfig(vocab_size=49408, hidden_size=width, intermediate_size=4 * width,
                            num_hidden_layers=layers, num_attention_heads=heads_for_width(width),
                            max_position_embeddings=77, hidden_act="quick_gelu",
                            eos_token_id=END_TOKEN)
    model = CLIPTextModel(config).eval()
    model.load_state_dict({k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)})
    return model


def open_clip_reference(sd, prefix, width, layers, proj_dim):
    """open_clip's own text transformer holding the same OpenCLIP-layout tensors."""
    from open_clip.transformer import TextTransformer

    model = TextTransformer(width=width, heads=heads_for_width(width), layers=layers,
                            output_dim=proj_dim, output_tokens=True).eval()
    state = {k[len(prefix):]: v for k, v in sd.items()
             if k.startswith(prefix) and not k.endswith("logit_scale")}
    model.load_state_dict(state)
    return model


def open_clip_hidden(model, ids, layer):
    """open_clip run by hand to read the output of layer ``layer`` (negative index)."""
    x = model.token_embedding(ids) + model.positional_embedding
    for block in model.transformer.resblocks[: len(model.transformer.resblocks) + layer + 1]:
        x = block(x, attn_mask=model.attn_mask)
    return x


# ----------------------------------------------------------------------------- parity
def test_sd1_matches_transformers(sd1_sd, sd1):
    ref = hf_reference(sd1_sd, SD1_PREFIX, W_L, 3)
    with torch.no_grad():
        out = ref(ids_for("a photo of a cat", END_TOKEN))
    cond, pooled = sd1.encode("a photo of a cat")
    assert cond.shape == (1, 77, W_L)
    torch.testing.assert_close(cond, out.last_hidden_state, atol=ATOL, rtol=0)
    torch.testing.assert_close(pooled, out.pooler_output, atol=ATOL, rtol=0)


def test_sd1_clip_skip_is_penultimate_layer_with_final_norm(sd1_sd, sd1):
    ref = hf_reference(sd1_sd, SD1_PREFIX, W_L, 3)
    with torch.no_grad():
        out = ref(ids_for("a photo of a cat", END_TOKEN), output_hidden_states=True)
        expected = ref.final_layer_norm(out.hidden_states[-2])
    enc = sd1.clone()
    enc.set_clip_skip(-2)
    cond, _ = enc.encode("a photo of a cat")
    torch.testing.assert_close(cond, expected, atol=ATOL, rtol=0)
    assert (cond - sd1.encode("a photo of a cat")[0]).abs().max() > 1e-2
    enc.set_clip_skip(-24)  # deeper than the model: ComfyUI falls back to the last layer
    torch.testing.assert_close(enc.encode("a photo of a cat")[0], out.last_hidden_state,
                               atol=ATOL, rtol=0)


def test_sd1_without_text_model_prefix_loads(sd1_sd, sd1):
    old = {k.replace("transformer.text_model.", "transformer."): v for k, v in sd1_sd.items()}
    enc = TextEncoder.from_checkpoint(old)
    torch.testing.assert_close(enc.encode("a cat")[0], sd1.encode("a cat")[0], atol=0, rtol=0)


def test_sd2_matches_open_clip_penultimate_with_norm(sd2_sd):
    enc = TextEncoder.from_checkpoint(sd2_sd)
    assert enc.family == "sd2"
    ref = open_clip_reference(sd2_sd, SD2_PREFIX, W_G, 3, 40)
    ids = ids_for("a photo of a cat", 0)
    with torch.no_grad():
        pooled_ref, tokens_ref = ref(ids)
        penultimate = ref.ln_final(open_clip_hidden(ref, ids, -2))
    cond, pooled = enc.encode("a photo of a cat")
    torch.testing.assert_close(cond, penultimate, atol=ATOL, rtol=0)
    torch.testing.assert_close(pooled, pooled_ref, atol=ATOL, rtol=0)
    enc.set_clip_skip(-1)
    torch.testing.assert_close(enc.encode("a photo of a cat")[0], tokens_ref, atol=ATOL, rtol=0)


def test_sdxl_concatenates_penultimate_without_norm(sdxl_sd):
    enc = TextEncoder.from_checkpoint(sdxl_sd)
    assert enc.family == "sdxl"
    ref_l = hf_reference(sdxl_sd, SDXL_L_PREFIX, W_L, 3)
    ref_g = open_clip_reference(sdxl_sd, SDXL_G_PREFIX, W_G, 3, 40)
    text = "a photo of a cat"
    with torch.no_grad():
        l_hidden = ref_l(ids_for(text, END_TOKEN), output_hidden_states=True).hidden_states[-2]
        ids_g = ids_for(text, 0)
        g_hidden = open_clip_hidden(ref_g, ids_g, -2)
        pooled_ref, _ = ref_g(ids_g)
    cond, pooled = enc.encode(text)
    assert cond.shape == (1, 77, W_L + W_G) and pooled.shape == (1, 40)
    torch.testing.assert_close(cond[..., :W_L], l_hidden, atol=ATOL, rtol=0)
    torch.testing.assert_close(cond[..., W_L:], g_hidden, atol=ATOL, rtol=0)
    torch.testing.assert_close(pooled, pooled_ref, atol=ATOL, rtol=0)


def test_sdxl_separate_prompts_pad_shorter_side(sdxl_sd):
    enc = TextEncoder.from_checkpoint(sdxl_sd)
    cond, _ = enc.encode_sdxl("cat " * 100, "a dog")
    assert cond.shape == (1, 154, W_L + W_G)
    single, _ = enc.encode("a dog")
    torch.testing.assert_close(cond[:, :77, :W_L], single[..., :W_L], atol=0, rtol=0)


def test_refiner_has_bigg_only():
    sd = text_encoder_state_dict("sdxl_refiner_g", width=W_G, layers=2, seed=5, proj_dim=40)
    enc = TextEncoder.from_checkpoint(sd)
    cond, pooled = enc.encode("a cat")
    assert enc.family == "sdxl_refiner" and cond.shape == (1, 77, W_G) and pooled.shape == (1, 40)


def test_fp16_checkpoint_is_upcast(sd1_sd, sd1):
    enc = TextEncoder.from_checkpoint({k: v.half() for k, v in sd1_sd.items()})
    cond, _ = enc.encode("a cat")
    assert cond.dtype == torch.float32
    torch.testing.assert_close(cond, sd1.encode("a cat")[0], atol=5e-2, rtol=0)


def test_weights_are_used_without_copies(sd1_sd):
    enc = TextEncoder.from_checkpoint(sd1_sd)
    table = enc.stack["l"].embeddings.token_embedding.weight
    assert table.data_ptr() == sd1_sd[SD1_PREFIX + "embeddings.token_embedding.weight"].data_ptr()


# ----------------------------------------------------------------------------- chunking
def test_hundred_tokens_make_two_chunks(sd1):
    chunks = sd1.tokenize("cat " * 100)
    assert [len(c) for c in chunks] == [77, 77]
    ids = [[t for t, _ in c] for c in chunks]
    assert ids[0][0] == START_TOKEN and ids[0][76] == END_TOKEN and ids[0][1:76] == [2368] * 75
    assert ids[1][:27] == [START_TOKEN] + [2368] * 25 + [END_TOKEN]
    assert ids[1][27:] == [END_TOKEN] * 50
    cond, _ = sd1.encode("cat " * 100)
    assert cond.shape == (1, 154, W_L)


def test_openclip_pads_with_zero(sd2_sd):
    enc = TextEncoder.from_checkpoint(sd2_sd)
    ids = [t for t, _ in enc.tokenize("a cat")[0]]
    assert ids[:4] == [START_TOKEN, 320, 2368, END_TOKEN] and set(ids[4:]) == {0}


def test_word_that_does_not_fit_moves_to_next_chunk(sd1):
    # 74 single-token words, then a 3-token word: it does not fit and is not split.
    word = "photography-like"
    n = len(get_tokenizer()(word)["input_ids"]) - 2
    assert 1 < n < 8
    chunks = sd1.tokenize("cat " * 74 + word)
    assert [t for t, _ in chunks[0]][75:] == [END_TOKEN, END_TOKEN]
    assert [t for t, _ in chunks[1]][1:1 + n] == get_tokenizer()(word)["input_ids"][1:-1]


def test_long_word_is_split_across_chunks(sd1):
    word = "-".join(["cat"] * 6)  # 11 tokens ≥ 8: split
    ids = get_tokenizer()(word)["input_ids"][1:-1]
    chunks = sd1.tokenize("cat " * 70 + word)
    first = [t for t, _ in chunks[0]]
    assert first[71:76] == ids[:5] and first[76] == END_TOKEN
    assert [t for t, _ in chunks[1]][1:1 + len(ids) - 5] == ids[5:]


# ----------------------------------------------------------------------------- weighting
def test_weight_one_equals_unweighted(sd1):
    torch.testing.assert_close(sd1.encode("a (cat:1.0)")[0], sd1.encode("a cat")[0], atol=0, rtol=0)


def test_weight_scales_distance_from_empty_prompt_at_weighted_positions_only(sd1):
    plain = sd1.encode("a cat")[0]
    weighted = sd1.encode("a (cat:2)")[0]
    empty = sd1.encode("")[0]
    expected = plain.clone()
    expected[:, 2] = (plain[:, 2] - empty[:, 2]) * 2 + empty[:, 2]
    torch.testing.assert_close(weighted, expected, atol=1e-5, rtol=0)
    assert (weighted[:, 2] - plain[:, 2]).abs().max() > 1e-2


def test_pooled_output_is_not_weighted(sd1):
    torch.testing.assert_close(sd1.encode("a (cat:3)")[1], sd1.encode("a cat")[1], atol=0, rtol=0)


# ----------------------------------------------------------------------------- embeddings
@pytest.fixture
def emb_dir(tmp_path):
    write_embedding(tmp_path / "style.safetensors", W_L, n_vectors=2, seed=11)
    write_embedding(tmp_path / "old.pt", W_L, n_vectors=1, seed=12)
    write_embedding(tmp_path / "xl.safetensors", {"clip_l": W_L, "clip_g": W_G}, n_vectors=3, seed=13)
    return tmp_path


def test_embedding_vectors_are_spliced_into_the_input(sd1_sd, emb_dir):
    from safetensors.torch import load_file

    enc = TextEncoder.from_checkpoint(sd1_sd)
    enc.embedding_dirs = [emb_dir]
    vectors = load_file(str(emb_dir / "style.safetensors"))["emb_params"]
    # Reference: put the vectors in the table at two unused ids and encode those ids.
    table = sd1_sd[SD1_PREFIX + "embeddings.token_embedding.weight"].clone()
    table[1000:1002] = vectors
    ref = hf_reference({**sd1_sd, SD1_PREFIX + "embeddings.token_embedding.weight": table},
                       SD1_PREFIX, W_L, 3)
    ids = [START_TOKEN, 320, 1000, 1001, 2368, END_TOKEN]
    with torch.no_grad():
        expected = ref(torch.tensor([ids + [END_TOKEN] * 71])).last_hidden_state
    cond, _ = enc.encode("a embedding:style cat")
    torch.testing.assert_close(cond, expected, atol=ATOL, rtol=0)
    assert enc.last_warnings == []


def test_pt_embedding_and_trailing_comma(sd1_sd, emb_dir):
    enc = TextEncoder.from_checkpoint(sd1_sd)
    enc.embedding_dirs = [emb_dir]
    chunk = enc.tokenize("embedding:old, cat")[0]
    assert isinstance(chunk[1][0], torch.Tensor) and chunk[2][0] == 267 and chunk[3][0] == 2368


def test_missing_embedding_warns_and_is_ignored_like_comfyui(sd1_sd, emb_dir):
    enc = TextEncoder.from_checkpoint(sd1_sd)
    enc.embedding_dirs = [emb_dir]
    cond, _ = enc.encode("a embedding:nope cat")
    assert any("nope" in w for w in enc.last_warnings)
    torch.testing.assert_close(cond, enc.encode("a cat")[0], atol=0, rtol=0)


def test_embedding_name_cannot_escape_the_folder(sd1_sd, emb_dir):
    enc = TextEncoder.from_checkpoint(sd1_sd)
    enc.embedding_dirs = [emb_dir / "sub"]
    (emb_dir / "sub").mkdir()
    enc.tokenize("embedding:../style")
    assert enc.last_warnings


def test_sdxl_embedding_uses_per_encoder_vectors(sdxl_sd, emb_dir):
    enc = TextEncoder.from_checkpoint(sdxl_sd)
    enc.embedding_dirs = [emb_dir]
    l_chunk = enc.tokenize("embedding:xl", "l")[0]
    g_chunk = enc.tokenize("embedding:xl", "g")[0]
    assert l_chunk[1][0].shape == (W_L,) and g_chunk[3][0].shape == (W_G,)
    cond, _ = enc.encode("embedding:xl")
    assert cond.shape == (1, 77, W_L + W_G) and enc.last_warnings == []


def test_wrong_width_embedding_is_refused_with_warning(sdxl_sd, emb_dir):
    enc = TextEncoder.from_checkpoint(sdxl_sd)
    enc.embedding_dirs = [emb_dir]
    enc.encode("embedding:style")  # SD1 vectors: fit CLIP-L (32) but not bigG (48)
    assert len(enc.last_warnings) == 1 and "48" in enc.last_warnings[0]


def test_module_level_embedding_dirs(sd1_sd, emb_dir):
    from ldm import clip

    enc = TextEncoder.from_checkpoint(sd1_sd)
    clip.set_embedding_dirs([emb_dir])
    try:
        assert isinstance(enc.tokenize("embedding:style")[0][1][0], torch.Tensor)
    finally:
        clip.set_embedding_dirs([])


# ----------------------------------------------------------------------------- clones and patches
def test_clone_shares_weights_and_keeps_settings_apart(sd1):
    other = sd1.clone()
    other.set_clip_skip(-2)
    assert other.stack is sd1.stack and sd1.settings.clip_skip is None


def test_patches_change_encoding_and_are_restored(sd1):
    from ldm.lora import LoraPatch

    name = "l.encoder.layers.0.self_attn.q_proj.weight"
    before = sd1.stack.get_parameter(name).detach().clone()
    patch = LoraPatch(torch.randn(W_L, 2), torch.randn(2, W_L), alpha=2.0)
    patched = sd1.clone()
    assert patched.add_patches({name: patch, "l.nope.weight": patch}, 0.5) == [name]
    base = sd1.encode("a cat")[0]
    assert (patched.encode("a cat")[0] - base).abs().max() > 1e-3
    assert torch.equal(sd1.stack.get_parameter(name), before)
    torch.testing.assert_close(sd1.encode("a cat")[0], base, atol=0, rtol=0)


def test_consume_pops_only_text_encoder_keys(sdxl_sd):
    sd = dict(sdxl_sd)
    sd["model.diffusion_model.out.2.weight"] = torch.zeros(1)
    enc = TextEncoder.from_checkpoint(sd, consume=True)
    assert list(sd) == ["model.diffusion_model.out.2.weight"]
    assert enc.encode("a cat")[0].shape == (1, 77, W_L + W_G)


def test_real_file_extras_are_ignored(sd1_sd, sdxl_sd, sd1):
    """Real files carry position_ids buffers and OpenCLIP's logit_scale; they are not weights."""
    extra = dict(sd1_sd)
    extra[SD1_PREFIX + "embeddings.position_ids"] = torch.arange(77).unsqueeze(0)
    torch.testing.assert_close(TextEncoder.from_checkpoint(extra).encode("a cat")[0],
                               sd1.encode("a cat")[0], atol=0, rtol=0)
    assert SDXL_G_PREFIX + "logit_scale" in sdxl_sd
    TextEncoder.from_checkpoint(sdxl_sd)


def test_weighted_embedding(sd1_sd, emb_dir):
    enc = TextEncoder.from_checkpoint(sd1_sd)
    enc.embedding_dirs = [emb_dir]
    chunk = enc.tokenize("a (embedding:style:1.5) cat")[0]
    assert [w for _, w in chunk[:5]] == [1.0, 1.0, 1.5, 1.5, 1.0]
    plain = enc.encode("a embedding:style cat")[0]
    weighted = enc.encode("a (embedding:style:1.5) cat")[0]
    assert (weighted[:, 2:4] - plain[:, 2:4]).abs().max() > 1e-3
    torch.testing.assert_close(weighted[:, :2], plain[:, :2], atol=1e-6, rtol=0)


def test_heads_rule_matches_real_encoders_and_tiny_files_follow_it():
    assert [heads_for_width(w) for w in (768, 1024, 1280)] == [12, 16, 20]
    assert [heads_for_width(w) for w in (32, 48, 64)] == [4, 4, 4]
    with pytest.raises(ValueError):
        text_encoder_state_dict("sd1", width=32, layers=1, heads=2)


@pytest.mark.parametrize("name,family", [("tiny_sd1", "sd1"), ("tiny_sd2v", "sd2"),
                                         ("tiny_sdxl", "sdxl"), ("tiny_sdxl_refiner", "sdxl_refiner")])
def test_tiny_checkpoints_give_the_unet_its_context_width(tiny_dir, name, family):
    from ldm.checkpoint import load_checkpoint

    model, clip, _ = load_checkpoint(tiny_dir / "checkpoints" / f"{name}.safetensors",
                                     output_vae=False)
    cond, pooled = clip.encode("a (red:1.2) cube on a table")
    assert clip.family == family
    assert cond.shape == (1, 77, model.config.unet.context_dim) and cond.dtype == torch.float32
    assert torch.isfinite(cond).all() and cond.std() > 0.1 and pooled.shape[0] == 1


def test_a1111_brackets_option_is_per_clone(sd1):
    a1111 = sd1.clone()
    a1111.set_a1111_brackets(True)
    assert [w for _, w in a1111.tokenize("a [cat]")[0][:3]] == [1.0, 1.0, pytest.approx(1 / 1.1)]
    assert len([t for t, _ in sd1.tokenize("a [cat]")[0] if t not in (END_TOKEN,)]) > 3  # literal


def test_missing_embedding_before_comma_keeps_the_comma(sd1_sd, emb_dir):
    enc = TextEncoder.from_checkpoint(sd1_sd)
    enc.embedding_dirs = [emb_dir]
    ids = [t for t, _ in enc.tokenize("embedding:nope, cat")[0][:4]]
    assert ids == [START_TOKEN, 267, 2368, END_TOKEN] and enc.last_warnings
