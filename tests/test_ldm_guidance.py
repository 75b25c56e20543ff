"""CFGDenoiser: CFG combine, uncond skipped at cfg 1, batching, area/mask/timestep-range, adm, concat."""
from __future__ import annotations

import contextlib
from types import SimpleNamespace

import pytest
import torch

from ldm.guidance import CFGDenoiser
from ldm.model_sampling import ModelSampling


class FakeLatentFormat:
    scale_factor = 0.18215
    latent_rgb_factors = ((0.3512, 0.2297, 0.3227), (0.3250, 0.4974, 0.2350),
                          (-0.2829, 0.1762, 0.2721), (-0.2120, -0.2616, -0.7177))

    def process_in(self, x):
        return x * self.scale_factor

    def process_out(self, x):
        return x / self.scale_factor


class EchoModel:
    """DiffusionModel stand-in whose x0 is the first value of its context (or a Gaussian denoiser).

    mode "echo": denoised = context[:, 0, 0] everywhere — shows which conditioning reached which
    latent pixel. mode "gauss": the exact denoiser of N(context value, 0.5²) data.
    Records every apply_model call.
    """

    def __init__(self, mode: str = "echo", inpaint: bool = False, adm: bool = False):
        self.sampling = ModelSampling("eps")
        self.latent_format = FakeLatentFormat()
        self.config = SimpleNamespace(inpaint=inpaint, family="sd1")
        self.mode, self.adm = mode, adm
        self.calls: list[dict] = []
        self.patch_depth = 0

    def apply_model(self, x, sigma, *, context, y=None, concat=None):
        self.calls.append({"x": x.clone(), "sigma": sigma.clone(), "context": context.clone(), "y": y,
                           "concat": None if concat is None else concat.clone()})
        assert self.patch_depth == 1 or not hasattr(self, "require_patched")
        mu = context[:, 0, 0].reshape(-1, 1, 1, 1).to(x.dtype)
        if y is not None:
            mu = mu + y[:, :1].reshape(-1, 1, 1, 1)
        if self.mode == "echo":
            return mu.expand_as(x).clone()
        s2, sg = 0.25, sigma.reshape(-1, 1, 1, 1).to(x.dtype)
        return (s2 * x + sg * sg * mu) / (s2 + sg * sg)

    def encode_adm(self, opts, batch):
        if not self.adm:
            return None
        return torch.full((batch, 3), float(opts.get("aesthetic_score", 0.0)))

    @contextlib.contextmanager
    def patched(self):
        self.patch_depth += 1
        try:
            yield self
        finally:
            self.patch_depth -= 1


def cond(value: float, tokens: int = 77, dim: int = 8, **opts):
    return [torch.full((1, tokens, dim), float(value)), opts]


SIGMA = torch.tensor([2.0])


def test_cfg_combines_cond_and_uncond_in_one_forward():
    m = EchoModel()
    den = CFGDenoiser(m, [cond(1.0)], [cond(-1.0)], 7.0)
    out = den(torch.zeros(1, 4, 8, 8), SIGMA)
    assert torch.allclose(out, torch.full_like(out, -1.0 + 7.0 * 2.0))
    assert len(m.calls) == 1 and m.calls[0]["x"].shape[0] == 2


def test_cfg_one_skips_the_uncond_pass():
    m = EchoModel()
    den = CFGDenoiser(m, [cond(1.0)], [cond(-1.0)], 1.0)
    out = den(torch.zeros(2, 4, 8, 8), SIGMA)
    assert torch.allclose(out, torch.ones_like(out))
    assert len(m.calls) == 1 and m.calls[0]["x"].shape[0] == 2  # only the 2 positive rows
    assert torch.all(m.calls[0]["context"][:, 0, 0] == 1.0)


def test_different_token_lengths_are_repeated_to_a_common_multiple():
    m = EchoModel()
    den = CFGDenoiser(m, [cond(1.0, tokens=154)], [cond(-1.0, tokens=77)], 2.0)
    den(torch.zeros(1, 4, 8, 8), SIGMA)
    assert len(m.calls) == 1 and m.calls[0]["context"].shape[1] == 154
    m2 = EchoModel()
    CFGDenoiser(m2, [cond(1.0, tokens=77 * 5)], [cond(-1.0, tokens=77)], 2.0)(torch.zeros(1, 4, 8, 8), SIGMA)
    assert len(m2.calls) == 2  # lcm would be 5x the shorter one: run separately


def test_area_conditioning_lands_inside_its_area():
    m = EchoModel()
    area = cond(5.0, area=(16, 16, 8, 24), strength=1.0)
    den = CFGDenoiser(m, [cond(1.0), area], [cond(0.0)], 1.0)
    out = den(torch.zeros(1, 4, 32, 48), SIGMA)
    inner = out[:, :, 8 + 8:8 + 16 - 7, 24 + 8:24 + 16 - 7]  # away from the feathered band
    # inside: weighted average of the base (weight 1) and the area cond (weight 1) → 3
    assert torch.allclose(inner, torch.full_like(inner, 3.0))
    assert torch.allclose(out[:, :, :8], torch.ones_like(out[:, :, :8]))
    assert torch.allclose(out[:, :, :, :24], torch.ones_like(out[:, :, :, :24]))
    # feathered edge: the ramp is min(8, 16 // 4) = 4 pixels wide (ComfyUI's get_area_and_mult), so the
    # outermost row has weight 1/4 (column 7 is unramped) → (1 + 5/4)/(1 + 1/4)
    assert float(out[0, 0, 8, 31]) == pytest.approx((1 + 5 / 4) / (1 + 1 / 4), rel=1e-5)
    area_call = [c for c in m.calls if c["x"].shape[-2:] == (16, 16)]
    assert len(area_call) == 1


