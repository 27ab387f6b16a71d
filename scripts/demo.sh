#!/usr/bin/env bash
# Set up .venv (idempotent) and run the gate on the embedded sample with the
# builtin:minilm baseline; the report lands in rmgap-report/.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || exit $?
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
.venv/bin/python -m pytest examples/ -p no:cacheprovider --rm-model=builtin:minilm \
    --rmgap-report=rmgap-report -q "$@"   # thresholds.yaml in the repository root is found without a flag
status=$?
echo
case $status in
  0) echo "demo: the gate passed. Report: rmgap-report/report.html (and report.md, metrics.json)";;
  1) echo "demo: the gate ran and FAILED builtin:minilm, as it should: it is an embedding similarity, not a"
     echo "      reward model, and any real reward model must beat it. Report: rmgap-report/report.html"
     status=0;;
  *) echo "demo: pytest exited with status $status (a usage or internal error, see above)";;
esac
exit $status
