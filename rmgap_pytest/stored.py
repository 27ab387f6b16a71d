"""``StoredScorer``: a scorer behind the score cache, sharing work between processes.

Every process asking for the same pairs cuts them into the same chunks (sorted
by length, so the engine's batches stay tight). A process claims an unfinished
chunk in the store, scores only its missing pairs, stores them and drops the
claim in one transaction, then claims the next; when everything left is
claimed by live processes it waits for their scores, taking over the chunks of
any that died.
"""

from __future__ import annotations

import hashlib
import sqlite3
import time
from collections.abc import Mapping, Sequence
from contextlib import suppress

import numpy as np

from .batching import advance_to, progress_scope
from .cache import ScoreStore, pair_hash
from .errors import ScorerError
from .scorers.base import Scorer, ScoreStats

__all__ = ["StoredScorer", "with_cache"]


def with_cache(scorer: Scorer, setting: object = True) -> Scorer:
    """``scorer`` behind the score cache, or as is when it is uncacheable or the cache is off.

    One place for the rule that ``load_scorer`` and the pytest gate share.
    """
    from .cache import resolve_cache_path

    if setting is False or scorer.fingerprint is None:
        return scorer
    path = resolve_cache_path(setting)  # also honours RMGAP_CACHE=off
    return scorer if path is None else StoredScorer(scorer, ScoreStore(path))


class StoredScorer:
    """A Scorer that serves stored scores and coordinates with other processes.

    ``stats.cache_hits`` counts unique pairs this process did not score itself
    (found stored, or stored meanwhile by another process); the inner scorer
    counts the pairs it computed.
    """

    def __init__(self, inner: Scorer, store: ScoreStore, *, fingerprint: str | None = None,
                 chunk_size: int = 256, lease_s: float = 1800.0, poll_s: float = 0.2) -> None:
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
        self.inner, self.store = inner, store
        self.spec: str = inner.spec
        self.fingerprint: str | None = fingerprint if fingerprint is not None else inner.fingerprint
        self.chunk_size, self.lease_s, self.poll_s = chunk_size, lease_s, poll_s

    @property
    def stats(self) -> ScoreStats:
        return self.inner.stats

    def score(self, prompts: Sequence[str], responses: Sequence[str]) -> np.ndarray:
        if len(prompts) != len(responses):
            raise ScorerError(f"Scorer {self.spec!r} got {len(prompts)} prompts but {len(responses)} responses; "
                              "they must be parallel lists.")
        if self.fingerprint is None:  # the scorer said its scores must not be cached
            return np.asarray(self.inner.score(prompts, responses), dtype=np.float64)
        keys = [pair_hash(p, r) for p, r in zip(prompts, responses)]
        unique = dict(zip(keys, zip(prompts, responses)))
        found = self.store.lookup(self.fingerprint, unique) if unique else {}
        computed = self._fill(unique, found)
        self.stats.cache_hits += len(unique) - computed
        return np.array([found[k] for k in keys], dtype=np.float64)

    def _chunks(self, unique: Mapping[str, tuple[str, str]]) -> dict[str, list[str]]:
        """Chunks over the whole request, whatever is cached, so all processes agree on them.

        Sorting by length keeps each chunk's texts alike, so the engine's batches pad little.
        A scorer whose cost is per distinct text (``chunk_order = "request"``) keeps the
        request's order instead, so pairs that share texts share a chunk.
        """
        if getattr(self.inner, "chunk_order", "length") == "request":
            order = list(unique)  # dicts keep insertion order: the caller's, the same in every process
        else:
            order = sorted(unique, key=lambda k: (len(unique[k][0]) + len(unique[k][1]), k))
        chunks = (order[i:i + self.chunk_size] for i in range(0, len(order), self.chunk_size))
        return {hashlib.sha256("".join(c).encode()).hexdigest()[:32]: c for c in chunks}

    def _fill(self, unique: Mapping[str, tuple[str, str]], found: dict[str, float]) -> int:
        """Claim and score chunks until every pair is in ``found``; returns pairs scored here."""
        fp = self.fingerprint
        assert fp is not None
        chunks = self._chunks(unique)
        missing = sum(k not in found for k in unique)
        with progress_scope(missing, f"rmgap {self.spec}", _wants_progress(self.inner)) as bar:
            return self._claim_loop(fp, unique, found, chunks, bar)

    def _claim_loop(self, fp: str, unique: Mapping[str, tuple[str, str]], found: dict[str, float],
                    chunks: dict[str, list[str]], bar: object) -> int:
        computed = 0
        while True:
            todo = {cid: miss for cid, keys in chunks.items() if (miss := [k for k in keys if k not in found])}
            if not todo:
                return computed
            claim = self.store.claim(fp, todo, lease_s=self.lease_s)
            found.update(claim.stored)
            if claim.chunk is None:
                # Everything left is claimed by live processes: wait for their
                # scores; the next claim() takes over any that died.
                waiting = [k for keys in todo.values() for k in keys if k not in found]
                found.update(self.store.lookup(fp, waiting))
                if any(k not in found for k in waiting):
                    time.sleep(self.poll_s)
                continue
            try:
                scores = self._inner_score([unique[k] for k in claim.missing])
                found.update(self.store.put(fp, dict(zip(claim.missing, scores)), release=claim.chunk))
            except BaseException:
                # Nothing stored is lost; dropping the claim lets others (or a rerun) retry now
                # instead of after the lease. Best effort: the database may be what failed.
                with suppress(sqlite3.Error):
                    self.store.release(fp, claim.chunk)
                raise
            computed += len(claim.missing)
            advance_to(bar, computed)

    def _inner_score(self, pairs: list[tuple[str, str]]) -> np.ndarray:
        prompts, responses = [p for p, _ in pairs], [r for _, r in pairs]
        scores = np.asarray(self.inner.score(prompts, responses), dtype=np.float64)
        if scores.shape != (len(pairs),):
            raise ScorerError(f"Scorer {self.spec!r} returned {scores.size} scores (shape {scores.shape}) "
                              f"for {len(pairs)} pairs; it must return exactly one score per pair.")
        return scores


def _wants_progress(scorer: Scorer) -> bool:
    """Scorers that carry ScorerOptions say whether to show a bar; instant builtins get none."""
    options = getattr(scorer, "options", None)
    return bool(getattr(options, "progress", False))
