#!/usr/bin/env bash
# A newcomer's first hour, checked: the README's two commands, then the mistakes people make,
# each expected to be handled as the README says. Prints "ok" or "FAIL" per check; exits 1 if any failed.
#
#   bash scripts/newcomer.sh            # everything (the test suite takes a while on 2 cores)
#   bash scripts/newcomer.sh --quick    # skip the test suite (scripts/test.sh)
set -uo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
QUICK=0; [ "${1:-}" = "--quick" ] && QUICK=1
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
PY=$REPO/.venv/bin/python
WORK=$(mktemp -d)
export RMGAP_CACHE=$WORK/scores.sqlite  # never the user's ~/.cache
trap 'rm -rf "$WORK"' EXIT
failures=0

check() {  # check NAME CONDITION-COMMAND...
    local name=$1; shift
    if "$@"; then echo "ok    $name"; else echo "FAIL  $name"; failures=$((failures + 1)); fi
}
has() { grep -q -- "$2" "$1"; }
status_is() { [ "$(cat "$WORK/$1.rc")" = "$2" ]; }
run() {  # run NAME COMMAND...: output to $WORK/NAME.out, status to $WORK/NAME.rc (in $WORK/proj)
    local name=$1; shift
    (cd "$WORK/proj" && "$@") >"$WORK/$name.out" 2>&1
    echo $? >"$WORK/$name.rc"
}
gate() { "$PY" -m pytest -p no:cacheprovider -q "$@"; }
rmgap() { "$REPO/.venv/bin/rmgap" "$@"; }

echo "== the README's two commands"
bash scripts/demo.sh >"$WORK/demo.out" 2>&1; echo $? >"$WORK/demo.rc"
check "demo.sh exits 0 and writes the report" status_is demo 0
check "demo.sh wrote report.html" test -s rmgap-report/report.html
check "demo.sh printed the verdict" has "$WORK/demo.out" "RMGAP generalization report"
if [ $QUICK = 0 ]; then
    bash scripts/test.sh -q >"$WORK/tests.out" 2>&1; echo $? >"$WORK/tests.rc"
    check "test.sh passes" status_is tests 0
    tail -1 "$WORK/tests.out"
fi

mkdir -p "$WORK/proj"
cp data/rmgap_sample.jsonl "$WORK/proj/sample.jsonl"
echo "== mistakes"
run noflag gate --rmgap-report=out
check "gate options without a model: exit 4" status_is noflag 4
check "  ... naming the option and the fix" has "$WORK/noflag.out" "--rmgap-report is set but no reward model is given"
run typo env RMGAP_MODLE=builtin:length "$PY" -m pytest -p no:cacheprovider -q
check "a misspelt RMGAP_MODEL: exit 4 with did-you-mean" bash -c "[ \$(cat $WORK/typo.rc) = 4 ] && grep -q \"Did you mean 'RMGAP_MODEL'\" $WORK/typo.out"

run dead env RMGAP_CACHE=off "$PY" -m pytest -p no:cacheprovider -q --rm-model=http://127.0.0.1:9/score
check "a dead server: exit 6 (broke), not 1 (regressed)" status_is dead 6
check "  ... every gate item an error, none failed" bash -c "tail -1 $WORK/dead.out | grep -Eq '^[0-9]+ errors in'"
check "  ... the cause printed once" bash -c "[ \$(grep -c 'could not score the model, so no check was decided' $WORK/dead.out) = 1 ]"

run first env RMGAP_CACHE="$WORK/c.sqlite" "$PY" -m pytest -p no:cacheprovider -q --rm-model=builtin:minilm --rmgap-report=r1
run again env RMGAP_CACHE="$WORK/c.sqlite" "$PY" -m pytest -p no:cacheprovider -q --rm-model=builtin:minilm --rmgap-report=r2 -n 2
check "a cached rerun under -n 2: nothing computed, all served from the cache" \
    "$PY" -c "import json,sys; a, b = (json.load(open('$WORK/proj/' + d + '/report.json'))['counts'] for d in ('r1', 'r2')); sys.exit(not (a['scored'] == 1248 and b['scored'] == 0 and b['cache_hits'] == 1248 and a['truncated_pairs'] == b['truncated_pairs']))"

rmgap synth --records 12 --out "$WORK/proj/other.jsonl" >/dev/null
run base env RMGAP_CACHE=off "$PY" -m pytest -p no:cacheprovider -q --rm-model=builtin:length --rmgap-baseline=b.json --rmgap-update-baseline -k avg
run newdata env RMGAP_CACHE=off "$PY" -m pytest -p no:cacheprovider -q --rm-model=builtin:length --rmgap-data=other.jsonl --rmgap-baseline=b.json --rmgap-update-baseline -k avg
check "update-baseline over other data: not compared, replaced" has "$WORK/newdata.out" "not compared, and replaced by this run"
check "  ... and the run is not a usage error" bash -c "[ \$(cat $WORK/newdata.rc) != 4 ]"

