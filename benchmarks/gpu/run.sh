#!/usr/bin/env bash
# The prepared CUDA check: bash benchmarks/gpu/run.sh OUTDIR [--dry-run] [flags of benchmarks/gpu/check.py]
#
# Writes OUTDIR/report.json and OUTDIR/report.md in under 8 minutes on a machine with CUDA GPUs and no network:
# no job starts after --budget_s (360 s), and the check is stopped at 450 s whatever happens.
# Exit codes: 0 every check passed; 1 a check failed (the report says which); 2 usage;
#             3 no CUDA GPU here: nothing ran (one line says so). --dry-run runs the plumbing on a CPU instead.
# The wheels benchmarks/gpu/prepare.sh downloaded (benchmarks/gpu/wheels/) are installed first, offline, into
# a folder of their own that goes first on PYTHONPATH; the machine's own packages are left as they are.
set -uo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
PYTHON="${PYTHON:-python3}"
WHEELS="$ROOT/benchmarks/gpu/wheels"
SITE="${GPU_CHECK_SITE:-/tmp/finetune_gpu_site}"

if [ $# -lt 1 ] || [[ "$1" == -* ]]; then
    echo "usage: bash benchmarks/gpu/run.sh OUTDIR [--dry-run] [--budget_s S] [--peak_tflops T] [--tasks ...]" >&2
    exit 2
fi
mkdir -p "$1" && OUTDIR="$(cd "$1" && pwd)" || exit 2
shift
dry=0
for arg in "$@"; do [ "$arg" = "--dry-run" ] && dry=1; done

if [ "$dry" = 0 ]; then
    if ! "$PYTHON" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
        echo "no CUDA GPU on this machine: the GPU check did not run (exit 3; --dry-run checks its plumbing on a CPU)"
        exit 3
    fi
    if ls "$WHEELS"/*.whl >/dev/null 2>&1; then
        "$PYTHON" -m pip install --quiet --disable-pip-version-check --no-index --find-links "$WHEELS" --no-deps \
            --no-compile --no-cache-dir --upgrade --target "$SITE" "$WHEELS"/*.whl || exit 1
        export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
    else
        echo "no wheels in $WHEELS (run benchmarks/gpu/prepare.sh where PyPI is reachable): using what is installed"
    fi
fi
cd "$ROOT" && exec timeout 450 "$PYTHON" -m benchmarks.gpu.check "$OUTDIR" "$@"
