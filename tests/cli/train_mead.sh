#!/bin/sh
# train_mead.sh: training learns on real faces. Faces of two people of ../shared/data/mead (W009
# and W011, four clips each, every 6th frame) are extracted and a Lightweight model (a quarter of
# the published width, so it runs in about a minute on two cores) trains 400 iterations with the
# default loss and augmentation: the mean loss of the last ten iterations must fall below 0.6 of
# the first ten on both sides (measured: 0.76 -> 0.39 and 0.76 -> 0.34, ratios 0.51 and 0.45).
set -u
. "$(dirname "$0")/lib.sh"

if ! have_data; then echo "skipped: no ../shared/data"; exit 0; fi
if ! have_models; then echo "skipped: no models (run make models)"; exit 0; fi

for clip in angry happy sad surprised; do
    for who in W009:a W011:b; do
        run_visage extract "$DATA/mead/${who%:*}_front_${clip}_level3_001.mp4" --every 6 -o "$T/${who#*:}" -q
        [ "$rc" -eq 0 ] || fail "extract ${who%:*} $clip: exit $rc"
    done
done
na=$(count_png "$T/a") nb=$(count_png "$T/b")
[ "$na" -ge 60 ] && [ "$nb" -ge 60 ] || fail "too few faces: $na and $nb"

run_visage train -A "$T/a" -B "$T/b" -m "$T/m" --model lightweight --shrink 4 --batch 8 \
    --iterations 400 --save-every 400 --seed 3 -q
[ "$rc" -eq 0 ] || fail "train: exit $rc"
awk -F '\t' '
    NR > 1 && NR <= 11 { a0 += $2; b0 += $3 }
    NR > 1 { a[NR] = $2; b[NR] = $3; last = NR }
    END {
        if (last < 401) { print "only " last - 1 " rows in loss.tsv"; exit 1 }
        for (i = last - 9; i <= last; i++) { a1 += a[i]; b1 += b[i] }
        printf "loss A %.3f -> %.3f (%.2f), B %.3f -> %.3f (%.2f)\n", a0 / 10, a1 / 10, a1 / a0, b0 / 10, b1 / 10, b1 / b0
        exit !(a1 < 0.6 * a0 && b1 < 0.6 * b0)
    }' "$T/m/loss.tsv" >"$T/out" 2>&1 || fail "the loss did not fall enough: $(cat "$T/out")"
cat "$T/out"

# --- conversion with that model: the held-out W009 clip converted A -> B is closer to W011 than it
# was, and the held-out W011 clip converted with --swap closer to W009 (identity distance of the
# faces at the original clip's landmarks to the mean of the training faces of the other person;
# measured: 0.76 -> 0.51 and 0.66 -> 0.59)
ID=$(dirname "$VISAGE")/tests/test_convert
CMP=$(dirname "$VISAGE")/tests/test_video_out
for who in W009:a:b: W011:b:a:--swap; do
    name=${who%%:*} rest=${who#*:}
    own=${rest%%:*} rest=${rest#*:}
    other=${rest%%:*} flag=${rest#*:}
    clip="$DATA/mead/${name}_front_neutral_level1_001.mp4"
    run_visage convert "$clip" -m "$T/m" -o "$T/$name.mp4" $flag -q
    [ "$rc" -eq 0 ] || fail "convert $name: exit $rc"
    run_visage extract "$clip" --every 10 -o "$T/held_$name" -q
    [ "$rc" -eq 0 ] || fail "extract the held-out $name clip: exit $rc"
    al="$T/held_$name/alignments/${name}_front_neutral_level1_001.mp4.json"
    before=$("$ID" --identity "$clip" "$al" "$T/$other" | awk '{ print $2 }')
    after=$("$ID" --identity "$T/$name.mp4" "$al" "$T/$other" | awk '{ print $2 }')
    [ -n "$before" ] && [ -n "$after" ] || fail "$name: no identity distances"
    echo "$name ${flag:-A -> B}: identity distance to the other person $before -> $after"
    awk -v b="$before" -v a="$after" 'BEGIN { exit !(a < b - 0.03) }' ||
        fail "$name converted is not closer to the other person: $before -> $after"
done

# --- a clip with sound converted with this model keeps its frames and its audio
run_visage convert "$DATA/video/retalking_4.mp4" -m "$T/m" -o "$T/retalking.mp4" --preset ultrafast -q
[ "$rc" -eq 0 ] || fail "convert retalking_4: exit $rc"
"$CMP" --compare "$DATA/video/retalking_4.mp4" "$T/retalking.mp4" >"$T/cmp" || fail "cannot compare"
awk '$1 == "frames" { exit !($2 == $3 && $2 > 0) }' "$T/cmp" || fail "retalking_4: $(grep frames "$T/cmp")"
grep -q "^audio same [1-9]" "$T/cmp" || fail "retalking_4: the audio changed: $(tail -1 "$T/cmp")"
echo ok
