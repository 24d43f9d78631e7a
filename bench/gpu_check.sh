#!/bin/sh
# gpu_check.sh: what a session with a lent GPU machine checks, in one run from the repository
# root on that machine (which has none of the media libraries): the GPU tests (each operation and
# the face networks against the CPU, training steps), the training benchmark beside PyTorch, and
# the per-operation and per-convolution profile. The binaries come from DIR (default .device,
# where `make gpu-bundle` leaves them xz-compressed, with the PyTorch reference, the face-network
# weights and test photos); the logs go to $OUT (default /tmp). T_OPS, T_TRAIN, T_BENCH and T_PROF cap each part in seconds;
# NO_BENCH=1 and NO_PROF=1 skip parts; VISAGE_PLAN, BENCH_PLAN and BENCH_SECONDS pass through to
# bench/train_gpu.sh, PROF_PLAN selects the profiled rows.
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
echo "== test_cuda_ops"
timeout "${T_OPS:-150}" "$BIN/test_cuda_ops" >"$OUT/ops.log" 2>&1
echo "rc=$?"
grep -E "CHECK|checks|worst rel err|skipped|face networks" "$OUT/ops.log" | cut -c1-200 | tail -"${N_OPS:-80}"
echo "== test_cuda_train"
timeout "${T_TRAIN:-300}" "$BIN/test_cuda_train" >"$OUT/train.log" 2>&1
echo "rc=$?"
grep -E "CHECK|checks|^step|^graph|^curve|^resume|^augment|^memory|skipped|^GPU" "$OUT/train.log" |
    cut -c1-260
[ -n "${NO_BENCH:-}" ] || {
    echo "== bench/train_gpu.sh"
    VISAGE_TRAIN_GPU="$BIN/train_gpu" VISAGE_SHARED_BENCH="$DIR" BENCH_SECONDS=${BENCH_SECONDS:-2} \
        timeout "${T_BENCH:-330}" sh bench/train_gpu.sh >"$OUT/bench.log" 2>&1
    echo "rc=$?"
    grep -v '^{' "$OUT/bench.log" | grep -vi 'warning\|params_M\|Consider using' | tail -50
}
[ -n "${NO_PROF:-}" ] || {
    echo "== profile"
    BENCH_PROFILE=1 BENCH_SECONDS=1 timeout "${T_PROF:-90}" "$BIN/train_gpu" \
        "${PROF_PLAN:-original:16:bf16,lightweight:64:bf16}" >"$OUT/prof.log" 2>&1
    echo "rc=$?"
    grep -v '^{' "$OUT/prof.log" | head -120
}