def test_area_alone_gives_its_value_and_zero_outside():
    m = EchoModel()
    den = CFGDenoiser(m, [cond(4.0, area=(8, 8, 0, 0))], [cond(0.0)], 1.0)
    out = den(torch.zeros(1, 4, 16, 16), SIGMA)
    assert torch.allclose(out[:, :, :8, :8], torch.full((1, 4, 8, 8), 4.0))
    assert torch.all(out[:, :, 8:, :] == 0)


def test_area_strength_weights_the_average():
    m = EchoModel()
    den = CFGDenoiser(m, [cond(0.0), cond(6.0, strength=2.0)], [cond(0.0)], 1.0)
    out = den(torch.zeros(1, 4, 8, 8), SIGMA)
    assert torch.allclose(out, torch.full_like(out, 4.0))  # (0·1 + 6·2)/(1 + 2)


def test_mask_conditioning_and_set_area_to_bounds():
    mask = torch.zeros(1, 64, 64)
    mask[:, 32:, :] = 1.0  # lower half in pixels
    m = EchoModel()
    den = CFGDenoiser(m, [cond(1.0), cond(9.0, mask=mask, mask_strength=1.0)], [cond(0.0)], 1.0)
    out = den(torch.zeros(1, 4, 8, 8), SIGMA)
    assert torch.allclose(out[:, :, :4], torch.ones(1, 4, 4, 8))
    assert torch.allclose(out[:, :, 4:], torch.full((1, 4, 4, 8), 5.0))
    m2 = EchoModel()
    den2 = CFGDenoiser(m2, [cond(9.0, mask=mask, set_area_to_bounds=True)], [cond(0.0)], 1.0)
    den2(torch.zeros(1, 4, 8, 8), SIGMA)
    assert m2.calls[0]["x"].shape[-2:] == (4, 8)  # rows 4..7 have mask > 0 after the bilinear resize


def test_timestep_range_gates_entries():
    m = EchoModel()
    ms = m.sampling
    early = cond(3.0, start_percent=0.0, end_percent=0.5)
    late = cond(7.0, start_percent=0.5, end_percent=1.0)
    den = CFGDenoiser(m, [early, late], [cond(0.0)], 1.0)
    x = torch.zeros(1, 4, 4, 4)
    hi = torch.tensor([ms.percent_to_sigma(0.2)])
    lo = torch.tensor([ms.percent_to_sigma(0.8)])
    assert torch.allclose(den(x, hi), torch.full_like(x, 3.0))
    assert torch.allclose(den(x, lo), torch.full_like(x, 7.0))


def test_adm_vector_is_passed_per_entry():
    m = EchoModel(adm=True)
    den = CFGDenoiser(m, [cond(1.0, aesthetic_score=2.0)], [cond(0.0, aesthetic_score=1.0)], 3.0)
    out = den(torch.zeros(1, 4, 4, 4), SIGMA)
    assert m.calls[0]["y"].shape == (2, 3)
    assert torch.allclose(out, torch.full_like(out, 1.0 + 3.0 * (3.0 - 1.0)))


def test_inpaint_concat_from_opts_resized_and_process_in_scaled():
    m = EchoModel(inpaint=True)
    image = torch.ones(1, 4, 4, 4)
    cmask = torch.zeros(1, 32, 32)
    cmask[:, :, 16:] = 1
    den = CFGDenoiser(m, [cond(1.0, concat_latent_image=image, concat_mask=cmask)], [cond(0.0)], 1.0)
    den(torch.zeros(1, 4, 8, 8), SIGMA)
    concat = m.calls[0]["concat"]
    assert concat.shape == (1, 5, 8, 8)
    assert torch.all(concat[:, 0, :, :4] == 0) and torch.all(concat[:, 0, :, 4:] == 1)
    assert torch.allclose(concat[:, 1:], torch.full((1, 4, 8, 8), 0.18215))


def test_inpaint_concat_defaults_to_latent_and_noise_mask():
    m = EchoModel(inpaint=True)
    latent = torch.full((1, 4, 8, 8), 0.5)
    mask = torch.zeros(1, 4, 8, 8)
    mask[..., :2, :] = 1
    den = CFGDenoiser(m, [cond(1.0)], [cond(0.0)], 1.0, latent_image=latent, denoise_mask=mask)
    den(torch.zeros(1, 4, 8, 8), SIGMA)
    concat = m.calls[0]["concat"]
    assert torch.equal(concat[:, :1], mask[:, :1]) and torch.equal(concat[:, 1:], latent)


def test_gaussian_model_guidance_moves_towards_cond():
    m = EchoModel(mode="gauss")
    den = CFGDenoiser(m, [cond(1.0)], [cond(0.0)], 2.0)
    x = torch.zeros(1, 4, 4, 4)
    out = den(x, SIGMA)
    d1 = 4.0 / 4.25  # σ²μ/(s²+σ²) for μ = 1
    assert torch.allclose(out, torch.full_like(x, 2.0 * d1))
