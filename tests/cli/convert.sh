#!/bin/sh
# convert.sh: `visage convert` through the real binary, with a small model trained here on
# synthetic faces: bad input (no model, an unreadable image, an output that cannot be written, a
# learned mask the model lacks) is one message and no file; a synthetic clip with a known face
# track and its alignments keeps its frame count and, in lossless output, every pixel outside
# the face's crop; with the face networks and the sample
# photos, an image and a folder are converted, each output saying in its PNG text that its faces
# were synthesised; --swap uses the other decoder; with an alignments file, a face deleted after
# extraction is not swapped (pruned or not); and (with ../shared/data) a video keeps its frame count,
# lossless output with --frames changes exactly those frames, the container says what the video
# is, and lossless into .mp4 or a cut video is refused with nothing left behind.
set -u
. "$(dirname "$0")/lib.sh"

synthetic_faces
run_visage train -A "$T/a" -B "$T/b" -m "$T/m" --model lightweight --shrink 16 --batch 4 \
    --seed 7 --threads 2 --device cpu -q --iterations 10 --save-every 10
[ "$rc" -eq 0 ] || fail "training the test model: exit $rc"

# a picture with no face, made here
{
    printf 'P6\n64 48\n255\n'
    i=0
    while [ $i -lt 3072 ]; do
        printf '\120\140\200'
        i=$((i + 1))
    done
} >"$T/plain.ppm"

# --- usage and bad input: one message naming the cause, exit 1, nothing written
run_visage convert "$T/plain.ppm" -m "$T/m"
[ "$rc" -eq 2 ] || fail "no -o: exit $rc, expected 2"
run_visage convert "$T/plain.ppm" -m "$T/m" -o "$T/x.png" --color sepia
[ "$rc" -eq 2 ] || fail "--color sepia: exit $rc, expected 2"
mkdir -p "$T/empty"
expect_bad_input "a folder without a model" "$T/empty" convert "$T/plain.ppm" -m "$T/empty" -o "$T/x.png"
grep -q "no trained model" "$T/err" || fail "no checkpoint: the message does not say so"
echo "not a picture" >"$T/garbage.jpg"
expect_bad_input "an unreadable image" "$T/garbage.jpg" convert "$T/garbage.jpg" -m "$T/m" -o "$T/x.png"
[ ! -e "$T/x.png" ] || fail "a failed conversion left $T/x.png"

# --- a synthetic clip with a known face track and its alignments (no data needed): same frame
# count, and in lossless output no pixel outside the face's crop changes while the face does
SYN=$(dirname "$VISAGE")/tests/test_convert
CMP=$(dirname "$VISAGE")/tests/test_video_out
"$SYN" --synth-track "$T" || fail "cannot write the synthetic clip"
run_visage convert "$T/track.mkv" -m "$T/m" -o "$T/track_out.mkv" --alignments "$T/track.json" \
    --lossless --smooth 0 -q
[ "$rc" -eq 0 ] || fail "convert the synthetic clip: exit $rc"
"$CMP" --compare "$T/track.mkv" "$T/track_out.mkv" >"$T/cmp" || fail "cannot compare the clips"
grep -q "^frames 40 40\$" "$T/cmp" || fail "synthetic clip: $(grep frames "$T/cmp")"
"$SYN" --outside "$T/track.mkv" "$T/track_out.mkv" "$T/m" >"$T/outside" || fail "cannot measure"
read -r _ nf _ out _ inn <"$T/outside"
[ "$nf" -eq 40 ] && [ "$out" -eq 0 ] && [ "$inn" -gt 1000 ] ||
    fail "synthetic clip: $(cat "$T/outside") (expected 40 frames, 0 outside, changes inside)"
# a folder for a video's output: one PNG a frame, each saying what it is
run_visage convert "$T/track.mkv" -m "$T/m" -o "$T/frames/" --alignments "$T/track.json" -q
[ "$rc" -eq 0 ] || fail "convert the synthetic clip to PNG frames: exit $rc"
[ "$(count_png "$T/frames")" -eq 40 ] || fail "PNG frames: $(count_png "$T/frames"), expected 40"
grep -aq '"synthesized": true' "$T/frames/track_000039.png" || fail "a PNG frame does not say what it is"
# --no-metadata: the output does not say it
run_visage convert "$T/track.mkv" -m "$T/m" -o "$T/quiet/" --alignments "$T/track.json" \
    --frames 0 --no-metadata -q
[ "$rc" -eq 0 ] || fail "--no-metadata: exit $rc"
grep -aq 'visage-synthesized' "$T/quiet/track_000000.png" && fail "--no-metadata still marked the output"
# alignments of frames of another size: refused, naming the file
sed 's/"width": *200/"width": 320/' "$T/track.json" >"$T/other.json"
expect_bad_input "alignments of another size" "$T/other.json" convert "$T/track.mkv" -m "$T/m" \
    -o "$T/other.mkv" --alignments "$T/other.json"
