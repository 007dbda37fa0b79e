#!/usr/bin/env bash
# The per-scene fit on a CUDA machine (run from the repo root; writes under $OUT): its tests (the CUDA
# test included) and the default fit of accuracy set A's test scenes (carry data/accuracy/A_test, or
# set A_TEST) timed on the GPU, scored as the accuracy benchmark does.
source scripts/gpu_env.sh
export A_TEST=${A_TEST:-data/accuracy/A_test}
if [ "${FIT_TESTS:-1}" != 0 ]; then  # FIT_TESTS=0 after gpu_check.sh, which ran the whole suite
  timeout 200 python3 -m pytest -q -p no:cacheprovider tests/inference/test_fit.py tests/losses/test_rendering.py \
    > "$OUT/fit_tests.txt" 2>&1
  tail -5 "$OUT/fit_tests.txt"
fi
timeout 300 python3 - <<'PY' 2>&1 | tee "$OUT/fit_gpu.txt"
import os, statistics, time
from pathlib import Path
import torch
from benchmarks.fit_procedural import fit_config
from focalstack.data.stack import FocalStack
from focalstack.eval.metrics import aif_metrics, depth_metrics
from focalstack.inference.fit import fit_scene

rows, seconds, psfs = [], [], []
for folder in sorted(p for p in Path(os.environ["A_TEST"]).iterdir() if p.is_dir()):
    stack = FocalStack.load(folder)
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    r = fit_scene(stack, fit_config(30, {}), progress=False, device="cuda")
    seconds.append(time.perf_counter() - t0)
    psfs.append(r.psf)
    rows.append(depth_metrics(r.depth_m, stack.depth_m, focus_m=stack.focus_m))
    rows[-1].update(aif_metrics(r.aif.cpu(), stack.aif))
print(torch.cuda.get_device_name(), f"{len(rows)} scenes, 30 it/scale, s/scene (first excluded):",
      f"{statistics.fmean(seconds[1:]):.2f}", "psf:", {p: psfs.count(p) for p in set(psfs)})
print(" ".join(f"{k}={statistics.fmean(r[k] for r in rows):.3f}" for k in ("delta1", "absrel", "error_slices", "aif_psnr")))
PY
