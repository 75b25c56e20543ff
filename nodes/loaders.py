"""Loader nodes: checkpoints (with or without a config YAML), separate UNet / text-encoder / VAE files,
LoRAs, upscale models, clip skip (ComfyUI names and inputs).

Loaded weights go through the engine's model cache keyed by (path, size, mtime, options), so two
workflows that load the same file share one copy; LoRA loaders clone before patching, so the
cached base model is never altered.
"""
from __future__ import annotations

from pathlib import Path

from ldm.checkpoint import load_checkpoint
from ldm.lora import load_lora, lora_patches
from ldm.split_loaders import load_diffusion_model, load_text_encoders
from ldm.upscale import load_upscale_model
from ldm.vae_loader import load_vae
from ldm.yaml_config import apply_model_yaml, read_model_yaml
from nodes.registry import Combo, Float, In, Int, Out, files, node


def file_key(path: Path, *options) -> tuple:
    """A cache key that changes when the file does."""
    st = path.stat()
    return (str(path), st.st_size, st.st_mtime_ns) + tuple(options)


def _stat_fingerprint(ctx, folder: str, name: str) -> str:
    try:
        return repr(file_key(ctx.paths.model_path(folder, name)))
    except Exception as exc:  # reported by run(); only the signature is affected here
        return f"missing:{exc}"


def cached_load(ctx, folder: str, name: str, kind: str, loader, *options):
    """Loads `folder/name` through the model cache (loader receives the resolved Path)."""
    path = ctx.paths.model_path(folder, name)
    key = (kind,) + file_key(path, *options)
    return ctx.models.get(key, lambda: loader(path)) if ctx.models is not None else loader(path)


@node("loaders", display_name="Load Checkpoint")
class CheckpointLoaderSimple:
    """Loads a diffusion model checkpoint, diffusion models are used to denoise latents."""

    INPUTS = [Combo("ckpt_name", files("checkpoints"), tooltip="The name of the checkpoint (model) to load.")]
    OUTPUTS = [Out("MODEL", tooltip="The model used for denoising latents."),
               Out("CLIP", tooltip="The CLIP model used for encoding text prompts."),
               Out("VAE", tooltip="The VAE model used for encoding and decoding images to and from latent space.")]

    @classmethod
    def fingerprint(cls, ctx, ckpt_name, **_):
        return _stat_fingerprint(ctx, "checkpoints", ckpt_name)

    def run(self, ctx, ckpt_name):
        model, clip, vae = cached_load(ctx, "checkpoints", ckpt_name, "checkpoint", load_checkpoint)
        if clip is not None:
            _set_search_dirs(ctx, clip)
        return (model, clip, vae)


@node("advanced/loaders", display_name="Load Checkpoint With Config (DEPRECATED)")
class CheckpointLoader:
    """Loads a checkpoint as its config YAML (models/configs) describes it: prediction type, latent
    scale factor, noise schedule and attention heads from the YAML, checked against the weights."""

    INPUTS = [Combo("config_name", files("configs")), Combo("ckpt_name", files("checkpoints"))]
    OUTPUTS = [Out("MODEL"), Out("CLIP"), Out("VAE")]

    @classmethod
    def fingerprint(cls, ctx, config_name, ckpt_name):
        return _stat_fingerprint(ctx, "checkpoints", ckpt_name) + _stat_fingerprint(ctx, "configs", config_name)

    def run(self, ctx, config_name, ckpt_name):
        config_path = ctx.paths.model_path("configs", config_name)
        yml = read_model_yaml(config_path)
        model, clip, vae = cached_load(
            ctx, "checkpoints", ckpt_name, "checkpoint_with_config",
            lambda p: load_checkpoint(p, adjust=lambda c: apply_model_yaml(yml, c)),
            *file_key(config_path))
        if clip is not None:
            clip = _clip_with_embeddings(ctx, clip)
            if yml.clip_layer is not None and yml.clip_layer < 0:  # ComfyUI applies layer_idx
                clip.set_clip_skip(yml.clip_layer)
            elif yml.clip_layer is not None:
                ctx.warn(f"{config_name}: layer_idx {yml.clip_layer} ignored (only negative indices)")
        return (model, clip, vae)


WEIGHT_DTYPES = ["default", "fp8_e4m3fn", "fp8_e4m3fn_fast", "fp8_e5m2"]
# ComfyUI 0.3.64's text-encoder recipes; only the Stable Diffusion ones are ours to run.
CLIP_TYPES = ["stable_diffusion", "stable_cascade", "sd3", "stable_audio", "mochi", "ltxv", "pixart",
              "cosmos", "lumina2", "wan", "hidream", "chroma", "ace", "omnigen2", "qwen_image",
              "hunyuan_image"]
DUAL_CLIP_TYPES = ["sdxl", "sd3", "flux", "hunyuan_video", "hidream", "hunyuan_image"]
CLIP_DEVICES = ["default", "cpu"]


