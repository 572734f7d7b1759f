#!/usr/bin/env bash
# The seed study on real MNIST: SGD vs Adam at matched training loss, 3 seeds each, then the headline
# numbers (displacement and normalized IPR of the leading Hessian eigenvectors, with seed spread).
#
# usage: scripts/reproduce_optimizer_dynamics.sh DATA_ROOT [extra hessdyn overrides]
#   DATA_ROOT holds MNIST/raw/*-ubyte(.gz) (e.g. ../shared/data on the development machines).
# Resumable: rerun the same command after an interruption.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
root="${1:?usage: $0 DATA_ROOT [overrides]}"; shift
hessdyn="${HESSDYN:-hessdyn}"
command -v "$hessdyn" >/dev/null || hessdyn="$("$here/scripts/setup_env.sh" dev)/bin/hessdyn"
results="${HESSDYN_RESULTS:-results}"
start=$(date +%s)
"$hessdyn" run experiment=optimizer_dynamics "dataset.root=$root" "$@"
echo "pipeline finished in $(( $(date +%s) - start )) s"
python_bin="$(dirname "$(readlink -f "$(command -v "$hessdyn")")")/python"
[ -x "$python_bin" ] || python_bin=python3
"$python_bin" "$here/scripts/summarize_dynamics.py" "$results/optimizer_dynamics"
