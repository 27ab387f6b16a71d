"""``rmgap init``: a starter thresholds file and a CI workflow for a model repository.

Writes ``thresholds.yaml`` (the defaults, documented key by key; the gate finds
it in the rootdir without a flag) and ``.github/workflows/rmgap-gate.yml`` (the
merge gate of docs/ci.md). Refuses to overwrite a file unless ``force``.
"""

from __future__ import annotations

from pathlib import Path

from .errors import OutputError

__all__ = ["CI_WORKFLOW", "write_starter"]

CI_WORKFLOW = """\
# The RMGAP merge gate (written by `rmgap init`; docs: docs/ci.md in rmgap-pytest).
# Exit status: 0 passed, 1 a check failed or regressed, 4 bad options or data, 6 the model could not be scored.
name: reward-model gate
on:
  pull_request:
    paths: ["checkpoints/rm/**", "thresholds.yaml"]

jobs:
  gate:
    runs-on: [self-hosted, gpu]
    permissions: {contents: read, pull-requests: write}
    steps:
      - uses: actions/checkout@v4
        with: {lfs: true}
      - uses: actions/setup-python@v5
        with: {python-version: "3.11"}
      - run: pip install "rmgap-pytest[xdist]"
      - name: RMGAP gate
        env:
          RMGAP_CACHE: ${{ runner.temp }}/rmgap-scores.sqlite
          HF_HUB_OFFLINE: "1"
        # thresholds.yaml in the repository root is found without a flag.
        run: >
          pytest -m rmgap --rm-model=./checkpoints/rm
          --rmgap-data=/data/RMGAP/test.jsonl
          --rmgap-baseline=baselines/rm-main.json
          --rmgap-report=rmgap-report
          --junitxml=rmgap-report/junit.xml
      - uses: actions/upload-artifact@v4
        if: always()
        with: {name: rmgap-report, path: rmgap-report/}
"""


def write_starter(directory: str | Path = ".", force: bool = False) -> str:
    """Write the two files under ``directory``; returns what to print. Raises OutputError before writing
    anything when a file exists and ``force`` is not set."""
    from .thresholds import default_thresholds_path

    root = Path(directory)
    files = {root / "thresholds.yaml": default_thresholds_path().read_text(encoding="utf-8"),
             root / ".github" / "workflows" / "rmgap-gate.yml": CI_WORKFLOW}
    existing = [str(p) for p in files if p.exists()]
    if existing and not force:
        raise OutputError(f"{', '.join(existing)} already exist{'s' if len(existing) == 1 else ''}; rmgap init does "
                          "not overwrite files. Fix: pass --force to replace them, or edit them by hand.")
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return "\n".join([*(f"wrote {p}" for p in files),
                      "next: edit the model path and data path in the workflow, then run "
                      "`pytest -m rmgap --rm-model=PATH --rmgap-data=test.jsonl` here (thresholds.yaml is found "
                      "in the rootdir)"])
