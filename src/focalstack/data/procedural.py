"""Procedural training scenes: random textured geometry rendered into focal stacks on the fly.

Each scene draws a camera, a focus schedule (uniform in diopters, jittered) and a depth layout
(fronto-parallel and slanted planes, occluding objects, smooth curved surfaces) textured at many
scales, then renders the stack with the occlusion-aware layered model of
:func:`focalstack.data.synth.synthesize_stack`. Everything is a pure function of the generator's
state, so a seed reproduces a scene exactly. Scene depth stays inside the stack's working range
(:func:`focalstack.data.normalize.working_range_m` with margin ``depth_margin``, by default the same
range the network normalises with), so the network can represent it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import cv2
import kornia
import numpy as np
import torch
import torch.nn.functional as F

from focalstack.data.normalize import working_range_m
from focalstack.data.stack import FocalStack
from focalstack.data.synth import NoiseConfig, synthesize_stack
from focalstack.optics.camera import ThinLens

LAYOUTS = ("planes", "objects", "curved")
SHAPES = ("rectangle", "ellipse", "blob")
TEXTURES = ("noise", "grating", "checker", "leaves", "flat")


@dataclass
class ProceduralConfig:
    """Ranges the random scenes are drawn from. ``(lo, hi)`` ranges are inclusive.

    Distances are metres, blur is the Gaussian std in pixels (CoC radius / 2). Focal length,
    f-number, focus distances and pixel pitch are drawn log-uniformly.
    """

    size: tuple[int, int] = (128, 128)
    """Image size (H, W) in pixels."""
    num_slices: tuple[int, int] = (5, 5)
    """Range of the slice count S (>= 2)."""
    focal_length_m: tuple[float, float] = (0.004, 0.1)
    """Focal length range."""
    f_number: tuple[float, float] = (1.2, 8.0)
    """f-number range."""
    pixel_size_m: tuple[float, float] = (1e-6, 2e-5)
    """Pixel pitch range at this resolution (left only if no f-number/pitch in range fits max_sigma_px)."""
    near_focus_m: tuple[float, float] = (0.25, 2.0)
    """Range of the nearest focus distance."""
    far_focus_m: tuple[float, float] = (1.0, 20.0)
    """Range of the farthest focus distance."""
    min_focus_ratio: float = 1.5
    """The farthest focus distance is at least this times the nearest."""
    focus_jitter: float = 0.25
    """Interior focus positions move by up to this fraction of the diopter spacing (< 0.5)."""
    reverse_prob: float = 0.5
    """Probability of far-to-near slice order (else near to far)."""
    depth_margin: float = 1.0
    """Scene depth stays within the focus range widened by this many diopter spacings per side."""
    max_sigma_px: tuple[float, float] = (1.5, 5.0)
    """Range of the largest blur std (px) over the scene's depth range; sets f-number and pitch."""
    disc_prob: float = 0.5
    """Probability of a disc PSF (else Gaussian)."""
    layout_weights: tuple[float, float, float] = (0.3, 0.45, 0.25)
    """Relative probabilities of the layouts (planes, objects, curved)."""
    slant_prob: float = 0.5
    """Probability that a plane or object is slanted rather than fronto-parallel."""
    max_objects: int = 6
    """Largest number of occluding objects in the 'objects' layout."""
    shot_noise: tuple[float, float] = (0.0, 2e-3)
    """Range of the shot-noise gain (see NoiseConfig.shot)."""
    read_noise: tuple[float, float] = (0.0, 4e-3)
    """Range of the read-noise std, linear units."""
    quantize_bits: int | None = 8
    """Quantise the rendered slices to this many bits (None: keep floats)."""

    def __post_init__(self) -> None:
        def check_range(name: str, low: float, integer: bool = False) -> None:
            lo, hi = getattr(self, name)
            if integer and not (isinstance(lo, int) and isinstance(hi, int)):
                raise ValueError(f"ProceduralConfig.{name} must be two integers, got {(lo, hi)}")
            if not (math.isfinite(lo) and math.isfinite(hi) and low <= lo <= hi):
                raise ValueError(f"ProceduralConfig.{name} must be a range {low} <= lo <= hi, got {lo, hi}")

        if len(self.size) != 2 or not all(isinstance(v, int) and v >= 8 for v in self.size):
            raise ValueError(f"ProceduralConfig.size must be two integers >= 8 (H, W), got {self.size}")
        check_range("num_slices", 2, integer=True)
        for name in ("focal_length_m", "f_number", "pixel_size_m", "near_focus_m", "far_focus_m"):
            check_range(name, 1e-9)
        check_range("max_sigma_px", 1e-3)
        check_range("shot_noise", 0.0)
        check_range("read_noise", 0.0)
        if self.near_focus_m[0] <= self.focal_length_m[1]:
            raise ValueError("ProceduralConfig: near focus distances must exceed every focal length")
        ratio = self.min_focus_ratio
        if not ratio > 1.0 or self.near_focus_m[1] * ratio > self.far_focus_m[1]:
            raise ValueError(
                "ProceduralConfig: need min_focus_ratio > 1 and "
                "near_focus_m[1] * min_focus_ratio <= far_focus_m[1]"
            )
        if not 0.0 <= self.focus_jitter < 0.5:
            raise ValueError(f"ProceduralConfig.focus_jitter must be in [0, 0.5), got {self.focus_jitter}")
        for name in ("reverse_prob", "disc_prob", "slant_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"ProceduralConfig.{name} must be a probability, got {getattr(self, name)}")
        if self.depth_margin < 0:
            raise ValueError(f"ProceduralConfig.depth_margin must be >= 0, got {self.depth_margin}")
        w = self.layout_weights
        if len(w) != len(LAYOUTS) or min(w) < 0 or sum(w) <= 0:
            raise ValueError(f"ProceduralConfig.layout_weights must be {len(LAYOUTS)} weights >= 0, got {w}")
        if self.max_objects < 1:
            raise ValueError(f"ProceduralConfig.max_objects must be >= 1, got {self.max_objects}")
        NoiseConfig(quantize_bits=self.quantize_bits)  # validates the bit depth


# ---------------------------------------------------------------------------- random helpers


def _rand(g: torch.Generator, *shape: int) -> torch.Tensor:
    return torch.rand(shape, generator=g, dtype=torch.float32)


def _uniform(g: torch.Generator, lo: float, hi: float) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=g, dtype=torch.float64))


