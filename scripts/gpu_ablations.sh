#!/usr/bin/env bash
# The ablation benchmark on a CUDA machine (run from the repo root; writes under $OUT): every variant
# of the shipped recipe trained MIN minutes, JOBS variants sharing the GPU at once, then scored on the
# procedural held-out scenes, all of accuracy set A's test scenes (carry data/accuracy_gpu/A_test: a copy without aif.png) and B.
# Packages the CUDA image lacks can be carried as wheels in .whl/.
# ONLY="--only base untruncated" restricts the variants. FINETUNE_A=1 also fine-tunes the shipped model
# on A's train stacks (carry data/accuracy_gpu/A_train_stacks: stack_*.png and scene.json only) with the
# 7x7 and the untruncated renderer, scored on A test (scripts/gpu_finetune_a.py), while the ablations run.
export MIN=${MIN:-5} JOBS=${JOBS:-10}
source scripts/gpu_env.sh
if [ -n "$FINETUNE_A" ]; then
  python3 scripts/gpu_finetune_a.py --train data/accuracy_gpu/A_train_stacks --test data/accuracy_gpu/A_test \
    --minutes "$MIN" --out "$OUT/finetune_a.md" > "$OUT/finetune_a.log" 2>&1 &
fi
python3 -m benchmarks.ablations --minutes "$MIN" --jobs "$JOBS" --a-scenes 20 --a-test data/accuracy_gpu/A_test --runs /tmp/abl $ONLY \
  --out "$OUT/ablations_gpu.json" --md "$OUT/ablations_gpu.md" > "$OUT/ablations.log" 2>&1
cat "$OUT/ablations_gpu.md" || tail -30 "$OUT/ablations.log"
for f in /tmp/abl/*.log; do echo "== $f"; tail -3 "$f"; done > "$OUT/children.txt"
wait
cat "$OUT/finetune_a.md" 2>/dev/null || tail -20 "$OUT/finetune_a.log" 2>/dev/null
