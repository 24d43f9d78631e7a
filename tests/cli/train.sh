#!/bin/sh
# train.sh: `visage train` and `visage model info` through the real binary, on synthetic face sets
# (build/tests/test_learn --write-faces) so no data is needed: a run saves a checkpoint, loss log
# and preview; resume after kill -9 ends bit-identical to an uninterrupted run; kill -9 at random
# moments never leaves a model without an intact checkpoint; damaged, truncated and foreign
# checkpoints are refused and left alone; a full disk during a save keeps the previous one; a
# forced non-finite gradient rolls back (and stops when it comes back); SIGUSR1 saves, SIGTERM
# saves and stops, SIGHUP does not stop training.
set -u
. "$(dirname "$0")/lib.sh"

synthetic_faces

# a small model: fast enough to train a few dozen iterations in seconds on two cores (on the CPU
# even where there is a GPU: these runs are compared bit for bit)
SMALL="--model lightweight --shrink 16 --batch 4 --seed 7 --threads 2 --device cpu -q"

# weights FILE: one "name crc" line per tensor (parameters and Adam moments) of a checkpoint
weights() { "$VISAGE" model info "$1" | awk '$1 ~ /^(encoder|decoder_|adam_)/ { print $1, $NF }'; }

same_weights() {
    weights "$1" >"$T/w1" && weights "$2" >"$T/w2" || fail "model info failed on $1 or $2"
    [ -s "$T/w1" ] || fail "model info lists no tensors"
    cmp -s "$T/w1" "$T/w2"
}

# train_bg DIR ARGS...: starts training in the background; its pid in $pid
train_bg() {
    d=$1
    shift
    "$VISAGE" train -A "$T/a" -B "$T/b" -m "$d" $SMALL "$@" >"$T/bg.out" 2>"$T/bg.err" &
    pid=$!
}

# wait_log DIR ITER: until DIR/loss.tsv has a row for ITER (written after that save), 2 minutes
wait_log() {
    i=0
    until grep -q "^$2	" "$1/loss.tsv" 2>/dev/null; do
        kill -0 "$pid" 2>/dev/null || return 1
        [ "$i" -lt 2400 ] || return 1
        sleep 0.05
        i=$((i + 1))
    done
}

# --- usage and bad arguments
run_visage train -A "$T/a" -m "$T/m0"
[ "$rc" -eq 2 ] || fail "no -B: exit $rc, expected 2"
run_visage train -A "$T/a" -B "$T/b" -m "$T/m0" --model villain2 $SMALL
[ "$rc" -eq 1 ] || fail "unknown model: exit $rc"
grep -q "villain2" "$T/err" || fail "unknown model not named"
expect_bad_input "missing faces" "$T/nope" train -A "$T/nope" -B "$T/b" -m "$T/m0" $SMALL

# --- devices: `visage gpus` lists the cards or says why there are none; a device that is not
# there and a device name that means nothing are refused before anything is written
run_visage gpus
[ "$rc" -eq 0 ] || fail "gpus: exit $rc"
grep -Eq '^(no GPU: .+|cuda:0  .+ compute [0-9]+\.[0-9]+ .+ GiB)' "$T/out" || fail "gpus: $(cat "$T/out")"
if grep -q '^no GPU' "$T/out"; then
    run_visage train -A "$T/a" -B "$T/b" -m "$T/m_gpu" $SMALL --device cuda:0
    [ "$rc" -eq 1 ] || fail "--device cuda:0 without a GPU: exit $rc, expected 1"
    grep -q "device 'cuda:0': no GPU" "$T/err" || fail "--device cuda:0: $(cat "$T/err")"
else
    run_visage train -A "$T/a" -B "$T/b" -m "$T/m_gpu" $SMALL --device cuda:64
    [ "$rc" -eq 1 ] || fail "--device cuda:64: exit $rc, expected 1"
    grep -q "no CUDA device 64" "$T/err" || fail "--device cuda:64: $(cat "$T/err")"
fi
[ ! -e "$T/m_gpu" ] || fail "a refused device left $T/m_gpu"
run_visage train -A "$T/a" -B "$T/b" -m "$T/m_gpu" $SMALL --device tpu:0
[ "$rc" -eq 1 ] || fail "--device tpu:0: exit $rc, expected 1"
grep -q "unknown device 'tpu:0'" "$T/err" || fail "--device tpu:0: $(cat "$T/err")"
run_visage train -A "$T/a" -B "$T/b" -m "$T/m_gpu" $SMALL --precision fp8
[ "$rc" -eq 1 ] || fail "--precision fp8: exit $rc, expected 1"
grep -q "fp8" "$T/err" || fail "--precision fp8 not named: $(cat "$T/err")"