"$PY" -c "import sys; d = open('$WORK/proj/sample.jsonl', 'rb').read(); open('$WORK/proj/crlf.jsonl', 'wb').write(b'\xef\xbb\xbf' + d.replace(b'\n', b'\r\n'))"
run crlf rmgap eval --rm-model builtin:length --data crlf.jsonl --out crlf-out --no-cache --bootstrap 20
run lf rmgap eval --rm-model builtin:length --data sample.jsonl --out lf-out --no-cache --bootstrap 20
check "CRLF data with a BOM: the same benchmark (same sha256)" \
    "$PY" -c "import json,sys; a, b = (json.load(open('$WORK/proj/' + d + '/report.json'))['meta']['data']['sha256'] for d in ('crlf-out', 'lf-out')); sys.exit(a != b)"

PYTHONPATH=tests/scorers "$PY" - "$WORK/models" <<'EOF' >"$WORK/models.out" 2>&1
import sys
from pathlib import Path
import tiny_models as tm
root = Path(sys.argv[1])
tok = tm.build_tokenizer()
tm.build_classifier(root / "rm", tok)
lm = tm.build_causal_lm(root / "lm", tok)
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForSequenceClassification
base = AutoModelForSequenceClassification.from_pretrained(str(lm), num_labels=1)
base.config.pad_token_id = tok.pad_token_id
model = get_peft_model(base, LoraConfig(task_type="SEQ_CLS", r=4, target_modules=["q_proj", "v_proj"],
                                        init_lora_weights=False))
model.save_pretrained(str(root / "rm-lora"))
tok.save_pretrained(str(root / "rm-lora"))
EOF
check "(built a tiny reward model and a tiny LoRA adapter)" test -f "$WORK/models/rm-lora/adapter_config.json"

run maxlen gate --rm-model="$WORK/models/rm" --rm-max-length=100000
check "an over-long --rm-max-length: refused at start-up (exit 4)" status_is maxlen 4
check "  ... naming the model's positions and the flag" has "$WORK/maxlen.out" "is more than the 512 positions"

run hubmiss gate --rm-model=acme/reward-7b
check "a hub id not in the HF cache: exit 4" status_is hubmiss 4
check "  ... with the download command" has "$WORK/hubmiss.out" "hf download acme/reward-7b"
mkdir -p "$WORK/hub/models--acme--tiny-rm/refs" "$WORK/hub/models--acme--tiny-rm/snapshots"
printf %s 0123456789abcdef0123456789abcdef01234567 >"$WORK/hub/models--acme--tiny-rm/refs/main"  # as huggingface_hub writes it: no newline
cp -r "$WORK/models/rm" "$WORK/hub/models--acme--tiny-rm/snapshots/0123456789abcdef0123456789abcdef01234567"
run hub env HF_HUB_CACHE="$WORK/hub" RMGAP_CACHE=off "$PY" -m pytest -p no:cacheprovider -q --rm-model=acme/tiny-rm --rmgap-limit=4 -m rmgap
check "a hub id in the local HF cache: scored (no usage error)" bash -c "[ \$(cat $WORK/hub.rc) -le 1 ] && grep -q 'RMGAP generalization report' $WORK/hub.out"

run peft env RMGAP_CACHE=off "$PY" -m pytest -p no:cacheprovider -q --rm-model="$WORK/models/rm-lora" --rmgap-limit=4 -m rmgap --rmgap-report=peft
check "a PEFT adapter: loaded onto its base and scored" bash -c "[ \$(cat $WORK/peft.rc) -le 1 ] && grep -q 'PEFT adapter' $WORK/proj/peft/report.json"

cp examples/test_rm_fixture.py "$WORK/proj/"
for n in 0 2; do
    run "fixture$n" env RMGAP_CACHE=off "$PY" -m pytest -p no:cacheprovider -q --rm-model=builtin:minilm -n $n \
        -m "not rmgap" test_rm_fixture.py
    check "rmgap_result in your own tests (-n $n): 4 passed" has "$WORK/fixture$n.out" "^4 passed"
done
cat >"$WORK/proj/test_strict.py" <<'EOF'
def test_too_strict(rmgap_result):
    assert rmgap_result.cell("All/Conciseness=terse").bon >= 0.9
EOF
run strict env RMGAP_CACHE=off "$PY" -m pytest -p no:cacheprovider -q --rm-model=builtin:minilm -m "not rmgap" test_strict.py
check "  ... and a too-strict assertion of yours fails" bash -c "[ \$(cat $WORK/strict.rc) = 1 ]"

echo
if [ $failures = 0 ]; then echo "newcomer: every check passed"; else echo "newcomer: $failures check(s) FAILED (outputs in $WORK were removed; rerun with bash -x)"; fi
[ $failures = 0 ]
