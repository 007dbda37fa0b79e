"""Score prediction folders against ground-truth scene folders with every metric of ``metrics.py``.

A prediction folder holds ``depth.npy`` (metres, H x W) and/or ``aif.png`` as written by
``focalstack predict`` (``prediction.json`` may say the depth is in slice units, which cannot be scored
against metric ground truth). A ground-truth scene folder holds ``depth.npy`` and/or ``aif.png`` and a
``scene.json`` whose ``focus_distances_m`` enable the error in slices.

Both arguments are either one scene folder each, or folders of scene folders matched by name.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from focalstack.data.imageio import read_image
from focalstack.eval.metrics import aif_metrics, depth_metrics
from focalstack.utils.io import atomic_write, write_json

#: Columns of the markdown summary (all metrics are in the JSON).
SUMMARY_KEYS = (
    "delta1",
    "absrel",
    "rmse",
    "rmse_log",
    "error_slices",
    "si_absrel",
    "si_delta1",
    "ddff_badpix",
    "ddff_bump",
    "aif_psnr",
    "aif_ssim",
    "aif_mg",
)


def _is_scene(folder: Path) -> bool:
    return any((folder / n).is_file() for n in ("depth.npy", "aif.png", "scene.json"))


def _is_prediction(folder: Path) -> bool:
    return any((folder / n).is_file() for n in ("depth.npy", "aif.png"))


def match_scenes(pred_dir: str | Path, gt_dir: str | Path) -> list[tuple[str, Path, Path]]:
    """Pair prediction and ground-truth scene folders.

    Returns:
        ``[(name, pred_folder, gt_folder)]``: when ``gt_dir`` is a scene folder, ``pred_dir`` itself (or
        ``pred_dir/<scene name>`` if only that holds a prediction); else every GT sub-folder with a
        prediction sub-folder of the same name.

    Raises:
        ValueError: a missing folder, or no pair found.
    """
    pred_dir, gt_dir = Path(pred_dir), Path(gt_dir)
    for p in (pred_dir, gt_dir):
        if not p.is_dir():
            raise ValueError(f"{p} is not a folder")
    if _is_scene(gt_dir):
        nested = pred_dir / gt_dir.name
        use_nested = not _is_prediction(pred_dir) and _is_prediction(nested)
        return [(gt_dir.name, nested if use_nested else pred_dir, gt_dir)]
    pairs = [
        (g.name, pred_dir / g.name, g)
        for g in sorted(gt_dir.iterdir())
        if g.is_dir() and _is_scene(g) and (pred_dir / g.name).is_dir()
    ]
    if not pairs:
        raise ValueError(f"no scene of {gt_dir} has a prediction folder of the same name in {pred_dir}")
    return pairs


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON: {e}") from e


def _fit_to(x: torch.Tensor, hw: tuple[int, int], mode: str, what: str) -> tuple[torch.Tensor, bool]:
    """Resize a prediction (C, h, w) to the GT size when only the resolution differs (same aspect)."""
    h, w = x.shape[-2:]
    if (h, w) == hw:
        return x, False
    if abs(h / w - hw[0] / hw[1]) > 0.02 * hw[0] / hw[1]:
        raise ValueError(f"{what}: prediction is {h}x{w} but ground truth is {hw[0]}x{hw[1]} (other aspect)")
    return F.interpolate(x[None], size=hw, mode=mode)[0], True


def evaluate_scene(pred_folder: Path, gt_folder: Path, *, max_depth_m: float | None = None) -> dict[str, Any]:
    """All metrics for one scene.

    Args:
        pred_folder: folder with ``depth.npy`` (metres) and/or ``aif.png``.
        gt_folder: scene folder with ``depth.npy`` and/or ``aif.png`` (and ``scene.json``).
        max_depth_m: optional depth cap for the valid mask.

    Returns:
        ``{"metrics": {...}, "notes": [...]}``; a prediction at another resolution (same aspect) is
        resized to the ground truth and noted.
    """
    metrics: dict[str, float] = {}
    notes: list[str] = []
    scene = _read_json(gt_folder / "scene.json")
    info = _read_json(pred_folder / "prediction.json")
    pred_depth, gt_depth = pred_folder / "depth.npy", gt_folder / "depth.npy"
    if pred_depth.is_file() and gt_depth.is_file():
        if info.get("depth_units", "m") != "m":
            notes.append(f"depth not scored: prediction is in {info['depth_units']!r}, not metres")
        else:
            gt = torch.from_numpy(np.load(gt_depth, allow_pickle=False).astype(np.float64))
            pred = torch.from_numpy(np.load(pred_depth, allow_pickle=False).astype(np.float64))
            pred, resized = _fit_to(pred[None], tuple(gt.shape), "nearest-exact", f"{pred_folder} depth")
            if resized:
                notes.append("predicted depth resized to the ground-truth resolution (nearest)")
            metrics.update(
                depth_metrics(pred[0], gt, focus_m=scene.get("focus_distances_m"), max_depth_m=max_depth_m)
            )
    pred_aif, gt_aif = pred_folder / "aif.png", gt_folder / "aif.png"
    if pred_aif.is_file():
        pred = read_image(pred_aif)
        gt = read_image(gt_aif) if gt_aif.is_file() else None
        if gt is not None:
            pred, resized = _fit_to(pred, tuple(gt.shape[-2:]), "bilinear", f"{pred_folder} aif")
            if resized:
                notes.append("predicted AIF resized to the ground-truth resolution (bilinear)")
        metrics.update(aif_metrics(pred.clamp(0, 1), gt))
    if not metrics:
        notes.append("nothing to score (no depth.npy pair and no aif.png prediction)")
    return {"metrics": metrics, "notes": notes}


def _mean(rows: list[dict[str, float]]) -> dict[str, float]:
    """Per-key mean over the scenes that have the key (NaN entries skipped)."""
    keys = dict.fromkeys(k for r in rows for k in r)
    out = {}
    for k in keys:
        vals = [r[k] for r in rows if k in r and not math.isnan(r[k])]
        out[k] = sum(vals) / len(vals) if vals else math.nan
    return out


def evaluate_predictions(
    pred_dir: str | Path, gt_dir: str | Path, *, max_depth_m: float | None = None
) -> dict[str, Any]:
    """Score every prediction scene against its ground truth.

    Args:
        pred_dir: a prediction folder, or a folder of them named like the scenes.
        gt_dir: a scene folder, or a folder of scene folders.
        max_depth_m: optional depth cap in metres.

    Returns:
        ``{"scenes": {name: {"metrics", "notes"}}, "mean": {metric: mean over scenes}, "conventions"}``.
    """
    pairs = match_scenes(pred_dir, gt_dir)
    scenes = {
        name: evaluate_scene(p, g, max_depth_m=max_depth_m)
        for name, p, g in tqdm(pairs, desc="scenes", disable=len(pairs) < 2)
    }
    return {
        "conventions": (
            "per image then averaged over scenes; valid = finite GT > 0"
            + (f" and <= {max_depth_m} m" if max_depth_m else "")
            + "; rmse_log natural log (rmse_log10: the paper's); delta over valid pixels (*_allpix: the "
            "paper's); si_* median-scaled; ddff_* in inverse depth (diopters), delta/badpix in %"
        ),
        "scenes": scenes,
        "mean": _mean([s["metrics"] for s in scenes.values()]),
    }


def _finite(obj: Any) -> Any:
    """JSON-safe copy: non-finite floats (e.g. the PSNR of a perfect match) become None."""
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _fmt(v: float | None) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return f"{v:.4g}"


def metrics_markdown(report: dict[str, Any], keys: tuple[str, ...] = SUMMARY_KEYS) -> str:
    """Markdown table of an :func:`evaluate_predictions` report (scenes and mean, selected metrics)."""
    present = [k for k in keys if k in report["mean"]]
    lines = [
        "# Evaluation",
        "",
        report["conventions"] + ".",
        "",
        "| scene | " + " | ".join(present) + " |",
        "|---" * (len(present) + 1) + "|",
    ]
    rows = [(name, s["metrics"]) for name, s in report["scenes"].items()] + [("**mean**", report["mean"])]
    for name, m in rows:
        lines.append(f"| {name} | " + " | ".join(_fmt(m.get(k)) for k in present) + " |")
    notes = [f"- {name}: {n}" for name, s in report["scenes"].items() for n in s["notes"]]
    return "\n".join(lines + ([""] + notes if notes else [])) + "\n"


def write_report(report: dict[str, Any], markdown: str, out_dir: str | Path, stem: str) -> tuple[Path, Path]:
    """Write ``<stem>.json`` and ``<stem>.md`` into ``out_dir`` atomically; returns both paths."""
    out = Path(out_dir)
    json_path = write_json(out / f"{stem}.json", _finite(report))
    md_path = atomic_write(out / f"{stem}.md", lambda p: p.write_text(markdown))
    return json_path, md_path