# --- a short run: checkpoint, loss log, preview; model info
run_visage train -A "$T/a" -B "$T/b" -m "$T/m1" $SMALL --iterations 6 --save-every 3
[ "$rc" -eq 0 ] || fail "train: exit $rc"
[ -f "$T/m1/model.vsk" ] || fail "train: no model.vsk"
[ "$(grep -c '^[0-9]' "$T/m1/loss.tsv")" -eq 6 ] || fail "train: loss.tsv does not hold 6 rows"
[ -f "$T/m1/preview.png" ] || fail "train: no preview.png"
no_partial_files "$T/m1"
run_visage model info "$T/m1"
[ "$rc" -eq 0 ] || fail "model info: exit $rc"
grep -q "^  iteration=6$" "$T/out" || fail "model info: iteration 6 not shown"
grep -q "intact" "$T/out" || fail "model info: not reported intact"
grep -q "lightweight" "$T/out" || fail "model info: architecture not shown"

# --- exact resume: 40 iterations straight, against 20, kill -9, resume to 40
run_visage train -A "$T/a" -B "$T/b" -m "$T/straight" $SMALL --iterations 40 --save-every 20
[ "$rc" -eq 0 ] || fail "straight run: exit $rc"
train_bg "$T/killed" --iterations 40 --save-every 20
wait_log "$T/killed" 20 || fail "resume: the run ended before its save at 20"
kill -9 "$pid" 2>/dev/null || fail "resume: the run finished before kill -9 (make it longer)"
wait "$pid" 2>/dev/null
run_visage train -A "$T/a" -B "$T/b" -m "$T/killed" $SMALL --iterations 40 --save-every 20
[ "$rc" -eq 0 ] || fail "resume: exit $rc"
same_weights "$T/straight/model.vsk" "$T/killed/model.vsk" ||
    fail "resume: weights after kill -9 and resume differ from the uninterrupted run"
# the comparison is not vacuous: a different seed gives different weights
run_visage train -A "$T/a" -B "$T/b" -m "$T/other" --model lightweight --shrink 16 --batch 4 \
    --seed 8 --threads 2 -q --iterations 40 --save-every 40
same_weights "$T/straight/model.vsk" "$T/other/model.vsk" && fail "resume: seeds 7 and 8 agree"

# --- kill -9 at random moments while saving every iteration: always an intact checkpoint
i=0
while [ "$i" -lt 50 ]; do
    train_bg "$T/crash" --save-every 1
    sleep "0.$(awk -v s="$i" 'BEGIN { srand(s); printf "%02d", int(rand() * 60) }')"
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    if [ -f "$T/crash/model.vsk" ]; then
        "$VISAGE" model info "$T/crash" >"$T/out" 2>"$T/err" || fail "kill -9 #$i: model.vsk damaged"
    fi
    i=$((i + 1))
done
[ -f "$T/crash/model.vsk" ] || fail "kill -9: no checkpoint after 50 runs"
grep -q "iteration" "$T/out" || fail "kill -9: model info shows no iteration"

# --- damaged checkpoints are refused, named, and left as they are
cp "$T/m1/model.vsk" "$T/good.vsk"
size=$(wc -c <"$T/good.vsk")
for what in flip truncate; do
    rm -rf "$T/bad"
    cp -r "$T/m1" "$T/bad"
    case $what in
    flip) printf '\377' | dd of="$T/bad/model.vsk" bs=1 seek=$((size / 2)) conv=notrunc 2>/dev/null ;;
    truncate) head -c $((size - 100)) "$T/good.vsk" >"$T/bad/model.vsk" ;;
    esac
    cp "$T/bad/model.vsk" "$T/before.vsk"
    expect_bad_input "$what" "$T/bad/model.vsk" train -A "$T/a" -B "$T/b" -m "$T/bad" $SMALL --iterations 9
    grep -q "backups/model-3.vsk" "$T/err" || fail "$what: the newest intact backup is not named"
    cmp -s "$T/bad/model.vsk" "$T/before.vsk" || fail "$what: the damaged checkpoint was changed"
    run_visage model info "$T/bad"
    [ "$rc" -eq 1 ] || fail "$what: model info exit $rc, expected 1"
    grep -q "newest intact backup" "$T/out" || fail "$what: model info does not name the backup"
done
# a checkpoint of another architecture
expect_bad_input "other model" "$T/m1/model.vsk" train -A "$T/a" -B "$T/b" -m "$T/m1" \
    --model original --shrink 16 --batch 4 -q --iterations 9
