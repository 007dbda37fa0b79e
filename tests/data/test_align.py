from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from focalstack.data.align import (
    align_images,
    align_stack,
    largest_rectangle,
    orb_transform,
    save_alignment_preview,
    valid_mask,
)
from focalstack.data.stack import FocalStack

H, W = 120, 160


def _texture(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.random((H // 4, W // 4, 3)).astype(np.float32)
    coarse = cv2.resize(small, (W, H), interpolation=cv2.INTER_CUBIC)
    fine = cv2.GaussianBlur(rng.random((H, W, 3)).astype(np.float32), (0, 0), 1.0)
    return np.clip(0.6 * coarse + 0.4 * fine, 0, 1)


def _similarity(scale: float, angle_deg: float, tx: float, ty: float) -> np.ndarray:
    """Zoom about the image centre (focus breathing) + rotation + shift, as a 3 x 3 matrix."""
    c = np.array([(W - 1) / 2, (H - 1) / 2])
    a = math.radians(angle_deg)
    rot = scale * np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    t = c - rot @ c + [tx, ty]
    return np.vstack([np.hstack([rot, t[:, None]]), [0, 0, 1]])


TRUTH = [
    _similarity(1.03, 0.5, 2.0, -1.5),
    _similarity(1.015, -0.3, 1.0, 1.0),
    np.eye(3),
    _similarity(0.99, 0.4, -1.5, 0.5),
    _similarity(0.975, 0.8, -3.0, 2.0),
]


def _stack(blur: bool = True) -> torch.Tensor:
    """Slices = texture warped by TRUTH (slice(A x) = texture(x)), blurred more away from the middle."""
    tex = _texture()
    slices = []
    for k, A in enumerate(TRUTH):
        s = cv2.warpPerspective(tex, A, (W, H), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
        if blur:
            s = cv2.GaussianBlur(s, (0, 0), 0.5 + 0.6 * abs(k - 2))
        slices.append(np.clip(s, 0, 1))
    return torch.from_numpy(np.stack(slices)).permute(0, 3, 1, 2).contiguous()


def _corner_error(a: np.ndarray, b: np.ndarray) -> float:
    corners = np.array([[0, 0, 1], [W - 1, 0, 1], [0, H - 1, 1], [W - 1, H - 1, 1]], float).T
    pa, pb = a @ corners, b @ corners
    return float(np.abs(pa[:2] / pa[2] - pb[:2] / pb[2]).max())


@pytest.mark.parametrize("motion", ["homography", "affine"])
def test_recovers_known_transforms(motion: str) -> None:
    _, transforms, methods, ref = align_images(_stack(), motion=motion, progress=False)
    assert ref == 2 and methods == ["ecc", "ecc", "reference", "ecc", "ecc"]
    for truth, est in zip(TRUTH, transforms):
        assert _corner_error(truth, est) < 0.5


def test_align_stack_crops_consistently() -> None:
    images = _stack()
    depth = torch.rand(H, W) + 1.0
    aif = torch.from_numpy(_texture()).permute(2, 0, 1).contiguous()
    stack = FocalStack(images, torch.tensor([0.5, 0.7, 1.0, 1.5, 2.5]), None, depth, aif, "t", {"k": 1})
    result = align_stack(stack, reference=2)
    x0, y0, x1, y1 = result.crop
    out = result.stack
    assert out.images.shape == (5, 3, y1 - y0, x1 - x0)
    assert torch.equal(out.depth_m, depth[y0:y1, x0:x1]) and torch.equal(out.aif, aif[:, y0:y1, x0:x1])
    assert torch.equal(out.focus_m, stack.focus_m) and out.meta["k"] == 1
    assert out.meta["alignment"]["crop_xyxy"] == [x0, y0, x1, y1]
    # The crop loses only the border the 3 % zoom-out exposes, and the aligned slices match the AIF.
    assert (x1 - x0) * (y1 - y0) > 0.8 * H * W
    sharp = result.stack.images[2]
    for k in (0, 4):
        before = float((images[k][:, y0:y1, x0:x1] - sharp).abs().mean())
        after = float((out.images[k] - sharp).abs().mean())
        assert after < 0.6 * before


def test_reference_slice_untouched_and_identity_for_aligned_stack() -> None:
    images = torch.from_numpy(_texture()).permute(2, 0, 1)[None].repeat(3, 1, 1, 1).contiguous()
    aligned, transforms, _, _ = align_images(images, progress=False)
    assert np.allclose(transforms, np.eye(3), atol=1e-3)
    assert torch.equal(aligned[1], images[1])


def test_orb_fallback() -> None:
    gray = [cv2.cvtColor(s.permute(1, 2, 0).numpy(), cv2.COLOR_RGB2GRAY) for s in _stack(blur=False)]
    est = orb_transform(gray[2], gray[0])
    assert est is not None and _corner_error(TRUTH[0], est) < 1.5


def test_largest_rectangle_matches_brute_force() -> None:
    rng = np.random.default_rng(1)
    for _ in range(20):
        mask = rng.random((7, 9)) < 0.75
        if not mask.any():
            continue
        x0, y0, x1, y1 = largest_rectangle(mask)
        assert mask[y0:y1, x0:x1].all()
        best = max(
            (b - t) * (r - left)
            for t in range(7)
            for b in range(t + 1, 8)
            for left in range(9)
            for r in range(left + 1, 10)
            if mask[t:b, left:r].all()
        )
        assert (x1 - x0) * (y1 - y0) == best


def test_valid_mask_of_shift() -> None:
    shift = np.array([[1.0, 0, 3.0], [0, 1.0, 0], [0, 0, 1]])  # reference x -> slice x + 3
    mask = valid_mask(shift, (10, 20))
    assert mask[:, :16].all() and not mask[:, 17:].any()


def test_preview(tmp_path: Path) -> None:
    stack = FocalStack(_stack(), None, name="p")
    result = align_stack(stack)
    paths = save_alignment_preview(stack, result, tmp_path)
    assert [p.name for p in paths] == ["before.png", "after.png"]
    x0, y0, x1, y1 = result.crop
    for p in paths:
        img = cv2.imread(str(p))
        assert img.shape == (y1 - y0, x1 - x0, 3)


def test_bad_input() -> None:
    images = _stack()
    with pytest.raises(ValueError, match="motion"):
        align_images(images, motion="perspective")
    with pytest.raises(ValueError, match="reference"):
        align_images(images, reference=5)
    with pytest.raises(ValueError, match=r"\(S, C, H, W\)"):
        align_images(images[0])
    with pytest.raises(ValueError, match="no pixel"):
        largest_rectangle(np.zeros((3, 3), bool))


def test_macro_pcb_real_stack(shared_data: Path) -> None:
    stack = FocalStack.load(shared_data / "real" / "macro_pcb").resized(0.25)
    result = align_stack(stack)
    assert "neighbour" not in result.methods
    # Focus breathing: the zoom changes monotonically through the stack.
    zoom = [float(np.sqrt(abs(np.linalg.det(t[:2, :2])))) for t in result.transforms]
    assert all(a > b for a, b in zip(zoom, zoom[1:]))
