#!/usr/bin/env bash
# Everything this project checks on a GPU, in one call (the device machine's time is scarce):
#   bash scripts/device_check.sh            (from the repository root; results under $OUT)
# 1. the GPU tests: the Triton kernels natively on CUDA tensors, and every CUDA test;
# 2. the k-means benchmark of issue 10 against the GPU peers, at each precision;
# 3. the mean-shift benchmark (1,500 and 100,002 points, 5 steps);
# 4. the 50M x 32, k = 4,096 memory run (peak GPU memory against the data's size).
# Peers' wheels (flash-kmeans, fast-pytorch-kmeans) are installed from $WHEELS if that folder
# exists: the machine reaches no package index. Each step has its own time limit and a
# failing step does not stop the others; every log lands in $OUT.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT=${OUT:-$PWD/device-out}
mkdir -p "$OUT"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
PY=${PY:-python3}

if [ -d "${WHEELS:-wheels}" ]; then
  $PY -m pip install --no-deps --no-index -q "${WHEELS:-wheels}"/*.whl > "$OUT/pip.txt" 2>&1
fi
{ nvidia-smi; $PY -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__, torch.cuda.get_device_name())"; } > "$OUT/env.txt" 2>&1

step() {  # step NAME SECONDS COMMAND...
  local name=$1 limit=$2; shift 2
  local t0=$SECONDS
  timeout "$limit" "$@" > "$OUT/$name.txt" 2>&1
  echo "$name: exit $? in $((SECONDS - t0)) s" | tee -a "$OUT/steps.txt"
}

step tests 240 $PY -m pytest -q -x -p no:cacheprovider tests/test_triton.py tests/test_kmeans.py \
  tests/test_meanshift.py tests/test_device.py tests/test_keops.py
for p in highest high medium; do
  step "bench-kmeans-$p" 150 $PY -m clusterlab.bench --device cuda --precision "$p" \
    --kmeans 10000,2,50 100000,64,256 1000000,100,1000 4194304,128,1024 --meanshift \
    --engines torch,triton,flash-kmeans,fast-pytorch-kmeans,faiss-gpu --repeat 3 \
    --out "$OUT/kmeans-$p.json"
done
step bench-meanshift 120 $PY -m clusterlab.bench --device cuda --kmeans \
  --meanshift 1500,2.5 100002,2.5 --engines torch,triton --repeat 3 --out "$OUT/meanshift.json"
step memory 120 $PY - <<'PY'
import torch, clusterlab as cl
x = torch.randn(50_000_000, 32, device="cuda")
data = x.numel() * x.element_size()
torch.cuda.reset_peak_memory_stats()
base = torch.cuda.max_memory_allocated()
res = cl.kmeans(x, 4096, init="random", max_iter=3, tol=0)
peak = torch.cuda.max_memory_allocated() - base
print(f"data {data / 2**30:.2f} GiB, extra peak {peak / 2**30:.2f} GiB "
      f"({peak / data:.1%} of the data), engine auto, inertia {res.inertia:.6g}")
PY
