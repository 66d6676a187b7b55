#!/usr/bin/env bash
# Download the wheels scripts/gpu-check.sh installs offline on a GPU machine (Python 3.12, x86-64, manylinux):
# what pahs needs beyond the PyTorch image there. Run where pip has network access.
#
#   scripts/gpu-wheels.sh [FOLDER]          # default .whl (ignored by git: echo /.whl/ >> .git/info/exclude)
set -euo pipefail
folder=${1:-.whl}
mkdir -p "$folder"
platforms=(--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64)
for wheel in "av==18.1.0" "typer==0.29.2" "onnxconverter-common==1.16.0"; do
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        "${platforms[@]}" -d "$folder" "$wheel"
done
ls -la "$folder"
