#!/bin/sh
# extract.sh: `visage extract`, `faces`, `sort` and `prune` end to end through the real binary:
# the sample photos give their 22 faces with metadata and an alignments file; --skip-existing
# skips a finished input; --filter keeps one person of a video; a phone clip stored sideways is
# read upright; sorting renames in order; pruning removes deleted faces from the alignments.
set -u
. "$(dirname "$0")/lib.sh"

if ! have_models; then echo "skipped: no models (run make models)"; exit 0; fi
if [ ! -d "$SAMPLES" ]; then echo "skipped: no $SAMPLES (run make models)"; exit 0; fi

# --- the sample photos: 22 faces, one PNG each, with metadata and an alignments file
run_visage extract "$SAMPLES" -o "$T/faces" -q
[ "$rc" -eq 0 ] || fail "extract samples: exit $rc"
n=$(count_png "$T/faces")
[ "$n" -eq 22 ] || fail "samples: $n faces, expected 22"
grep -q "kept 22" "$T/out" || fail "samples: summary does not say 'kept 22'"
grep -q "frames read" "$T/out" || fail "samples: no summary"
al="$T/faces/alignments/samples.json"
[ -f "$al" ] || fail "samples: no alignments file $al"
grep -Eq '"complete": ?true' "$al" || fail "samples: alignments not marked complete"
[ "$(al_faces "$al")" -eq 22 ] || fail "samples: alignments do not hold 22 faces"
no_partial_files "$T/faces"

run_visage faces "$T/faces"
[ "$rc" -eq 0 ] || fail "faces: exit $rc"
grep -q "^22 faces" "$T/out" || fail "faces: does not list 22 faces"
grep -q "sample3.jpg" "$T/out" || fail "faces: source not listed"
run_visage faces "$T/faces" --json
[ "$(grep -c '"yaw"' "$T/out")" -eq 22 ] || fail "faces --json: not 22 records"

# --- --skip-existing: a complete input is not read again
run_visage extract "$SAMPLES" -o "$T/faces" -q --skip-existing
[ "$rc" -eq 0 ] || fail "skip-existing: exit $rc"
grep -q "1 skipped" "$T/out" || fail "skip-existing: the finished input was not skipped"
[ "$(count_png "$T/faces")" -eq 22 ] || fail "skip-existing: faces changed"

# --- sort by size: rank prefixes, largest first; faces stay the same files
run_visage sort "$T/faces" --by size
[ "$rc" -eq 0 ] || fail "sort: exit $rc"
[ "$(ls "$T/faces" | grep -c '^000[0-9][0-9]_.*\.png$')" -eq 22 ] || fail "sort: files not renamed with ranks"
run_visage faces "$T/faces" --json
first=$(head -n 1 "$T/out" | sed 's/.*"size":\([0-9.]*\).*/\1/')
last=$(tail -n 1 "$T/out" | sed 's/.*"size":\([0-9.]*\).*/\1/')
awk -v a="$first" -v b="$last" 'BEGIN { exit !(a + 0 >= b + 0) }' || fail "sort --by size: first $first < last $last"
run_visage sort "$T/faces" --by colour
[ "$rc" -eq 2 ] || fail "sort --by colour: exit $rc, expected a usage error"

# --- delete three faces, prune: the alignments file follows
rm "$T/faces/00001_"*.png "$T/faces/00005_"*.png "$T/faces/00022_"*.png
run_visage prune "$T/faces"
[ "$rc" -eq 0 ] || fail "prune: exit $rc"
grep -q "3 of 22 faces removed" "$T/out" || fail "prune: does not report 3 of 22 removed"
[ "$(al_faces "$al")" -eq 19 ] || fail "prune: alignments do not hold 19 faces"

