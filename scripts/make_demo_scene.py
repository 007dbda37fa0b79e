"""Generate the bundled demo scene ``src/focalstack/assets/demo_scene`` (used by ``focalstack demo``).

One procedural indoor-like scene, fully determined by ``SEED``: a slanted brick wall, a sphere,
a box, a pole, a blob, a small disc and a near out-of-focus object at the frame's corner,
each with its own random texture (:func:`focalstack.data.procedural.random_texture`). The 5-slice
stack is rendered with the occlusion-aware layered model, a disc PSF in linear light and mild sensor
noise, by a DSLR-like camera: 50 mm f/2.8 lens on an APS-C sensor (23.5 mm wide) whose image is
stored at 256 px wide, i.e. a pixel pitch of 23.5 mm / 256.

Usage: ``.venv/bin/python scripts/make_demo_scene.py [--out FOLDER]`` (default: the package asset).
The scene's licence is the project's (MIT).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch

from focalstack.data.procedural import random_texture, shape_coverage
from focalstack.data.stack import FocalStack
from focalstack.data.synth import NoiseConfig, synthesize_stack
from focalstack.optics.camera import ThinLens

SEED = 2  # picked among seeds 1-12 for the look of its textures
SIZE = (192, 256)  # (H, W) pixels
SENSOR_WIDTH_M = 23.5e-3
CAMERA = ThinLens(focal_length_m=0.05, f_number=2.8, pixel_size_m=SENSOR_WIDTH_M / SIZE[1])
FOCUS_M = (0.8, 1.0, 4.0 / 3.0, 2.0, 4.0)  # uniform in diopters: 1.25 to 0.25 D
NOISE = NoiseConfig(shot=3e-4, read=2e-3, quantize_bits=8)
OUT = Path(__file__).resolve().parents[1] / "src" / "focalstack" / "assets" / "demo_scene"

# Occluders: (kind, centre (y, x) px, radius px, aspect, angle rad, depth m). "sphere" is an ellipse
# of aspect 1 whose depth and shading follow a ball; the others are flat, fronto-parallel faces.
OBJECTS = (
    ("blob", (44.0, 62.0), 34.0, 1.0, 0.0, 3.0),
    ("ellipse", (58.0, 162.0), 14.0, 1.0, 0.0, 1.7),
    ("rectangle", (96.0, 212.0), 120.0, 0.07, math.pi / 2 - 0.06, 2.2),
    ("rectangle", (142.0, 168.0), 38.0, 0.7, 0.18, 1.3),
    ("sphere", (118.0, 74.0), 32.0, 1.0, 0.0, 1.05),
    ("ellipse", (196.0, 254.0), 52.0, 0.8, 0.5, 0.78),
)


def _coords(H: int, W: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel-centre coordinates (y, x), each (H, W) float32."""
    return torch.meshgrid(
        torch.arange(H, dtype=torch.float32), torch.arange(W, dtype=torch.float32), indexing="ij"
    )


