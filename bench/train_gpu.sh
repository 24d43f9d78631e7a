#!/bin/sh
# train_gpu.sh: GPU training speed, visage beside PyTorch on the same card in the same run.
# visage's rows (build/bench/train_gpu: it/s, EGs/s, ms per iteration, TFLOP/s and % of the card's
# dense peak, GPU memory peak), then ../shared/bench/faceswap_torch_bench.py's rows on the same
# card, then one table of ratios: each visage row against PyTorch in the same precision and
# against PyTorch's fastest row for that model and batch (its best: bf16, channels_last,
# torch.compile, CUDA graphs). Both train on random inputs with MAE and Adam (lr 5e-5, eps 1e-7).
# VISAGE_PLAN and BENCH_PLAN select the rows ("original:16:tf32,..."; BENCH_PLAN is the
# reference's own variable); BENCH_SECONDS the seconds per row. VISAGE_TRAIN_GPU names a
# prebuilt bench binary (on a GPU machine without the build's libraries). Results go into
# BENCHMARKS.md by hand.
set -eu
cd "$(dirname "$0")/.."
BIN=${VISAGE_TRAIN_GPU:-build/bench/train_gpu}
SHARED_BENCH=${VISAGE_SHARED_BENCH:-../shared/bench}
[ -n "${VISAGE_TRAIN_GPU:-}" ] || make --no-print-directory -s "$BIN" >/dev/null
VISAGE_PLAN=${VISAGE_PLAN:-original:16:bf16,original:64:bf16,original:256:bf16,lightweight:64:bf16,original:16:tf32,original:64:tf32,original:256:tf32,lightweight:64:tf32,original:16:fp32,original:64:fp32,original:256:fp32,lightweight:64:fp32}
BENCH_PLAN=${BENCH_PLAN:-original:16:tf32,original:16:bf16,original:16:bf16_cgraph,original:64:tf32,original:64:bf16,original:64:bf16_cgraph,original:256:tf32,original:256:bf16,original:256:bf16_cl,lightweight:64:tf32,lightweight:64:bf16,original:16:fp32,original:64:fp32}
export BENCH_SECONDS=${BENCH_SECONDS:-3}
T=$(mktemp "${TMPDIR:-/tmp}/visage-bench.XXXXXX")
trap 'rm -f "$T" "$T.torch"' EXIT INT TERM
"$BIN" "$VISAGE_PLAN" | tee "$T"
grep -q '^skipped:' "$T" && exit 0
PY=python3
if ! "$PY" -c 'import torch; assert torch.cuda.is_available()' 2>/dev/null ||
    [ ! -f "$SHARED_BENCH/faceswap_torch_bench.py" ]; then
    echo "PyTorch with CUDA or $SHARED_BENCH/faceswap_torch_bench.py missing: no ratio"
    exit 0
fi
PYTHONUNBUFFERED=1 BENCH_PLAN=$BENCH_PLAN "$PY" "$SHARED_BENCH/faceswap_torch_bench.py" 2>&1 |
    tee "$T.torch" | grep -v '^{'
"$PY" - "$T" "$T.torch" <<'PYEOF'
import json, sys
def rows(path):
    out = []
    for line in open(path):
        if line.startswith("{"):
            r = json.loads(line)
            if "error" not in r:
                out.append(r)
    return out
ours, ref = rows(sys.argv[1]), rows(sys.argv[2])
print("\n| model | batch | visage mode | visage it/s | PyTorch same precision it/s | ratio "
      "| PyTorch best it/s (mode) | ratio | visage GiB | PyTorch GiB (best) |")
print("|---|---|---|---|---|---|---|---|---|---|")
for r in ours:
    prec = r["mode"].split("_")[0]
    same = [t for t in ref if t["model"] == r["model"] and t["batch"] == r["batch"]
            and t["mode"] == prec]
    mine = [t for t in ref if t["model"] == r["model"] and t["batch"] == r["batch"]]
    best = max(mine, key=lambda t: t["it_s"]) if mine else None
    s = same[0] if same else None
    print("| %s | %d | %s | %.1f | %s | %s | %s | %s | %.2f | %s |" % (
        r["model"], r["batch"], r["mode"], r["it_s"],
        "%.1f" % s["it_s"] if s else "", "%.2fx" % (r["it_s"] / s["it_s"]) if s else "",
        "%.1f (%s)" % (best["it_s"], best["mode"]) if best else "",
        "%.2fx" % (r["it_s"] / best["it_s"]) if best else "",
        r["gpu_mem_GiB"], "%.1f" % best["gpu_mem_GiB"] if best else ""))
PYEOF