# --- in a project (a folder with visage.ini), faces/a's alignments go to the project's alignments/
mkdir -p "$T/proj"
printf '[extract]\nsize = 128\n' >"$T/proj/visage.ini"
run_visage -C "$T/proj" extract "$(pwd)/$SAMPLES/sample1.jpg" -o faces/a -q
[ "$rc" -eq 0 ] || fail "extract in a project: exit $rc"
[ -f "$T/proj/alignments/sample1.jpg.json" ] || fail "project: alignments not in PROJECT/alignments"
grep -Eq '"size": ?128' "$T/proj/alignments/sample1.jpg.json" || fail "project: its visage.ini was not applied"
[ "$(count_png "$T/proj/faces/a")" -eq 3 ] || fail "project: expected the 3 faces of sample1.jpg"
# faces/b shares the project's alignments/; pruning faces/a must leave b's file alone
run_visage -C "$T/proj" extract "$(pwd)/$SAMPLES/sample2.jpg" -o faces/b -q
[ "$rc" -eq 0 ] || fail "extract faces/b: exit $rc"
b_faces=$(al_faces "$T/proj/alignments/sample2.jpg.json")
rm "$(ls "$T/proj/faces/a"/*.png | head -n 1)"
run_visage -C "$T/proj" prune faces/a
[ "$rc" -eq 0 ] || fail "prune faces/a: exit $rc"
grep -q "sample1.jpg.json: 1 of 3 faces removed" "$T/out" || fail "prune faces/a: sample1 not pruned"
grep -q "sample2" "$T/out" && fail "prune faces/a touched faces/b's alignments"
[ "$(al_faces "$T/proj/alignments/sample2.jpg.json")" -eq "$b_faces" ] || fail "faces/b's alignments changed"

# --- names never collide: the same file name in two folders, the same stem with two extensions
mkdir -p "$T/d1" "$T/d2" "$T/mixed"
cp "$SAMPLES/sample1.jpg" "$T/d1/pic.jpg"
cp "$SAMPLES/sample2.jpg" "$T/d2/pic.jpg"
run_visage extract "$T/d1/pic.jpg" "$T/d2/pic.jpg" -o "$T/same" -q
[ "$rc" -eq 0 ] || fail "same names: exit $rc"
[ "$(count_png "$T/same")" -eq 6 ] || fail "same names: $(count_png "$T/same") faces on disk, expected 3 + 3"
[ "$(ls "$T/same/alignments" | wc -l)" -eq 2 ] || fail "same names: one alignments file overwrote the other"
cp "$SAMPLES/sample1.jpg" "$T/mixed/x.jpg"
cp "$SAMPLES/sample2.jpg" "$T/mixed/x.png" # a JPEG named .png: FFmpeg reads it by content
run_visage extract "$T/mixed" -o "$T/mixedfaces" -q
[ "$(count_png "$T/mixedfaces")" -eq 6 ] || fail "x.jpg and x.png: $(count_png "$T/mixedfaces") faces on disk, expected 6"

# --- extracting the same input into the same folder again is refused (it would bring back faces
# deleted since); --overwrite does it
run_visage extract "$T/d1/pic.jpg" -o "$T/same" -q
[ "$rc" -eq 1 ] || fail "extract again: exit $rc, expected 1"
grep -q -- "--overwrite" "$T/err" || fail "extract again: the message does not name --overwrite"
run_visage extract "$T/d1/pic.jpg" -o "$T/same" -q --overwrite
[ "$rc" -eq 0 ] && [ "$(count_png "$T/same")" -eq 6 ] || fail "--overwrite: exit $rc, $(count_png "$T/same") faces"

# --- a folder given as '.' names its alignments file after the folder, not '..json'
(cd "$T/d1" && "$VISAGE" extract . -o "$T/dot" -q >/dev/null 2>&1) || fail "extract .: failed"
[ -f "$T/dot/alignments/d1.json" ] || fail "extract .: alignments file is $(ls -a "$T/dot/alignments")"

# --- every unreadable picture of a folder is named, and the others are extracted
mkdir -p "$T/someb"
: >"$T/someb/a.jpg"
: >"$T/someb/b.jpg"
cp "$SAMPLES/sample1.jpg" "$T/someb/c.jpg"
run_visage extract "$T/someb" -o "$T/somebf" -q
[ "$rc" -eq 0 ] || fail "folder with unreadable pictures: exit $rc"
grep -q "a.jpg" "$T/err" && grep -q "b.jpg" "$T/err" || fail "unreadable pictures not all named"
[ "$(count_png "$T/somebf")" -eq 3 ] || fail "folder with unreadable pictures: the good one was not extracted"

