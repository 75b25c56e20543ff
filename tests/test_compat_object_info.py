"""Our node declarations against ComfyUI 0.3.64's own (nodes.py and comfy_extras/nodes_*.py, Oct 2025).

The table (tests/comfy_object_info_facts.py) was written by hand from ComfyUI's declarations: class names, display names,
categories, input names and ORDER (required, then optional), types, defaults and ranges, combo
options in their order, outputs and output names. It is checked field by field against
``REGISTRY.object_info()``, so a declaration drifting away from ComfyUI fails here with the node
and field named. The UI-format tests convert workflows with positional ``widgets_values`` written
the way ComfyUI's frontend writes them: that only gives the right named inputs when our widget
order is ComfyUI's.

Where a value is not certain for 0.3.64 (e.g. GrowMask's display name changed around the V3
conversion of nodes_mask.py) the table leaves it out rather than guess.
"""
from __future__ import annotations

import pytest

from engine.formats.comfy_ui import ui_to_prompt
from nodes.plugins import load_all
from nodes.registry import REGISTRY
from tests.comfy_object_info_facts import (ANY_COMBO, COMFY_SAMPLERS, COMFY_SCHEDULERS, EXPECTED, FILES,
                                          SAMPLER, SCHEDULER)

load_all()


CLASS_KEYS = {"input", "input_order", "output", "output_is_list", "output_name", "name", "display_name",
              "description", "python_module", "category", "output_node", "output_tooltips"}


class _FakePaths:
    """Just enough of engine.paths.Paths for file combos."""

    def list_files(self, folder: str) -> list[str]:
        return [f"{folder}_a.safetensors", f"{folder}_b.safetensors"]


@pytest.fixture(scope="module")
def info() -> dict:
    return REGISTRY.object_info(_FakePaths())


def test_every_comfyui_core_node_is_declared():
    missing = sorted(set(EXPECTED) - {nd.class_type for nd in REGISTRY.all()})
    assert not missing, f"ComfyUI core nodes we do not declare: {missing}"


def _check_input(cls: str, section: str, entry: list, row: tuple, problems: list) -> None:
    name, want_type, want_opts = row
    where = f"{cls}.{section}.{name}"
    assert isinstance(entry, list) and len(entry) in (1, 2), f"{where}: malformed entry {entry!r}"
    head, opts = entry[0], (entry[1] if len(entry) == 2 else {})
    if want_type is FILES:
        if not (isinstance(head, list) and all(isinstance(c, str) for c in head) and head):
            problems.append(f"{where}: expected a file combo, got {head!r}")
    elif want_type in (SAMPLER, SCHEDULER, ANY_COMBO):
        if not isinstance(head, list):
            problems.append(f"{where}: expected a combo, got {head!r}")
    elif isinstance(want_type, list):
        if head != want_type:
            problems.append(f"{where}: options {head!r} != ComfyUI's {want_type!r}")
    elif head != want_type:
        problems.append(f"{where}: type {head!r} != {want_type!r}")
    for key, value in want_opts.items():
        got = opts.get(key, "<missing>")
        if got != value or type(got) is bool and type(value) is not bool:
            problems.append(f"{where}: {key} = {got!r}, ComfyUI has {value!r}")