grep -q "320x150" "$T/err" || fail "the size is not named: $(cat "$T/err")"
[ ! -e "$T/other.mkv" ] || fail "a refused conversion left $T/other.mkv"

if ! have_models || [ ! -d "$SAMPLES" ]; then
    echo "skipped: no models or $SAMPLES (run make models): the conversions themselves"
    exit 0
fi

# --- an image: its faces detected and swapped; the PNG says what it is
run_visage convert "$SAMPLES/sample1.jpg" -m "$T/m" -o "$T/s1.png"
[ "$rc" -eq 0 ] || fail "convert sample1: exit $rc"
n1=$(sed -n 's/.*: \([0-9]*\) faces\{0,1\} swapped.*/\1/p' "$T/err")
[ -n "$n1" ] && [ "$n1" -ge 2 ] || fail "sample1: '$n1' faces swapped, expected the photo's faces"
grep -aq 'visage-synthesized' "$T/s1.png" || fail "the output has no visage-synthesized text"
grep -aq '"synthesized": true' "$T/s1.png" || fail "the output does not say it is synthesised"
grep -aq '"iteration": 10' "$T/s1.png" || fail "the output does not name the model's iteration"
no_partial_files "$T"

# --swap: the other decoder, another picture
run_visage convert "$SAMPLES/sample1.jpg" -m "$T/m" -o "$T/s1swap.png" --swap
[ "$rc" -eq 0 ] || fail "--swap: exit $rc"
cmp -s "$T/s1.png" "$T/s1swap.png" && fail "--swap gave the same picture"

# an output that cannot be written: one message naming it, nothing left
expect_bad_input "an output under a file" "$T/s1.png/x.png" convert "$SAMPLES/sample1.jpg" -m "$T/m" -o "$T/s1.png/x.png"
# a learned mask from a model that has none
expect_bad_input "--mask learned" "learned mask" convert "$SAMPLES/sample1.jpg" -m "$T/m" -o "$T/l.png" --mask learned
[ ! -e "$T/l.png" ] || fail "a failed conversion left $T/l.png"

# --- a folder: every image, one PNG each
run_visage convert "$SAMPLES" -m "$T/m" -o "$T/converted" --color rct --mask box
[ "$rc" -eq 0 ] || fail "convert the samples folder: exit $rc"
[ "$(count_png "$T/converted")" -eq "$(find "$SAMPLES" -maxdepth 1 -name '*.jpg' | wc -l)" ] ||
    fail "the folder gave $(count_png "$T/converted") PNGs"
no_partial_files "$T/converted"

# --- the alignments decide: a face deleted after extraction is left alone
run_visage extract "$SAMPLES" -o "$T/faces" -q
[ "$rc" -eq 0 ] || fail "extract samples: exit $rc"
gone=$(find "$T/faces" -maxdepth 1 -name 'sample1_*.png' | sort | head -1)
[ -n "$gone" ] || fail "no face of sample1 was extracted"
rm "$gone"
# without prune: the faces folder the alignments name tells what was deleted
run_visage convert "$SAMPLES/sample1.jpg" -m "$T/m" -o "$T/s1al0.png" \
    --alignments "$T/faces/alignments/samples.json"
[ "$rc" -eq 0 ] || fail "convert with alignments: exit $rc"
n2=$(sed -n 's/.*: \([0-9]*\) faces\{0,1\} swapped.*/\1/p' "$T/err")
[ "$n2" = $((n1 - 1)) ] || fail "with a face deleted, not pruned: $n2 faces swapped, expected $((n1 - 1))"
grep -q "1 face deleted after extraction left alone" "$T/err" || fail "convert does not say it left a deleted face alone"
run_visage prune "$T/faces"
[ "$rc" -eq 0 ] || fail "prune: exit $rc"
run_visage convert "$SAMPLES/sample1.jpg" -m "$T/m" -o "$T/s1al.png" \
    --alignments "$T/faces/alignments/samples.json"
[ "$rc" -eq 0 ] || fail "convert with alignments: exit $rc"
n2=$(sed -n 's/.*: \([0-9]*\) faces\{0,1\} swapped.*/\1/p' "$T/err")
[ "$n2" = $((n1 - 1)) ] || fail "with a face deleted: $n2 faces swapped, expected $((n1 - 1))"