def _log_uniform(g: torch.Generator, lo: float, hi: float) -> float:
    return math.exp(_uniform(g, math.log(lo), math.log(hi)))


def _randint(g: torch.Generator, lo: int, hi: int) -> int:
    """Uniform integer in [lo, hi]."""
    return int(torch.randint(lo, hi + 1, (), generator=g))


def _coin(g: torch.Generator, p: float) -> bool:
    return float(torch.rand((), generator=g)) < p


def _choice(g: torch.Generator, weights: tuple[float, ...]) -> int:
    return int(torch.multinomial(torch.tensor(weights, dtype=torch.float64), 1, generator=g))


# ---------------------------------------------------------------------------- textures


def _normalise(x: torch.Tensor) -> torch.Tensor:
    lo, hi = x.min(), x.max()
    return (x - lo) / (hi - lo).clamp_min(1e-6)


def _value_noise(g: torch.Generator, H: int, W: int) -> torch.Tensor:
    """Multi-octave value noise in [0, 1] with a random spectral slope (smooth to grainy)."""
    n = _randint(g, 1, 4)
    octaves = _randint(g, 2, 6)
    persistence = _uniform(g, 0.35, 0.8)
    out = _rand(g, 1, 1, n + 1, n + 1)
    amplitude = 1.0
    # Octaves are summed on ever finer lattices (each doubling keeps the coarse lattice points), so
    # only the last upsampling runs at full resolution.
    for _ in range(octaves - 1):
        if 2 * n > max(H, W) // 2:
            break
        n *= 2
        amplitude *= persistence
        out = F.interpolate(out, size=(n + 1, n + 1), mode="bicubic", align_corners=True)
        out = out + amplitude * _rand(g, 1, 1, n + 1, n + 1)
    return _normalise(F.interpolate(out, size=(H, W), mode="bicubic", align_corners=True)[0, 0])