def _wall(g: torch.Generator, H: int, W: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Depth (H, W) and sRGB (3, H, W) of a brick wall slanted in x and y.

    Its inverse depth is affine in pixel coordinates (a plane seen by a pinhole camera); the bricks
    are laid out in metres on the wall, so they shrink with distance (perspective foreshortening).
    """
    y, x = _coords(H, W)
    near_d, far_d = 1.0 / 1.6, 1.0 / 6.0  # diopters at the bottom-left and top-right corners
    ramp = 0.65 * x / (W - 1) + 0.35 * (1.0 - y / (H - 1))
    depth = (1.0 / (near_d + (far_d - near_d) * ramp.double())).float()
    # Back-project to metres on the wall (pinhole camera, optical axis at the image centre).
    scale = depth * CAMERA.pixel_size_m / CAMERA.focal_length_m
    wx, wy = (x - W / 2) * scale, (y - H / 2) * scale
    row = torch.floor(wy / 0.075)
    col = torch.floor(wx / 0.21 + 0.5 * (row % 2))
    u, v = wx / 0.21 + 0.5 * (row % 2) - col, wy / 0.075 - row  # position inside the brick, in [0, 1)
    mortar = ((u < 0.05) | (v < 0.13)).float()
    # Per-brick colour: a random table indexed by the brick's (row, column).
    table = 0.85 + 0.3 * torch.rand(64, 64, generator=g)
    jitter = table[(row % 64).long(), (col % 64).long()]
    brick = torch.tensor([0.55, 0.27, 0.2])[:, None, None] * jitter
    colour = brick + mortar * (torch.tensor([0.62, 0.6, 0.56])[:, None, None] - brick)
    grain = 1.0 + 0.06 * torch.randn((1, H, W), generator=g)
    return depth, (colour * grain).clamp(0.0, 1.0)


def _sphere(H: int, W: int, centre: tuple[float, float], radius_px: float, depth_m: float):
    """Depth (H, W) and Lambertian shading (H, W) of a ball whose nearest point is at ``depth_m``."""
    y, x = _coords(H, W)
    rho2 = ((y - centre[0]) ** 2 + (x - centre[1]) ** 2) / radius_px**2
    nz = torch.sqrt((1.0 - rho2).clamp_min(0.0))  # surface normal's component towards the camera
    radius_m = radius_px * CAMERA.pixel_size_m * depth_m / CAMERA.focal_length_m  # pinhole scale
    depth = depth_m + radius_m * (1.0 - nz)
    light = torch.tensor([-0.5, -0.4, 0.77])  # from the upper left, towards the camera
    ny, nx = (y - centre[0]) / radius_px, (x - centre[1]) / radius_px
    shading = 0.3 + 0.7 * (light[0] * ny + light[1] * nx + light[2] * nz).clamp_min(0.0)
    return depth, shading


def scene_geometry(g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """The scene's ground truth, drawn from ``g``: depth (H, W) metres and AIF (3, H, W) sRGB."""
    H, W = SIZE
    depth, aif = _wall(g, H, W)
    # Painted far to near; a pixel belongs to an object where its coverage passes one half.
    for kind, centre, radius, aspect, angle, obj_depth in sorted(OBJECTS, key=lambda o: -o[-1]):
        texture = random_texture(g, H, W)
        if kind == "sphere":
            cover = shape_coverage(SIZE, "ellipse", centre, radius)
            obj, shading = _sphere(H, W, centre, radius, obj_depth)
            texture = texture * shading
        else:
            harmonics = [(0.25 / k, 1.3 * k) for k in range(2, 6)] if kind == "blob" else ()
            cover = shape_coverage(SIZE, kind, centre, radius, aspect, angle, harmonics)
            obj = torch.full((H, W), obj_depth)
        depth = torch.where(cover > 0.5, obj, depth)
        aif = aif + cover[None] * (texture - aif)
    return depth, aif.clamp(0.0, 1.0)


def make_demo_scene(seed: int = SEED) -> FocalStack:
    """Build the demo scene in memory (deterministic given ``seed``).

    Returns:
        A :class:`FocalStack`: 5 slices (3, 192, 256) sRGB, focus distances (metres), the complete
        camera, ground-truth ``depth_m`` (192, 256) metres and ``aif`` (3, 192, 256).
    """
    g = torch.Generator().manual_seed(seed)
    depth, aif = scene_geometry(g)
    images = synthesize_stack(
        aif, depth, CAMERA, FOCUS_M, model="layered", psf="disc", noise=NOISE, generator=g
    )
    meta = {
        "source": "generated by scripts/make_demo_scene.py (focalstack), procedural scene",
        "seed": seed,
        "licence": "MIT (same as the focalstack project)",
        "camera_note": "DSLR-like: 50 mm f/2.8 lens, APS-C sensor 23.5 mm wide imaged at 256 px",
        "synth": {
            "model": "layered",
            "psf": "disc",
            "fill_hidden": True,
            "linear_light": True,
            "noise": NOISE,
        },
    }
    return FocalStack(images, FOCUS_M, CAMERA, depth_m=depth, aif=aif, name="demo_scene", meta=meta)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT, help="scene folder to (over)write")
    args = parser.parse_args()
    folder = make_demo_scene().save(args.out, bits=8, overwrite=True)
    total = sum(p.stat().st_size for p in folder.iterdir())
    print(f"wrote {folder} ({total / 1e3:.0f} kB)")


if __name__ == "__main__":
    main()
