"""Declaration API, /object_info shape, plugin isolation, Paths and safe_join."""
from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from engine.errors import ModelNotFound, PathRefused
from engine.paths import Paths, parse_extra_model_paths, safe_join
from nodes.plugins import load_all
from nodes.registry import Boolean, Combo, Float, In, Int, NodeOutput, Out, Registry, String, files, node
from tests.stub_nodes import make_registry


@pytest.fixture
def paths(tmp_path: Path) -> Paths:
    p = Paths(tmp_path / "models", tmp_path / "input", tmp_path / "output", tmp_path / "temp", tmp_path / "user")
    p.ensure_dirs()
    return p


def _sampler_registry() -> Registry:
    reg = Registry()

    @node(category="sampling", display_name="K Sampler", registry=reg)
    class KSamplerLike:
        """Denoises   the latent.

        Second line."""
        INPUTS = [
            In("model", "MODEL", tooltip="the model"),
            Int("seed", 0, min=0, max=0xFFFFFFFFFFFFFFFF, control_after_generate=True),
            Int("steps", 20, min=1, max=10000),
            Float("cfg", 8.0, min=0.0, max=100.0, step=0.1, round=0.01),
            Combo("sampler_name", ["euler", "heun"]),
            String("text", "", multiline=True),
            Boolean("flag", True, label_on="yes", label_off="no"),
            Combo("ckpt", files("checkpoints")),
            Combo("image", files("input_images"), image_upload=True),
            In("mask", "MASK", optional=True),
            Float("denoise", 1.0, min=0.0, max=1.0, step=0.01, optional=True),
        ]
        OUTPUTS = [Out("LATENT", tooltip="the result"), Out("INT", name="count", is_list=True)]

        def run(self, ctx, **kw):
            return (None, [])

    @node(category="image", output_node=True, name="SaveLike", registry=reg)
    class SaveImpl:
        """Saves."""
        INPUTS = [In("images", "IMAGE"), String("filename_prefix", "ComfyUI")]
        OUTPUTS = []

        def run(self, ctx, images, filename_prefix):
            return NodeOutput(ui={"images": []})

    return reg


def test_object_info_socket_and_int_entries(paths):
    info = _sampler_registry().get("KSamplerLike").object_info(paths)
    req = info["input"]["required"]
    assert req["model"] == ["MODEL", {"tooltip": "the model"}]
    assert req["seed"] == ["INT", {"default": 0, "min": 0, "max": 0xFFFFFFFFFFFFFFFF, "step": 1,
                                   "control_after_generate": True}]
    assert req["steps"] == ["INT", {"default": 20, "min": 1, "max": 10000, "step": 1}]


def test_object_info_float_string_boolean_combo_entries(paths):
    (paths.models_dir / "checkpoints" / "sub").mkdir(parents=True)
    (paths.models_dir / "checkpoints" / "sub" / "b.safetensors").write_bytes(b"x")
    (paths.models_dir / "checkpoints" / "a.ckpt").write_bytes(b"x")
    (paths.models_dir / "checkpoints" / "notes.txt").write_bytes(b"x")
    (paths.input_dir / "cat.PNG").write_bytes(b"x")
    req = _sampler_registry().get("KSamplerLike").object_info(paths)["input"]["required"]
    assert req["cfg"] == ["FLOAT", {"default": 8.0, "min": 0.0, "max": 100.0, "step": 0.1, "round": 0.01}]
    assert req["text"] == ["STRING", {"default": "", "multiline": True, "dynamicPrompts": True}]
    assert req["flag"] == ["BOOLEAN", {"default": True, "label_on": "yes", "label_off": "no"}]
    assert req["sampler_name"] == [["euler", "heun"], {}]
    assert req["ckpt"] == [["a.ckpt", "sub/b.safetensors"], {}]
    assert req["image"] == [["cat.PNG"], {"image_upload": True}]


