#!/usr/bin/env bash
# Runs ON a lent NVIDIA machine (no Go, no network), from the repository root:
# the GPU part of the benchmark (issue 8). The CPU machine builds and carries
#   DIR/qatclip.gz   CGO_ENABLED=1 go build -ldflags="-s -w" -trimpath ./cmd/qatclip, gzipped
#   DIR/pjrt-smoke   built from ../shared/device/pjrt-smoke (optional)
# and this script writes under $OUT (at most 8 files come back from a lent machine):
#   env.txt       plugin path, jax/torch versions, nvidia-smi
#   log.txt       every run's command, stderr and exit status
#   smoke.jsonl   pjrt-smoke (stage smoke)
#   qatclip.jsonl qatclip bench train, one JSON line per run
#   pytorch.jsonl bench/pytorch/bench.py, one JSON line per run
#   gpumem.csv    GPU memory in use, sampled every 200 ms while the runs go
#   xla-dump.tgz  XLA's HLO before/after optimization of the run marked DUMP
#   qatclip.pprof Go CPU profile of the run marked PROF
#
#   OUT=/tmp/o BUDGET_S=420 bash bench/gpu/device.sh .device
#
# STAGES picks what runs (default "smoke qatclip pytorch"); RUNS replaces the
# run list (see below). A run whose timeout would end past
# BUDGET_S seconds from the start is skipped and logged as such, so the whole
# script ends inside the lease.
set -u
DIR=${1:-.device}
OUT=${OUT:?set OUT to a folder for the results}
STAGES=${STAGES:-smoke qatclip pytorch}
STEPS=${STEPS:-10}
BUDGET_S=${BUDGET_S:-540}
START=$(date +%s)
mkdir -p "$OUT"
LOG="$OUT/log.txt"

# The CUDA PJRT plugin of the device's jax installation.
PLUGIN=$(python3 - <<'PY' 2>/dev/null
import glob, os, site
roots = site.getsitepackages() + [site.getusersitepackages()]
hits = [p for r in roots for p in glob.glob(os.path.join(r, "jax_plugins", "xla_cuda*", "xla_cuda_plugin.so"))]
print(hits[0] if hits else "")
PY
)
[ -n "$PLUGIN" ] || PLUGIN=$(find / -name xla_cuda_plugin.so -not -path '/proc/*' 2>/dev/null | head -1)
# The pip NVIDIA libraries (cuBLAS, cuDNN, ...) sit in site-packages/nvidia/*/lib;
# the plugin finds them through its RPATH, LD_LIBRARY_PATH makes sure.
NV=$(dirname "$(dirname "$(dirname "$PLUGIN")")")/nvidia
[ -d "$NV" ] && export LD_LIBRARY_PATH="$(ls -d "$NV"/*/lib 2>/dev/null | tr '\n' ':')${LD_LIBRARY_PATH:-}"
# gopjrt looks for nvidia/ next to the plugin and warns when it is elsewhere.
export GOPJRT_CUDA_CHECKS=0
{
  echo "plugin=$PLUGIN"
  python3 -c "import jax, jaxlib, torch; print('jax', jax.__version__, 'jaxlib', jaxlib.__version__, 'torch', torch.__version__, 'cuda', torch.version.cuda)" 2>&1
  python3 -m pip show jax-cuda13-plugin 2>/dev/null | grep ^Version | sed 's/^/jax-cuda13-plugin /'
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,power.limit --format=csv
  uname -r; nproc
} >"$OUT/env.txt" 2>&1
cat "$OUT/env.txt"
[ -n "$PLUGIN" ] || { echo "no xla_cuda_plugin.so found" | tee -a "$LOG"; exit 1; }
BACKEND="xla:$PLUGIN"

if [ -f "$DIR/qatclip.gz" ]; then gunzip -c "$DIR/qatclip.gz" >/tmp/qatclip && chmod +x /tmp/qatclip; fi
QATCLIP=/tmp/qatclip
[ -x "$QATCLIP" ] || QATCLIP="$DIR/qatclip"

nvidia-smi --query-gpu=timestamp,memory.used --format=csv,noheader -lms 200 >"$OUT/gpumem.csv" 2>/dev/null &
SMI=$!
trap 'kill $SMI 2>/dev/null' EXIT