@pytest.mark.parametrize("cls", sorted(EXPECTED))
def test_declaration_matches_comfyui(cls, info):
    exp, got = EXPECTED[cls], info[cls]
    problems: list[str] = []
    req = [r[0] for r in exp["inputs"]]
    opt = [r[0] for r in exp["optional"]]
    if got["input_order"].get("required", []) != req:
        problems.append(f"required order {got['input_order'].get('required')} != {req}")
    if got["input_order"].get("optional", []) != opt:
        problems.append(f"optional order {got['input_order'].get('optional', [])} != {opt}")
    for section, rows in (("required", exp["inputs"]), ("optional", exp["optional"])):
        declared = got["input"].get(section, {})
        if list(declared) != [r[0] for r in rows]:
            problems.append(f"input.{section} keys {list(declared)} != {[r[0] for r in rows]}")
        for row in rows:
            if row[0] in declared:
                _check_input(cls, section, declared[row[0]], row, problems)
    checks = [("output", exp["outputs"]), ("output_name", exp["names"]),
              ("output_is_list", exp["is_list"]), ("output_node", exp["output_node"]),
              ("category", exp["category"]), ("name", cls)]
    if exp["display"] is not None:
        checks.append(("display_name", exp["display"]))
    if exp["description"] is not None:
        checks.append(("description", exp["description"]))
    for key, value in checks:
        if got[key] != value:
            problems.append(f"{key} = {got[key]!r}, ComfyUI has {value!r}")
    assert not problems, f"{cls}:\n  " + "\n  ".join(problems)


def test_entry_shape(info):
    for cls, entry in info.items():
        assert set(entry) == CLASS_KEYS, (cls, set(entry) ^ CLASS_KEYS)
        assert set(entry["input"]) <= {"required", "optional", "hidden"} and "required" in entry["input"], cls
        assert set(entry["input_order"]) <= {"required", "optional"}, cls
        for section in ("required", "optional"):
            assert list(entry["input"].get(section, {})) == entry["input_order"].get(section, []), (cls, section)
        n = len(entry["output"])
        assert len(entry["output_is_list"]) == n and len(entry["output_name"]) == n, cls
        assert len(entry["output_tooltips"]) == n, cls
        assert isinstance(entry["description"], str) and isinstance(entry["python_module"], str), cls
        assert isinstance(entry["output_node"], bool), cls
        for section in ("required", "optional"):
            for name, spec in entry["input"].get(section, {}).items():
                assert isinstance(spec, list) and 1 <= len(spec) <= 2, (cls, name, spec)
                assert isinstance(spec[0], (str, list)), (cls, name, spec)
                if len(spec) == 2:
                    assert isinstance(spec[1], dict), (cls, name, spec)
    assert info["SaveImage"]["input"]["hidden"]["prompt"] == "PROMPT"
    assert info["SaveImage"]["input"]["hidden"]["extra_pnginfo"] == "EXTRA_PNGINFO"
    assert "hidden" not in info["KSampler"]["input"]


def test_file_combo_shape(info):
    ckpt = info["CheckpointLoaderSimple"]["input"]["required"]["ckpt_name"]
    assert ckpt[0] == ["checkpoints_a.safetensors", "checkpoints_b.safetensors"]
    assert isinstance(ckpt[1], dict) and ckpt[1]["tooltip"] == "The name of the checkpoint (model) to load."
    image = info["LoadImage"]["input"]["required"]["image"]
    assert isinstance(image[0], list) and image[1].get("image_upload") is True
    # Without paths (schema-only use), the file list is empty but still a list.
    bare = REGISTRY.get("VAELoader").object_info()["input"]["required"]["vae_name"]
    assert bare == [[], {}]


def test_tooltips_match_comfyui(info):
    ks = info["KSampler"]["input"]["required"]
    assert ks["seed"][1]["tooltip"] == "The random seed used for creating the noise."
    assert ks["scheduler"][1]["tooltip"] == "The scheduler controls how noise is gradually removed to form the image."
    assert ks["denoise"][1]["tooltip"].startswith("The amount of denoising applied, lower values will maintain")
    assert info["KSampler"]["output_tooltips"] == ["The denoised latent."]
    assert info["CheckpointLoaderSimple"]["output_tooltips"] == [
        "The model used for denoising latents.", "The CLIP model used for encoding text prompts.",
        "The VAE model used for encoding and decoding images to and from latent space."]
    assert info["VAEDecode"]["output_tooltips"] == ["The decoded image."]
    tiled = info["VAEEncodeTiled"]["input"]["required"]
    assert tiled["temporal_size"][1]["tooltip"] == "Only used for video VAEs: Amount of frames to encode at a time."
    assert info["VAEDecodeTiled"]["input"]["required"]["temporal_overlap"][1]["tooltip"] == \
        "Only used for video VAEs: Amount of frames to overlap."


