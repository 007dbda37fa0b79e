"""Align the slices of a focal stack (focus breathing, hand shake) to a reference slice.

Each slice is registered to the reference (the middle slice by default) with OpenCV's ECC maximisation
(``cv2.findTransformECC``) on smoothed grey images, coarse to fine over an image pyramid. Slices are
processed outwards from the reference and each starts from its already aligned neighbour's transform,
so large accumulated breathing still converges while every slice is matched to the reference itself
(no drift). When ECC fails (no convergence, low correlation, or an implausibly large motion) an ORB
feature match with RANSAC is used instead; when that fails too, the neighbour's transform is kept.

The aligned stack is cropped to the largest axis-aligned rectangle that is valid in every warped slice;
ground-truth depth and AIF (in the reference view) are cropped the same way.

Transforms are 3 x 3 matrices mapping reference pixel coordinates to slice pixel coordinates (pixel
centres at integers): ``aligned_i(x) = slice_i(T_i x)``.

Run ``python -m focalstack.data.align SCENE_DIR OUT_DIR`` to write before/after pictures.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
import torch
from tqdm import tqdm

from focalstack.utils.io import atomic_path

if TYPE_CHECKING:
    from focalstack.data.stack import FocalStack

MOTIONS = {
    "translation": cv2.MOTION_TRANSLATION,
    "euclidean": cv2.MOTION_EUCLIDEAN,
    "affine": cv2.MOTION_AFFINE,
    "homography": cv2.MOTION_HOMOGRAPHY,
}
#: ECC results with a lower correlation coefficient count as failures.
MIN_ECC_CORRELATION = 0.6
#: Largest plausible corner displacement, as a fraction of the image diagonal.
MAX_CORNER_SHIFT = 0.1
#: Coarsest pyramid level keeps at least this many pixels on the short side.
MIN_PYRAMID_SIDE = 64
_ECC_CRITERIA = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 100, 1e-6)


@dataclass
class AlignResult:
    """Output of :func:`align_stack`.

    Attributes:
        stack: the aligned stack, cropped to ``crop`` (GT depth / AIF cropped the same way).
        transforms: (S, 3, 3) float64, reference pixel coordinates -> slice pixel coordinates
            (in the uncropped images); identity for the reference.
        crop: ``(x0, y0, x1, y1)`` of the kept region in reference pixels (end exclusive).
        methods: per slice, "reference", "ecc", "orb" or "neighbour" (both estimators failed).
        reference: index of the reference slice.
    """

    stack: FocalStack
    transforms: np.ndarray
    crop: tuple[int, int, int, int]
    methods: list[str]
    reference: int


def _gray(img: np.ndarray) -> np.ndarray:
    """(H, W, 3), (H, W, 1) or (H, W) float in [0, 1] -> (H, W) float32 grey."""
    if img.ndim == 3 and img.shape[2] == 3:
        return cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    return img.reshape(img.shape[:2]).astype(np.float32)


def _scale_warp(warp: np.ndarray, factor: float) -> np.ndarray:
    """Express a 3 x 3 warp in coordinates scaled by ``factor`` (pyramid level change)."""
    d = np.diag([factor, factor, 1.0])
    return d @ warp @ np.linalg.inv(d)


def _plausible(warp: np.ndarray, shape: tuple[int, int]) -> bool:
    """Finite, no corner mapped to or behind the horizon, none moved more than MAX_CORNER_SHIFT diagonals."""
    h, w = shape
    if not np.isfinite(warp).all():
        return False
    corners = np.array([[0, 0, 1], [w - 1, 0, 1], [0, h - 1, 1], [w - 1, h - 1, 1]], np.float64).T
    mapped = warp @ corners
    if (mapped[2] <= 1e-6).any():
        return False
    shift = np.linalg.norm(mapped[:2] / mapped[2] - corners[:2], axis=0)
    return bool(shift.max() <= MAX_CORNER_SHIFT * math.hypot(h, w))


def ecc_transform(
    ref: np.ndarray, img: np.ndarray, *, motion: str = "homography", init: np.ndarray | None = None
) -> np.ndarray | None:
    """Coarse-to-fine ECC registration of ``img`` to ``ref``.

    Args:
        ref, img: (H, W) float32 grey images in [0, 1].
        motion: "translation", "euclidean", "affine" or "homography".
        init: 3 x 3 initial warp (reference -> image pixel coordinates), default identity.

    Returns:
        The 3 x 3 warp (reference -> image coordinates), or None when ECC fails or is implausible.
    """
    mode = MOTIONS[motion]
    pyr_ref, pyr_img = [ref], [img]
    while min(pyr_ref[-1].shape) >= 2 * MIN_PYRAMID_SIDE:
        pyr_ref.append(cv2.pyrDown(pyr_ref[-1]))
        pyr_img.append(cv2.pyrDown(pyr_img[-1]))
    warp = np.eye(3) if init is None else np.asarray(init, np.float64)
    warp = _scale_warp(warp, 0.5 ** (len(pyr_ref) - 1))
    rho = 0.0
    for level in reversed(range(len(pyr_ref))):
        rows = 3 if mode == cv2.MOTION_HOMOGRAPHY else 2
        start = (warp / warp[2, 2])[:rows].astype(np.float32)
        try:
            rho, found = cv2.findTransformECC(
                pyr_ref[level], pyr_img[level], start, mode, _ECC_CRITERIA, None, 5
            )
        except cv2.error:
            return None
        warp = np.vstack([found, [0, 0, 1]]) if rows == 2 else found.astype(np.float64)
        warp = warp.astype(np.float64)
        if level > 0:
            warp = _scale_warp(warp, 2.0)
    if rho < MIN_ECC_CORRELATION or not _plausible(warp, ref.shape):
        return None
    return warp


def orb_transform(ref: np.ndarray, img: np.ndarray, *, motion: str = "homography") -> np.ndarray | None:
    """Feature registration fallback: ORB keypoints, cross-checked Hamming matches, RANSAC.

    A homography for ``motion="homography"``, an affine map for "affine", a similarity otherwise.

    Args:
        ref, img: (H, W) float32 grey images in [0, 1].

    Returns:
        The 3 x 3 warp (reference -> image coordinates), or None when too few inliers are found.
    """
    orb = cv2.ORB_create(nfeatures=4000)
    to8 = [np.round(np.clip(x, 0, 1) * 255).astype(np.uint8) for x in (ref, img)]
    (kp_r, des_r), (kp_i, des_i) = (orb.detectAndCompute(x, None) for x in to8)
    if des_r is None or des_i is None:
        return None
    matches = cv2.BFMatcher(cv2.NORM_HAMMING, crossCheck=True).match(des_r, des_i)
    if len(matches) < 12:
        return None
    src = np.float32([kp_r[m.queryIdx].pt for m in matches])
    dst = np.float32([kp_i[m.trainIdx].pt for m in matches])
    if motion == "homography":
        warp, inliers = cv2.findHomography(src, dst, cv2.RANSAC, 2.0)
    else:
        fit = cv2.estimateAffine2D if motion == "affine" else cv2.estimateAffinePartial2D
        warp, inliers = fit(src, dst, method=cv2.RANSAC, ransacReprojThreshold=2.0)
        warp = None if warp is None else np.vstack([warp, [0, 0, 1]])
    if warp is None or inliers is None or int(inliers.sum()) < 10:
        return None
    warp = warp.astype(np.float64)
    return warp if _plausible(warp, ref.shape) else None


def warp_image(img: np.ndarray, warp: np.ndarray) -> np.ndarray:
    """Resample a slice into the reference frame: ``out(x) = img(warp x)`` (bilinear, edge replicate)."""
    h, w = img.shape[:2]
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    return cv2.warpPerspective(img, warp, (w, h), flags=flags, borderMode=cv2.BORDER_REPLICATE)


def valid_mask(warp: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(H, W) bool: reference pixels whose warped position (and its interpolation taps) lies in the slice."""
    h, w = shape
    ones = np.ones((h, w), np.float32)
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    covered = cv2.warpPerspective(ones, warp, (w, h), flags=flags, borderMode=cv2.BORDER_CONSTANT)
    return covered > 0.999