def _check_clip_type(node: str, clip_type: str, supported: str, what: str) -> None:
    if clip_type != supported:
        raise ValueError(f"{node}: type {clip_type!r} is not supported - only {supported!r} "
                         f"({what}); the text encoders of other model families are not implemented")


def _check_device(ctx, device: str) -> None:
    """device=cpu keeps ComfyUI's text encoder off the GPU; ours runs where the models run."""
    from ldm import devices

    if device == "cpu" and devices.get_device().type != "cpu":
        ctx.warn("device 'cpu' is not honoured: the text encoder runs on " + str(devices.get_device()))


def _clip_with_embeddings(ctx, clip):
    """A clone whose textual-inversion folders are this server's (the cached encoder stays as is)."""
    clip = clip.clone()
    _set_search_dirs(ctx, clip)
    return clip


def _set_search_dirs(ctx, clip) -> None:
    """Where this server keeps textual inversions (and LDM-BERT's tokenizer vocabulary)."""
    clip.embedding_dirs = [str(d) for d in ctx.paths.folder_dirs("embeddings")]
    if hasattr(clip, "vocab_dirs"):  # ldm.ldm_bert
        clip.vocab_dirs = [str(d) for d in ctx.paths.folder_dirs("text_encoders")]


@node("advanced/loaders", display_name="Load Diffusion Model")
class UNETLoader:
    """Loads a diffusion model (UNet) stored on its own, as in models/diffusion_models or models/unet.

    fp8 weight types save GPU memory in ComfyUI; here the weights are kept in the compute type
    (float32 on the CPU), so every option gives the same image."""

    INPUTS = [Combo("unet_name", files("diffusion_models")), Combo("weight_dtype", WEIGHT_DTYPES)]
    OUTPUTS = [Out("MODEL")]

    @classmethod
    def fingerprint(cls, ctx, unet_name, **_):
        return _stat_fingerprint(ctx, "diffusion_models", unet_name)

    def run(self, ctx, unet_name, weight_dtype):
        if weight_dtype != "default":
            ctx.warn(f"UNETLoader: weight_dtype {weight_dtype} is not used; the weights are kept in "
                     "the compute type (float32 on the CPU)")
        return (cached_load(ctx, "diffusion_models", unet_name, "unet", load_diffusion_model),)


@node("advanced/loaders", display_name="Load CLIP")
class CLIPLoader:
    """Loads one text encoder file. type stable_diffusion: CLIP-L (SD1.x), OpenCLIP ViT-H (SD2.x)
    or bigG (SDXL refiner), told apart by the file; other types are refused."""

    INPUTS = [Combo("clip_name", files("text_encoders")), Combo("type", CLIP_TYPES),
              Combo("device", CLIP_DEVICES, optional=True)]
    OUTPUTS = [Out("CLIP")]

    @classmethod
    def fingerprint(cls, ctx, clip_name, **_):
        return _stat_fingerprint(ctx, "text_encoders", clip_name)

    def run(self, ctx, clip_name, type, device="default"):  # noqa: A002 (ComfyUI's input name)
        _check_clip_type("CLIPLoader", type, "stable_diffusion",
                         "SD1.x CLIP-L, SD2.x OpenCLIP ViT-H, SDXL refiner bigG")
        _check_device(ctx, device)
        clip = cached_load(ctx, "text_encoders", clip_name, "clip", lambda p: load_text_encoders([p]))
        return (_clip_with_embeddings(ctx, clip),)


@node("advanced/loaders", display_name="DualCLIPLoader")
class DualCLIPLoader:
    """Loads two text encoder files; type sdxl: CLIP-L + OpenCLIP bigG (either order)."""

    INPUTS = [Combo("clip_name1", files("text_encoders")), Combo("clip_name2", files("text_encoders")),
              Combo("type", DUAL_CLIP_TYPES), Combo("device", CLIP_DEVICES, optional=True)]
    OUTPUTS = [Out("CLIP")]

    @classmethod
    def fingerprint(cls, ctx, clip_name1, clip_name2, **_):
        return _stat_fingerprint(ctx, "text_encoders", clip_name1) + \
            _stat_fingerprint(ctx, "text_encoders", clip_name2)

    def run(self, ctx, clip_name1, clip_name2, type, device="default"):  # noqa: A002
        _check_clip_type("DualCLIPLoader", type, "sdxl", "SDXL CLIP-L + bigG")
        _check_device(ctx, device)
        second = ctx.paths.model_path("text_encoders", clip_name2)
        clip = cached_load(ctx, "text_encoders", clip_name1, "clip_pair",
                           lambda p: load_text_encoders([p, second]), *file_key(second))
        return (_clip_with_embeddings(ctx, clip),)


@node("loaders", display_name="Load VAE")
class VAELoader:
    """Loads a standalone VAE file (plain or first_stage_model.* keys)."""

    INPUTS = [Combo("vae_name", files("vae"))]
    OUTPUTS = [Out("VAE")]

    @classmethod
    def fingerprint(cls, ctx, vae_name):
        return _stat_fingerprint(ctx, "vae", vae_name)

    def run(self, ctx, vae_name):
        return (cached_load(ctx, "vae", vae_name, "vae", load_vae),)