stamp() { echo "# $(date +%T) +$(($(date +%s) - START))s $*" | tee -a "$LOG"; }
fits() { [ $(($(date +%s) - START + $1)) -le "$BUDGET_S" ]; }

if [[ " $STAGES " == *" smoke "* ]] && [ -x "$DIR/pjrt-smoke" ]; then
  stamp "pjrt-smoke"
  timeout 120 "$DIR/pjrt-smoke" -backend "$BACKEND" -sizes 1024,8192 -iters 10 2>>"$LOG" | tee "$OUT/smoke.jsonl"
  stamp "pjrt-smoke exit ${PIPESTATUS[0]}"
fi

# One run a line: "qatclip|pytorch TIMEOUT_S args"; a qatclip line may end
# in DUMP (dump XLA's HLO of that run), then PROF (a CPU profile,
# qatclip.pprof). qatclip and PyTorch alternate so
# that, if the budget runs out, the pairs already run are complete.
RUNS=${RUNS:-"qatclip 150 --config b32 --batch 256 --precision bf16 DUMP PROF
pytorch 50 --config b32 --batch 256 --quant w8a8 --precision bf16
qatclip 100 --config b32 --batch 256 --precision bf16 --recipe none
pytorch 50 --config b32 --batch 256 --quant none --precision bf16
qatclip 130 --config b32 --batch 256 --precision bf16 --recipe w4a8-lsq.yaml
pytorch 50 --config b32 --batch 256 --quant w4a8 --precision bf16
qatclip 130 --config b32 --batch 256 --precision f32
pytorch 50 --config b32 --batch 256 --quant w8a8 --precision f32 --tf32
pytorch 150 --config b32 --batch 256 --quant w8a8 --precision bf16 --compile --fq-impl composite
qatclip 60 --config small --batch 256 --precision bf16
pytorch 40 --config small --batch 256 --quant w8a8 --precision bf16"}
while read -r impl t args; do
  [ -n "$impl" ] || continue
  [[ " $STAGES " == *" $impl "* ]] || continue
  if ! fits "$t"; then stamp "skipped (budget): $impl $args"; continue; fi
  case $impl in
  qatclip)
    dump=0 prof=""
    if [[ "$args" == *" PROF" ]]; then prof="--cpuprofile $OUT/qatclip.pprof"; args=${args% PROF}; fi
    if [[ "$args" == *" DUMP" ]]; then dump=1; args=${args% DUMP}; fi
    stamp "qatclip bench train $args"
    flags=${XLA_FLAGS:-}
    [ $dump = 1 ] && flags="$flags --xla_dump_to=/tmp/xla-dump --xla_dump_hlo_as_text"
    # shellcheck disable=SC2086
    XLA_FLAGS="$flags" timeout "$t" "$QATCLIP" bench train $args --steps "$STEPS" --backend "$BACKEND" $prof >>"$OUT/qatclip.jsonl" 2>>"$LOG"
    stamp "exit $? (124 = timeout)"
    if [ $dump = 1 ] && [ -d /tmp/xla-dump ]; then
      tar -C /tmp -czf "$OUT/xla-dump.tgz" xla-dump
      # Files over 16 MiB do not come back: keep the optimized modules only.
      if [ "$(stat -c %s "$OUT/xla-dump.tgz")" -gt 15000000 ]; then
        (cd /tmp && tar -czf "$OUT/xla-dump.tgz" $(find xla-dump -name '*after_optimizations.txt'))
      fi
      stamp "xla dump: $(ls /tmp/xla-dump | wc -l) files, $(du -h "$OUT/xla-dump.tgz" | cut -f1)"
    fi
    ;;
  pytorch)
    stamp "bench.py $args"
    # shellcheck disable=SC2086
    PYTHONUNBUFFERED=1 timeout "$t" python3 bench/pytorch/bench.py $args --steps "$STEPS" >>"$OUT/pytorch.jsonl" 2>>"$LOG"
    stamp "exit $? (124 = timeout)"
    ;;
  esac
done <<<"$RUNS"
stamp done
