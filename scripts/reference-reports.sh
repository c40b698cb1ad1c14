#!/usr/bin/env bash
# Regenerate the reference reports in reports/<suite>/ from real CPU runs on mnist-5k.
# Usage: bash scripts/reference-reports.sh [SUITE ...]   (default: every suite below)
# bn-vs-nobn-native is bn-vs-nobn with --init native; bn-vs-nobn also runs the example NumPy backend when it is installed
# (pip install ./examples/numpy-backend); the others use the three framework backends. timing runs
# the pytest-benchmark benchmarks first (reports/benchmarks/bench.json) and includes them.
set -euo pipefail
cd "$(dirname "$0")/.."
suites=("$@")
if [ ${#suites[@]} -eq 0 ]; then
    suites=(bn-vs-nobn bn-vs-nobn-native bn-numerics lr-sweep init-scale bn-placement ioffe2015
            batch-size batch-size-steps timing)
fi
for name in "${suites[@]}"; do
    suite=$name backends=torch,keras,jax extra=()
    if [ "$name" = bn-vs-nobn ]; then backends=all; fi
    # The same suite with each framework's own default init, as the notebooks do.
    if [ "$name" = bn-vs-nobn-native ]; then suite=bn-vs-nobn extra=(--init native); fi
    rm -rf "reports/$name"
    if [ "$name" = timing ]; then  # the pytest-benchmark timings join the timing report
        python benchmarks/run.py --json reports/benchmarks/bench.json
        export HARNESS_BENCHMARK_JSON=reports/benchmarks/bench.json
    fi
    harness run --suite "$suite" --backend "$backends" --device cpu --dataset mnist-5k \
        "${extra[@]}" --out "reports/$name"
done
