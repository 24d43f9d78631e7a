#!/bin/sh
# extract.sh: extraction speed, frames/s for every frame (detection, landmarks, alignment,
# embedding, PNG writing) of ../shared/data/video/d9.mp4 scaled to 1280x720 and 1920x1080 and of
# a mead clip (256x256), on the CPU and, when `visage gpus` finds one, on the GPU (--device cuda),
# beside decoding alone (the ceiling). Then the networks' stage alone (build/bench/faces_gpu:
# no decoding, no PNGs), GPU beside CPU. Median of RUNS runs; prints the machine.
# Usage: bench/extract.sh [RUNS]. Results go into BENCHMARKS.md by hand.
set -eu
cd "$(dirname "$0")/.."
RUNS=${1:-3}
DATA=${VISAGE_DATA:-../shared/data}
VISAGE=${VISAGE:-build/visage}
[ -x "$VISAGE" ] || { echo "bench/extract.sh: build first (make)"; exit 1; }
[ -d "$DATA" ] || { echo "bench/extract.sh: skipped: no $DATA"; exit 0; }
command -v ffmpeg >/dev/null || { echo "bench/extract.sh: needs ffmpeg (make deps)"; exit 1; }
T=$(mktemp -d "${TMPDIR:-/tmp}/visage-bench.XXXXXX")
trap 'rm -rf "$T"' EXIT INT TERM

ffmpeg -v error -i "$DATA/video/d9.mp4" -vf scale=1280:720 -c:v libx264 -crf 18 -an "$T/d9_720p.mp4"
ffmpeg -v error -i "$DATA/video/d9.mp4" -vf scale=1920:1080 -c:v libx264 -crf 18 -an "$T/d9_1080p.mp4"
GPU=
"$VISAGE" gpus 2>/dev/null | grep -q '^cuda:0' && GPU=cuda

# median frames/s of RUNS extractions of $1 on device $2
measure() {
    i=0
    : >"$T/rates"
    while [ "$i" -lt "$RUNS" ]; do
        rm -rf "$T/out"
        "$VISAGE" extract "$1" -o "$T/out" -q --device "$2" >"$T/log"
        sed -n 's/.*(\([0-9.]*\) frames\/s).*/\1/p' "$T/log" >>"$T/rates"
        i=$((i + 1))
    done
    sort -n "$T/rates" | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}

# the ceiling: decoding alone to RGB (ffmpeg, all cores), frames/s
decode_rate() {
    frames=$(ffprobe -v error -count_frames -select_streams v:0 -show_entries stream=nb_read_frames -of csv=p=0 "$1")
    s=$(date +%s.%N)
    ffmpeg -v error -i "$1" -f rawvideo -pix_fmt rgb24 -y /dev/null
    e=$(date +%s.%N)
    awk -v f="$frames" -v s="$s" -v e="$e" 'BEGIN { printf "%.0f", f / (e - s) }'
}

cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
echo "machine: $cpu, $(nproc) CPUs; $(date -u +%Y-%m-%d)"
[ -z "$GPU" ] || "$VISAGE" gpus | head -n 1
echo "frames/s, median of $RUNS runs (all frames, landmarks + embeddings + PNGs):"
row() { # row NAME FILE
    c=$(measure "$2" cpu)
    g=-
    [ -z "$GPU" ] || g=$(measure "$2" cuda)
    printf '  %s: cpu %s, gpu %s frames/s (decoding alone: %s frames/s)\n' "$1" "$c" "$g" \
        "$(decode_rate "$2")"
}
row "d9.mp4 scaled to 1280x720 (587 frames)" "$T/d9_720p.mp4"
row "d9.mp4 scaled to 1920x1080 (587 frames)" "$T/d9_1080p.mp4"
row "mead W009_front_neutral_level1_001 256x256 (104 frames)" "$DATA/mead/W009_front_neutral_level1_001.mp4"
# the networks' stage alone, on frames made from the faces_gt photos
FACES=$T/faces_ppm
mkdir -p "$FACES"
if make --no-print-directory -s build/bench/faces_gpu build/tests/test_facenet >/dev/null &&
    build/tests/test_facenet --write-ppm "$FACES" >/dev/null 2>&1; then
    VISAGE_GPU_FACES=$FACES build/bench/faces_gpu extract
fi
