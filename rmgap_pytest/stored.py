"""``StoredScorer``: a scorer behind the score store, sharing work between processes.

Every process asking for the same keys (pairs, or items for item scorers) cuts
them into the same chunks (sorted by length, so the engine's batches stay
tight). A process walks the chunks once, in order: it claims an unfinished,
free chunk in the store, scores only its missing keys, stores them and drops
the claim in one transaction, and passes over chunks that live processes hold.
Then it waits for those, taking over the chunks of any process that died.
Each chunk costs one claim and one store transaction, so a run is linear in
its size whatever the number of processes.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import __version__
from .cache import Row, ScoreStore, item_keys, pair_keys
from .errors import ScorerError
from .progress import advance_to, progress_scope
from .scorers.base import Scored, Scorer, ScoreStats, unit_of

__all__ = ["Fetched", "StoredScorer", "with_cache"]

CHUNK_SIZE = {"pair": 256, "item": 64}  # an item is 4 pairs' worth of work (or one judge call)


def with_cache(scorer: Scorer, setting: object = True, *, run_id: str | None = None) -> Scorer:
    """``scorer`` behind the score cache, or as is when it is uncacheable or the cache is off.

    One place for the rule that ``load_scorer`` and the pytest gate share.
    """
    from .cache import resolve_cache_path

    if setting is False or scorer.fingerprint is None:
        return scorer
    path = resolve_cache_path(setting)  # also honours RMGAP_CACHE=off
    return scorer if path is None else StoredScorer(scorer, ScoreStore(path), run_id=run_id)


@dataclass
class Fetched:
    """One request as the store served it, rows in the request's order.

    ``values``: (n,) for pairs, (n, k) for items. ``meta``: one dict or None per
    row. ``computed``: per row, whether the run (``run_id``, every process of it)
    computed it rather than finding it stored. ``unique``/``unique_computed``
    count distinct keys. ``persistent``: False for a run-scoped store (cache off),
    where "found stored" cannot mean "served from the cache".
    """

    values: np.ndarray
    meta: list[dict[str, Any] | None]
    computed: np.ndarray
    unique: int
    unique_computed: int
    run_id: str
    persistent: bool


class StoredScorer:
    """A Scorer (pair or item, as its inner one) that serves stored scores and coordinates processes.

    ``run_id`` marks the rows this run computes; processes of one run (xdist
    workers) share it, so their counts add up. None = a new id per request.
    ``persistent=False`` for a run-scoped store (the cache is off).
    ``show_progress``: None = as the inner scorer's options say. ``publish_progress``:
    record this process's share in the store for another process to draw.
    ``stats.cache_hits`` counts unique keys this process did not compute itself.
    ``before_compute``: called once, just before the first key is computed (never when every
    key is stored); a scorer it returns replaces the inner one (an xdist worker's GPU).
    """

    before_compute: Callable[[], Scorer | None] | None = None

    def __init__(self, inner: Scorer, store: ScoreStore, *, fingerprint: str | None = None,
                 run_id: str | None = None, persistent: bool = True, chunk_size: int | None = None,
                 lease_s: float = 1800.0, poll_s: float = 0.2, show_progress: bool | None = None,
                 publish_progress: bool = False) -> None:
        self.inner, self.store = inner, store
        self.spec: str = inner.spec
        self.unit = unit_of(inner)
        self.fingerprint: str | None = fingerprint if fingerprint is not None else inner.fingerprint
        self.chunk_size = chunk_size if chunk_size is not None else CHUNK_SIZE[self.unit]
        if self.chunk_size < 1:
            raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
        self.run_id, self.persistent = run_id, persistent
        self.lease_s, self.poll_s = lease_s, poll_s
        self.show_progress = _wants_progress(inner) if show_progress is None else show_progress
        self.publish_progress = publish_progress
        self.stats.notes.extend(n for n in store.notes if n not in self.stats.notes)

    @property
    def stats(self) -> ScoreStats:
        return self.inner.stats

    # -- the Scorer interfaces ------------------------------------------------------------------------
    def score(self, prompts: Sequence[str], responses: Sequence[str]) -> np.ndarray:
        self._expect("pair", "score_items(prompts, responses_per_item)")
        return self.fetch(prompts, responses).values

    def score_items(self, prompts: Sequence[str], responses: Sequence[Sequence[str]]) -> np.ndarray:
        self._expect("item", "score(prompts, responses)")
        return self.fetch(prompts, responses).values

    def _expect(self, unit: str, instead: str) -> None:
        if self.unit != unit:
            raise ScorerError(f"Scorer {self.spec!r} is {self.unit}-level. Fix: call {instead}.")

    def score_detailed(self, prompts: Sequence[str], responses: Sequence[Any]) -> Scored:
        fetched = self.fetch(prompts, responses)
        return Scored(fetched.values, fetched.meta)

    # -- serving a request ----------------------------------------------------------------------------
    def fetch(self, prompts: Sequence[str], responses: Sequence[Any]) -> Fetched:
        """Scores, metadata and provenance for a request: pairs (parallel lists) or items
        (``responses[i]`` = item i's responses), as the inner scorer's ``unit``."""
        if len(prompts) != len(responses):
            raise ScorerError(f"Scorer {self.spec!r} got {len(prompts)} prompts but {len(responses)} responses; "
                              "they must be parallel lists.")
        run_id = self.run_id or uuid.uuid4().hex
        if self.unit == "item":
            responses = [tuple(rs) for rs in responses]
            keys = item_keys(prompts, responses)
        else:
            keys = pair_keys(prompts, responses)
        unique = dict(zip(keys, zip(prompts, responses)))
        if self.fingerprint is None:  # the scorer said its scores must not be cached
            rows = dict(zip(unique, self._compute(list(unique.values()), run_id)))
            computed_here = len(rows)
        else:
            rows = self.store.fetch(self.fingerprint, unique) if unique else {}
            computed_here = self._fill(unique, rows, run_id)
        self.stats.cache_hits += len(unique) - computed_here
        return self._assemble(keys, rows, run_id, len(prompts))

    def _assemble(self, keys: list[bytes], rows: dict[bytes, Row], run_id: str, n: int) -> Fetched:
        got = [rows[k] for k in keys]
        flat = np.frombuffer(b"".join([r.value for r in got]), dtype="<f8").astype(np.float64)
        if self.unit == "pair" and flat.shape[0] != n:
            raise ScorerError(f"Score cache {self.store.path}: fingerprint {self.fingerprint} holds item-level "
                              "values where pair scores were expected. Fix: clear that fingerprint "
                              "(rmgap cache clear --fingerprint ...).")
        values = flat if self.unit == "pair" else flat.reshape(n, -1) if n else np.zeros((0, 0))
        # Most rows share a few metadata texts ({"truncated":false}): parse each text once.
        # The dicts are shared between rows: treat them as read-only.
        parsed = {t: json.loads(t) for t in {r.meta for r in rows.values()} if t}
        meta = [parsed[r.meta] if r.meta else None for r in got]
        computed = np.fromiter((r.run == run_id for r in got), dtype=bool, count=n)
        unique_computed = sum(r.run == run_id for r in rows.values())
        return Fetched(values, meta, computed, len(rows), unique_computed, run_id, self.persistent)

    def _chunks(self, unique: Mapping[bytes, tuple[str, Any]]) -> dict[str, list[bytes]]:
        """Chunks over the whole request, whatever is stored, so all processes agree on them.

        Keys start with the content size, so sorting them sorts by (length, hash): each
        chunk's texts are alike, so the engine's batches pad little, and its rows are
        neighbours in the store. A scorer whose cost is per distinct text
        (``chunk_order = "request"``) keeps the request's order instead, so pairs that
        share texts share a chunk.
        """
        if getattr(self.inner, "chunk_order", "length") == "request":
            order = list(unique)  # dicts keep insertion order: the caller's, the same in every process
        else:
            order = sorted(unique)
        chunks = (order[i:i + self.chunk_size] for i in range(0, len(order), self.chunk_size))
        return {hashlib.sha256(b"".join(c)).hexdigest()[:32]: c for c in chunks}

    def _fill(self, unique: Mapping[bytes, tuple[str, Any]], found: dict[bytes, Row], run_id: str) -> int:
        """Claim and score chunks until every key is in ``found``; returns keys computed here."""
        fp = self.fingerprint
        assert fp is not None
        pending = [(cid, miss) for cid, keys in self._chunks(unique).items()
                   if (miss := [k for k in keys if k not in found])]
        todo = sum(len(miss) for _, miss in pending)
        if not todo:
            return 0
        if self.persistent:
            self._describe(fp)
        sink = self._publisher(run_id, todo) if self.publish_progress else None
        self.computed = 0
        with progress_scope(todo, f"rmgap {self.spec}", self.show_progress, unit=self.unit, sink=sink) as bar:
            busy: list[tuple[str, list[bytes]]] = []
            for cid, miss in pending:  # one pass: each chunk is claimed at most once here
                self._take(cid, miss, unique, found, run_id, busy, bar)
            while busy:  # chunks live processes held when we passed them
                waiting = [k for _, miss in busy for k in miss if k not in found]
                found.update(self.store.fetch(fp, waiting))  # one read for all of them
                left, busy = [(c, [k for k in m if k not in found]) for c, m in busy], []
                for cid, miss in left:
                    if miss:  # still missing: take it over if its owner died, else keep waiting
                        self._take(cid, miss, unique, found, run_id, busy, bar)
                if busy:
                    time.sleep(self.poll_s)
        if self.publish_progress:
            self.store.report_progress(run_id, done=self.computed, finished=True)
        return self.computed

    def _take(self, cid: str, miss: list[bytes], unique: Mapping[bytes, tuple[str, Any]], found: dict[bytes, Row],
              run_id: str, busy: list, bar: Any) -> None:
        fp = self.fingerprint
        claim = self.store.claim_chunk(fp, cid, miss, lease_s=self.lease_s)
        found.update(claim.stored)
        if claim.state == "busy":
            busy.append((cid, miss))
        if claim.state != "owned":
            return
        try:
            rows = self._compute([unique[k] for k in claim.missing], run_id)
            progress = (run_id, self.computed + len(rows)) if self.publish_progress else None
            found.update(self.store.store(fp, dict(zip(claim.missing, rows)), release=cid, progress=progress))
        except BaseException:
            # Nothing stored is lost; dropping the claim lets others (or a rerun) retry now
            # instead of after the lease. Best effort: the database may be what failed.
            with suppress(sqlite3.Error):
                self.store.release(fp, cid)
            raise
        self.computed += len(claim.missing)
        advance_to(bar, self.computed)

    def _compute(self, payloads: list[tuple[str, Any]], run_id: str) -> list[Row]:
        """Ask the inner scorer; check its contract; rows ready to store."""
        if self.before_compute is not None:
            setup, self.before_compute = self.before_compute, None
            self.inner = setup() or self.inner
            self.stats.notes.extend(n for n in self.store.notes if n not in self.stats.notes)
        prompts = [p for p, _ in payloads]
        responses = [list(r) if self.unit == "item" else r for _, r in payloads]
        n = len(payloads)
        detailed = getattr(self.inner, "score_detailed", None)
        plain = self.inner.score_items if self.unit == "item" else self.inner.score
        result = detailed(prompts, responses) if callable(detailed) else plain(prompts, responses)
        values, meta = (result.values, result.meta) if isinstance(result, Scored) else (result, [None] * n)
        values = np.asarray(values, dtype=np.float64)
        if self.unit == "pair" and values.shape != (n,):
            raise ScorerError(f"Scorer {self.spec!r} returned {values.size} scores (shape {values.shape}) "
                              f"for {n} pairs; it must return exactly one score per pair.")
        ks = {len(rs) for rs in responses} if self.unit == "item" else set()
        if self.unit == "item" and (len(ks) > 1 or values.shape != (n, *ks)):
            raise ScorerError(f"Scorer {self.spec!r} returned shape {values.shape} for {n} items of "
                              f"{'/'.join(map(str, sorted(ks)))} responses; it must return one row per item "
                              "with one score per response, in the given order.")
        if len(meta) != n:
            raise ScorerError(f"Scorer {self.spec!r} returned {len(meta)} metadata entries for {n} rows; "
                              "score_detailed must return one dict (or None) per row.")
        blob, width = values.astype("<f8").tobytes(), 8 * (values.shape[1] if values.ndim == 2 else 1)
        texts = [_meta_json(m, self.spec) for m in meta]
        return [Row(blob[i * width:(i + 1) * width], texts[i], run_id) for i in range(n)]

    def _describe(self, fp: str) -> None:
        inner = self.inner
        kind = getattr(inner, "kind", None) or (self.spec if self.spec.startswith("builtin:")
                                                 else self.spec.partition(":")[0])
        dtype = getattr(inner, "dtype", None)
        self.store.describe(fp, spec=self.spec, kind=str(kind), unit=self.unit,
                            dtype=None if dtype is None else str(dtype).removeprefix("torch."), version=__version__)

    def _publisher(self, run_id: str, todo: int):
        """Report this process's share now, and return the rate-limited sink the progress scope feeds."""
        self.store.report_progress(run_id, todo=todo, done=0, unit=self.unit)
        last = [time.monotonic()]

        def sink(done: int) -> None:  # batches inside a chunk: at most two writes a second
            if time.monotonic() - last[0] >= 0.5:
                last[0] = time.monotonic()
                with suppress(sqlite3.Error):  # progress is best effort; scores are not
                    self.store.report_progress(run_id, done=done)
        return sink


def _meta_json(meta: Any, spec: str) -> str | None:
    if meta is None:
        return None
    if not isinstance(meta, dict):
        raise ScorerError(f"Scorer {spec!r} returned metadata {meta!r}; each entry must be a dict or None.")
    try:
        return json.dumps(meta, separators=(",", ":"), sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ScorerError(f"Scorer {spec!r} returned metadata that is not plain JSON ({exc}): {meta!r}. "
                          "Fix: use str/int/float/bool/None, lists and dicts with string keys.") from None


def _wants_progress(scorer: Scorer) -> bool:
    """Scorers that carry ScorerOptions say whether to show progress; instant builtins show none."""
    options = getattr(scorer, "options", None)
    return bool(getattr(options, "progress", False))
