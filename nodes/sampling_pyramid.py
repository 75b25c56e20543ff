"""KSamplerPyramid: Laplacian-pyramid sampling (ldm.pyramid) with any model of the zoo."""
from __future__ import annotations

from ldm.pyramid import sample_pyramid
from nodes.latent_space import fit_empty_latent
from nodes.registry import Combo, Float, In, Int, Out, String, node
from nodes.sampling import SAMPLER_OPTIONS, SCHEDULER_OPTIONS, SEED_MAX, preview_callback, resolve_areas


def parse_switches(text: str) -> list[float]:
    """'0.3, 0.6' → [0.3, 0.6]: fractions of the steps where sampling moves up one pyramid level."""
    try:
        values = [float(v) for v in text.replace(";", ",").split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"input 'switch_points': {text!r} is not a comma-separated list of numbers") from None
    if any(not 0.0 < v < 1.0 for v in values):
        raise ValueError(f"input 'switch_points': each switch point must be between 0 and 1 (got {text!r})")
    return values


@node("sampling", display_name="KSampler (Laplacian pyramid)")
class KSamplerPyramid:
    """Samples the coarse levels of a Laplacian pyramid first (1/2, 1/4 … of the latent size, much
    cheaper steps), then moves up a level at each switch point: the denoised estimate is upsampled,
    fresh detail noise is added so every block keeps the coarse level's signal-to-noise ratio, and
    sampling resumes at the matching sigma. Training-free; txt2img from an empty latent."""

    INPUTS = [
        In("model", "MODEL"),
        Int("seed", 0, min=0, max=SEED_MAX, control_after_generate=True),
        Int("steps", 20, min=1, max=10000),
        Float("cfg", 8.0, min=0.0, max=100.0, step=0.1, round=0.01),
        Combo("sampler_name", SAMPLER_OPTIONS), Combo("scheduler", SCHEDULER_OPTIONS),
        In("positive", "CONDITIONING"), In("negative", "CONDITIONING"), In("latent_image", "LATENT"),
        Int("levels", 2, min=1, max=4, tooltip="Pyramid levels: 2 = start at half size."),
        String("switch_points", "0.5", tooltip="Fractions of the steps where sampling moves up one level "
                                               "(one per level above the first), e.g. 0.3,0.6."),
    ]
    OUTPUTS = [Out("LATENT")]

    def run(self, ctx, model, seed, steps, cfg, sampler_name, scheduler, positive, negative, latent_image,
            levels, switch_points):
        latent = fit_empty_latent(model, latent_image)
        switches = parse_switches(switch_points)
        if levels > 1 and len(switches) < levels - 1:
            raise ValueError(f"input 'switch_points': {levels} levels need {levels - 1} switch point(s), "
                             f"got {len(switches)}")
        out, _stages = sample_pyramid(
            model, latent=latent["samples"], positive=positive, negative=negative, cfg=cfg,
            sampler_name=sampler_name, scheduler=scheduler, steps=steps, seed=seed, levels=levels,
            switches=switches, resolve=resolve_areas, callback=preview_callback(ctx, model))
        return ({**latent, "samples": out},)