cmp -s "$T/m1/model.vsk" "$T/good.vsk" || fail "other model: the checkpoint was changed"
# a file that is not a model
mkdir -p "$T/foreign" && head -c 5000 /dev/urandom >"$T/foreign/model.vsk"
expect_bad_input "foreign file" "$T/foreign/model.vsk" train -A "$T/a" -B "$T/b" -m "$T/foreign" $SMALL
# model.vsk gone but backups present: never a fresh model over them
rm -rf "$T/gone" && cp -r "$T/m1" "$T/gone" && rm "$T/gone/model.vsk"
expect_bad_input "missing checkpoint" "$T/gone/model.vsk" train -A "$T/a" -B "$T/b" -m "$T/gone" $SMALL
[ ! -f "$T/gone/model.vsk" ] || fail "missing checkpoint: a new model was created"

# --- a full disk during a save leaves the previous checkpoint intact
rm -rf "$T/full" && cp -r "$T/m1" "$T/full"
rc=0
(ulimit -f $((size / 1024 / 2)); exec "$VISAGE" train -A "$T/a" -B "$T/b" -m "$T/full" $SMALL \
    --iterations 8 --save-every 1) >"$T/out" 2>"$T/err" || rc=$?
[ "$rc" -eq 1 ] || fail "full disk: exit $rc, expected 1"
grep -q "no space left on device" "$T/err" || fail "full disk: cause not given"
grep -q "$T/full" "$T/err" || fail "full disk: file not named"
cmp -s "$T/full/model.vsk" "$T/good.vsk" || fail "full disk: the previous checkpoint changed"
no_partial_files "$T/full"

# --- a non-finite gradient rolls back to the last save, and the run ends as a clean one does
rc=0
VISAGE_TEST_NAN_AT=5 "$VISAGE" train -A "$T/a" -B "$T/b" -m "$T/nan" $SMALL --iterations 8 \
    --save-every 4 --keep-backups 5 >"$T/out" 2>"$T/err" || rc=$?
[ "$rc" -eq 0 ] || fail "nan: exit $rc"
grep -q "non-finite gradient at iteration 5: rolled back to iteration 4" "$T/err" ||
    fail "nan: the rollback is not reported"
run_visage train -A "$T/a" -B "$T/b" -m "$T/clean" $SMALL --iterations 8 --save-every 4 --keep-backups 5
same_weights "$T/clean/model.vsk" "$T/nan/model.vsk" || fail "nan: the run after the rollback differs"
same_weights "$T/clean/backups/model-4.vsk" "$T/nan/backups/model-4.vsk" ||
    fail "nan: the checkpoint at 4 was touched"
# twice in a short window: stop, naming the intact checkpoint
rc=0
VISAGE_TEST_NAN_AT=5,6 "$VISAGE" train -A "$T/a" -B "$T/b" -m "$T/nan2" $SMALL --iterations 8 \
    --save-every 4 >"$T/out" 2>"$T/err" || rc=$?
[ "$rc" -eq 1 ] || fail "nan twice: exit $rc, expected 1"
grep -q "diverged.*$T/nan2/model.vsk is intact (iteration 4)" "$T/err" ||
    fail "nan twice: no clear message"
same_weights "$T/clean/backups/model-4.vsk" "$T/nan2/model.vsk" ||
    fail "nan twice: the checkpoint is not the one from iteration 4"

# --- SIGHUP does not stop training; SIGUSR1 saves now; SIGTERM saves and stops
train_bg "$T/sig" --save-every 100000
i=0
until [ -f "$T/sig/model.vsk" ] || [ "$i" -ge 600 ]; do # iteration 0 is saved at once
    kill -0 "$pid" 2>/dev/null || fail "signals: training ended early: $(cat "$T/bg.err")"
    sleep 0.1
    i=$((i + 1))
done
sleep 1
kill -HUP "$pid"
sleep 1
kill -0 "$pid" 2>/dev/null || fail "SIGHUP stopped training"
kill -USR1 "$pid"
wait_log "$T/sig" 1 || fail "SIGUSR1: no save (no loss rows written)"
kill -0 "$pid" 2>/dev/null || fail "SIGUSR1 stopped training"
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
[ "$rc" -eq 130 ] || fail "SIGTERM: exit $rc, expected 130"
last=$(tail -n 1 "$T/sig/loss.tsv" | cut -f 1)
[ "$last" -gt 1 ] 2>/dev/null || fail "SIGTERM: nothing trained after the SIGUSR1 save"
"$VISAGE" model info "$T/sig" >"$T/out" || fail "SIGTERM: checkpoint not intact"
grep -q "^  iteration=$last\$" "$T/out" ||
    fail "SIGTERM: the checkpoint is not at the last logged iteration $last"

echo ok