def largest_rectangle(mask: np.ndarray) -> tuple[int, int, int, int]:
    """Largest axis-aligned all-True rectangle of a boolean mask (histogram-stack method, O(H W)).

    Args:
        mask: (H, W) bool.

    Returns:
        ``(x0, y0, x1, y1)`` with exclusive ends.

    Raises:
        ValueError: the mask has no True pixel.
    """
    if not mask.any():
        raise ValueError("no pixel is valid in every aligned slice (transforms too large?)")
    h, w = mask.shape
    heights = np.zeros(w + 1, np.int64)  # sentinel column of height 0 flushes the stack
    best, best_box = 0, (0, 0, 0, 0)
    for y in range(h):
        heights[:w] = np.where(mask[y], heights[:w] + 1, 0)
        if heights[:w].max() * w <= best:
            continue  # even the tallest bar over the full width cannot win
        bars = heights.tolist()
        stack: list[int] = []
        for x, hx in enumerate(bars):
            while stack and bars[stack[-1]] >= hx:
                top = stack.pop()
                left = stack[-1] + 1 if stack else 0
                area = bars[top] * (x - left)
                if area > best:
                    best, best_box = area, (left, y - bars[top] + 1, x, y + 1)
            stack.append(x)
    return best_box


def _to_numpy(images: torch.Tensor) -> list[np.ndarray]:
    return [im.permute(1, 2, 0).detach().cpu().float().numpy() for im in images]


