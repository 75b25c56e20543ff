"""Pins of ComfyUI 0.3.64 sampling semantics, each expected value written from the published formula
(ComfyUI's comfy/samplers.py, comfy/k_diffusion/sampling.py, comfy/model_base.py), not from our code.

Fast: toy denoisers and stand-in models only.
"""
from __future__ import annotations

import contextlib
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from ldm.guidance import BLANK_INPAINT_LATENT, CFGDenoiser
from ldm.model_sampling import ModelSampling
from ldm.sample import ksampler_sigmas, prepare_noise
from ldm.sampling import get_sampler
from ldm.sampling.steps import BrownianTreeNoiseSampler, default_noise_sampler
from ldm.schedules import SCHEDULER_NAMES, get_sigmas

MS = ModelSampling("eps")


# ---------------------------------------------------------------------------- the SD sigma table
def _table() -> np.ndarray:
    betas = np.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=np.float64) ** 2
    ac = np.cumprod(1.0 - betas)
    return ((1 - ac) / ac) ** 0.5


TABLE = _table()
SMIN, SMAX = float(np.float32(TABLE[0])), float(np.float32(TABLE[-1]))


def _sigma_at(t: float) -> float:
    """ComfyUI's ModelSamplingDiscrete.sigma: log-linear interpolation of the float32 log table."""
    logs = np.log(TABLE).astype(np.float32).astype(np.float64)
    lo, hi = math.floor(t), math.ceil(t)
    w = t - lo
    return math.exp((1 - w) * logs[lo] + w * logs[hi])


def test_sd_table_ends():
    assert float(MS.sigma_max) == pytest.approx(14.614642, rel=1e-6)
    assert float(MS.sigma_min) == pytest.approx(0.0291672, rel=1e-5)
    assert int(MS.timestep(MS.sigma_max)) == 999 and int(MS.timestep(torch.tensor(1.0))) == int(
        np.abs(np.log(TABLE) - 0.0).argmin())


