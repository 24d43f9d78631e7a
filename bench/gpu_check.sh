#!/bin/sh
# gpu_check.sh: what a session with a lent GPU machine checks, in one run from the repository
# root on that machine (which has none of the media libraries). PARTS (default all of
# "ops faces train bench prof") picks, in this order:
#   ops    test_cuda_ops: each operation and image kernel against the CPU, the face networks one
#          picture at a time and in batches, a converted frame
#   faces  bench/faces_gpu: extraction's and conversion's GPU stages beside the CPU, frames/s
#   train  test_cuda_train: training steps against the CPU
#   bench  bench/train_gpu.sh: the training benchmark beside PyTorch
#   prof   the per-operation and per-convolution profile of training
# The binaries come from DIR (default .device, where `make gpu-bundle` leaves them xz-compressed,
# with the PyTorch reference, the face-network weights and test photos); the logs go to $OUT
# (default /tmp). T_OPS, T_FACES, T_TRAIN, T_BENCH and T_PROF cap each part in seconds (the
# device time of a session is short: choose PARTS); VISAGE_PLAN, BENCH_PLAN and BENCH_SECONDS
# pass through to bench/train_gpu.sh, PROF_PLAN selects the profiled rows, FACES_SECONDS is
# faces_gpu's time per measurement. NO_BENCH=1 and NO_PROF=1 still skip those parts.
set -u
cd "$(dirname "$0")/.."
DIR=${1:-.device}
OUT=${OUT:-/tmp}
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
export VISAGE_MODELS=$DIR/models VISAGE_GPU_FACES=$DIR/faces
# the binaries, uncompressed beside the bundle (not under $OUT, which comes back)
BIN=$DIR
if ls "$DIR"/*.xz >/dev/null 2>&1; then
    BIN=/tmp/visage-gpu-bin
    mkdir -p "$BIN"
    for f in "$DIR"/*.xz; do
        b=$(basename "$f" .xz)
        xz -dc "$f" >"$BIN/$b" && chmod +x "$BIN/$b" || exit 1
    done
fi
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader
PARTS=${PARTS:-ops faces train bench prof}
[ -z "${NO_BENCH:-}" ] || PARTS=$(echo "$PARTS" | sed 's/bench//')
[ -z "${NO_PROF:-}" ] || PARTS=$(echo "$PARTS" | sed 's/prof//')
want() { case " $PARTS " in *" $1 "*) return 0 ;; esac; return 1; }
if want ops; then
    echo "== test_cuda_ops"
    timeout "${T_OPS:-150}" "$BIN/test_cuda_ops" >"$OUT/ops.log" 2>&1
    echo "rc=$?"
    grep -E "CHECK|checks|worst rel err|skipped|face networks|faces elsewhere|^crop_resize|^warp|^blend|^from_u8|^add_padded|^host_alloc|^converted" \
        "$OUT/ops.log" | cut -c1-200 | tail -"${N_OPS:-90}"
fi
if want faces; then
    echo "== bench/faces_gpu"
    timeout "${T_FACES:-120}" "$BIN/faces_gpu" both "${FACES_SECONDS:-3}" >"$OUT/faces.log" 2>&1
    echo "rc=$?"
    tail -20 "$OUT/faces.log"
fi
if want train; then
    echo "== test_cuda_train"
    timeout "${T_TRAIN:-300}" "$BIN/test_cuda_train" >"$OUT/train.log" 2>&1
    echo "rc=$?"
    grep -E "CHECK|checks|^step|^graph|^curve|^resume|^augment|^memory|skipped|^GPU" "$OUT/train.log" |
        cut -c1-260
fi
if want bench; then
    echo "== bench/train_gpu.sh"
    VISAGE_TRAIN_GPU="$BIN/train_gpu" VISAGE_SHARED_BENCH="$DIR" BENCH_SECONDS=${BENCH_SECONDS:-2} \
        timeout "${T_BENCH:-330}" sh bench/train_gpu.sh >"$OUT/bench.log" 2>&1
    echo "rc=$?"
    grep -v '^{' "$OUT/bench.log" | grep -vi 'warning\|params_M\|Consider using' | tail -50
fi
if want prof; then
    echo "== profile"
    BENCH_PROFILE=1 BENCH_SECONDS=1 timeout "${T_PROF:-90}" "$BIN/train_gpu" \
        "${PROF_PLAN:-original:16:bf16,lightweight:64:bf16}" >"$OUT/prof.log" 2>&1
    echo "rc=$?"
    grep -v '^{' "$OUT/prof.log" | head -120
fi
