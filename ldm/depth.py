"""SD2 depth-to-image (stabilityai `512-depth-ema`): its UNet takes 5 channels, the latent followed by
a depth map at the latent's size, normalised per image to -1..1 (stablediffusion's
LatentDepth2ImageDiffusion: bicubic resize, then 2·(d − min)/(max − min + 0.001) − 1).

The checkpoint also carries the MiDaS DPT-Hybrid estimator that made those maps (`depth_model.*`);
we do not run it: the depth map comes from the graph (any depth preprocessor or a painted map,
brighter = nearer, as MiDaS' inverse depth is).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def depth_concat(depth: Tensor, b: int, h: int, w: int) -> Tensor:
    """[b, 1, h, w] in -1..1 from a depth map [N, 1, H, W] (any range)."""
    d = F.interpolate(depth.float(), size=(h, w), mode="bicubic", align_corners=False)
    lo = d.amin(dim=(1, 2, 3), keepdim=True)
    hi = d.amax(dim=(1, 2, 3), keepdim=True)
    d = 2.0 * (d - lo) / (hi - lo + 0.001) - 1.0
    if d.shape[0] != b:
        d = d.repeat(-(-b // d.shape[0]), 1, 1, 1)[:b]
    return d
