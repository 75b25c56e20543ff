"""Primitive value nodes and PreviewAny against ComfyUI's behaviour."""
from __future__ import annotations

import pytest
import torch

from nodes import primitive as pr


# ------------------------------------------------------------------------------------ primitives
@pytest.mark.parametrize("cls,value", [(pr.PrimitiveInt, -7), (pr.PrimitiveFloat, 2.5), (pr.PrimitiveString, "a"),
                                       (pr.PrimitiveStringMultiline, "a\nb"), (pr.PrimitiveBoolean, True)])
def test_primitives_pass_their_value_through(cls, value):
    assert cls().run(None, value) == (value,)


@pytest.mark.parametrize("value,text", [("plain", "plain"), (5, "5"), (0.5, "0.5"), (True, "True"), (None, "None"),
                                        ({"a": [1, "x"]}, '{"a": [1, "x"]}'), ([1, 2], "[1, 2]")])
def test_preview_any_renders_like_comfyui(value, text):
    out = pr.PreviewAny().run(None, value)
    assert out.outputs == () and out.ui == {"text": [text]}


def test_preview_any_falls_back_to_str_for_tensors():
    out = pr.PreviewAny().run(None, torch.tensor([1.5]))
    assert out.ui["text"] == [str(torch.tensor([1.5]))]