def test_object_info_top_level_fields(paths):
    info = _sampler_registry().get("KSamplerLike").object_info(paths)
    assert info["input"]["optional"] == {"mask": ["MASK"], "denoise": ["FLOAT", {
        "default": 1.0, "min": 0.0, "max": 1.0, "step": 0.01}]}
    assert "hidden" not in info["input"]
    assert info["input_order"] == {"required": ["model", "seed", "steps", "cfg", "sampler_name", "text", "flag",
                                                "ckpt", "image"], "optional": ["mask", "denoise"]}
    assert info["output"] == ["LATENT", "INT"]
    assert info["output_is_list"] == [False, True]
    assert info["output_name"] == ["LATENT", "count"]
    assert info["output_tooltips"] == ["the result", None]
    assert info["name"] == "KSamplerLike" and info["display_name"] == "K Sampler"
    assert info["description"] == "Denoises the latent. Second line."
    assert info["category"] == "sampling" and info["output_node"] is False
    assert info["python_module"] == "tests.test_engine_registry"


def test_output_node_has_hidden_inputs_and_custom_name(paths):
    reg = _sampler_registry()
    assert reg.get("SaveImpl") is None
    info = reg.get("SaveLike").object_info(paths)
    assert info["input"]["hidden"] == {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"}
    assert info["output_node"] is True and info["output"] == [] and info["name"] == "SaveLike"
    assert set(reg.object_info(paths)) == {"KSamplerLike", "SaveLike"}


def test_fresh_registries_are_isolated():
    a, b = make_registry(), Registry()
    assert a.get("StubAdd") is not None and b.get("StubAdd") is None and len(b) == 0


def test_declaration_mistakes_raise_at_import():
    with pytest.raises(ValueError, match="declared twice"):
        @node(category="x", registry=Registry())
        class Twice:
            INPUTS = [Int("a"), Int("a")]

            def run(self, ctx, a):
                return ()
    with pytest.raises(TypeError, match="run"):
        @node(category="x", registry=Registry())
        class NoRun:
            INPUTS = []


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))


def test_load_all_isolates_broken_plugins_and_duplicates(tmp_path):
    plugin = """
        from nodes.registry import node, Int, Out
        @node(category="plugin")
        class {name}:
            INPUTS = [Int("v", 1)]
            OUTPUTS = [Out("INT")]
            def run(self, ctx, v):
                return (v,)
    """
    _write(tmp_path / "good_one.py", plugin.format(name="PluginGoodOne"))
    _write(tmp_path / "pkg_plugin" / "__init__.py", "from .impl import *\n")
    _write(tmp_path / "pkg_plugin" / "impl.py", plugin.format(name="PluginFromPackage"))
    _write(tmp_path / "broken.py", "import not_a_module_anywhere_123\n")
    _write(tmp_path / "exits.py", "raise SystemExit(3)\n")
    _write(tmp_path / "dup.py", plugin.format(name="PluginGoodOne"))
    _write(tmp_path / "notes.txt", "not a plugin")
    reg = Registry()
    errors = load_all(tmp_path, registry=reg, builtin=False)
    assert reg.get("PluginGoodOne") is not None and reg.get("PluginFromPackage") is not None
    assert reg.get("PluginGoodOne").python_module == "custom_nodes.dup"  # sorted: dup.py loads first
    modules = {e["module"] for e in errors}
    assert {"custom_nodes.broken", "custom_nodes.exits"} <= modules
    assert any("duplicate node class 'PluginGoodOne'" in e["error"] for e in errors)
    assert "ModuleNotFoundError" in next(e["error"] for e in errors if e["module"] == "custom_nodes.broken")


def test_safe_join_accepts_subfolders(tmp_path):
    assert safe_join(tmp_path, "a/b", "c.png") == tmp_path.resolve() / "a" / "b" / "c.png"
    assert safe_join(tmp_path, "", "./x.png") == tmp_path.resolve() / "x.png"


