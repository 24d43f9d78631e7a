#!/bin/sh
# convert.sh: conversion speed. ../shared/data/video/d9.mp4 (587 frames, one face, AAC audio)
# scaled to 1280x720 and 1920x1080, converted by `visage convert` to H.264 (CRF 18, preset
# medium) with a 64 px model (Original, as created: the speed does not depend on training), the
# faces from the alignments an extraction wrote (the usual way) and, second, detected on the fly;
# on the CPU and, when `visage gpus` finds one, on the GPU (--device cuda). Prints frames/s for
# each (wall clock of the whole command: decoding, swapping and encoding, which run at the same
# time) beside decoding alone, then the swap stage alone (build/bench/faces_gpu convert), GPU
# beside CPU. BENCH_THREADS sets the CPU threads (default: all). Results go into BENCHMARKS.md by
# hand.
set -eu
cd "$(dirname "$0")/.."
DATA=${VISAGE_DATA:-../shared/data}
[ -f "$DATA/video/d9.mp4" ] || { echo "skipped: no $DATA/video/d9.mp4"; exit 0; }
make --no-print-directory -s build/visage build/bench/scale_video build/tests/test_learn >/dev/null
T=$(mktemp -d "${TMPDIR:-/tmp}/visage-bench-convert.XXXXXX")
trap 'rm -rf "$T"' EXIT INT TERM
TH=${BENCH_THREADS:-0}
build/bench/scale_video "$DATA/video/d9.mp4" "$T/d9_720.mp4" 1280 720
build/bench/scale_video "$DATA/video/d9.mp4" "$T/d9_1080.mp4" 1920 1080
build/tests/test_learn --write-faces "$T/a" a 8 1 >/dev/null
build/tests/test_learn --write-faces "$T/b" b 8 2 >/dev/null
build/visage train -A "$T/a" -B "$T/b" -m "$T/m" --model original --batch 2 --iterations 1 \
    --device cpu --threads "$TH" -q
GPU=
build/visage gpus 2>/dev/null | grep -q '^cuda:0' && GPU=cuda
frames=587
now() { date +%s.%N; }
run() { # run INPUT DEVICE [convert options]
    in=$1 dev=$2
    shift 2
    t0=$(now)
    build/visage convert "$in" -m "$T/m" -o "$T/out.mp4" --threads "$TH" --device "$dev" -q "$@"
    t1=$(now)
    awk -v a="$t0" -v b="$t1" -v n="$frames" 'BEGIN { printf "%.1f frames/s (%.1f s)", n / (b - a), b - a }'
}
decode() { # frames/s of decoding $1 alone to RGB (ffmpeg, all cores), when ffmpeg is there
    command -v ffmpeg >/dev/null || { echo "-"; return; }
    t0=$(now)
    ffmpeg -v error -i "$1" -f rawvideo -pix_fmt rgb24 -y /dev/null
    t1=$(now)
    awk -v a="$t0" -v b="$t1" -v n="$frames" 'BEGIN { printf "%.0f", n / (b - a) }'
}
echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
[ -z "$GPU" ] || build/visage gpus | head -n 1
for size in 720 1080; do
    in=$T/d9_$size.mp4
    build/visage extract "$in" -o "$T/faces_$size" --threads "$TH" --device cpu -q >/dev/null
    al=$T/faces_$size/alignments/d9_$size.mp4.json
    echo "d9.mp4 at ${size}p, $frames frames, Original 64 px, H.264 CRF 18 (decoding alone: $(decode "$in") frames/s):"
    for dev in cpu $GPU; do
        echo "  $dev, faces from the alignments: $(run "$in" $dev --alignments "$al")"
        echo "  $dev, faces detected on the fly:  $(run "$in" $dev)"
    done
done
FACES=$T/faces_ppm
mkdir -p "$FACES"
if make --no-print-directory -s build/bench/faces_gpu build/tests/test_facenet >/dev/null &&
    build/tests/test_facenet --write-ppm "$FACES" >/dev/null 2>&1; then
    VISAGE_GPU_FACES=$FACES build/bench/faces_gpu convert
fi
