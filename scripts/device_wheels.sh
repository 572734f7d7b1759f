#!/usr/bin/env bash
# Wheels for the GPU image (Python 3.12, no network), which lacks what hessdyn needs beyond its own
# packages: hydra-core, omegaconf and omegaconf's parser runtime antlr4 (published as a source archive
# only, so built here into a pure-Python wheel). Writes .whl/ in the checkout (git-ignored); a device
# run names .whl in `carry` and scripts/device_check.sh installs them.
#
# usage: scripts/device_wheels.sh   (needs pip and the package index; run it where both are available)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
mkdir -p .whl
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux2014_x86_64 -d .whl hydra-core==1.3.2 omegaconf==2.3.0
"$PY" -m pip wheel -q --no-deps -w .whl antlr4-python3-runtime==4.9.3
ls -l .whl
