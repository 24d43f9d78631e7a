#!/bin/sh
# convert.sh: conversion speed on the CPU. ../shared/data/video/d9.mp4 (587 frames, one face,
# AAC audio) scaled to 1280x720, converted by `visage convert` to H.264 (CRF 18, preset medium)
# with a 64 px model (Original, as created: the speed does not depend on training), the faces
# from the alignments an extraction wrote (the usual way) and, second, detected on the fly.
# Prints frames/s for each (wall clock of the whole command: decoding, swapping and encoding,
# which run at the same time). BENCH_THREADS sets the CPU threads (default: all). Results go
# into BENCHMARKS.md by hand.
set -eu
cd "$(dirname "$0")/.."
DATA=${VISAGE_DATA:-../shared/data}
[ -f "$DATA/video/d9.mp4" ] || { echo "skipped: no $DATA/video/d9.mp4"; exit 0; }
make --no-print-directory -s build/visage build/bench/scale_video build/tests/test_learn >/dev/null
T=$(mktemp -d "${TMPDIR:-/tmp}/visage-bench-convert.XXXXXX")
trap 'rm -rf "$T"' EXIT INT TERM
TH=${BENCH_THREADS:-0}
build/bench/scale_video "$DATA/video/d9.mp4" "$T/d9_720.mp4" 1280 720
build/tests/test_learn --write-faces "$T/a" a 8 1 >/dev/null
build/tests/test_learn --write-faces "$T/b" b 8 2 >/dev/null
build/visage train -A "$T/a" -B "$T/b" -m "$T/m" --model original --batch 2 --iterations 1 \
    --device cpu --threads "$TH" -q
build/visage extract "$T/d9_720.mp4" -o "$T/faces" --threads "$TH" -q >/dev/null
frames=587
now() { date +%s.%N; }
run() {
    t0=$(now)
    build/visage convert "$T/d9_720.mp4" -m "$T/m" -o "$T/out.mp4" --threads "$TH" -q "$@"
    t1=$(now)
    awk -v a="$t0" -v b="$t1" -v n="$frames" 'BEGIN { printf "%.1f frames/s (%.1f s)", n / (b - a), b - a }'
}
echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "d9.mp4 at 1280x720, $frames frames, Original 64 px, H.264 CRF 18:"
echo "  faces from the alignments: $(run --alignments "$T/faces/alignments/d9_720.mp4.json")"
echo "  faces detected on the fly:  $(run)"
