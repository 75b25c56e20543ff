"""POST /upload/mask as ComfyUI's mask editor uses it, and what LoadImage then sees (issue #21).

The editor sends the painted mask as the alpha channel of a PNG (multipart ``image``) with
``original_ref`` naming the image it was painted on; the server writes a copy of the original
with that alpha (type ``input``, subfolder ``clipspace``), and LoadImage's MASK is 1 − alpha.
"""
from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from tests.test_server_files import env  # noqa: F401  (shared in-process app)


def _png(img: Image.Image, text: dict | None = None) -> bytes:
    info = PngInfo()
    for k, v in (text or {}).items():
        info.add_text(k, v)
    buf = io.BytesIO()
    img.save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()


@pytest.fixture(scope="module")
def app(env):  # noqa: F811  (the in-process app of test_server_files, plus our two images)
    client, paths = env
    photo = Image.new("RGB", (32, 24), (200, 120, 40))
    (paths.input_dir / "photo.png").write_bytes(_png(photo, {"prompt": '{"1": {}}'}))
    paths.output_dir.mkdir(parents=True, exist_ok=True)
    (paths.output_dir / "result.png").write_bytes(_png(Image.new("RGB", (32, 24), (1, 2, 3))))
    return client, paths


def _mask_png(size=(32, 24)) -> bytes:
    """Left half painted (alpha 0 = masked, as the editor sends it), right half kept (alpha 255)."""
    mask = Image.new("RGBA", size, (0, 0, 0, 255))
    mask.paste((0, 0, 0, 0), (0, 0, size[0] // 2, size[1]))
    return _png(mask)


def _upload(client, ref: dict, name="clipspace-mask-1.png"):
    return client.post("/api/upload/mask", files={"image": (name, _mask_png(), "image/png")},
                       data={"type": "input", "subfolder": "clipspace", "original_ref": json.dumps(ref)})


def test_mask_upload_writes_a_copy_of_the_original_with_the_mask_as_alpha(app):
    client, paths = app
    r = _upload(client, {"filename": "photo.png", "subfolder": "", "type": "input"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body == {"name": "clipspace-mask-1.png", "subfolder": "clipspace", "type": "input"}
    saved = Image.open(paths.input_dir / "clipspace" / body["name"])
    assert saved.mode == "RGBA" and saved.size == (32, 24)
    assert saved.getpixel((2, 5)) == (200, 120, 40, 0) and saved.getpixel((30, 5)) == (200, 120, 40, 255)
    assert saved.text.get("prompt") == '{"1": {}}'          # the original's text chunks are kept
    assert Image.open(paths.input_dir / "photo.png").mode == "RGB"   # the original is untouched


def test_load_image_mask_output_carries_the_painted_mask(app):
    from nodes.image import load_image_file

    client, paths = app
    body = _upload(client, {"filename": "photo.png", "type": "input"}, name="clipspace-mask-2.png").json()
    image, mask = load_image_file(paths.input_dir / body["subfolder"] / body["name"])
    assert tuple(image.shape) == (1, 24, 32, 3) and tuple(mask.shape) == (1, 24, 32)
    m = mask[0].numpy()
    assert np.all(m[:, :16] == 1.0) and np.all(m[:, 16:] == 0.0)
    assert abs(float(image[0, 0, 0, 0]) - 200 / 255) < 1e-6   # RGB under the mask kept


def test_original_ref_reads_annotated_names_and_defaults_to_output_like_comfyui(app):
    client, paths = app
    r = _upload(client, {"filename": "photo.png [input]"}, name="clipspace-mask-3.png")
    assert r.status_code == 200, r.text
    assert Image.open(paths.input_dir / "clipspace" / "clipspace-mask-3.png").getpixel((30, 5))[:3] == (200, 120, 40)
    r = _upload(client, {"filename": "result.png"}, name="clipspace-mask-4.png")   # no type: output/
    assert r.status_code == 200, r.text
    assert Image.open(paths.input_dir / "clipspace" / "clipspace-mask-4.png").getpixel((30, 5)) == (1, 2, 3, 255)
    assert _upload(client, {"filename": "photo.png"}, name="m5.png").status_code == 404   # not in output/
    assert _upload(client, {"filename": "photo.png", "type": ""}, name="m6.png").status_code == 400
