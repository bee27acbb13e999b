#!/usr/bin/env bash
# The GPU checks of docs/performance.md in one script, for a machine with CUDA (run from the
# repository root after `make install`).  Everything it measures lands in $OUT (default gpu-checks/):
# the test suite with --device cuda (every cipher's CUDA round trip is in the conformance suite),
# the training throughput against a bare timm loop (with host syncs per step), each cell kind's peak
# host and device memory at the paper's sizes, and a reduced paper run (224 x 224, 300 steps).
set -uo pipefail
OUT=${OUT:-gpu-checks}
PY=${PY:-.venv/bin/python}
mkdir -p "$OUT"
step() { local name=$1; shift; local start=$SECONDS; "$@" >"$OUT/$name.txt" 2>&1; echo "$name: exit $? in $((SECONDS - start)) s" | tee -a "$OUT/summary.txt"; }
nvidia-smi >"$OUT/nvidia-smi.txt" 2>&1
step tests "$PY" -m pytest -q -m "not slow and not benchmark" --device cuda
step throughput "$PY" -m pytest benchmarks/test_training_throughput.py -m benchmark --benchmark-only --device cuda --bench-threads 0
step cell_memory "$PY" -m benchmarks.cell_memory --device cuda --threads 8 --json "$OUT/cell_memory.json"
step reduced_paper_run "$PY" -m benchmarks.reduced_paper_run --device cuda --out "$OUT/paper"
