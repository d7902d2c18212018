#!/usr/bin/env bash
# One bounded check on a GPU machine; a thin wrapper over `python -m bench.gpu_check` (see its
# docstring for the steps, their time limits and the files it writes into $OUT or bench/results/).
#   bench/gpu_check.sh            the full check, at most 6 minutes
#   bench/gpu_check.sh --smoke    environment and smoke steps only, at most 2 minutes
# The Python entry bounds every step itself; `timeout` here bounds the whole run as well, and its
# SIGTERM still lets the entry write the record and the summary.
set -u
cd "$(dirname "$0")/.."
export PYTHONPATH=".${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
PY="${PYTHON:-$(command -v python3 || command -v python)}"
limit=360
case " $* " in *" --smoke "*) limit=120 ;; esac
exec timeout -k 10 "$limit" "$PY" -m bench.gpu_check "$@"
