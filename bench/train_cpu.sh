#!/bin/sh
# train_cpu.sh: CPU training speed, visage beside PyTorch on the same machine in the same run.
# Faceswap's Original and Lightweight at batch 16: milliseconds per iteration (side A and side B
# through the shared encoder and their decoders, loss, backward, one Adam step), median of RUNS
# iterations after a warm-up, in ROUNDS rounds that alternate visage and PyTorch (so a machine
# whose speed drifts, as shared VMs do, slows both alike); each row is the median of the rounds,
# and the ratio is the median of the rounds' ratios. PyTorch runs the architectures of
# ../shared/bench/faceswap_torch_bench.py on the CPU (bench/train_cpu_torch.py); both sides use
# MAE as that reference does, and visage is also timed with its default loss (SSIM + MSE on the
# masked face, eye and mouth terms). Usage: bench/train_cpu.sh [RUNS [ROUNDS]]. Results go into
# BENCHMARKS.md by hand.
set -eu
cd "$(dirname "$0")/.."
RUNS=${1:-5}
ROUNDS=${2:-3}
BATCH=16
SHARED_BENCH=${VISAGE_SHARED_BENCH:-../shared/bench}
STEP=build/bench/train_step
make --no-print-directory -s "$STEP" >/dev/null
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3

echo "machine: $(grep -m 1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(nproc) cores"
echo "OPENBLAS_CORETYPE: ${OPENBLAS_CORETYPE:-unset (OpenBLAS chooses)}; threads: $(nproc)"
T=$(mktemp "${TMPDIR:-/tmp}/visage-bench.XXXXXX")
trap 'rm -f "$T"' EXIT INT TERM
have_torch=0
if [ -f "$SHARED_BENCH/faceswap_torch_bench.py" ] && "$PY" -c 'import torch' 2>/dev/null; then
    have_torch=1
    echo "torch $("$PY" -c 'import torch; print(torch.__version__)')"
else
    echo "PyTorch or $SHARED_BENCH/faceswap_torch_bench.py missing (apt install python3-torch): no ratio"
fi
r=1
while [ "$r" -le "$ROUNDS" ]; do
    for m in original lightweight; do
        "$STEP" "$m" "$BATCH" "$RUNS" mae | sed "s/^/$r /" >>"$T"
        "$STEP" "$m" "$BATCH" "$RUNS" default | sed "s/^/$r /" >>"$T"
        if [ "$have_torch" = 1 ]; then
            "$PY" bench/train_cpu_torch.py "$SHARED_BENCH" "$BATCH" "$RUNS" "$m" | sed "s/^/$r /" >>"$T"
        fi
    done
    r=$((r + 1))
done
sed 's/^/  /' "$T"
echo
echo "| model | batch | visage MAE ms/it | visage default loss ms/it | PyTorch MAE ms/it | PyTorch / visage (MAE) |"
echo "|---|---|---|---|---|---|"
# median of the values in the array a[1..n] (sorted in place)
awk -v b="$BATCH" '
    function median(a, n,    i, j, x) {
        for (i = 2; i <= n; i++) { x = a[i]; for (j = i - 1; j >= 1 && a[j] > x; j--) a[j + 1] = a[j]; a[j + 1] = x }
        return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    $2 == "visage" && $5 == "mae" { v[$3, $1] = $6; rounds[$1] = 1 }
    $2 == "visage" && $5 == "default" { d[$3, $1] = $6 }
    $2 == "torch" { t[$3, $1] = $5 }
    END {
        n = split("original lightweight", ms, " ")
        for (i = 1; i <= n; i++) {
            m = ms[i]; nv = nd = nt = nr = 0
            for (r in rounds) {
                if ((m, r) in v) vv[++nv] = v[m, r]
                if ((m, r) in d) dd[++nd] = d[m, r]
                if ((m, r) in t) { tt[++nt] = t[m, r]; rr[++nr] = t[m, r] / v[m, r] }
            }
            printf "| %s | %d | %.0f | %.0f | %s | %s |\n", m, b, median(vv, nv), median(dd, nd),
                nt ? sprintf("%.0f", median(tt, nt)) : "-", nr ? sprintf("%.2fx", median(rr, nr)) : "-"
        }
    }' "$T"
