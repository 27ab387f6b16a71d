#!/usr/bin/env bash
# Screenshots of report.html in a real headless browser, at 1400 px and 390 px wide.
#
#   bash scripts/screenshots.sh [OUT_DIR]          (default OUT_DIR: screenshots/)
#
# Builds three reports and shoots each at 1400x900 (the first screen: the verdict and the
# heatmap must be there without scrolling), 390x844 (a phone's first screen) and 390 px by
# the page's full height (nothing may overflow sideways):
#   demo        bash scripts/demo.sh: builtin:minilm on the embedded sample
#   failing     builtin:length on a 1,097-record `rmgap synth` file (fails ~95 checks)
#   regression  the same file, length times a per-response factor, against a builtin:length baseline
# Needs Debian's chromium (apt-get install -y chromium) and .venv (scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=$(realpath -m "${1:-screenshots}")
mkdir -p "$OUT"
BROWSER=${BROWSER:-$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)}
[ -n "$BROWSER" ] || { echo "screenshots: no chromium found; apt-get install -y chromium" >&2; exit 2; }
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
PY=.venv/bin/python
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

shoot() {  # shoot NAME HTML WIDTH HEIGHT
    local profile
    profile=$(mktemp -d "$WORK/profile.XXXX")
    "$BROWSER" --headless --no-sandbox --disable-gpu --no-first-run --disable-background-networking \
        --disable-component-update --disable-sync --hide-scrollbars --user-data-dir="$profile" \
        --window-size="$3,$4" --screenshot="$OUT/$1.png" "file://$2" >/dev/null 2>&1
    echo "screenshots: $OUT/$1.png ($3x$4)"
}

page_height() {  # a generous full-page height at 390 px: the page has no script to ask
    $PY - "$1" <<'EOF'
import re, sys
page = open(sys.argv[1], encoding="utf-8").read()
rows = page.count("<tr") - len(re.findall(r"<details>.*?</details>", page, re.S))
print(min(16000, 2600 + 34 * page.count("<tr")))
EOF
}

reports=()
bash scripts/demo.sh >"$WORK/demo.log" 2>&1 || { cat "$WORK/demo.log"; exit 1; }
reports+=("demo:$PWD/rmgap-report/report.html")

.venv/bin/rmgap synth --records 1097 --out "$WORK/synth1097.jsonl" >/dev/null
(cd "$WORK" && RMGAP_CACHE=off "$OLDPWD/$PY" -m pytest -p no:cacheprovider -q --rm-model=builtin:length \
    --rmgap-data=synth1097.jsonl --rmgap-report=failing >/dev/null 2>&1 || true)
reports+=("failing:$WORK/failing/report.html")

cat >"$WORK/noisy_length.py" <<'EOF'
import zlib
def score(prompts, responses):  # length times a per-response factor: some users' choices flip, rankings stay
    return [len(r) * (1 + ((zlib.crc32(r.encode()) % 1000) / 1000 - 0.5) * 0.8) for p, r in zip(prompts, responses)]
EOF
(cd "$WORK" && RMGAP_CACHE=off "$OLDPWD/$PY" -m pytest -p no:cacheprovider -q --rm-model=builtin:length \
    --rmgap-data=synth1097.jsonl --rmgap-baseline=base.json --rmgap-update-baseline >/dev/null 2>&1 || true
 RMGAP_CACHE=off PYTHONPATH=. "$OLDPWD/$PY" -m pytest -p no:cacheprovider -q --rm-model=python:noisy_length:score \
    --rm-scorer-version=1 --rmgap-data=synth1097.jsonl --rmgap-baseline=base.json \
    --rmgap-report=regression >/dev/null 2>&1 || true)
reports+=("regression:$WORK/regression/report.html")

for entry in "${reports[@]}"; do
    name=${entry%%:*} html=${entry#*:}
    [ -f "$html" ] || { echo "screenshots: $html was not written" >&2; exit 1; }
    shoot "$name-1400" "$html" 1400 900
    shoot "$name-390" "$html" 390 844
    shoot "$name-390-full" "$html" 390 "$(page_height "$html")"
done
