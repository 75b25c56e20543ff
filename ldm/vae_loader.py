"""Standalone VAE files (e.g. `vae-ft-mse-840000-ema-pruned.safetensors`, `sdxl_vae.safetensors`):
plain `encoder.*`/`decoder.*` keys, or the checkpoint's `first_stage_model.*` prefix."""
from __future__ import annotations

from pathlib import Path

from ldm import devices
from ldm.checkpoint import CheckpointError, build_module, detect_vae, load_state_dict, read_metadata
from ldm.vae import VAE
from ldm.vq import first_stage_class

_PREFIXES = ("first_stage_model.", "vae.", "")


def load_vae(path: str | Path) -> VAE:
    """A VAE whose architecture is read from the file's shapes."""
    sd = load_state_dict(path)
    prefix = next((p for p in _PREFIXES if p + "encoder.conv_in.weight" in sd), None)
    if prefix is None:
        found = sorted({k.split(".")[0] for k in sd})[:12]
        raise CheckpointError(f"{Path(path).name} is not a VAE (AutoencoderKL or VQ autoencoder) "
                              f"(no encoder.conv_in.weight; top-level keys: {found})")
    cfg = detect_vae(sd, read_metadata(path), prefix=prefix)
    dtype = devices.compute_dtype(devices.offload_device())
    weights = {k[len(prefix):]: (v.to(dtype) if v.is_floating_point() else v)
               for k, v in sd.items() if k.startswith(prefix)
               and not k[len(prefix):].startswith(("model_ema", "loss"))}
    return VAE(build_module(first_stage_class(cfg), cfg, weights, "VAE"))