def align_images(
    images: torch.Tensor, *, motion: str = "homography", reference: int | None = None, progress: bool = True
) -> tuple[torch.Tensor, np.ndarray, list[str], int]:
    """Register every slice to a reference slice and warp it into the reference frame (uncropped).

    Args:
        images: (S, C, H, W) stack in [0, 1].
        motion: "translation", "euclidean", "affine" or "homography".
        reference: index of the reference slice (default: the middle one).
        progress: show a tqdm bar.

    Returns:
        ``(aligned (S, C, H, W), transforms (S, 3, 3), methods, reference)``; see :class:`AlignResult`.
    """
    if motion not in MOTIONS:
        raise ValueError(f"motion must be one of {sorted(MOTIONS)}, got {motion!r}")
    if images.dim() != 4 or images.shape[0] < 1:
        raise ValueError(f"images must be (S, C, H, W), got {tuple(images.shape)}")
    S = images.shape[0]
    ref = S // 2 if reference is None else reference
    if not 0 <= ref < S:
        raise ValueError(f"reference slice {reference} out of range for {S} slices")
    arrays = _to_numpy(images)
    grays = [_gray(a) for a in arrays]
    transforms = np.tile(np.eye(3), (S, 1, 1))
    methods = ["reference"] * S
    order = [*range(ref - 1, -1, -1), *range(ref + 1, S)]
    for i in tqdm(order, desc="aligning", disable=not progress or S < 3):
        neighbour = i + 1 if i < ref else i - 1
        init = transforms[neighbour]
        warp = ecc_transform(grays[ref], grays[i], motion=motion, init=init)
        methods[i] = "ecc"
        if warp is None:
            warp, methods[i] = orb_transform(grays[ref], grays[i], motion=motion), "orb"
        if warp is None:
            warp, methods[i] = init, "neighbour"
        transforms[i] = warp / warp[2, 2]
    aligned = [a if i == ref else warp_image(a, transforms[i]) for i, a in enumerate(arrays)]
    out = torch.from_numpy(np.stack(aligned)).reshape(S, *images.shape[2:], -1).permute(0, 3, 1, 2)
    return out.to(images).clamp(0, 1), transforms, methods, ref