def _apply_lora(ctx, model, clip, lora_name: str, strength_model: float, strength_clip: float):
    """Clones model/clip and records the LoRA's patches on the clones (the cached base stays intact)."""
    lora_sd = cached_load(ctx, "loras", lora_name, "lora", load_lora)
    use_model = model is not None and strength_model != 0
    use_clip = clip is not None and strength_clip != 0
    match = lora_patches(
        lora_sd,
        unet_params=dict(model.unet.named_parameters()) if model is not None else None,
        te_params={s: list(m.named_parameters()) for s, m in clip.stack.items()} if clip is not None else None,
        unet_config=model.config.unet if model is not None else None)
    new_model, new_clip = model, clip
    if use_model and match.unet:
        new_model = model.clone()
        new_model.add_patches(match.unet, strength_model)
    if use_clip and match.te:
        new_clip = clip.clone()
        new_clip.add_patches(match.te, strength_clip)
    unmatched = match.unmatched if clip is not None else [
        k for k in match.unmatched if not k.startswith(("lora_te", "text_encoder", "te_", "te1", "te2"))]
    if unmatched:
        ctx.warn(f"LoRA {lora_name}: {len(unmatched)} keys matched no weight "
                 f"(e.g. {unmatched[:3]})")
    if not match.unet and not match.te:
        raise ValueError(f"input 'lora_name': {lora_name} matches no weight of this model "
                         "(a LoRA for another model family?)")
    return new_model, new_clip


@node("loaders", display_name="Load LoRA")
class LoraLoader:
    """This LoRA loader is used to modify both diffusion and CLIP models, altering the way in which latents
    are denoised such as applying styles. Multiple LoRA nodes can be linked together."""

    INPUTS = [In("model", "MODEL", tooltip="The diffusion model the LoRA will be applied to."),
              In("clip", "CLIP", tooltip="The CLIP model the LoRA will be applied to."),
              Combo("lora_name", files("loras"), tooltip="The name of the LoRA."),
              Float("strength_model", 1.0, min=-100.0, max=100.0, step=0.01,
                    tooltip="How strongly to modify the diffusion model. This value can be negative."),
              Float("strength_clip", 1.0, min=-100.0, max=100.0, step=0.01,
                    tooltip="How strongly to modify the CLIP model. This value can be negative.")]
    OUTPUTS = [Out("MODEL", tooltip="The modified diffusion model."),
               Out("CLIP", tooltip="The modified CLIP model.")]

    @classmethod
    def fingerprint(cls, ctx, lora_name, **_):
        return _stat_fingerprint(ctx, "loras", lora_name)

    def run(self, ctx, model, clip, lora_name, strength_model, strength_clip):
        if strength_model == 0 and strength_clip == 0:
            return (model, clip)
        return _apply_lora(ctx, model, clip, lora_name, strength_model, strength_clip)


@node("loaders", display_name="LoraLoaderModelOnly")
class LoraLoaderModelOnly:
    """Applies a LoRA to the diffusion model only."""

    INPUTS = [In("model", "MODEL"), Combo("lora_name", files("loras")),
              Float("strength_model", 1.0, min=-100.0, max=100.0, step=0.01)]
    OUTPUTS = [Out("MODEL")]

    @classmethod
    def fingerprint(cls, ctx, lora_name, **_):
        return _stat_fingerprint(ctx, "loras", lora_name)

    def run(self, ctx, model, lora_name, strength_model):
        if strength_model == 0:
            return (model,)
        return (_apply_lora(ctx, model, None, lora_name, strength_model, 0.0)[0],)


@node("loaders", display_name="Load Upscale Model")
class UpscaleModelLoader:
    """Loads an image upscaling model (ESRGAN, RealESRGAN, SwinIR, compact, … via spandrel)."""

    INPUTS = [Combo("model_name", files("upscale_models"))]
    OUTPUTS = [Out("UPSCALE_MODEL")]

    @classmethod
    def fingerprint(cls, ctx, model_name):
        return _stat_fingerprint(ctx, "upscale_models", model_name)

    def run(self, ctx, model_name):
        return (cached_load(ctx, "upscale_models", model_name, "upscale", load_upscale_model),)


@node("conditioning", display_name="CLIP Set Last Layer")
class CLIPSetLastLayer:
    """Stops the text encoder at an earlier layer ("clip skip"; −1 = last, −2 = penultimate)."""

    INPUTS = [In("clip", "CLIP"), Int("stop_at_clip_layer", -1, min=-24, max=-1, step=1)]
    OUTPUTS = [Out("CLIP")]

    def run(self, ctx, clip, stop_at_clip_layer):
        clip = clip.clone()
        clip.set_clip_skip(stop_at_clip_layer)
        return (clip,)
