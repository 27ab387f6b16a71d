#!/usr/bin/env bash
# Create or refresh .venv in the repository root. Idempotent: a second run with an
# unchanged pyproject.toml returns in well under a second.
#
# torch: a bare `pip install torch` pulls a multi-GB CUDA build. On a machine without
# an NVIDIA GPU we install a CPU build: the CPU wheel that this machine already has on
# disk when pip can see one (pip's find-links), else PyTorch's CPU index.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=.venv
PIP="$VENV/bin/python -m pip"
STAMP="$VENV/.rmgap-setup-stamp"
want="$(sha256sum pyproject.toml | cut -c1-64)"

if [ -x "$VENV/bin/python" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
    exit 0
fi
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"

if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
    if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
        echo "setup: NVIDIA GPU found: installing the default (CUDA) torch build"
        $PIP install -q torch
    elif $PIP download -q --no-deps --no-index -d "$(mktemp -d)" "torch==2.13.0" >/dev/null 2>&1; then
        echo "setup: no GPU: installing the CPU torch build found on this machine"
        $PIP install -q "torch==2.13.0"
    else
        echo "setup: no GPU: installing torch from PyTorch's CPU index"
        $PIP install -q torch --index-url https://download.pytorch.org/whl/cpu \
            --extra-index-url https://pypi.org/simple
    fi
fi
$PIP install -q -e ".[dev]"
echo "$want" > "$STAMP"
echo "setup: .venv ready ($("$VENV/bin/python" -c 'import torch; print("torch", torch.__version__)'))"
