"""Discrete DDPM noise schedule seen as a table of sigmas (the k-diffusion view of SD1/SD2/SDXL).

A Stable Diffusion UNet was trained on 1000 discrete timesteps. Samplers work in the continuous
sigma parameterisation (x_noisy = x0 + sigma·eps), so this module converts both ways: a sigma
goes to the timestep with the nearest log sigma (what the UNet sees), a fractional timestep goes
to a sigma by log-linear interpolation (what schedules use). The numbers follow ComfyUI's
discrete model sampling so that schedules and noise match bit for bit (see COMPAT.md).
"""
from __future__ import annotations

import torch
from torch import Tensor

from ldm.configs import PREDICTIONS

__all__ = ["ModelSampling"]



def _bcast(sigma: Tensor | float, like: Tensor) -> Tensor:
    """Sigma as a tensor shaped [B, 1, 1, ...] (or scalar) so it broadcasts over `like`."""
    s = torch.as_tensor(sigma, dtype=like.dtype, device=like.device)
    if s.ndim == 0:
        return s
    return s.reshape(s.shape[:1] + (1,) * (like.ndim - 1))


BETA_SCHEDULES = ("linear", "cosine", "sqrt_linear", "sqrt")


def make_betas(schedule: str, n: int, linear_start: float, linear_end: float) -> Tensor:
    """The LDM code's beta schedules (float64): "linear" is linear in sqrt(beta) (SD's "scaled
    linear"), "cosine" the improved-DDPM schedule (Nichol & Dhariwal 2021, s = 0.008, betas capped
    at 0.999), "sqrt_linear" linear in beta, "sqrt" the square root of that."""
    if schedule == "linear":
        return torch.linspace(linear_start ** 0.5, linear_end ** 0.5, n, dtype=torch.float64) ** 2
    if schedule == "cosine":
        s = 8e-3
        t = torch.arange(n + 1, dtype=torch.float64) / n + s
        alphas = torch.cos(t / (1 + s) * torch.pi / 2) ** 2
        alphas = alphas / alphas[0]
        return (1 - alphas[1:] / alphas[:-1]).clamp(0, 0.999)
    if schedule == "sqrt_linear":
        return torch.linspace(linear_start, linear_end, n, dtype=torch.float64)
    if schedule == "sqrt":
        return torch.linspace(linear_start, linear_end, n, dtype=torch.float64) ** 0.5
    raise ValueError(f"unknown beta schedule {schedule!r}; expected one of {BETA_SCHEDULES}")


class ModelSampling:
    """Sigma table and the eps/v/x0 → x0 conversions of one discrete-time diffusion model."""

    def __init__(self, prediction: str = "eps", linear_start: float = 0.00085,
                 linear_end: float = 0.012, timesteps: int = 1000, beta_schedule: str = "linear",
                 alphas_cumprod: Tensor | None = None) -> None:
        if prediction not in PREDICTIONS:
            raise ValueError(f"unknown prediction type {prediction!r}; expected one of {PREDICTIONS}")
        self.prediction = prediction
        self.linear_start = linear_start
        self.linear_end = linear_end
        self.beta_schedule = beta_schedule
        if alphas_cumprod is None:
            betas = make_betas(beta_schedule, int(timesteps), linear_start, linear_end)
            alphas_cumprod = torch.cumprod(1.0 - betas, dim=0)
        else:  # the table a checkpoint carries (the LDM zoo's files store their own)
            alphas_cumprod = alphas_cumprod.to(torch.float64).reshape(-1)
        self.num_timesteps = int(alphas_cumprod.shape[0])
        sigmas = ((1.0 - alphas_cumprod) / alphas_cumprod) ** 0.5
        self.alphas_cumprod = alphas_cumprod.float()
        self.sigmas = sigmas.float()
        self.log_sigmas = sigmas.log().float()

    # ------------------------------------------------------------------ table lookups
    @property
    def sigma_min(self) -> Tensor:
        """Smallest sigma of the table (timestep 0)."""
        return self.sigmas[0]

    @property
    def sigma_max(self) -> Tensor:
        """Largest sigma of the table (last timestep)."""
        return self.sigmas[-1]

    def timestep(self, sigma: Tensor | float) -> Tensor:
        """Discrete timestep (float tensor, same shape as sigma) whose log sigma is nearest."""
        sigma = torch.as_tensor(sigma, dtype=torch.float32)
        log_sigmas = self.log_sigmas.to(sigma.device)
        dists = sigma.log().reshape(1, -1) - log_sigmas.reshape(-1, 1)
        return dists.abs().argmin(dim=0).reshape(sigma.shape).to(sigma.dtype)

    def sigma(self, timestep: Tensor | float) -> Tensor:
        """Sigma at a (fractional) timestep, interpolating log sigma linearly between table entries."""
        t = torch.as_tensor(timestep, dtype=torch.float32)
        t = t.clamp(0, self.num_timesteps - 1)
        log_sigmas = self.log_sigmas.to(t.device)
        low = t.floor().long()
        high = t.ceil().long()
        w = t.frac()
        return ((1 - w) * log_sigmas[low] + w * log_sigmas[high]).exp()

    def percent_to_sigma(self, percent: float) -> float:
        """Sigma reached after `percent` of the denoising (0 → beyond any sigma, 1 → 0)."""
        if percent <= 0.0:
            return 999999999.9
        if percent >= 1.0:
            return 0.0
        return float(self.sigma(torch.tensor((1.0 - percent) * (self.num_timesteps - 1.0))))

    # ------------------------------------------------------------------ model-side conversions
    def calculate_input(self, sigma: Tensor | float, x: Tensor) -> Tensor:
        """UNet input c_in·x with c_in = 1/√(σ²+1) (sigma_data = 1)."""
        s = _bcast(sigma, x)
        return x / (s * s + 1.0) ** 0.5

    def calculate_denoised(self, sigma: Tensor | float, model_output: Tensor, x: Tensor) -> Tensor:
        """x0 from the UNet output: eps → x − σ·eps; v → x/(σ²+1) − v·σ/√(σ²+1); x0 → the output."""
        if self.prediction == "x0":
            return model_output
        s = _bcast(sigma, model_output)
        if self.prediction == "eps":
            return x - model_output * s
        return x / (s * s + 1.0) - model_output * s / (s * s + 1.0) ** 0.5

    def noise_scaling(self, sigma: Tensor | float, noise: Tensor, latent_image: Tensor,
                      max_denoise: bool = False) -> Tensor:
        """Starting point of sampling: latent + σ·noise, or √(1+σ²)·noise at the schedule's maximum.

        At max_denoise the sample is treated as pure noise of variance 1+σ² (data variance ~1),
        which is what ComfyUI does for full txt2img runs.
        """
        s = _bcast(sigma, noise)
        scale = (1.0 + s * s) ** 0.5 if max_denoise else s
        return noise * scale + latent_image

    def inverse_noise_scaling(self, sigma: Tensor | float, latent: Tensor) -> Tensor:
        """Undo noise_scaling at the end of sampling; the identity for eps/v models."""
        return latent

    def __repr__(self) -> str:
        return (f"ModelSampling(prediction={self.prediction!r}, linear_start={self.linear_start}, "
                f"linear_end={self.linear_end}, timesteps={self.num_timesteps}, "
                f"beta_schedule={self.beta_schedule!r})")