def _coords(H: int, W: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel-centre coordinates (y, x), each (H, W), in pixels."""
    y = torch.arange(H, dtype=torch.float32)[:, None].expand(H, W)
    x = torch.arange(W, dtype=torch.float32)[None, :].expand(H, W)
    return y, x


def _wave(g: torch.Generator, y: torch.Tensor, x: torch.Tensor, square: bool) -> torch.Tensor:
    """A plane wave at a random angle, frequency (3 to 64 px per cycle) and phase, in [-1, 1]."""
    theta = _uniform(g, 0.0, math.pi)
    period = _log_uniform(g, 3.0, 64.0)
    phase = _uniform(g, 0.0, 2 * math.pi)
    w = torch.sin(2 * math.pi * (x * math.cos(theta) + y * math.sin(theta)) / period + phase)
    # A steep tanh gives square waves with about one pixel of edge (anti-aliased).
    return torch.tanh(w * period / 2) if square else w


def _dead_leaves(g: torch.Generator, H: int, W: int) -> torch.Tensor:
    """(3, H, W) occluding discs of random colours with power-law radii (natural-image statistics)."""
    n = _randint(g, 100, 250)
    r_min, r_max = 1.5, 0.3 * min(H, W)
    # Radii with density ~ r^-2, by inverse-CDF sampling: many small discs, enough large ones to cover.
    radius = 1.0 / (1.0 / r_min - _rand(g, n) * (1.0 / r_min - 1.0 / r_max))
    centre_y, centre_x = _rand(g, n) * H, _rand(g, n) * W
    colours = _colours(g, n + 1)
    # OpenCV paints the discs (painter's order: last on top) on a 2x canvas; area downsampling
    # anti-aliases the edges. Coordinates carry 4 fractional bits.
    canvas = np.empty((2 * H, 2 * W, 3), dtype=np.float32)
    canvas[:] = colours[n].numpy()
    fixed = torch.stack([centre_x, centre_y, radius], dim=1).mul(2 * 16).round().int().tolist()
    for (cx, cy, r), c in zip(fixed, colours.tolist()):
        cv2.circle(canvas, (cx, cy), r, c, thickness=-1, lineType=cv2.LINE_8, shift=4)
    small = cv2.resize(canvas, (W, H), interpolation=cv2.INTER_AREA)
    return torch.from_numpy(small).permute(2, 0, 1).contiguous()


def _pattern(g: torch.Generator, H: int, W: int, kind: str) -> torch.Tensor:
    """A scalar (H, W) pattern in [0, 1]."""
    y, x = _coords(H, W)
    if kind == "noise":
        return _value_noise(g, H, W)
    if kind == "grating":
        return 0.5 + 0.5 * _wave(g, y, x, square=_coin(g, 0.5))
    if kind == "checker":
        theta = _uniform(g, 0.0, math.pi / 2)
        period = _log_uniform(g, 4.0, 48.0)
        u = x * math.cos(theta) + y * math.sin(theta)
        v = -x * math.sin(theta) + y * math.cos(theta)
        sq = torch.tanh(torch.sin(2 * math.pi * u / period) * period / 2)
        return 0.5 + 0.5 * sq * torch.tanh(torch.sin(2 * math.pi * v / period) * period / 2)
    if kind == "leaves":  # grey-level leaves, as a modulating pattern
        return _dead_leaves(g, H, W).mean(dim=0)
    # "flat": a nearly uniform region with a faint gradient (low-texture areas are common in photos).
    return _normalise(_wave(g, y, x, square=False)) * _uniform(g, 0.0, 0.15)


def _colours(g: torch.Generator, n: int) -> torch.Tensor:
    """(n, 3) sRGB colours with natural-looking statistics: mostly unsaturated, any brightness."""
    hue = _rand(g, n) * 2 * math.pi
    sat = _rand(g, n) ** 2 * 0.9
    val = 0.05 + 0.9 * _rand(g, n)
    hsv = torch.stack([hue, sat, val], dim=1)[..., None, None]
    return kornia.color.hsv_to_rgb(hsv)[..., 0, 0]


def random_texture(g: torch.Generator, H: int, W: int) -> torch.Tensor:
    """A random surface texture: patterns, dead leaves, gratings or flat areas, with shading and grain.

    Args:
        g: CPU random source (the texture is a pure function of its state).
        H, W: size in pixels.

    Returns:
        (3, H, W) float32 sRGB values in [0, 1].
    """
    kind = TEXTURES[_choice(g, (0.3, 0.15, 0.1, 0.35, 0.1))]
    if kind == "leaves":
        tex = _dead_leaves(g, H, W)
    else:
        p = _pattern(g, H, W, kind)
        c0, c1 = _colours(g, 2)
        # Mostly a clear brightness difference: c1's value is c0's shifted by 0.25..0.75 (mod 1).
        target = (float(c0.max()) + _uniform(g, 0.25, 0.75)) % 1.0
        c1 = c1 * min(4.0, target / max(float(c1.max()), 1e-3))
        if _coin(g, 0.2):
            c1 = c0 + _uniform(g, 0.05, 0.5) * (c1 - c0)
        tex = c0[:, None, None] + (c1 - c0)[:, None, None] * p
    if kind != "flat" and _coin(g, 0.3):  # modulate by a second pattern: textures on textures
        tex = tex * (0.4 + 0.6 * _pattern(g, H, W, TEXTURES[_choice(g, (0.5, 0.2, 0.1, 0.2, 0.0))]))
    # Faint shading and grain: real surfaces are never perfectly uniform.
    shade = 1.0 + _uniform(g, 0.0, 0.3) * (_value_noise(g, H, W) - 0.5)
    grain = _uniform(g, 0.0, 0.02) * torch.randn((3, H, W), generator=g)
    return (tex * shade + grain).clamp(0.0, 1.0)


# ---------------------------------------------------------------------------- geometry

# Depth layouts work in t in [0, 1] across the scene's diopter range: 0 = far end, 1 = near end.


def _plane(g: torch.Generator, H: int, W: int, slanted: bool, span: float = 1.0) -> torch.Tensor:
    """(H, W) t of a plane: inverse depth is affine in image coordinates for a pinhole camera."""
    t0 = _uniform(g, 0.0, 1.0)
    if not slanted:
        return torch.full((H, W), t0)
    t1 = min(1.0, max(0.0, t0 + span * _uniform(g, -1.0, 1.0)))
    theta = _uniform(g, 0.0, 2 * math.pi)
    y, x = _coords(H, W)
    return t0 + (t1 - t0) * _normalise(x * math.cos(theta) + y * math.sin(theta))


def _curved(g: torch.Generator, H: int, W: int) -> torch.Tensor:
    """(H, W) t of a smooth random surface (a few undulations) spanning a random depth interval."""
    n = _randint(g, 1, 4)
    grid = _rand(g, 1, 1, n + 1, n + 1)
    field = F.interpolate(grid, size=(H, W), mode="bicubic", align_corners=True)[0, 0]
    a, b = sorted((_uniform(g, 0.0, 1.0), _uniform(g, 0.0, 1.0)))
    return a + (b - a) * _normalise(field)


def shape_coverage(
    size: tuple[int, int],
    kind: str,
    centre: tuple[float, float],
    radius_px: float,
    aspect: float = 1.0,
    angle: float = 0.0,
    harmonics: Sequence[tuple[float, float]] = (),
) -> torch.Tensor:
    """Anti-aliased coverage of a rectangle, ellipse or star-shaped blob.

    Args:
        size: image size (H, W) in pixels.
        kind: ``"rectangle"``, ``"ellipse"`` or ``"blob"``.
        centre: (y, x) centre in pixels.
        radius_px: half-length of the long axis (rectangle, ellipse) or mean radius (blob), pixels.
        aspect: short / long axis ratio (rectangle, ellipse), in (0, 1].
        angle: rotation of the long axis in radians (from the x axis towards y).
        harmonics: blob only: (relative amplitude, phase) of the radius harmonics k = 2, 3, ...

    Returns:
        (H, W) float32 coverage in [0, 1] (a one-pixel linear ramp across the edge).
    """
    if kind not in SHAPES:
        raise ValueError(f"kind must be one of {SHAPES}, got {kind!r}")
    if not (radius_px > 0 and 0 < aspect <= 1):
        raise ValueError(f"need radius_px > 0 and 0 < aspect <= 1, got {radius_px}, {aspect}")
    y, x = _coords(*size)
    cy, cx = centre
    u = (x - cx) * math.cos(angle) + (y - cy) * math.sin(angle)
    v = -(x - cx) * math.sin(angle) + (y - cy) * math.cos(angle)
    a, b = radius_px, radius_px * aspect
    if kind == "rectangle":
        dist = torch.maximum(u.abs() - a, v.abs() - b)
    elif kind == "ellipse":  # distance to the edge approximated in units of the minor axis
        dist = (torch.sqrt((u / a) ** 2 + (v / b) ** 2) - 1.0) * b
    else:
        rho, phi = torch.sqrt(u**2 + v**2), torch.atan2(v, u)
        edge = torch.ones_like(phi)
        for k, (amplitude, phase) in enumerate(harmonics, start=2):
            edge = edge + amplitude * torch.cos(k * phi + phase)
        dist = rho - radius_px * edge
    return (0.5 - dist).clamp(0.0, 1.0)


def _shape_coverage(g: torch.Generator, H: int, W: int) -> torch.Tensor:
    """(H, W) coverage of a random rectangle (possibly a thin bar), ellipse or blob."""
    size = _log_uniform(g, 0.06, 0.35) * min(H, W)
    cy, cx = _uniform(g, 0, H), _uniform(g, 0, W)
    theta = _uniform(g, 0.0, math.pi)
    kind = SHAPES[_randint(g, 0, 2)]
    aspect, harmonics = 1.0, []
    if kind == "rectangle":
        aspect = _log_uniform(g, 0.08, 1.0)
    elif kind == "ellipse":
        aspect = _uniform(g, 0.3, 1.0)
    else:
        for k in range(2, 6):
            harmonics.append((_uniform(g, 0.0, 0.4 / k), _uniform(g, 0, 2 * math.pi)))
    return shape_coverage((H, W), kind, (cy, cx), size, aspect, theta, harmonics)


def _layout(g: torch.Generator, cfg: ProceduralConfig) -> tuple[str, torch.Tensor, torch.Tensor]:
    """(layout name, t (H, W), aif (3, H, W) sRGB)."""
    H, W = cfg.size
    name = LAYOUTS[_choice(g, cfg.layout_weights)]
    if name == "curved":
        return name, _curved(g, H, W), random_texture(g, H, W)
    t = _plane(g, H, W, _coin(g, cfg.slant_prob))
    aif = random_texture(g, H, W)
    if name == "planes":  # more planes meeting along straight lines (walls, floors, tables)
        y, x = _coords(H, W)
        for _ in range(_randint(g, 0, 2)):
            theta = _uniform(g, 0.0, 2 * math.pi)
            py, px = _uniform(g, 0.2, 0.8) * H, _uniform(g, 0.2, 0.8) * W  # a point on the line
            side = (x - px) * math.cos(theta) + (y - py) * math.sin(theta)
            cover = (0.5 + side).clamp(0.0, 1.0)
            t = torch.where(cover > 0.5, _plane(g, H, W, _coin(g, cfg.slant_prob)), t)
            aif = aif + cover * (random_texture(g, H, W) - aif)
        return name, t, aif
    for _ in range(_randint(g, 1, cfg.max_objects)):  # occluders, z-buffered (larger t is nearer)
        cover = _shape_coverage(g, H, W)
        t_obj = _plane(g, H, W, _coin(g, cfg.slant_prob), span=0.2)
        cover = cover * (t_obj > t)
        t = torch.where(cover > 0.5, t_obj, t)
        aif = aif + cover * (random_texture(g, H, W) - aif)
    return name, t, aif


# ---------------------------------------------------------------------------- scene


def _focus_schedule(g: torch.Generator, cfg: ProceduralConfig) -> torch.Tensor:
    """(S,) float64 focus distances (metres), uniform in diopters with jitter, random direction."""
    S = _randint(g, *cfg.num_slices)
    near = _log_uniform(g, *cfg.near_focus_m)
    far = _log_uniform(g, max(cfg.far_focus_m[0], near * cfg.min_focus_ratio), cfg.far_focus_m[1])
    pos = torch.linspace(0.0, 1.0, S, dtype=torch.float64)
    jitter = (torch.rand(S, generator=g, dtype=torch.float64) * 2 - 1) * cfg.focus_jitter / (S - 1)
    jitter[0] = jitter[-1] = 0.0  # keep the schedule's ends; |jitter| < half a spacing keeps order
    diopter = 1.0 / near + (1.0 / far - 1.0 / near) * (pos + jitter)
    focus = 1.0 / diopter
    return focus.flip(0) if _coin(g, cfg.reverse_prob) else focus


def _camera(g: torch.Generator, cfg: ProceduralConfig, focus: torch.Tensor, rng: torch.Tensor) -> ThinLens:
    """A camera whose largest blur over the depth range ``rng`` (near, far) is within ``cfg.max_sigma_px``.

    Blur is inversely proportional to ``f_number * pixel_size``: measured at N = 1 and a 1 m pitch,
    the admissible product interval gives the f-number and pitch ranges. Focal lengths for which no
    f-number and pitch in range fit are redrawn a few times; after that the pitch leaves its range.
    """
    (n_lo, n_hi), (p_lo, p_hi) = cfg.f_number, cfg.pixel_size_m
    for _ in range(8):
        focal = _log_uniform(g, *cfg.focal_length_m)
        sigma_unit = float(ThinLens(focal, 1.0, 1.0).sigma_px(rng[:, None], focus[None, :]).max())
        q_lo, q_hi = sigma_unit / cfg.max_sigma_px[1], sigma_unit / cfg.max_sigma_px[0]  # N * pitch
        lo, hi = max(n_lo, q_lo / p_hi), min(n_hi, q_hi / p_lo)
        if lo <= hi:
            break
    f_number = _log_uniform(g, lo, hi) if lo <= hi else (n_lo if q_hi / p_lo < n_lo else n_hi)
    lo, hi = max(p_lo, q_lo / f_number), min(p_hi, q_hi / f_number)
    if lo > hi:
        lo, hi = q_lo / f_number, q_hi / f_number
    return ThinLens(focal, f_number, _log_uniform(g, lo, hi))


def procedural_scene(
    cfg: ProceduralConfig | None = None, generator: torch.Generator | None = None, name: str = "procedural"
) -> FocalStack:
    """Draw a random scene and render its focal stack.

    Args:
        cfg: ranges to draw from (default ``ProceduralConfig()``).
        generator: CPU random source; the scene is a pure function of its state (default: a fresh
            generator seeded with 0).
        name: the stack's name.

    Returns:
        A :class:`FocalStack` with images (S, 3, H, W) sRGB, focus_m (S,) metres, a complete camera,
        ground-truth ``depth_m`` (H, W) metres (inside the working range of its focus distances)
        and ``aif`` (3, H, W) sRGB; ``meta`` records the layout, PSF, noise and the largest blur.
    """
    cfg = cfg or ProceduralConfig()
    g = generator if generator is not None else torch.Generator().manual_seed(0)
    focus = _focus_schedule(g, cfg)
    rng = working_range_m(focus[None], margin=cfg.depth_margin)[0]  # (near, far) metres
    camera = _camera(g, cfg, focus, rng)

    layout, t, aif = _layout(g, cfg)
    d_far, d_near = 1.0 / float(rng[1]), 1.0 / float(rng[0])  # diopters
    depth = (1.0 / (d_far + t.to(torch.float64).clamp(0.0, 1.0) * (d_near - d_far))).float()

    psf = "disc" if _coin(g, cfg.disc_prob) else "gaussian"
    noise = NoiseConfig(_uniform(g, *cfg.shot_noise), _uniform(g, *cfg.read_noise), cfg.quantize_bits)
    images = synthesize_stack(aif, depth, camera, focus, model="layered", psf=psf, noise=noise, generator=g)
    meta = {
        "source": "procedural",
        "focus_source": "procedural",
        "layout": layout,
        "synth": {
            "model": "layered",
            "psf": psf,
            "fill_hidden": True,
            "linear_light": True,
            "noise": asdict(noise),
        },
        "max_sigma_px": float(camera.sigma_px(rng[:, None], focus[None, :]).max()),
    }
    return FocalStack(images, focus, camera, depth_m=depth, aif=aif, name=name, meta=meta)
