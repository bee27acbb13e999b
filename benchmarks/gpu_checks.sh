#!/usr/bin/env bash
# The GPU checks of docs/performance.md in one script for one CUDA device (run from the repository
# root after `make install`), each step time-bounded so the whole run stays under 8 minutes on an
# H200: the device-aware tests (marked `device`) with --device cuda, the training throughput
# against a bare timm loop (eager/eager and compiled/compiled; ViT-B/16 224 bf16 batch 128 and ViT
# nano at 32 and 64, with host syncs per step), PE's encryption rate at 224, the proposed cipher's
# `none` security cell at 2,000 + 10,000 images, and the time model of the paper grid.  Each
# step's output lands in $OUT (default gpu-checks/); the last thing printed is one table: each
# goal, what was measured, pass or fail (benchmarks/gpu_summary.py).
#
#   bash benchmarks/gpu_checks.sh            # on a CUDA machine
#   bash benchmarks/gpu_checks.sh --tiny     # the same steps on the CPU at tiny sizes (checks the script;
#                                            # also SCRAMBLEBENCH_GPU_CHECKS_TINY=1)
set -uo pipefail
TINY=${SCRAMBLEBENCH_GPU_CHECKS_TINY:-0}
[[ "${1:-}" == "--tiny" ]] && TINY=1
OUT=${OUT:-gpu-checks}
PY=${PY:-.venv/bin/python}
mkdir -p "$OUT"
rm -f "$OUT/steps.tsv" "$OUT/throughput.json" "$OUT/pe_rate.json" "$OUT/security_cells.json"
if [[ $TINY == 1 ]]; then
    DEVICE=cpu TINY_FLAG=(--tiny) BENCH=(--bench-tiny -k quick --bench-threads 1)
    LIMITS=(device_tests=420 throughput=420 pe_rate=60 security_cells=300 time_model=900)
else
    DEVICE=cuda TINY_FLAG=() BENCH=(--bench-threads 0)
    LIMITS=(device_tests=90 throughput=190 pe_rate=25 security_cells=55 time_model=90)  # 450 s in all
fi
limit() { local pair; for pair in "${LIMITS[@]}"; do [[ ${pair%%=*} == "$1" ]] && echo "${pair#*=}"; done; }
# step NAME COMMAND...: runs COMMAND under its time limit (SIGINT first, so pytest still writes its
# files), output to $OUT/NAME.txt; records name, exit status (124: timed out) and seconds in steps.tsv
step() {
    local name=$1 start=$SECONDS status; shift
    timeout --signal=INT --kill-after=10 "$(limit "$name")" "$@" >"$OUT/$name.txt" 2>&1
    status=$?
    printf '%s\t%s\t%s\n' "$name" "$status" "$((SECONDS - start))" >>"$OUT/steps.tsv"
    echo "$name: exit $status in $((SECONDS - start)) s"
}
START=$SECONDS
[[ $TINY == 1 ]] || nvidia-smi >"$OUT/nvidia-smi.txt" 2>&1
step device_tests "$PY" -m pytest -q -p no:cacheprovider -m "device and not slow and not benchmark" --device "$DEVICE" \
    tests harness/conformance
step throughput "$PY" -m pytest -q -p no:cacheprovider benchmarks/test_training_throughput.py -m benchmark \
    --benchmark-only --device "$DEVICE" --benchmark-json "$OUT/throughput.json" "${BENCH[@]}"
step pe_rate "$PY" -m benchmarks.pe_rate --device "$DEVICE" --json "$OUT/pe_rate.json" "${TINY_FLAG[@]}"
step security_cells "$PY" -m benchmarks.security_cell_time --device "$DEVICE" --json "$OUT/security_cells.json" "${TINY_FLAG[@]}"
step time_model "$PY" -m benchmarks.paper_time_model --device "$DEVICE" "${TINY_FLAG[@]}"
SUMMARY_FLAGS=(--total-seconds "$((SECONDS - START))")
[[ $TINY == 1 ]] && SUMMARY_FLAGS+=(--tiny)
"$PY" -m benchmarks.gpu_summary "$OUT" "${SUMMARY_FLAGS[@]}" | tee "$OUT/summary.md"
