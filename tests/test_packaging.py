"""The wheel (issue 12, items 13-14): the sample from data/ and thresholds.yaml inside it, found when installed."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_the_wheel_ships_the_sample_and_the_thresholds_and_finds_them_installed(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path / "dist")], check=True, timeout=300, cwd=tmp_path)
    wheel = next((tmp_path / "dist").glob("rmgap_pytest-*.whl"))
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        for inside, source in (("rmgap_pytest/_data/rmgap_sample.jsonl", "data/rmgap_sample.jsonl"),
                               ("rmgap_pytest/_data/thresholds.yaml", "thresholds.yaml"),
                               ("rmgap_pytest/_data/README.md", "data/README.md")):
            assert zf.read(inside) == (REPO / source).read_bytes()
    assert not any(n.startswith(("tests/", "data/", "conftest")) for n in names)
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True, timeout=300)
    probe = ("import sys; sys.path.insert(0, sys.argv[1]); import rmgap_pytest; "
             "from rmgap_pytest.data import load_benchmark; from rmgap_pytest.thresholds import load_thresholds, "
             "DEFAULTS; b = load_benchmark(); t = load_thresholds(None); "
             "print(rmgap_pytest.__file__); print(b.path); print(len(b.records), t.raw == DEFAULTS, t.source)")
    out = subprocess.run([sys.executable, "-c", probe, str(target)], capture_output=True, text=True, timeout=120,
                         cwd=tmp_path, check=True).stdout.splitlines()
    assert out[0].startswith(str(target)) and out[1] == str(target / "rmgap_pytest/_data/rmgap_sample.jsonl")
    assert out[2] == "26 True defaults (thresholds.yaml shipped with rmgap-pytest)"


def test_the_datasheet_names_the_samples_bytes():
    digest = hashlib.sha256((REPO / "data/rmgap_sample.jsonl").read_bytes()).hexdigest()
    assert digest in (REPO / "data/README.md").read_text()