def align_stack(
    stack: FocalStack, *, motion: str = "homography", reference: int | None = None
) -> AlignResult:
    """Align a focal stack to one of its slices and crop to the region valid in every slice.

    Args:
        stack: the focal stack; ``depth_m`` / ``aif`` (if any) are taken to be in the reference view.
        motion: "translation", "euclidean", "affine" or "homography" (default; handles focus breathing,
            shake and small rotations of a planar-ish scene).
        reference: index of the reference slice (default: the middle one).

    Returns:
        :class:`AlignResult` with the aligned, cropped stack (camera and focus distances unchanged;
        ``meta["alignment"]`` records reference, crop and methods) and the transforms.
    """
    aligned, transforms, methods, ref = align_images(stack.images, motion=motion, reference=reference)
    shape = tuple(stack.images.shape[-2:])
    mask = np.logical_and.reduce([valid_mask(t, shape) for t in transforms])
    x0, y0, x1, y1 = largest_rectangle(mask)
    out = dataclasses.replace(stack, images=aligned).cropped((y0, x0, y1 - y0, x1 - x0))
    record = {"reference": ref, "motion": motion, "crop_xyxy": [x0, y0, x1, y1], "methods": methods}
    out.meta["alignment"] = record
    return AlignResult(out, transforms, (x0, y0, x1, y1), methods, ref)


def _anaglyph(first: np.ndarray, last: np.ndarray) -> np.ndarray:
    """Red = first slice, cyan = last slice (grey); misalignment shows as colour fringes. uint8 RGB."""
    g1, g2 = _gray(first), _gray(last)
    rgb = np.stack([g1, g2, g2], axis=-1)
    return np.round(np.clip(rgb, 0, 1) * 255).astype(np.uint8)


def save_alignment_preview(stack: FocalStack, result: AlignResult, out_dir: str | Path) -> list[Path]:
    """Write before/after pictures of an alignment: red/cyan overlays of the first and last slices.

    Both pictures show the same region (the crop), so misalignment appears as colour fringes in
    ``before.png`` and should vanish in ``after.png``.

    Args:
        stack: the original (unaligned) stack.
        result: its :func:`align_stack` result.
        out_dir: folder for ``before.png`` and ``after.png``.

    Returns:
        The written paths.
    """
    x0, y0, x1, y1 = result.crop
    before = _to_numpy(stack.images[[0, -1], :, y0:y1, x0:x1])
    after = _to_numpy(result.stack.images[[0, -1]])
    paths = []
    for name, (first, last) in (("before.png", before), ("after.png", after)):
        path = Path(out_dir) / name
        with atomic_path(path) as tmp:
            if not cv2.imwrite(str(tmp), cv2.cvtColor(_anaglyph(first, last), cv2.COLOR_RGB2BGR)):
                raise OSError(f"could not write {path}")
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> None:
    """``python -m focalstack.data.align SCENE_DIR OUT_DIR [--motion M]``: align and write previews."""
    from focalstack.data.stack import FocalStack

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("scene", type=Path, help="scene folder (stack_XX.* + scene.json)")
    parser.add_argument("out", type=Path, help="folder for before.png / after.png")
    parser.add_argument("--motion", default="homography", choices=sorted(MOTIONS))
    args = parser.parse_args(argv)
    stack = FocalStack.load(args.scene)
    result = align_stack(stack, motion=args.motion)
    for path in save_alignment_preview(stack, result, args.out):
        print(f"wrote {path}")
    x0, y0, x1, y1 = result.crop
    h, w = stack.images.shape[-2:]
    print(f"methods {result.methods}; kept {x1 - x0}x{y1 - y0} of {w}x{h} px")


if __name__ == "__main__":
    main()
