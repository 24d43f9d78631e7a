#!/bin/sh
# workbench.sh: the ncurses workbench driven through tmux (send-keys, capture-pane) on a project
# made by `visage init` with synthetic face sets: browse faces, delete one and undo, sort, the
# help screen, start a short training run and watch the iteration move, save, resize the window
# mid-run, stop, quit with the terminal given back; extraction, the source frame, rejecting and
# the Convert panel with the face networks; bad input (a missing source, a damaged checkpoint, a
# face PNG cut short) and SIGTERM. Then the terminal going away (SIGHUP) while training: the
# trainer keeps training and saving, a second workbench attaches and shows it, a second trainer
# is refused, and stopping from the attached workbench ends the first process; a workbench
# attached to `visage train`; and contrib/visage-tmux.
set -u
. "$(dirname "$0")/lib.sh"

command -v tmux >/dev/null 2>&1 || { echo "skipped: no tmux (make deps installs it)"; exit 0; }

synthetic_faces
P=$T/p
run_visage init "$P"
[ "$rc" -eq 0 ] || fail "visage init: exit status $rc"
for d in faces/a faces/b alignments model output; do
    [ -d "$P/$d" ] || fail "visage init made no $d"
done
grep -q '^\[project\]' "$P/visage.ini" || fail "visage init wrote no [project] section"
expect_bad_input "init over a project" "visage.ini" init "$P"
expect_bad_input "init with a missing source" "no-such-video.mp4" init "$T/q" -A "$T/no-such-video.mp4"
[ ! -e "$T/q/visage.ini" ] || fail "a failed init left a visage.ini"
# small_project DIR SAVE_EVERY: the synthetic faces in DIR (a project), and a small model trained
# on the CPU, saved every SAVE_EVERY iterations
small_project() {
    cp "$T"/a/*.png "$1/faces/a/" && cp "$T"/b/*.png "$1/faces/b/" || fail "cannot copy the faces"
    printf '[general]\ndevice = cpu\nthreads = 2\n[train]\nmodel = lightweight\nshrink = 16\nbatch = 4\nsave_every = %s\n' \
        "$2" >>"$1/visage.ini"
}
small_project "$P" 25

run_visage -C "$T" # a folder that is not a project
[ "$rc" -eq 1 ] && grep -q "visage init" "$T/err" || fail "the workbench outside a project: exit $rc"
if grep -q "without ncurses" "$T/err"; then echo "skipped: built without ncurses"; exit 0; fi

# one tmux server of our own, without the user's configuration
TM="tmux -u -L visage-test-$$ -f /dev/null"
# the workbench in UTF-8, whatever the tests' own locale
UTF8=$(locale -a 2>/dev/null | grep -i -m 1 '^c\.utf-\?8$' || echo C.UTF-8)
trap '$TM kill-server 2>/dev/null; chmod -R u+w "$T" 2>/dev/null; rm -rf "$T"' EXIT
screen() { $TM capture-pane -p -t "$1"; }
keys() {
    s=$1
    shift
    for k in "$@"; do
        $TM send-keys -t "$s" "$k"
        sleep 0.15
    done
}
# wait_for SESSION REGEX [SECONDS]: until the screen shows it
wait_for() {
    i=0
    while ! screen "$1" | grep -Eq "$2"; do
        i=$((i + 1))
        [ "$i" -lt $((${3:-20} * 10)) ] || { screen "$1" >&2; fail "the screen never showed /$2/"; }
        sleep 0.1
    done
}
# iteration SESSION: the iteration the Train panel shows
iteration() { screen "$1" | sed -n 's/.*iteration \([0-9][0-9]*\).*loss A.*/\1/p' | head -1; }
# saved_iteration: the iteration of the project's checkpoint
saved_iteration() { "$VISAGE" model info "$P/model" 2>/dev/null | sed -n 's/^ *iteration=//p' | head -1; }

$TM new-session -d -s wb -x 200 -y 50 "cd '$P' && LC_ALL=$UTF8 TERM=screen-256color '$VISAGE'; echo workbench-exit=\$? >'$T/exit1'; sleep 600"
wait_for wb "1 Project"
# a large terminal shows every panel at once
for p in "1 Project" "2 Faces" "3 Train" "4 Convert" "5 Log"; do
    screen wb | grep -q "─ $p ─" || fail "200x50: panel $p is not shown"
done
screen wb | grep -q "A: 12 .*faces" || fail "the Project panel does not count 12 faces of A"

# faces: move, delete into trash/, undo, sort
keys wb 2 l l
wait_for wb "3/12 a_00002.png"
keys wb d
wait_for wb "side A: faces/a  11 faces"
[ -f "$P/trash/a/a_00002.png" ] && [ ! -f "$P/faces/a/a_00002.png" ] || fail "d did not move the face into trash/a"
keys wb u
wait_for wb "side A: faces/a  12 faces"
[ -f "$P/faces/a/a_00002.png" ] && [ ! -f "$P/trash/a/a_00002.png" ] || fail "u did not bring the face back"
keys wb s
wait_for wb "sort: identity"
keys wb s
wait_for wb "sort: blur"
screen wb | grep -q "▀" || fail "no thumbnails drawn"
# mark two faces and delete both, one undo brings both back
keys wb g Space Space d
wait_for wb "side A: faces/a  10 faces"
keys wb u
wait_for wb "side A: faces/a  12 faces"
# side B
keys wb a
wait_for wb "side B: faces/b  12 faces"

# the help lists the keys of every panel
keys wb '?'
for p in Anywhere Faces Train Convert "Project panel" "Log panel"; do
    screen wb | grep -q "$p" || fail "the help does not show '$p'"
done
keys wb Escape
wait_for wb "─ 2 Faces ─"

# training: start, the iteration moves, save, resize, stop
keys wb 3 t
wait_for wb "running here" 30
wait_for wb "iteration [1-9][0-9]* .*loss A" 60
i1=$(iteration wb)
sleep 2
i2=$(iteration wb)
[ "$i2" -gt "$i1" ] || fail "the iteration does not move ($i1, then $i2)"
screen wb | grep -Eq "model: lightweight, iteration [0-9]+ \(training\)" ||
    fail "the Project panel does not show the model being trained"
keys wb w
wait_for wb "saving now"
wait_for wb "train: saved iteration" 30
[ -f "$P/model/model.vsk" ] || fail "no checkpoint after a save"
$TM resize-window -t wb -x 100 -y 30
wait_for wb "─ 3 Train ─"
screen wb | grep -q "─ 1 Project ─" && fail "100x30 still shows every panel"
i3=$(iteration wb)
sleep 1.5
i4=$(iteration wb)
[ "$i4" -gt "$i3" ] || fail "after the resize the iteration does not move ($i3, then $i4)"
$TM resize-window -t wb -x 80 -y 24
wait_for wb "─ 3 Train ─"
keys wb Tab
wait_for wb "─ 4 Convert ─"
# every panel is reachable from the help: its key closes the help and goes there
keys wb '?'
wait_for wb "keys \(any key closes"
keys wb 5
wait_for wb "─ 5 Log ─"
screen wb | grep -q "keys (any key closes" && fail "the help stayed open"
keys wb 3 x
wait_for wb "stopped " 60
s=$(saved_iteration)
[ -n "$s" ] && [ "$s" -gt 0 ] || fail "no intact checkpoint after stop"
keys wb q
i=0
while [ ! -s "$T/exit1" ] && [ "$i" -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
grep -q "workbench-exit=0" "$T/exit1" || fail "q: $(cat "$T/exit1" 2>/dev/null)"
[ "$($TM display -p -t wb '#{alternate_on}')" = 0 ] || fail "the terminal was left in the alternate screen"
$TM kill-session -t wb

# with the face networks: extraction from the Faces panel, the frame a face came from, rejecting
# the faces unlike the one under the cursor (sample1 shows three people) and undoing it
if have_models && [ -f "$SAMPLES/sample1.jpg" ]; then
    R=$T/r
    run_visage init "$R" -A "$SAMPLES/sample1.jpg"
    [ "$rc" -eq 0 ] || fail "visage init -A: exit $rc"
    $TM new-session -d -s ex -x 200 -y 50 "cd '$R' && LC_ALL=$UTF8 exec '$VISAGE'"
    wait_for ex "1 Project"
    keys ex 2 e
    wait_for ex "extracted 3 faces" 120
    wait_for ex "side A: faces/a  3 faces"
    [ "$(count_png "$R/faces/a")" -eq 3 ] || fail "the Faces panel's extraction wrote $(count_png "$R/faces/a") faces, not 3"
    ls "$R"/alignments/sample1*.json >/dev/null 2>&1 || fail "the Faces panel's extraction wrote no alignments file"
    keys ex f
    wait_for ex "sample1.jpg, frame 0, face [0-9]"
    keys ex Escape
    wait_for ex "side A: faces/a  3 faces"
    keys ex - -
    wait_for ex "reject > 0.50"
    keys ex + + r
    wait_for ex "side A: faces/a  1 faces"
    [ "$(count_png "$R/trash/a")" -eq 2 ] || fail "r moved $(count_png "$R/trash/a") faces into trash, not 2"
    keys ex u
    wait_for ex "side A: faces/a  3 faces"
    keys ex q
    $TM kill-session -t ex 2>/dev/null

    # the Convert panel with the model trained above: a preview of one frame, then the image
    sed "s|^source_a = .*|source_a = $(cd "$SAMPLES" && pwd)/sample1.jpg|" "$P/visage.ini" >"$T/ini" && cp "$T/ini" "$P/visage.ini"
    $TM new-session -d -s cv -x 200 -y 50 "cd '$P' && LC_ALL=$UTF8 exec '$VISAGE'"
    wait_for cv "1 Project"
    keys cv 4 P
    wait_for cv "preview of frame 0: before \| after" 60
    [ ! -e "$P/output/.preview.png" ] || fail "the preview's file was left in output/"
    keys cv R
    wait_for cv "converted: output/sample1-a2b.png" 60
    [ -s "$P/output/sample1-a2b.png" ] || fail "the Convert panel wrote no output/sample1-a2b.png"
    no_partial_files "$P/output"
    keys cv q
    $TM kill-session -t cv 2>/dev/null
else
    echo "skipped part: no face models or samples (make models): extraction in the workbench"
fi

# bad input shows in the status line and the log, naming the file, and the workbench goes on: a
# source that is not there, a damaged checkpoint (left as it was); SIGTERM while training saves
# and exits with 130, the terminal given back
B=$T/bad
run_visage init "$B"
sed "s|^source_b = .*|source_b = $T/gone.mp4|" "$B/visage.ini" >"$T/ini" && cp "$T/ini" "$B/visage.ini"
small_project "$B" 1000
echo "not a checkpoint" >"$B/model/model.vsk"
head -c 300 "$B/faces/a/a_00001.png" >"$B/faces/a/cut.png" # a face PNG cut short
$TM new-session -d -s bad -x 200 -y 50 "cd '$B' && LC_ALL=$UTF8 '$VISAGE'; echo workbench-exit=\$? >'$T/exit2'; sleep 600"
wait_for bad "1 Project"
screen bad | grep -q "gone.mp4 (MISSING)" || fail "the Project panel does not mark the missing source"
keys bad 2
wait_for bad "side A: faces/a  12 faces \\(\\+ PNGs without metadata\\)"
keys bad a e
wait_for bad "gone.mp4.*(no such file|not)"
keys bad 3 t
wait_for bad "training stopped: .*model.vsk" 30
[ "$(cat "$B/model/model.vsk")" = "not a checkpoint" ] || fail "the damaged checkpoint was changed"
rm "$B/model/model.vsk"
keys bad t
wait_for bad "training stopped: faces/a/cut.png: damaged" 30
rm "$B/faces/a/cut.png"
keys bad C-l t
wait_for bad "iteration [1-9][0-9]* .*loss A" 60
pid=$(pgrep -f "^$VISAGE\$" -n 2>/dev/null || true)
[ -n "$pid" ] || pid=$(ps -eo pid=,args= | awk -v v="$VISAGE" '$2 == v { p = $1 } END { print p }')
kill -TERM "$pid"
i=0
while [ ! -s "$T/exit2" ] && [ "$i" -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
grep -q "workbench-exit=130" "$T/exit2" || fail "SIGTERM while training: $(cat "$T/exit2" 2>/dev/null)"
[ -f "$B/model/model.vsk" ] || fail "SIGTERM while training saved nothing"
[ "$($TM display -p -t bad '#{alternate_on}')" = 0 ] || fail "SIGTERM left the terminal in the alternate screen"
grep -q "error: .*gone.mp4" "$B/visage.log" || fail "visage.log lacks the missing source's error"
$TM kill-session -t bad

# the terminal goes away while training: the trainer goes on
$TM new-session -d -s hup -x 160 -y 48 "cd '$P' && LC_ALL=$UTF8 exec '$VISAGE'"
wait_for hup "1 Project"
keys hup 3 t
wait_for hup "running here" 30
wait_for hup "iteration [1-9][0-9]* .*loss A" 60
pid=$($TM display -p -t hup '#{pane_pid}')
$TM kill-session -t hup # SIGHUP, as a dropped SSH connection
s1=$(saved_iteration)
sleep 3
kill -0 "$pid" 2>/dev/null || fail "the workbench died with its terminal"
s2=$(saved_iteration)
[ "$s2" -gt "$s1" ] || fail "after SIGHUP no new save ($s1, then $s2)"
grep -q "terminal went away" "$P/visage.log" || fail "visage.log does not say the terminal went away"

# a second workbench attaches and shows the same trainer; it never starts another
$TM new-session -d -s two -x 160 -y 48 "cd '$P' && LC_ALL=$UTF8 exec '$VISAGE'"
wait_for two "attached pid $pid" 20
wait_for two "iteration [1-9][0-9]* .*loss A"
a=$(iteration two)
[ "$a" -ge "$s2" ] || fail "the attached workbench shows iteration $a, the trainer saved $s2"
keys two 3 t
wait_for two "already running"
run_visage -C "$P" train -q
[ "$rc" -eq 1 ] && grep -q "already running in this project (pid $pid)" "$T/err" || fail "a second trainer was not refused"
# stop from the attached workbench: the detached one saves and ends
keys two x
i=0
while kill -0 "$pid" 2>/dev/null && [ "$i" -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
kill -0 "$pid" 2>/dev/null && fail "the trainer did not stop when told from the attached workbench"
wait_for two "ended at iteration"
[ ! -e "$P/.visage/trainer.sock" ] || fail "the socket was left behind"
keys two q
$TM kill-session -t two 2>/dev/null

# a trainer started by `visage train` in the project answers on the same socket: a workbench
# attaches to it, and stopping it from there ends the command (saved, status 130)
"$VISAGE" -C "$P" train -q >"$T/cli.out" 2>"$T/cli.err" &
cli=$!
$TM new-session -d -s three -x 160 -y 48 "cd '$P' && LC_ALL=$UTF8 exec '$VISAGE'"
wait_for three "attached pid $cli" 30
keys three 3 x
i=0
while kill -0 "$cli" 2>/dev/null && [ "$i" -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
kill -0 "$cli" 2>/dev/null && fail "visage train did not stop when told from the workbench"
wait "$cli"
crc=$?
[ "$crc" -eq 0 ] || [ "$crc" -eq 130 ] || fail "visage train stopped from the workbench: exit $crc ($(cat "$T/cli.err"))"
keys three q

# contrib/visage-tmux: refuses a folder that is not a project, and opens the workbench in a tmux
# session named after the project (a tmux server of its own here, under $T)
run_sh() { rc=0; "$@" >"$T/out" 2>"$T/err" || rc=$?; }
run_sh sh contrib/visage-tmux "$T"
[ "$rc" -eq 1 ] && grep -q "not a project" "$T/err" || fail "visage-tmux on a non-project: exit $rc"
if command -v script >/dev/null 2>&1; then
    mkdir -p "$T/tt"
    (unset TMUX; TMUX_TMPDIR=$T/tt VISAGE=$VISAGE LC_ALL=$UTF8 \
        script -qfc "sh contrib/visage-tmux '$P'" /dev/null </dev/null >/dev/null 2>&1 &)
    i=0
    until TMUX_TMPDIR=$T/tt tmux -u capture-pane -p -t "=visage-p:" 2>/dev/null | grep -q "1 Project"; do
        i=$((i + 1))
        [ "$i" -lt 100 ] || fail "visage-tmux did not open the workbench in session visage-p: $(TMUX_TMPDIR=$T/tt tmux ls 2>&1; TMUX_TMPDIR=$T/tt tmux capture-pane -p -t =visage-p: 2>&1 | head -5)"
        sleep 0.1
    done
    TMUX_TMPDIR=$T/tt tmux kill-server 2>/dev/null
fi
echo ok
