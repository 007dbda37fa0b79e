"""Per-scene blur-scale factors, estimated jointly with the network (``data.estimate_blur_scale``).

When a scene's pixel pitch or f-number is unknown (phones), its camera is completed with a nominal lens
(:func:`focalstack.optics.nominal.complete_camera`) and one factor ``exp(log_scale)`` multiplies every blur
std (pixels) of that scene in the losses; blur is proportional to ``f^2 / (N p)``, so the factor absorbs
the error of the nominal values (``true blur / nominal blur``). This is the training counterpart of
``FitConfig.estimate_blur_scale``. Factors are keyed by scene name (``SceneFolderDataset.scene_names``)
in checkpoints and ``blur_scales.json``, so they survive a reordering of the scenes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn


def pick_factors(factors: torch.Tensor, scene_index: torch.Tensor) -> torch.Tensor:
    """Per-item factors ``factors[scene_index]``, 1 where ``scene_index < 0`` (no persistent scene).

    Args:
        factors: (N,) factor of each scene.
        scene_index: (B,) int64 scene index of each item (``inputs["scene_index"]``), in [-1, N).

    Returns:
        (B,) factors on ``factors``' device and dtype (differentiable in ``factors``).

    Raises:
        IndexError: an index >= N.
    """
    idx = scene_index.to(factors.device, torch.long).flatten()
    if idx.numel() and int(idx.max()) >= factors.numel():
        raise IndexError(f"scene_index {int(idx.max())} out of range for {factors.numel()} scenes")
    picked = factors[idx.clamp_min(0)]
    return torch.where(idx >= 0, picked, torch.ones_like(picked))


class BlurScales(nn.Module):
    """One learnable log blur-scale per scene, initialised to 0 (factor 1: the nominal camera).

    Args:
        names: unique scene names, in dataset order (``inputs["scene_index"]`` indexes them).

    Raises:
        ValueError: duplicate names.
    """

    def __init__(self, names: Sequence[str]) -> None:
        super().__init__()
        if len(set(names)) != len(names):
            raise ValueError("scene names must be unique to key their blur scales")
        self.names = list(names)
        self.log_scale = nn.Parameter(torch.zeros(len(self.names)))

    def forward(self, scene_index: torch.Tensor) -> torch.Tensor:
        """(B,) factors on the blur std for items of scenes ``scene_index`` (B,); 1 for index -1."""
        return pick_factors(self.log_scale.exp(), scene_index)

    def factors(self) -> dict[str, float]:
        """``{scene name: factor}`` (dimensionless; true blur / nominal blur)."""
        return dict(zip(self.names, self.log_scale.detach().exp().tolist()))

    def factors_for(self, names: Sequence[str] | None, length: int = 0) -> torch.Tensor:
        """(len(names),) factors for another dataset's scenes by name; 1 for scenes without one.

        Args:
            names: the other dataset's scene names (None: ``length`` scenes with no names, all 1).
            length: number of scenes when ``names`` is None.
        """
        known = dict(zip(self.names, self.log_scale.detach().exp()))
        one = torch.ones((), device=self.log_scale.device)
        if names is None:
            return one.expand(length).clone()
        return torch.stack([known.get(n, one) for n in names]) if names else one.new_empty(0)

    def state_by_name(self) -> dict[str, float]:
        """``{scene name: log scale}`` in parameter order (what checkpoints store)."""
        return dict(zip(self.names, self.log_scale.detach().cpu().tolist()))

    @torch.no_grad()
    def load_by_name(self, saved: Mapping[str, float]) -> list[str]:
        """Set the log scales of the scenes named in ``saved``; the others keep theirs.

        Returns:
            The names in ``saved`` that are not scenes of this module (ignored).
        """
        index = {n: i for i, n in enumerate(self.names)}
        for name, value in saved.items():
            if name in index:
                self.log_scale[index[name]] = float(value)
        return [n for n in saved if n not in index]


def remap_rows(values: torch.Tensor, saved_names: Sequence[str], names: Sequence[str]) -> torch.Tensor:
    """Reorder per-scene ``values`` (N_saved,) saved for ``saved_names`` to ``names``; 0 for new scenes.

    Used for the optimiser state (Adam moments) of :class:`BlurScales` when the scenes were reordered,
    added or removed between a checkpoint and its resume.
    """
    index = {n: i for i, n in enumerate(saved_names)}
    out = values.new_zeros(len(names))
    for i, name in enumerate(names):
        if name in index:
            out[i] = values[index[name]]
    return out