def _expected(name: str, n: int) -> list[float]:
    if name == "karras":
        ramp = np.linspace(0, 1, n)
        a, b = SMAX ** (1 / 7), SMIN ** (1 / 7)
        return list((a + ramp * (b - a)) ** 7) + [0.0]
    if name == "exponential":
        return list(np.exp(np.linspace(math.log(SMAX), math.log(SMIN), n))) + [0.0]
    if name in ("normal", "sgm_uniform"):
        ts = np.linspace(999, 0, n + 1)[:-1] if name == "sgm_uniform" else np.linspace(999, 0, n)
        return [_sigma_at(float(t)) for t in ts] + [0.0]
    if name == "simple":
        return [float(TABLE[-(1 + int(i * 1000 / n))]) for i in range(n)] + [0.0]
    if name == "ddim_uniform":
        return [float(TABLE[x]) for x in range(1, 1000, 1000 // n)][::-1] + [0.0]
    if name == "beta":
        import scipy.stats
        ts = np.rint(scipy.stats.beta.ppf(1 - np.linspace(0, 1, n, endpoint=False), 0.6, 0.6) * 999)
        out, last = [], -1
        for t in ts:
            if t != last:
                out.append(float(TABLE[int(t)]))
            last = t
        return out + [0.0]
    if name == "linear_quadratic":  # Mochi's schedule, threshold 0.025, linear half
        lin = n // 2
        diff = lin - 0.025 * n
        q = n - lin
        qc, lc = diff / (lin * q ** 2), 0.025 / lin - 2 * diff / q ** 2
        sched = [i * 0.025 / lin for i in range(lin)] + [qc * i * i + lc * i + qc * lin * lin for i in range(lin, n)]
        return [(1.0 - v) * SMAX for v in sched + [1.0]]
    if name == "kl_optimal":
        f = np.arange(n) / (n - 1)
        return list(np.tan(f * math.atan(SMIN) + (1 - f) * math.atan(SMAX))) + [0.0]
    raise AssertionError(name)


@pytest.mark.parametrize("name", SCHEDULER_NAMES)
def test_every_scheduler_at_10_steps_matches_the_formula(name):
    got = get_sigmas(name, MS, 10)
    want = _expected(name, 10)
    assert len(got) == len(want)
    np.testing.assert_allclose(got.double().numpy(), np.array(want), rtol=2e-5, atol=1e-7)


def test_known_sigma_values():
    k = get_sigmas("karras", MS, 10)
    assert float(k[0]) == pytest.approx(14.6146, abs=1e-3) and float(k[-2]) == pytest.approx(0.0292, abs=1e-4)
    n = get_sigmas("normal", MS, 10)
    assert float(n[0]) == pytest.approx(14.6146, abs=1e-3) and float(n[-2]) == pytest.approx(0.0292, abs=1e-4)
    assert len(get_sigmas("ddim_uniform", MS, 7)) == 8 + 1  # 1000 // 7 = 142 → 8 table entries + 0


def test_ksampler_sigma_slicing():
    full = get_sigmas("normal", MS, 20)
    # denoise 0.5: the last 11 sigmas of a 20-step schedule of int(10 / 0.5) = 20 steps
    torch.testing.assert_close(ksampler_sigmas(MS, "normal", "euler", 10, 0.5), full[-11:])
    # end_at_step with force_full_denoise sets the cut's last sigma to 0; without it keeps it
    cut = ksampler_sigmas(MS, "normal", "euler", 20, 1.0, None, 5, True)
    assert len(cut) == 6 and float(cut[-1]) == 0.0 and torch.equal(cut[:-1], full[:5])
    assert float(ksampler_sigmas(MS, "normal", "euler", 20, 1.0, None, 5, False)[-1]) == float(full[5])
    assert ksampler_sigmas(MS, "normal", "euler", 20, 1.0, 20, None).numel() == 0
    # dpm_2 / uni_pc: one step more, the penultimate sigma dropped
    extra = get_sigmas("karras", MS, 11)
    torch.testing.assert_close(ksampler_sigmas(MS, "karras", "dpm_2", 10), torch.cat([extra[:-2], extra[-1:]]))


def test_prepare_noise_batch_index_draws_in_order():
    lat = torch.zeros(2, 4, 3, 3)
    gen = torch.manual_seed(7)
    draws = [torch.randn([1, 4, 3, 3], generator=gen) for _ in range(4)]
    got = prepare_noise(lat, 7, [3, 1])
    torch.testing.assert_close(got, torch.cat([draws[3], draws[1]]))
    torch.testing.assert_close(prepare_noise(lat, 7), torch.randn([2, 4, 3, 3], generator=torch.manual_seed(7)))


# ---------------------------------------------------------------------------- samplers on a toy denoiser
MU = 0.3


def toy(x, sigma, capture=None, **_):
    """Exact x0 for N(MU, 1) data; uncond (for CFG++) = 0.9 of it."""
    s = sigma.reshape(-1, 1, 1, 1)
    d = (x + MU * s * s) / (1 + s * s)
    if capture is not None:
        capture["uncond_denoised"] = 0.9 * d
    return d


def _d(x, s):
    return toy(x, torch.tensor([s]))


SIG = get_sigmas("karras", MS, 4).double()
X0 = torch.linspace(-2, 2, 8, dtype=torch.float64).reshape(1, 2, 2, 2) * SIG[0]


def test_euler_one_step_by_hand():
    s0, s1 = float(SIG[0]), float(SIG[1])
    want = X0 + (X0 - _d(X0, s0)) / s0 * (s1 - s0)
    torch.testing.assert_close(get_sampler("euler")(toy, X0.clone(), SIG[:2]), want)


def test_dpmpp_2m_second_step_by_hand():
    s = [float(v) for v in SIG[:3]]
    t = [-math.log(v) for v in s]
    d0 = _d(X0, s[0])
    x1 = (s[1] / s[0]) * X0 - math.expm1(-(t[1] - t[0])) * d0
    d1 = _d(x1, s[1])
    h, r = t[2] - t[1], (t[1] - t[0]) / (t[2] - t[1])
    dd = (1 + 1 / (2 * r)) * d1 - (1 / (2 * r)) * d0
    want = (s[2] / s[1]) * x1 - math.expm1(-h) * dd
    torch.testing.assert_close(get_sampler("dpmpp_2m")(toy, X0.clone(), SIG[:3]), want)


@pytest.mark.parametrize("name", ["lms", "dpmpp_sde", "ipndm", "ipndm_v", "gradient_estimation", "dpmpp_2m_sde",
                                  "dpmpp_3m_sde", "euler_ancestral", "er_sde", "seeds_2", "seeds_3",
                                  "euler_cfg_pp", "sa_solver"])
def test_step_to_zero_returns_the_denoised_estimate(name):
    seen = []
    out = get_sampler(name)(toy, X0.clone().float(), SIG.float(), seed=3, callback=seen.append)
    assert torch.equal(out, seen[-1]["denoised"])


def test_gradient_estimation_second_step_by_hand():
    s = [float(v) for v in SIG[:3]]
    d0 = (X0 - _d(X0, s[0])) / s[0]
    x1 = X0 + d0 * (s[1] - s[0])
    d1 = (x1 - _d(x1, s[1])) / s[1]
    want = x1 + d1 * (s[2] - s[1]) + (2.0 - 1) * (d1 - d0) * (s[2] - s[1])
    torch.testing.assert_close(get_sampler("gradient_estimation")(toy, X0.clone(), SIG[:3]), want)


def test_ipndm_v_weights():
    """ComfyUI's ipndm_v uses diff-solvers' closed forms: exact variable-step AB2; for equal steps AB3
    (23, −16, 5)/12; its order-4 form gives (57, −65, 43, −11)/24 for equal steps (not AB4's
    (55, −59, 37, −9)/24 — the formula's own value, which ComfyUI computes)."""
    from scipy import integrate

    from ldm.sampling.multistep import _ipndm_v_coeffs

    t = [6.0, 3.5, 2.0, 1.1]
    nodes = [t[2], t[1]]
    got = _ipndm_v_coeffs(2, [t[3] - t[2], t[2] - t[1]])
    for j in range(2):
        want = integrate.quad(lambda u, j=j: (u - nodes[1 - j]) / (nodes[j] - nodes[1 - j]), t[2], t[3])[0]
        assert got[j] == pytest.approx(want / (t[3] - t[2]), rel=1e-12)
    assert _ipndm_v_coeffs(3, [1.0, 1.0, 1.0]) == pytest.approx([23 / 12, -16 / 12, 5 / 12])
    assert _ipndm_v_coeffs(4, [1.0] * 4) == pytest.approx([57 / 24, -65 / 24, 43 / 24, -11 / 24])


def test_er_sde_first_step_by_hand_without_noise():
    s0, s1 = float(SIG[0]), float(SIG[1])
    psi = lambda v: v * (math.exp(v ** 0.3) + 10.0)  # noqa: E731 - ER-SDE's default noise scale
    r = psi(s1) / psi(s0)
    want = r * X0 + (1 - r) * _d(X0, s0)
    out = get_sampler("er_sde")(toy, X0.clone(), SIG[:2], s_noise=0.0)
    torch.testing.assert_close(out, want)


def test_sa_solver_first_order_is_dpm_solver_pp_1():
    from ldm.sampling.sde import _sa_b_coeffs

    ls, lt = torch.tensor(0.3, dtype=torch.float64), torch.tensor(1.1, dtype=torch.float64)
    sigma_t = torch.exp(-lt)
    b = _sa_b_coeffs(sigma_t, ls.reshape(1), ls, lt, 0.0)
    assert float(b[0]) == pytest.approx(float(sigma_t * lt.exp() * (1 - torch.exp(-(lt - ls)))), rel=1e-9)


def test_ancestral_noise_is_a_cpu_generator_seeded_with_the_seed():
    x = torch.zeros(1, 4, 3, 3)
    ns = default_noise_sampler(x, 42)
    torch.testing.assert_close(ns(None, None), torch.randn(x.shape, generator=torch.Generator().manual_seed(42)))


def test_euler_ancestral_step_by_hand():
    x = X0.float()
    sig = SIG[:2].float()
    s0, s1 = sig[0], sig[1]
    up = torch.minimum(s1, (s1 ** 2 * (s0 ** 2 - s1 ** 2) / s0 ** 2) ** 0.5)
    down = (s1 ** 2 - up ** 2) ** 0.5
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(5))
    want = x + (x - toy(x, s0.reshape(1))) / s0 * (down - s0) + noise * up
    torch.testing.assert_close(get_sampler("euler_ancestral")(toy, x.clone(), sig, seed=5), want)


def test_brownian_increment_is_scaled_by_the_float32_gap():
    x = torch.zeros(1, 1, 2, 2)
    a, b = torch.tensor(0.5), torch.tensor(2.0)
    ns = BrownianTreeNoiseSampler(x, 0.1, 10.0, seed=9)
    w = ns.tree(a, b)  # W(2) − W(0.5); asked from 2 down to 0.5 the increment changes sign
    torch.testing.assert_close(ns(b, a), -w / (a - b).abs().sqrt())
    torch.testing.assert_close(ns(a, b), w / (b - a).abs().sqrt())


# ---------------------------------------------------------------------------- CFG
class Echo:
    """x0 = the first value of the context; records calls."""

    def __init__(self, inpaint=False, family="sd1"):
        self.sampling = ModelSampling("eps")
        self.latent_format = SimpleNamespace(process_in=lambda t: t * 0.18215, process_out=lambda t: t / 0.18215)
        self.config = SimpleNamespace(inpaint=inpaint, family=family)
        self.calls = []

    def apply_model(self, x, sigma, *, context, y=None, concat=None):
        self.calls.append({"x": x.clone(), "concat": concat, "context": context.clone()})
        return context[:, 0, 0].reshape(-1, 1, 1, 1).expand_as(x).clone()

    def encode_adm(self, opts, batch):
        return None

    @contextlib.contextmanager
    def patched(self):
        yield self


def c(v, **opts):
    return [torch.full((1, 2, 4), float(v)), opts]


def test_area_feather_is_min_8_quarter_of_the_size():
    # area 12 high × 40 wide at (y 4, x 8) in a 32×64 latent: rr = min(8, 12 // 4) = 3 vertically, 8 horizontally
    den = CFGDenoiser(Echo(), [c(0.0), c(1.0, area=(12, 40, 4, 8))], [c(0.0)], 1.0)
    out = den(torch.zeros(1, 4, 32, 64), torch.tensor([1.0]))[0, 0]
    for t, w in enumerate([1 / 3, 2 / 3, 1.0]):  # top rows of the area, mid column
        assert float(out[4 + t, 30]) == pytest.approx(w / (1 + w), rel=1e-6)
    for t in range(8):  # left columns, mid row
        w = (1.0 / 8) * (t + 1)
        assert float(out[10, 8 + t]) == pytest.approx(w / (1 + w), rel=1e-6)
    assert float(out[10, 30]) == pytest.approx(0.5)


def test_masked_entries_are_not_feathered_and_bounds_are_at_least_8():
    mask = torch.zeros(1, 32, 32)
    mask[0, 10:13, 10:13] = 1.0
    den = CFGDenoiser(Echo(), [c(0.0), c(1.0, mask=mask, set_area_to_bounds=True)], [c(0.0)], 1.0)
    entries = den._prepare(torch.zeros(1, 4, 32, 32))
    assert entries[1].area == (8, 8, 10, 10)
    assert float(entries[1].mult[0, 0, 0, 0]) == 1.0 and float(entries[1].mult[0, 0, 5, 5]) == 0.0


def test_area_entries_get_a_twin_on_the_other_side():
    den = CFGDenoiser(Echo(), [c(1.0), c(5.0, area=(16, 16, 8, 8), strength=0.5)], [c(-1.0)], 2.0)
    entries = den._prepare(torch.zeros(1, 4, 32, 32))
    twins = [e for e in entries if e.which == 1 and e.has_area]
    assert len(twins) == 1 and twins[0].area == (16, 16, 8, 8)
    assert float(twins[0].context[0, 0, 0]) == -1.0 and float(twins[0].mult.max()) == 0.5


def test_cfg_one_with_capture_still_computes_the_uncond():
    m = Echo()
    den = CFGDenoiser(m, [c(1.0)], [c(-1.0)], 1.0)
    cap = {}
    out = den(torch.zeros(1, 4, 8, 8), torch.tensor([1.0]), capture=cap)
    assert float(cap["uncond_denoised"].mean()) == -1.0 and float(out.mean()) == 1.0
    assert den(torch.zeros(1, 4, 8, 8), torch.tensor([1.0])).mean() == 1.0


def test_inpaint_concat_without_a_mask_is_ones_and_the_blank_latent():
    m = Echo(inpaint=True)
    den = CFGDenoiser(m, [c(1.0)], [c(0.0)], 1.0, latent_image=torch.randn(1, 4, 8, 8))
    den(torch.zeros(1, 4, 8, 8), torch.tensor([1.0]))
    cat = m.calls[0]["concat"]
    assert torch.equal(cat[:, 0], torch.ones(1, 8, 8))
    for k, v in enumerate(BLANK_INPAINT_LATENT):
        assert torch.allclose(cat[:, 1 + k], torch.full((1, 8, 8), v))


def test_inpaint_concat_with_the_noise_mask_uses_the_latent_and_rounds_the_mask():
    m = Echo(inpaint=True)
    lat = torch.randn(1, 4, 8, 8)
    mask = torch.full((1, 4, 8, 8), 0.4)
    mask[..., :4] = 0.6
    den = CFGDenoiser(m, [c(1.0)], [c(0.0)], 1.0, latent_image=lat, denoise_mask=mask)
    den(torch.zeros(1, 4, 8, 8), torch.tensor([1.0]))
    cat = m.calls[0]["concat"]
    assert torch.equal(cat[:, :1], mask[:, :1].round()) and torch.equal(cat[:, 1:], lat)


def test_refiner_adm_negative_aesthetic_default_and_latent_size_default():
    from ldm.model import DiffusionModel

    cfg = SimpleNamespace(family="sdxl_refiner", unet=SimpleNamespace(adm_in_channels=8 + 5 * 256))
    model = DiffusionModel.__new__(DiffusionModel)
    model.config = cfg
    from ldm.unet import timestep_embedding

    neg = model.encode_adm({"prompt_type": "negative", "width": 64, "height": 32}, 1)
    assert torch.allclose(neg[0, 8 + 4 * 256:], timestep_embedding(torch.tensor([2.5]), 256)[0])
    pos = model.encode_adm({"width": 64, "height": 32}, 1)
    assert torch.allclose(pos[0, 8 + 4 * 256:], timestep_embedding(torch.tensor([6.0]), 256)[0])
    assert torch.allclose(pos[0, 8:8 + 256], timestep_embedding(torch.tensor([32.0]), 256)[0])  # height first


def test_noise_mask_only_masks_the_denoiser_no_final_blend():
    """KSamplerX0Inpaint masks the denoiser's input and output; the sampler's last state is the result.
    With a soft mask m = 0.5 the last Euler step lands on D = m·x0_model + (1−m)·latent."""
    from ldm.sample import sample

    m = Echo()
    latent = torch.full((1, 4, 8, 8), 2.0)  # raw latent; model space = ×0.18215
    out = sample(m, noise=torch.zeros(1, 4, 8, 8), latent=latent, positive=[c(1.0)], negative=[c(0.0)], cfg=1.0,
                 sampler_name="euler", scheduler="normal", steps=3, seed=0,
                 noise_mask=torch.full((1, 8, 8), 0.5))
    want = (0.5 * 1.0 + 0.5 * 2.0 * 0.18215) / 0.18215
    torch.testing.assert_close(out, torch.full_like(out, want), rtol=1e-5, atol=1e-5)


def test_prompt_weighting_touches_only_weighted_tokens():
    """sd1_clip's encode_token_weights: z = (z − z_empty)·w + z_empty only where w != 1, the other
    positions of the same (batched) encoding are left exactly as encoded."""
    from ldm.clip import TextEncoder
    from ldm.tiny_text import text_encoder_state_dict

    enc = TextEncoder.from_checkpoint(text_encoder_state_dict("sd1", width=32, layers=2, seed=1))
    chunks = enc.tokenize("a (cat:1.5) on a mat")
    plain = [[(t, 1.0) for t, _ in c] for c in chunks]
    with torch.no_grad():
        hidden, _ = enc._forward("l", plain + [enc._empty_chunk("l")])
        z, _ = enc._encode_slot("l", chunks)
    weights = torch.tensor([w for _, w in chunks[0]])
    same = weights == 1.0
    assert not same.all() and torch.equal(z[0, same], hidden[0, same])
    k = int((~same).nonzero()[0])
    torch.testing.assert_close(z[0, k], (hidden[0, k] - hidden[-1, k]) * 1.5 + hidden[-1, k])