@pytest.mark.parametrize("bad", ["../x", "a/../../x", "..", "/etc/passwd", "a\\b", "C:evil", "c:/x",
                                 "a\x00b", "~/x"])
def test_safe_join_refuses_escapes(tmp_path, bad):
    with pytest.raises(PathRefused):
        safe_join(tmp_path, "sub", bad)


def test_safe_join_refuses_symlink_leaving_root(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "secret.txt").write_text("s")
    os.symlink(outside, root / "link")
    os.symlink(root / "inside.txt", root / "ok_link")
    with pytest.raises(PathRefused):
        safe_join(root, "link/secret.txt")
    assert safe_join(root, "ok_link").name == "ok_link"
    with pytest.raises(PathRefused):
        safe_join(root, 5)  # type: ignore[arg-type]


def test_extra_model_paths_yaml(tmp_path):
    yml = tmp_path / "cfg" / "extra_model_paths.yaml"
    _write(yml, """
        a111:
            base_path: ../webui
            checkpoints: models/Stable-diffusion
            loras: |
                 models/Lora
                 models/LyCORIS
            embeddings: /abs/embeddings
        other:
            is_default: true
            vae: relative_vae
    """)
    extra = parse_extra_model_paths(yml)
    webui = tmp_path / "cfg" / "../webui"
    assert extra["checkpoints"] == [str(webui / "models/Stable-diffusion")]
    assert extra["loras"] == [str(webui / "models/Lora"), str(webui / "models/LyCORIS")]
    assert extra["embeddings"] == ["/abs/embeddings"]
    assert extra["vae"] == [str(tmp_path / "cfg" / "relative_vae")]
    p = Paths.from_args(tmp_path / "m", tmp_path / "i", tmp_path / "o", tmp_path / "t", tmp_path / "u", yml)
    assert p.folder_dirs("loras")[1:] == [webui / "models/Lora", webui / "models/LyCORIS"]


def test_list_files_and_model_path_across_extra_folders(tmp_path):
    extra = tmp_path / "extra_ckpt"
    extra.mkdir()
    (extra / "z.safetensors").write_bytes(b"1")
    p = Paths(tmp_path / "m", tmp_path / "i", tmp_path / "o", tmp_path / "t", tmp_path / "u",
              {"checkpoints": [str(extra)]})
    p.ensure_dirs()
    (p.models_dir / "checkpoints" / "A.SAFETENSORS").write_bytes(b"1")
    (p.models_dir / "checkpoints" / ".hidden.ckpt").write_bytes(b"1")
    assert p.list_files("checkpoints") == ["A.SAFETENSORS", "z.safetensors"]
    assert p.model_path("checkpoints", "z.safetensors") == extra.resolve() / "z.safetensors"
    with pytest.raises(ModelNotFound):
        p.model_path("checkpoints", "missing.safetensors")
    with pytest.raises(PathRefused):
        p.model_path("checkpoints", "../../etc/passwd")
    assert p.list_files("loras") == [] and p.list_files("nonexistent") == []



def test_unet_and_clip_folders_keep_comfyui_names_and_legacy_dirs(tmp_path):
    """diffusion_models also lists models/unet, text_encoders models/clip (ComfyUI's old names);
    the old names work as folder names and as extra_model_paths.yaml keys."""
    yml = tmp_path / "extra.yaml"
    _write(yml, """
        comfy:
            base_path: /srv/comfy
            unet: models/unet
            clip: models/clip
    """)
    p = Paths.from_args(tmp_path / "m", tmp_path / "i", tmp_path / "o", tmp_path / "t", tmp_path / "u", yml)
    p.ensure_dirs()
    (p.models_dir / "unet").mkdir()
    (p.models_dir / "unet" / "old.safetensors").write_bytes(b"1")
    (p.models_dir / "diffusion_models" / "new.safetensors").write_bytes(b"1")
    (p.models_dir / "clip").mkdir()
    (p.models_dir / "clip" / "clip_l.safetensors").write_bytes(b"1")
    assert p.list_files("diffusion_models") == ["new.safetensors", "old.safetensors"]
    assert p.list_files("unet") == p.list_files("diffusion_models")
    assert p.list_files("clip") == p.list_files("text_encoders") == ["clip_l.safetensors"]
    assert p.model_path("diffusion_models", "old.safetensors").parent.name == "unet"
    assert p.folder_dirs("text_encoders")[-1] == Path("/srv/comfy/models/clip")
    assert p.folder_dirs("unet")[-1] == Path("/srv/comfy/models/unet")

