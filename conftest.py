"""The project's shared test fixtures (tests/ and examples/ alike).

tests/builders.py (on sys.path through ``pythonpath`` in pyproject.toml) writes small
RMGAP-format files; tests/scorers/conftest.py adds the tiny-model fixtures.
"""

import importlib
import pkgutil

import pytest


@pytest.fixture
def bench_file(tmp_path):
    """A small held-back RMGAP-format file with every domain (3 records each)."""
    from builders import small_benchmark

    return small_benchmark(tmp_path / "heldback.jsonl")


@pytest.fixture(autouse=True)
def _private_score_cache(tmp_path, monkeypatch):
    """Never touch the user's ~/.cache: every test gets its own cache file."""
    monkeypatch.setenv("RMGAP_CACHE", str(tmp_path / "rmgap-cache.sqlite"))


def pytest_collection_modifyitems(items):
    """Before tests that run pytest in process (pytester), import the gate's whole stack once.

    pytester's in-process runs drop modules first imported inside them, and numpy cannot be
    imported twice in one process; httpx maps httpcore's exceptions through a table built on
    first use, so a second httpcore imported inside a run would raise exceptions it no longer
    recognises. Every module of the package, so one added later cannot be first imported inside
    a run. Runs without pytester (the demo, examples/) skip this import cost.
    """
    if not any("pytester" in getattr(item, "fixturenames", ()) for item in items):
        return
    import httpcore  # noqa: F401
    import httpx  # noqa: F401
    import numpy  # noqa: F401
    import pandas  # noqa: F401
    import scipy.special  # noqa: F401

    import rmgap_pytest

    for module in pkgutil.walk_packages(rmgap_pytest.__path__, "rmgap_pytest."):
        importlib.import_module(module.name)
