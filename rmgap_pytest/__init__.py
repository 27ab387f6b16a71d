"""rmgap-pytest: a regression gate for reward models on RMGAP.

Public API::

    from rmgap_pytest import load_benchmark, load_scorer, evaluate
    ev = evaluate("data/test.jsonl", "classifier:./checkpoints/rm-v7")
    ev.reference["BoN"]["Avg"]

Names are imported lazily so that the pytest plugin, which every pytest run in
an environment with this package loads, costs nothing without ``--rm-model``.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "load_benchmark": "rmgap_pytest.data",
    "Benchmark": "rmgap_pytest.data",
    "load_scorer": "rmgap_pytest.scorers",
    "Scorer": "rmgap_pytest.scorers.base",
    "ItemScorer": "rmgap_pytest.scorers.base",
    "Scored": "rmgap_pytest.scorers.base",
    "evaluate": "rmgap_pytest.evaluation",
    "Evaluation": "rmgap_pytest.evaluation",
    "load_thresholds": "rmgap_pytest.thresholds",
    "compare_runs": "rmgap_pytest.compare",
    "RMGapError": "rmgap_pytest.errors",
}
__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'rmgap_pytest' has no attribute {name!r}")