def test_scheduler_options_are_comfyuis_in_comfyuis_order(info):
    for cls in ("KSampler", "KSamplerAdvanced", "BasicScheduler"):
        assert info[cls]["input"]["required"]["scheduler"][0] == COMFY_SCHEDULERS, cls


def test_sampler_options_follow_comfyuis_order(info):
    offered = info["KSampler"]["input"]["required"]["sampler_name"][0]
    assert offered == info["KSamplerAdvanced"]["input"]["required"]["sampler_name"][0]
    assert offered == info["KSamplerSelect"]["input"]["required"]["sampler_name"][0]
    known = [n for n in offered if n in COMFY_SAMPLERS]
    assert known == [n for n in COMFY_SAMPLERS if n in offered], "ComfyUI's relative order is not kept"
    assert offered[0] == "euler"
    must = ["euler", "euler_ancestral", "heun", "dpm_2", "dpm_2_ancestral", "lms", "dpmpp_2s_ancestral", "dpmpp_sde",
            "dpmpp_2m", "dpmpp_2m_sde", "dpmpp_3m_sde", "ddim", "uni_pc", "uni_pc_bh2", "lcm", "ddpm", "ipndm", "deis",
            "heunpp2", "dpm_fast", "dpm_adaptive"]
    assert not [n for n in must if n not in offered]


def test_every_comfyui_sampler_is_offered(info):
    offered = info["KSampler"]["input"]["required"]["sampler_name"][0]
    assert [n for n in COMFY_SAMPLERS if n not in offered] == []


# ------------------------------------------------------------------------ UI-format workflows
def _ui_node(nid, type_, widgets, inputs=(), outputs=(), mode=0):
    return {"id": nid, "type": type_, "pos": [100 * nid, 100], "size": [315, 100], "flags": {}, "order": nid,
            "mode": mode, "inputs": [dict(i) for i in inputs], "outputs": [dict(o) for o in outputs],
            "properties": {"Node name for S&R": type_}, "widgets_values": list(widgets)}


def _in(name, type_, link=None):
    return {"name": name, "type": type_, "link": link}


def _out(name, type_, links=(), slot=0):
    return {"name": name, "type": type_, "links": list(links), "slot_index": slot}


def _workflow(nodes, links=()):
    return {"last_node_id": max(n["id"] for n in nodes), "last_link_id": len(links), "nodes": nodes,
            "links": [list(l) for l in links], "groups": [], "config": {},
            "extra": {"ds": {"scale": 1.0, "offset": [0, 0]}}, "version": 0.4}