# --- --device: the CPU by name gives the same faces as the default on this machine; a device that
# is not there or means nothing is refused before any folder is made
run_visage extract "$SAMPLES" -o "$T/faces_cpu" --device cpu -q
[ "$rc" -eq 0 ] || fail "extract --device cpu: exit $rc"
[ "$(count_png "$T/faces_cpu")" -eq 22 ] || fail "extract --device cpu: not 22 faces"
run_visage gpus
if grep -q '^no GPU' "$T/out"; then
    expect_bad_input "--device cuda:0 without a GPU" "device 'cuda:0'" extract "$SAMPLES" \
        -o "$T/faces_gpu" --device cuda:0
else
    expect_bad_input "--device cuda:64" "no CUDA device 64" extract "$SAMPLES" -o "$T/faces_gpu" \
        --device cuda:64
fi
expect_bad_input "--device tpu" "unknown device 'tpu'" extract "$SAMPLES" -o "$T/faces_gpu" \
    --device tpu
[ ! -e "$T/faces_gpu" ] || fail "a refused device made $T/faces_gpu"

# --- a name that is not UTF-8 is refused up front (the metadata is UTF-8 JSON)
bad=$(printf 'caf\351.jpg')
cp "$SAMPLES/sample1.jpg" "$T/$bad"
expect_bad_input "non-UTF-8 name" "UTF-8" extract "$T/$bad" -o "$T/latin1"

