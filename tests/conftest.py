import importlib
import pkgutil

import pytest

# pytester's in-process runs drop modules first imported inside them, and numpy
# cannot be imported twice in one process: import the gate's stack up front.
import numpy  # noqa: F401
import pandas  # noqa: F401
# httpx maps httpcore's exceptions through a table it builds on first use: a second httpcore
# imported inside a later run would raise exceptions that table no longer recognises.
import httpcore  # noqa: F401
import httpx  # noqa: F401
import scipy.special  # noqa: F401
import rmgap_pytest

# Every module of the package, so a module added later cannot be first imported inside a run.
for _module in pkgutil.walk_packages(rmgap_pytest.__path__, "rmgap_pytest."):
    importlib.import_module(_module.name)

from builders import small_benchmark


@pytest.fixture
def bench_file(tmp_path):
    return small_benchmark(tmp_path / "heldback.jsonl")


@pytest.fixture(autouse=True)
def _private_score_cache(tmp_path, monkeypatch):
    """Never touch the user's ~/.cache: every test gets its own cache file."""
    monkeypatch.setenv("RMGAP_CACHE", str(tmp_path / "rmgap-cache.sqlite"))