# --- --preview: one frame before and after side by side, twice as wide
png_size() { od -An -tu1 -j16 -N8 "$1" | awk '{ print $1 * 16777216 + $2 * 65536 + $3 * 256 + $4, $5 * 16777216 + $6 * 65536 + $7 * 256 + $8 }'; }
run_visage convert "$SAMPLES/sample1.jpg" -m "$T/m" -o "$T/pv.png" --preview 0
[ "$rc" -eq 0 ] || fail "--preview: exit $rc"
set -- $(png_size "$T/s1.png")
w1=$1 h1=$2
set -- $(png_size "$T/pv.png")
[ "$1" -eq $((2 * w1)) ] && [ "$2" -eq "$h1" ] || fail "--preview is $1 x $2, expected $((2 * w1)) x $h1"
grep -q "before and after, $n1 faces swapped" "$T/err" || fail "--preview: $(cat "$T/err")"

# --- --filter swaps only the person of the reference, --nfilter everyone else
ref=$(find "$T/faces" -maxdepth 1 -name 'sample1_*.png' | sort | head -1)
run_visage convert "$SAMPLES/sample1.jpg" -m "$T/m" -o "$T/keep.png" --filter "$ref"
[ "$rc" -eq 0 ] || fail "--filter: exit $rc"
grep -q ": 1 face swapped" "$T/err" || fail "--filter: $(cat "$T/err"), expected 1 face"
run_visage convert "$SAMPLES/sample1.jpg" -m "$T/m" -o "$T/drop.png" --nfilter "$ref"
[ "$rc" -eq 0 ] || fail "--nfilter: exit $rc"
grep -q ": $((n1 - 1)) faces\{0,1\} swapped" "$T/err" || fail "--nfilter: $(cat "$T/err"), expected $((n1 - 1))"
expect_bad_input "a reference that is not there" "$T/nobody.png" convert "$SAMPLES/sample1.jpg" -m "$T/m" -o "$T/x.png" --filter "$T/nobody.png"

# --- a video: same frames, timing and audio; --frames swaps only there, and lossless output keeps
# every other frame bit for bit
CMP=$(dirname "$VISAGE")/tests/test_video_out
if ! have_data; then
    echo "skipped: no ../shared/data (the video checks)"
    echo ok
    exit 0
fi
clip="$DATA/video/retalking_4.mp4"
run_visage convert "$clip" -m "$T/m" -o "$T/clip.mkv" --lossless --frames 3-5,10 -q
[ "$rc" -eq 0 ] || fail "convert a clip (lossless, frames 3-5,10): exit $rc"
"$CMP" --compare "$clip" "$T/clip.mkv" >"$T/cmp" || fail "cannot compare the clips"
frames=$(awk '$1 == "frames" { print $2 }' "$T/cmp")
[ -n "$frames" ] && [ "$frames" -gt 10 ] || fail "the clip has '$frames' frames"
grep -q "^frames $frames $frames\$" "$T/cmp" || fail "frame counts differ: $(tail -1 "$T/cmp")"
[ "$(grep ' differs$' "$T/cmp" | awk '{ printf "%s ", $1 }')" = "3 4 5 10 " ] ||
    fail "frames changed: $(grep ' differs$' "$T/cmp" | awk '{ printf "%s ", $1 }'), expected 3 4 5 10"
run_visage convert "$clip" -m "$T/m" -o "$T/clip.mp4" --preset ultrafast -q
[ "$rc" -eq 0 ] || fail "convert a clip to H.264: exit $rc"
"$CMP" --compare "$clip" "$T/clip.mp4" >"$T/cmp" || fail "cannot compare the clips"
grep -q "^frames $frames $frames\$" "$T/cmp" || fail "H.264: frame counts differ: $(tail -1 "$T/cmp")"
grep -q "^audio same [1-9]" "$T/cmp" || fail "the audio was not copied packet for packet: $(tail -1 "$T/cmp")"
grep -aq '"synthesized": true' "$T/clip.mp4" || fail "the video's comment does not say it is synthesised"
run_visage convert "$clip" -m "$T/m" -o "$T/pv_clip.png" --preview 5 -q
[ "$rc" -eq 0 ] && [ -s "$T/pv_clip.png" ] || fail "--preview of a video frame: exit $rc"
expect_bad_input "--preview past the end" "$clip" convert "$clip" -m "$T/m" -o "$T/pv_end.png" --preview 100000
[ ! -e "$T/pv_end.png" ] || fail "a failed preview left $T/pv_end.png"
# lossless needs .mkv; a cut video is refused: one message, nothing left
expect_bad_input "lossless into .mp4" "$T/bad.mp4" convert "$clip" -m "$T/m" -o "$T/bad.mp4" --lossless
[ ! -e "$T/bad.mp4" ] || fail "a refused conversion left $T/bad.mp4"
head -c 3000 "$clip" >"$T/cut.mp4"
expect_bad_input "a cut video" "$T/cut.mp4" convert "$T/cut.mp4" -m "$T/m" -o "$T/cut_out.mp4"
[ ! -e "$T/cut_out.mp4" ] || fail "a failed conversion left $T/cut_out.mp4"
no_partial_files "$T"

echo ok