# --- faces --json escapes names; prune refuses when a face lost its metadata (re-saved by an
# editor), unless --force
mkdir -p "$T/q"
cp "$SAMPLES/sample1.jpg" "$T/q/it\"s.jpg"
run_visage extract "$T/q" -o "$T/qf" -q
run_visage faces "$T/qf" --json
grep -q 'it\\"s' "$T/out" || fail "faces --json: a quote in a name is not escaped"
first=$(ls "$T/qf"/*.png | head -n 1)
if command -v ffmpeg >/dev/null; then
    ffmpeg -v error -y -i "$first" "$T/resaved.png" && mv "$T/resaved.png" "$first"
    rm "$(ls "$T/qf"/*.png | tail -n 1)"
    run_visage prune "$T/qf"
    [ "$rc" -eq 1 ] || fail "prune with a metadata-less face: exit $rc, expected 1"
    grep -q "no visage metadata" "$T/err" || fail "prune: the cause is not given"
    [ "$(al_faces "$T/qf/alignments/q.json")" -eq 3 ] || fail "prune changed the alignments while refusing"
    run_visage prune "$T/qf" --force
    [ "$rc" -eq 0 ] && [ "$(al_faces "$T/qf/alignments/q.json")" -eq 1 ] || fail "prune --force: exit $rc"
fi

if ! have_data; then
    echo "skipped: no ../shared/data (the real-data checks)"
    echo "extract.sh: the sample checks passed"
    exit 0
fi

# --- --filter: one W009 face as the reference keeps W009 and drops W011
mead=$DATA/mead
ref=$(ls "$T/faces" | head -n 1)
run_visage extract "$mead/W009_front_neutral_level1_001.mp4" -o "$T/w9" -q --every 50
[ "$rc" -eq 0 ] || fail "extract W009: exit $rc"
ref=$(ls "$T/w9"/*.png | head -n 1)
run_visage extract "$mead/W009_front_happy_level3_001.mp4" "$mead/W011_front_happy_level3_001.mp4" \
    -o "$T/filtered" -q --every 10 --filter "$ref"
[ "$rc" -eq 0 ] || fail "extract --filter: exit $rc"
w9=$(ls "$T/filtered" | grep -c '^W009')
w11=$(ls "$T/filtered" | grep -c '^W011')
[ "$w9" -ge 8 ] || fail "--filter kept only $w9 W009 faces"
[ "$w11" -eq 0 ] || fail "--filter kept $w11 W011 faces"
grep -Eq "filtered by identity [1-9]" "$T/out" || fail "--filter: summary does not count identity filtering"

# --nfilter drops the reference person
run_visage extract "$mead/W009_front_happy_level3_001.mp4" -o "$T/nfiltered" -q --every 10 --nfilter "$ref"
[ "$rc" -eq 0 ] || fail "extract --nfilter: exit $rc"
[ "$(count_png "$T/nfiltered")" -eq 0 ] || fail "--nfilter kept faces of the reference person"

# --- a phone clip: the pictures are stored sideways (coded 90 degrees anticlockwise) and a display
# matrix turns them upright; read upright, every sampled frame gives its face (read as stored,
# the detector finds none). FFmpeg >= 6 tags with -display_rotation, 5.1 with the rotate tag.
if command -v ffmpeg >/dev/null 2>&1 && command -v ffprobe >/dev/null 2>&1; then
    ffmpeg -nostdin -v error -y -i "$mead/W009_front_neutral_level1_001.mp4" -an \
        -vf transpose=cclock -c:v mpeg4 -q:v 2 "$T/sideways.mp4" || fail "ffmpeg: sideways copy"
    ffmpeg -nostdin -v quiet -y -display_rotation 270 -i "$T/sideways.mp4" -c copy "$T/phone.mp4" ||
        ffmpeg -nostdin -v error -y -i "$T/sideways.mp4" -c copy -metadata:s:v:0 rotate=270 \
            "$T/phone.mp4" || fail "ffmpeg: tagging the sideways copy"
    rot=$(ffprobe -v error -select_streams v:0 -show_entries stream_side_data=rotation \
        -of csv=p=0 "$T/phone.mp4" | tr -d ',\n')
    if [ "$rot" = "-90" ] || [ "$rot" = "270" ]; then
        run_visage extract "$T/phone.mp4" -o "$T/phone" -q --every 10
        [ "$rc" -eq 0 ] || fail "extract a rotated clip: exit $rc"
        n=$(count_png "$T/phone")
        [ "$n" -eq 11 ] || fail "rotated clip: $n faces from 11 frames, expected one each"
    else
        echo "skipped: a rotated clip (this ffmpeg CLI tagged it '$rot', not -90)"
    fi
else
    echo "skipped: a rotated clip (no ffmpeg CLI)"
fi

# --- Ctrl-C (SIGINT) stops cleanly: the faces so far are kept, the alignments file records them
# as incomplete, nothing is half-written, and the exit status says it was interrupted
"$VISAGE" extract "$DATA/video/d6.mp4" -o "$T/stopped" -q >"$T/out" 2>"$T/err" &
pid=$!
wait_for_faces "$T/stopped" 3
kill -INT "$pid"
rc=0
wait "$pid" || rc=$?
[ "$rc" -eq 130 ] || fail "Ctrl-C: exit status $rc, expected 130"
grep -q "stopped" "$T/out" || fail "Ctrl-C: the summary does not say it stopped"
n=$(count_png "$T/stopped")
[ "$n" -ge 3 ] && [ "$n" -lt 1008 ] || fail "Ctrl-C: $n faces kept"
grep -Eq '"complete": ?false' "$T/stopped/alignments/d6.mp4.json" || fail "Ctrl-C: alignments not saved as incomplete"
[ "$(al_faces "$T/stopped/alignments/d6.mp4.json")" -eq "$n" ] || fail "Ctrl-C: alignments and faces disagree"
no_partial_files "$T/stopped"
# a dropped SSH link (SIGHUP) does not stop an extraction
"$VISAGE" extract "$DATA/video/d6.mp4" -o "$T/hup" -q --every 5 >"$T/out" 2>"$T/err" &
pid=$!
wait_for_faces "$T/hup" 2
kill -HUP "$pid"
sleep 1
kill -0 "$pid" 2>/dev/null || fail "SIGHUP stopped the extraction"
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
[ "$rc" -eq 130 ] || fail "SIGTERM after SIGHUP: exit status $rc, expected 130"
# and --skip-existing does not skip an incomplete input
run_visage extract "$DATA/video/d6.mp4" -o "$T/stopped" -q --skip-existing --every 100
[ "$rc" -eq 0 ] || fail "--skip-existing on an incomplete input: exit $rc"
grep -q "skipped" "$T/out" && fail "--skip-existing skipped an incomplete input"
grep -Eq '"complete": ?true' "$T/stopped/alignments/d6.mp4.json" || fail "the incomplete input was not extracted again"

echo ok
