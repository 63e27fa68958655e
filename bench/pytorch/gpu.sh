#!/usr/bin/env bash
# Runs the PyTorch side of the GPU benchmark matrix (issue 8) on a CUDA
# machine, from the repository root. Appends one JSON line per result to
# $OUT/bench-pytorch.jsonl (stderr to $OUT/bench-pytorch.err); a run that
# fails or times out leaves its error line (or nothing) and the next one goes
# on. Budget: about 3-6 minutes on an H100, most of it torch.compile.
#
#   OUT=/tmp/out bash bench/pytorch/gpu.sh            # all
#   OUT=/tmp/out QUICK=1 bash bench/pytorch/gpu.sh    # b32 W8A8 bf16 only
set -u
OUT=${OUT:?set OUT to a folder for the results}
PY=${PY:-python3}
STEPS=${STEPS:-20}
B=bench/pytorch/bench.py
mkdir -p "$OUT"
J="$OUT/bench-pytorch.jsonl"
E="$OUT/bench-pytorch.err"

run() {  # run TIMEOUT_S ARGS...
  local t=$1; shift
  echo "# bench.py $*" >>"$E"
  timeout "$t" "$PY" "$B" --steps "$STEPS" "$@" >>"$J" 2>>"$E" \
    || echo "# exit $? (124 = timeout): bench.py $*" >>"$E"
}

{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  "$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)'
} >"$OUT/bench-pytorch-env.txt" 2>&1

# The headline: ViT-B/32 CLIP QAT, W8A8 LSQ, batch 256, bf16, eager and compiled.
run 180 --config b32 --batch 256 --quant w8a8 --precision bf16
run 420 --config b32 --batch 256 --quant w8a8 --precision bf16 --compile --fq-impl composite
[ "${QUICK:-0}" = 1 ] && exit 0

run 120 --config b32 --batch 256 --quant none --precision bf16
run 120 --config b32 --batch 256 --quant w4a8 --precision bf16
run 180 --config b32 --batch 256 --quant w8a8 --precision f32
run 120 --config small --batch 256 --quant none --precision bf16
run 120 --config small --batch 256 --quant w8a8 --precision bf16
run 120 --config small --batch 256 --quant w8a8 --precision f32
run 120 --config b32 --batch 256 --quant none --precision bf16 --compile
run 120 --config b32 --batch 256 --mode embed --quant w8a8 --precision bf16
run 120 --config tiny --batch 64 --mode fakequant-cost --steps 5 --rounds 5