def test_ui_txt2img_positional_widgets_map_to_named_inputs():
    """ComfyUI's default workflow as its frontend saves it (seed followed by its control value)."""
    nodes = [
        _ui_node(4, "CheckpointLoaderSimple", ["v1-5-pruned-emaonly.safetensors"],
                 outputs=[_out("MODEL", "MODEL", [1], 0), _out("CLIP", "CLIP", [3, 5], 1), _out("VAE", "VAE", [8], 2)]),
        _ui_node(6, "CLIPTextEncode", ["beautiful scenery nature glass bottle landscape"],
                 inputs=[_in("clip", "CLIP", 3)], outputs=[_out("CONDITIONING", "CONDITIONING", [4])]),
        _ui_node(7, "CLIPTextEncode", ["text, watermark"], inputs=[_in("clip", "CLIP", 5)],
                 outputs=[_out("CONDITIONING", "CONDITIONING", [6])]),
        _ui_node(5, "EmptyLatentImage", [512, 768, 2], outputs=[_out("LATENT", "LATENT", [2])]),
        _ui_node(3, "KSampler", [156680208700286, "randomize", 20, 8, "euler", "normal", 1],
                 inputs=[_in("model", "MODEL", 1), _in("positive", "CONDITIONING", 4),
                         _in("negative", "CONDITIONING", 6), _in("latent_image", "LATENT", 2)],
                 outputs=[_out("LATENT", "LATENT", [7])]),
        _ui_node(8, "VAEDecode", [], inputs=[_in("samples", "LATENT", 7), _in("vae", "VAE", 8)],
                 outputs=[_out("IMAGE", "IMAGE", [9])]),
        _ui_node(9, "SaveImage", ["ComfyUI"], inputs=[_in("images", "IMAGE", 9)]),
    ]
    links = [(1, 4, 0, 3, 0, "MODEL"), (2, 5, 0, 3, 3, "LATENT"), (3, 4, 1, 6, 0, "CLIP"),
             (4, 6, 0, 3, 1, "CONDITIONING"), (5, 4, 1, 7, 0, "CLIP"), (6, 7, 0, 3, 2, "CONDITIONING"),
             (7, 3, 0, 8, 0, "LATENT"), (8, 4, 2, 8, 1, "VAE"), (9, 8, 0, 9, 0, "IMAGE")]
    prompt = ui_to_prompt(_workflow(nodes, links), REGISTRY)
    assert prompt["3"]["inputs"] == {"seed": 156680208700286, "steps": 20, "cfg": 8, "sampler_name": "euler",
                                     "scheduler": "normal", "denoise": 1, "model": ["4", 0],
                                     "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["5", 0]}
    assert prompt["5"]["inputs"] == {"width": 512, "height": 768, "batch_size": 2}
    assert prompt["4"]["inputs"] == {"ckpt_name": "v1-5-pruned-emaonly.safetensors"}
    assert prompt["6"]["inputs"] == {"text": "beautiful scenery nature glass bottle landscape", "clip": ["4", 1]}
    assert prompt["8"]["inputs"] == {"samples": ["3", 0], "vae": ["4", 2]}
    assert prompt["9"]["inputs"] == {"filename_prefix": "ComfyUI", "images": ["8", 0]}


# (class, widgets_values as ComfyUI's frontend writes them, expected widget inputs)
UI_CASES = [
    ("CheckpointLoader", ["v1-inference.yaml", "model.ckpt"], {"config_name": "v1-inference.yaml", "ckpt_name": "model.ckpt"}),
    ("VAELoader", ["vae-ft-mse.safetensors"], {"vae_name": "vae-ft-mse.safetensors"}),
    ("UNETLoader", ["sd15_unet.safetensors", "default"], {"unet_name": "sd15_unet.safetensors", "weight_dtype": "default"}),
    ("CLIPLoader", ["clip_l.safetensors", "stable_diffusion", "default"],
     {"clip_name": "clip_l.safetensors", "type": "stable_diffusion", "device": "default"}),
    ("DualCLIPLoader", ["clip_l.safetensors", "clip_g.safetensors", "sdxl", "default"],
     {"clip_name1": "clip_l.safetensors", "clip_name2": "clip_g.safetensors", "type": "sdxl", "device": "default"}),
    ("LoraLoader", ["style.safetensors", 0.8, 0.6],
     {"lora_name": "style.safetensors", "strength_model": 0.8, "strength_clip": 0.6}),
    ("LoraLoaderModelOnly", ["style.safetensors", 0.7], {"lora_name": "style.safetensors", "strength_model": 0.7}),
    ("UpscaleModelLoader", ["4x-UltraSharp.pth"], {"model_name": "4x-UltraSharp.pth"}),
    ("CLIPSetLastLayer", [-2], {"stop_at_clip_layer": -2}),
    ("CLIPTextEncodeSDXL", [1024, 1024, 0, 0, 1024, 1024, "a castle", "a castle, oil"],
     {"width": 1024, "height": 1024, "crop_w": 0, "crop_h": 0, "target_width": 1024, "target_height": 1024,
      "text_g": "a castle", "text_l": "a castle, oil"}),
    ("CLIPTextEncodeSDXLRefiner", [6, 1024, 1024, "a castle"],
     {"ascore": 6, "width": 1024, "height": 1024, "text": "a castle"}),
    ("ConditioningAverage", [0.3], {"conditioning_to_strength": 0.3}),
    ("ConditioningSetArea", [256, 512, 64, 0, 1.0], {"width": 256, "height": 512, "x": 64, "y": 0, "strength": 1.0}),
    ("ConditioningSetAreaPercentage", [0.5, 1.0, 0.5, 0, 1.2],
     {"width": 0.5, "height": 1.0, "x": 0.5, "y": 0, "strength": 1.2}),
    ("ConditioningSetAreaStrength", [0.8], {"strength": 0.8}),
    ("ConditioningSetMask", [1.0, "mask bounds"], {"strength": 1.0, "set_cond_area": "mask bounds"}),
    ("ConditioningSetTimestepRange", [0.0, 0.5], {"start": 0.0, "end": 0.5}),
    ("InpaintModelConditioning", [True], {"noise_mask": True}),
    ("KSamplerAdvanced", ["enable", 42, "fixed", 25, 7.5, "dpmpp_2m", "karras", 0, 10000, "disable"],
     {"add_noise": "enable", "noise_seed": 42, "steps": 25, "cfg": 7.5, "sampler_name": "dpmpp_2m",
      "scheduler": "karras", "start_at_step": 0, "end_at_step": 10000, "return_with_leftover_noise": "disable"}),
    ("KSampler", [5, True, 30, 7, "euler_ancestral", "karras", 0.6],  # a 2023 file: boolean control value
     {"seed": 5, "steps": 30, "cfg": 7, "sampler_name": "euler_ancestral", "scheduler": "karras", "denoise": 0.6}),
    ("LatentUpscale", ["nearest-exact", 1152, 1536, "disabled"],
     {"upscale_method": "nearest-exact", "width": 1152, "height": 1536, "crop": "disabled"}),
    ("LatentUpscaleBy", ["bislerp", 1.5], {"upscale_method": "bislerp", "scale_by": 1.5}),
    ("LatentComposite", [64, 128, 16], {"x": 64, "y": 128, "feather": 16}),
    ("LatentCompositeMasked", [8, 16, True], {"x": 8, "y": 16, "resize_source": True}),
    ("LatentBlend", [0.25], {"blend_factor": 0.25}),
    ("LatentFromBatch", [1, 2], {"batch_index": 1, "length": 2}),
    ("RepeatLatentBatch", [3], {"amount": 3}),
    ("LatentFlip", ["y-axis: horizontally"], {"flip_method": "y-axis: horizontally"}),
    ("LatentRotate", ["90 degrees"], {"rotation": "90 degrees"}),
    ("LatentCrop", [256, 320, 32, 64], {"width": 256, "height": 320, "x": 32, "y": 64}),
    ("VAEDecodeTiled", [512, 64, 64, 8], {"tile_size": 512, "overlap": 64, "temporal_size": 64, "temporal_overlap": 8}),
    ("VAEEncodeTiled", [1024, 128, 32, 4], {"tile_size": 1024, "overlap": 128, "temporal_size": 32, "temporal_overlap": 4}),
    ("VAEEncodeForInpaint", [6], {"grow_mask_by": 6}),
    ("LoadImage", ["example.png", "image"], {"image": "example.png"}),  # the upload button's value trails
    ("LoadImageMask", ["mask.png", "alpha", "image"], {"image": "mask.png", "channel": "alpha"}),
    ("SaveImage", ["portraits/%date:yyyy-MM-dd%/img"], {"filename_prefix": "portraits/%date:yyyy-MM-dd%/img"}),
    ("PreviewImage", [], {}),
    ("ImageScale", ["lanczos", 1024, 0, "center"], {"upscale_method": "lanczos", "width": 1024, "height": 0, "crop": "center"}),
    ("ImageScaleBy", ["area", 0.5], {"upscale_method": "area", "scale_by": 0.5}),
    ("ImageScaleToTotalPixels", ["bicubic", 1.0], {"upscale_method": "bicubic", "megapixels": 1.0}),
    ("ImagePadForOutpaint", [64, 0, 128, 0, 40], {"left": 64, "top": 0, "right": 128, "bottom": 0, "feathering": 40}),
    ("ImageCrop", [256, 128, 10, 20], {"width": 256, "height": 128, "x": 10, "y": 20}),
    ("ImageBlend", [0.5, "overlay"], {"blend_factor": 0.5, "blend_mode": "overlay"}),
    ("ImageBlur", [3, 1.5], {"blur_radius": 3, "sigma": 1.5}),
    ("ImageSharpen", [2, 1.0, 0.5], {"sharpen_radius": 2, "sigma": 1.0, "alpha": 0.5}),
    ("SolidMask", [0.5, 512, 256], {"value": 0.5, "width": 512, "height": 256}),
    ("MaskComposite", [10, 20, "add"], {"x": 10, "y": 20, "operation": "add"}),
    ("FeatherMask", [4, 8, 12, 16], {"left": 4, "top": 8, "right": 12, "bottom": 16}),
    ("GrowMask", [5, False], {"expand": 5, "tapered_corners": False}),
    ("ImageToMask", ["green"], {"channel": "green"}),
    ("ThresholdMask", [0.25], {"value": 0.25}),
    ("CropMask", [1, 2, 300, 200], {"x": 1, "y": 2, "width": 300, "height": 200}),
    ("SamplerCustom", [True, 42, "randomize", 1.0], {"add_noise": True, "noise_seed": 42, "cfg": 1.0}),
    ("BasicScheduler", ["karras", 12, 0.5], {"scheduler": "karras", "steps": 12, "denoise": 0.5}),
    ("KarrasScheduler", [20, 14.6, 0.03, 7.0], {"steps": 20, "sigma_max": 14.6, "sigma_min": 0.03, "rho": 7.0}),
    ("ExponentialScheduler", [20, 14.6, 0.03], {"steps": 20, "sigma_max": 14.6, "sigma_min": 0.03}),
    ("PolyexponentialScheduler", [20, 14.6, 0.03, 1.5],
     {"steps": 20, "sigma_max": 14.6, "sigma_min": 0.03, "rho": 1.5}),
    ("SDTurboScheduler", [1, 1.0], {"steps": 1, "denoise": 1.0}),
    ("LaplaceScheduler", [20, 14.6, 0.03, 0.5, 0.6],
     {"steps": 20, "sigma_max": 14.6, "sigma_min": 0.03, "mu": 0.5, "beta": 0.6}),
    ("VPScheduler", [20, 19.9, 0.1, 0.001], {"steps": 20, "beta_d": 19.9, "beta_min": 0.1, "eps_s": 0.001}),
    ("SetFirstSigma", [100.0], {"sigma": 100.0}),
    ("ExtendIntermediateSigmas", [3, -1.0, 12.0, "cosine"],
     {"steps": 3, "start_at_sigma": -1.0, "end_at_sigma": 12.0, "spacing": "cosine"}),
    ("SamplingPercentToSigma", [0.25, True], {"sampling_percent": 0.25, "return_actual_sigma": True}),
    ("SamplerER_SDE", ["ODE", 2, 0.5, 1.0], {"solver_type": "ODE", "max_stage": 2, "eta": 0.5, "s_noise": 1.0}),
    ("BetaSamplingScheduler", [20, 0.6, 0.6], {"steps": 20, "alpha": 0.6, "beta": 0.6}),
    ("AlignYourStepsScheduler", ["SDXL", 10, 1.0], {"model_type": "SDXL", "steps": 10, "denoise": 1.0}),
    ("SplitSigmas", [5], {"step": 5}),
    ("SplitSigmasDenoise", [0.4], {"denoise": 0.4}),
    ("RandomNoise", [7, "fixed"], {"noise_seed": 7}),
    ("CFGGuider", [4.5], {"cfg": 4.5}),
    ("DualCFGGuider", [5.0, 3.0, "nested"], {"cfg_conds": 5.0, "cfg_cond2_negative": 3.0, "style": "nested"}),
    ("KSamplerSelect", ["dpmpp_2m"], {"sampler_name": "dpmpp_2m"}),
    ("SamplerEulerAncestral", [0.8, 1.0], {"eta": 0.8, "s_noise": 1.0}),
    ("SamplerEulerAncestralCFGPP", [0.5, 1.0], {"eta": 0.5, "s_noise": 1.0}),
    ("SamplerLMS", [3], {"order": 3}),
    ("SamplerDPMPP_3M_SDE", [1.0, 1.0, "cpu"], {"eta": 1.0, "s_noise": 1.0, "noise_device": "cpu"}),
    ("SamplerDPMPP_2M_SDE", ["heun", 1.0, 1.0, "gpu"],
     {"solver_type": "heun", "eta": 1.0, "s_noise": 1.0, "noise_device": "gpu"}),
    ("SamplerDPMPP_SDE", [1.0, 1.0, 0.5, "cpu"], {"eta": 1.0, "s_noise": 1.0, "r": 0.5, "noise_device": "cpu"}),
    ("SamplerDPMPP_2S_Ancestral", [1.0, 0.9], {"eta": 1.0, "s_noise": 0.9}),
    ("PrimitiveInt", [5, "fixed"], {"value": 5}),
    ("PrimitiveFloat", [1.5], {"value": 1.5}),
    ("PrimitiveString", ["hi"], {"value": "hi"}),
    ("PrimitiveStringMultiline", ["a\nb"], {"value": "a\nb"}),
    ("PrimitiveBoolean", [True], {"value": True}),
    ("ImageCompositeMasked", [10, 20, True], {"x": 10, "y": 20, "resize_source": True}),
    ("ImageStitch", ["down", False, 4, "red"],
     {"direction": "down", "match_image_size": False, "spacing_width": 4, "spacing_color": "red"}),
    ("ImageFlip", ["x-axis: vertically"], {"flip_method": "x-axis: vertically"}),
    ("ImageRotate", ["90 degrees"], {"rotation": "90 degrees"}),
    ("EmptyImage", [64, 32, 2, 255], {"width": 64, "height": 32, "batch_size": 2, "color": 255}),
    ("RepeatImageBatch", [2], {"amount": 2}),
    ("ImageFromBatch", [1, 2], {"batch_index": 1, "length": 2}),
    ("RebatchImages", [3], {"batch_size": 3}),
    ("RebatchLatents", [2], {"batch_size": 2}),
    ("Morphology", ["dilate", 5], {"operation": "dilate", "kernel_size": 5}),
    ("ImageQuantize", [16, "bayer-4"], {"colors": 16, "dither": "bayer-4"}),
    ("LatentMultiply", [0.5], {"multiplier": 0.5}),
    ("LatentInterpolate", [0.3], {"ratio": 0.3}),
    ("SaveLatent", ["latents/x"], {"filename_prefix": "latents/x"}),
    ("LoadLatent", ["x.latent"], {"latent": "x.latent"}),
]


@pytest.mark.parametrize("cls,widgets,expected", UI_CASES, ids=[c[0] for c in UI_CASES])
def test_ui_widget_order_per_node(cls, widgets, expected):
    prompt = ui_to_prompt(_workflow([_ui_node(1, cls, widgets)]), REGISTRY)
    assert prompt["1"]["class_type"] == cls
    assert prompt["1"]["inputs"] == expected


def test_ui_cases_cover_every_node_with_widgets():
    covered = {c[0] for c in UI_CASES} | {"CheckpointLoaderSimple", "CLIPTextEncode", "EmptyLatentImage", "KSampler",
                                          "SaveImage"}
    with_widgets = {cls for cls in EXPECTED if any(s.widget for s in REGISTRY.get(cls).inputs)}
    assert with_widgets <= covered, sorted(with_widgets - covered)