LEGACY_PLUGIN = '''
class MultiplyLegacy:
    """Multiplies, ComfyUI style."""
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"a": ("INT", {"default": 2, "min": 0, "max": 100}),
                             "mode": (["mul", "add"],),
                             "text": ("STRING", {"multiline": True, "forceInput": True})},
                "optional": {"f": ("FLOAT", {"default": 1.5, "step": 0.5})},
                "hidden": {"uid": "UNIQUE_ID"}}
    RETURN_TYPES = ("INT", "STRING")
    RETURN_NAMES = ("product", "who")
    FUNCTION = "go"
    CATEGORY = "legacy/math"
    CALLS = []

    @classmethod
    def IS_CHANGED(cls, **kw):
        cls.CALLS.append(sorted(kw))
        return "same"

    def go(self, a, mode, text, uid, f=1.0):
        return {"ui": {"text": [text]}, "result": (a * 3 if mode == "mul" else a + 3, uid)}

NODE_CLASS_MAPPINGS = {"MultiplyLegacy": MultiplyLegacy}
NODE_DISPLAY_NAME_MAPPINGS = {"MultiplyLegacy": "Multiply (legacy)"}
'''


def test_comfyui_style_plugins_are_adapted(tmp_path, paths):
    from engine.executor import Executor

    _write(tmp_path / "plugins" / "legacy.py", LEGACY_PLUGIN)
    reg = make_registry()
    assert load_all(tmp_path / "plugins", registry=reg, builtin=False) == []
    info = reg.get("MultiplyLegacy").object_info(paths)
    assert info["input"]["required"] == {"a": ["INT", {"default": 2, "min": 0, "max": 100, "step": 1}],
                                         "mode": [["mul", "add"], {}],
                                         "text": ["STRING", {"multiline": True, "forceInput": True}]}
    assert info["input"]["optional"] == {"f": ["FLOAT", {"default": 1.5, "step": 0.5}]}
    assert info["input"]["hidden"] == {"uid": "UNIQUE_ID"}
    assert info["output_name"] == ["product", "who"] and info["display_name"] == "Multiply (legacy)"
    assert info["python_module"] == "custom_nodes.legacy" and info["category"] == "legacy/math"
    prompt = {"1": {"class_type": "StubString", "inputs": {"text": "hi"}},
              "7": {"class_type": "MultiplyLegacy", "inputs": {"a": 4, "mode": "mul", "text": ["1", 0]}},
              "8": {"class_type": "StubOutput", "inputs": {"value": ["7", 0], "extra": ["7", 1]}},
              "9": {"class_type": "StubOutput", "inputs": {"value": ["7", 1]}}}
    res = Executor(reg, paths).execute(prompt)
    assert res.status == "success", res.error
    assert res.outputs["8"] == {"text": ["12"]} and res.outputs["7"] == {"text": ["hi"]}
    assert res.outputs["9"] == {"text": ['"7"']}  # the hidden UNIQUE_ID reached the function
    legacy_cls = reg.get("MultiplyLegacy").cls.LEGACY_CLASS
    # IS_CHANGED saw what ComfyUI gives it: constants, linked inputs (as None) and hidden inputs
    assert legacy_cls.CALLS == [["a", "mode", "text", "uid"]]
