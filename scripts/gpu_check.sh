#!/usr/bin/env bash
# GPU checks in one go (run on a CUDA machine from the repo root; writes under $OUT):
# the test suite (CUDA tests included), the renderer benchmark on CUDA, and the learning benchmark
# (shipped recipe) on the GPU; MIN=0 skips the learning benchmark. Packages the CUDA image lacks can be
# carried as wheels in .whl/.
export MIN=${MIN:-3.5}
source scripts/gpu_env.sh
python3 -c "import torch, kornia, tyro; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
timeout 200 python3 -m pytest -q -n 8 --dist loadgroup -p no:cacheprovider tests > "$OUT/tests.txt" 2>&1
tail -25 "$OUT/tests.txt"
timeout 150 python3 -m benchmarks.render --device cuda --reps 5 --out "$OUT/render_cuda.json" --md "$OUT/render_cuda.md" > "$OUT/render.log" 2>&1
tail -30 "$OUT/render_cuda.md" 2>/dev/null || tail -20 "$OUT/render.log"
[ "$MIN" = 0 ] && exit 0
timeout $(python3 -c "print(int($MIN*60+150))") python3 -m benchmarks.train_procedural --device cuda --minutes "$MIN" \
  --workers 5 --run /tmp/run_gpu --out "$OUT/tp_gpu.json" --md "$OUT/tp_gpu.md" > "$OUT/tp_gpu.log" 2>&1
cat "$OUT/tp_gpu.md" || tail -20 "$OUT/tp_gpu.log"
