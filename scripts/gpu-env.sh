# Sourced by scripts/gpu-check.sh and scripts/gpu-train.sh: run pahs from this checkout on a GPU machine that
# has PyTorch but no network. What else pahs needs (PyAV, typer, onnxconverter-common, safetensors) is installed
# offline from the wheels in $PAHS_WHEELS (default .whl), which scripts/gpu-wheels.sh downloads on a machine
# with network access; the project itself is not pip-installed.
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 2
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PAHS_CACHE="${PAHS_CACHE:-/tmp/pahs-cache}"
wheels=${PAHS_WHEELS:-.whl}

missing=$(python3 - <<'PY'
import importlib.util
print(" ".join(m for m in ("av", "typer", "onnxconverter_common", "safetensors") if not importlib.util.find_spec(m)))
PY
)
if [ -n "$missing" ]; then
    if ! ls "$wheels"/*.whl >/dev/null 2>&1; then
        echo "$(basename "$0"): error: expected wheels for $missing in $wheels, found none; run scripts/gpu-wheels.sh where pip has network" >&2
        exit 2
    fi
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/pahs-site "$wheels"/*.whl || exit 2
    export PYTHONPATH="$PYTHONPATH:/tmp/pahs-site"
fi

machine() {  # what ran where: RESULTS/env.txt
    date -u
    uname -a
    nvidia-smi 2>&1 || echo "nvidia-smi: not found"
    python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'available', torch.cuda.is_available())"
    git rev-parse HEAD 2>/dev/null
}
