#!/bin/sh
# extract.sh: extraction speed on the CPU, frames/s for every frame (detection, landmarks,
# alignment, embedding, PNG writing) of ../shared/data/video/d9.mp4 scaled to 1280x720 and of a
# mead clip (256x256). Median of 3 runs; prints the machine. Usage: bench/extract.sh [RUNS]
# Results go into BENCHMARKS.md by hand.
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

# median frames/s of RUNS extractions of $1
measure() {
    i=0
    : >"$T/rates"
    while [ "$i" -lt "$RUNS" ]; do
        rm -rf "$T/out"
        "$VISAGE" extract "$1" -o "$T/out" -q >"$T/log"
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
echo "frames/s, median of $RUNS runs (CPU backend, all frames, landmarks + embeddings + PNGs):"
clip=$DATA/mead/W009_front_neutral_level1_001.mp4
d9=$(measure "$T/d9_720p.mp4")
d9_dec=$(decode_rate "$T/d9_720p.mp4")
printf '  d9.mp4 scaled to 1280x720 (587 frames): %s frames/s (decoding alone: %s frames/s)\n' "$d9" "$d9_dec"
mead=$(measure "$clip")
mead_dec=$(decode_rate "$clip")
printf '  mead W009_front_neutral_level1_001 256x256 (104 frames): %s frames/s (decoding alone: %s frames/s)\n' "$mead" "$mead_dec"
