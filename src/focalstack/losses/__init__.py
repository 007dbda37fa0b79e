"""Training losses (self-supervised: they see focal stacks and predictions only, never ground truth)."""

from focalstack.losses.aggregation import semi_global_aggregation
from focalstack.losses.rendering import depth_sweep, least_error_psf, noise_bias_map, rerender, select_psf
from focalstack.losses.selfsup import (
    INPUT_KEYS,
    NOISE_TOLERANT_SSIM_RANGE,
    LossConfig,
    LossOutput,
    coarse_aif,
    edge_aware_smoothness,
    log_sharpness_loss,
    photometric_loss,
    self_supervised_losses,
    self_supervised_losses_detailed,
)

__all__ = [
    "INPUT_KEYS",
    "NOISE_TOLERANT_SSIM_RANGE",
    "LossConfig",
    "LossOutput",
    "coarse_aif",
    "depth_sweep",
    "edge_aware_smoothness",
    "least_error_psf",
    "noise_bias_map",
    "log_sharpness_loss",
    "photometric_loss",
    "rerender",
    "select_psf",
    "self_supervised_losses",
    "self_supervised_losses_detailed",
    "semi_global_aggregation",
]
