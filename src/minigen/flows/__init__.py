"""Normalizing flows: invertible transforms with exact log-determinants, and the ``Flow``
distribution they define (deck 003; Rezende & Mohamed 2015; Papamakarios et al. 2021).

Every transform ``T`` is a ``minigen.nn.Module`` with ``forward(z) -> (x, log_abs_det)`` (the
generative direction, base variable to data, as in the deck's y = 2x + 1) and
``inverse(x) -> (z, log_abs_det)`` (the density direction); ``log_abs_det`` has shape (N,).

    base.py         Transform, Sequential, Flow, StandardNormal / StandardLogistic bases, dequantize
    elementwise.py  Affine, Logit, ActNorm
    planar.py       Planar, Radial (no closed-form inverse), planar_step
    coupling.py     AdditiveCoupling (NICE), AffineCoupling (RealNVP), checkerboard_mask, channel_mask
    made.py         MADE, MAF (parallel density), IAF (parallel sampling)
    glow.py         Invertible1x1Conv (optionally LU), Squeeze
    posterior.py    AmortizedPlanar, IAFPosterior: flow posteriors for a VAE
"""
from .base import (Flow, Sequential, StandardLogistic, StandardNormal, Transform, dequantize,
                   sum_except_batch)
from .elementwise import ActNorm, Affine, Logit
from .planar import Planar, Radial, planar_step
from .coupling import AdditiveCoupling, AffineCoupling, channel_mask, checkerboard_mask
from .made import IAF, MADE, MAF
from .glow import Invertible1x1Conv, Squeeze
from .posterior import AmortizedPlanar, IAFPosterior

__all__ = ["Transform", "Sequential", "Flow", "StandardNormal", "StandardLogistic", "dequantize",
           "sum_except_batch", "Affine", "Logit", "ActNorm", "Planar", "Radial", "planar_step",
           "AdditiveCoupling", "AffineCoupling", "checkerboard_mask", "channel_mask", "MADE", "MAF",
           "IAF", "Invertible1x1Conv", "Squeeze", "AmortizedPlanar", "IAFPosterior"]
