# Sourced by the scripts/gpu_*.sh checks: output folder, unbuffered Python, and the packages the CUDA
# image lacks, installed from the wheels carried in .whl/ (if any).
export PYTHONUNBUFFERED=1 OUT=${OUT:-gpu_out}
mkdir -p "$OUT"
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD/src:$PWD
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
