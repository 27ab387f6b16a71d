"""One progress display per run: a bar on a terminal, plain lines in a log.

On a terminal, a tqdm bar whose elapsed time keeps ticking even while the first
chunk loads the model. Anywhere else (a CI log, a pipe) tqdm's ``\\r`` updates
would make one endless line, so the display prints a plain line each time
another 10% is done, or after 30 s without one, and a last line at the end.

Under pytest-xdist only the controller draws. Workers score and record their
share in the score store (``ScoreStore.report_progress``); the controller's
``RunWatcher`` adds the shares up and draws the whole run. The controller owns
the terminal, so nothing interleaves, and the sum counts every worker,
including one that took over a dead worker's chunk.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TextIO

__all__ = ["ProgressDisplay", "RunWatcher", "advance_to", "progress_scope"]

EVERY_FRACTION = 0.1  # plain lines: one per 10% done ...
EVERY_S = 30.0  # ... or after this long without one
TICK_S = 0.5  # how often a bar's elapsed time is redrawn while nothing finishes

_SHARED_BAR: ContextVar[Any] = ContextVar("rmgap_shared_bar", default=None)


def _clock_text(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else \
        f"{seconds // 60:02d}:{seconds % 60:02d}"


def _draws_bars(stream: TextIO) -> bool:
    """A terminal that reports its width. One of width 0 (a pty nobody sized) gets plain lines:
    tqdm draws nothing useful there."""
    try:
        return bool(stream.isatty()) and os.get_terminal_size(stream.fileno()).columns > 0
    except (AttributeError, OSError, ValueError):
        return False


class ProgressDisplay:
    """``update(n)``/``set(done)`` like a tqdm bar; draws a bar on a TTY, plain lines elsewhere.

    ``stream`` defaults to stderr; ``tty`` to ``stream.isatty()``. ``ticker`` starts a
    thread that redraws every ``TICK_S`` (a bar's clock, a log's 30 s line).
    """

    def __init__(self, total: int, desc: str, unit: str = "pair", *, stream: TextIO | None = None,
                 tty: bool | None = None, clock: Callable[[], float] = time.monotonic, ticker: bool = True,
                 every_fraction: float = EVERY_FRACTION, every_s: float = EVERY_S) -> None:
        self.total, self.desc, self.unit, self.n = total, desc, unit, 0
        self.stream = stream if stream is not None else sys.stderr
        self.tty = _draws_bars(self.stream) if tty is None else tty
        self.clock, self.every_fraction, self.every_s = clock, every_fraction, every_s
        self.started = self._last_line = clock()
        self._last_step = 0
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._bar = None
        if self.tty:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, desc=desc, unit=unit, dynamic_ncols=True, file=self.stream)
        else:
            self._write(f"{desc}: {total} {unit}s to score")
        self._thread = None
        if ticker:
            self._thread = threading.Thread(target=self._tick_loop, name="rmgap-progress", daemon=True)
            self._thread.start()

    def update(self, n: int = 1) -> None:
        self.set(self.n + n)

    def set(self, done: int) -> None:
        with self._lock:
            if self._closed.is_set():
                return
            self.n = done
            if self._bar is not None and done > self._bar.n:
                self._bar.update(done - self._bar.n)
            else:
                self._plain(force=False)

    def set_total(self, total: int) -> None:
        with self._lock:
            self.total = total
            if self._bar is not None and self._bar.total != total:
                self._bar.total = total
                self._bar.refresh()

    def tick(self) -> None:
        """Redraw: the bar's clock moves, and a log gets its line after ``every_s`` of silence."""
        with self._lock:
            if self._closed.is_set():
                return
            if self._bar is not None:
                self._bar.refresh()
            else:
                self._plain(force=False)

    def close(self) -> None:
        with self._lock:
            if self._closed.is_set():
                return
            self._closed.set()
            if self._bar is not None:
                self._bar.close()
            else:
                took = _clock_text(self.clock() - self.started)
                self._write(f"{self.desc}: {self.n}/{self.total} {self.unit}s ({self._percent()}%), "
                            f"finished in {took}")
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=2 * TICK_S)

    def _tick_loop(self) -> None:
        while not self._closed.wait(TICK_S):
            self.tick()

    def _percent(self) -> int:
        return int(100 * self.n / self.total) if self.total else 100

    def _plain(self, force: bool) -> None:
        now = self.clock()
        step = self.n * round(1 / self.every_fraction) // self.total if self.total else 0  # exact: no 0.7/0.1 = 6.99
        if self.n >= self.total > 0 and not force:
            return  # the last line (close) says it
        if not (force or step > self._last_step or now - self._last_line >= self.every_s):
            return
        self._last_step, self._last_line = max(step, self._last_step), now
        elapsed = now - self.started
        line = f"{self.desc}: {self.n}/{self.total} {self.unit}s ({self._percent()}%), {_clock_text(elapsed)} elapsed"
        if 0 < self.n < self.total and elapsed >= 1:  # a rate over a blink of time means nothing
            rate = self.n / elapsed
            line += f", about {_clock_text((self.total - self.n) / rate)} left ({rate:.1f} {self.unit}s/s)"
        self._write(line)

    def _write(self, line: str) -> None:
        try:
            self.stream.write(line + "\n")
            self.stream.flush()
        except (OSError, ValueError):  # a closed pipe must not stop the scoring
            pass


class _Share:
    """A worker's counter: feeds its done count to ``sink`` (the store) instead of drawing."""

    def __init__(self, sink: Callable[[int], None]) -> None:
        self.n, self.sink = 0, sink

    def update(self, n: int = 1) -> None:
        self.n += n
        self.sink(self.n)


@contextmanager
def progress_scope(total: int, desc: str, enabled: bool = True, *, unit: str = "pair",
                   sink: Callable[[int], None] | None = None) -> Iterator[Any]:
    """One progress counter for a whole scoring request.

    The score store hands the engine many chunks; without this each chunk would
    open its own bar. Inside the scope ``batching.run_batches`` advances the
    shared counter per batch, and ``advance_to`` lets callers that bypass the
    engine (python: scorers) keep it honest. With ``sink`` (an xdist worker) the
    counter draws nothing and reports to the sink; otherwise it is a
    ``ProgressDisplay`` when ``enabled``.
    """
    if total <= 0 or (sink is None and not enabled):
        yield None
        return
    bar: Any = _Share(sink) if sink is not None else ProgressDisplay(total, desc, unit)
    token = _SHARED_BAR.set(bar)
    try:
        yield bar
    finally:
        _SHARED_BAR.reset(token)
        if isinstance(bar, ProgressDisplay):
            bar.close()


def shared_bar() -> Any:
    """The counter of the enclosing ``progress_scope`` (None outside one)."""
    return _SHARED_BAR.get()


def advance_to(bar: Any, done: int) -> None:
    """Move a shared counter to ``done`` if the engine did not already."""
    if bar is not None and bar.n < done:
        bar.update(done - bar.n)


class RunWatcher:
    """The xdist controller's display: polls the run's progress rows in the store and draws them.

    ``stop()`` ends it (the session is over); the display also closes by itself
    once the workers' shares add up to the run's total.
    """

    def __init__(self, store: Any, run_id: str, desc: str, *, poll_s: float = TICK_S,
                 stream: TextIO | None = None) -> None:
        self.store, self.run_id, self.desc, self.poll_s, self.stream = store, run_id, desc, poll_s, stream
        self.display: ProgressDisplay | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="rmgap-progress-watch", daemon=True)

    def start(self) -> "RunWatcher":
        self._thread.start()
        return self

    def stop(self) -> None:
        """Draw the final numbers and the last line; drop the run's progress rows."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self._poll()
        if self.display is not None:
            self.display.close()
        try:
            self.store.forget_run(self.run_id)
        except Exception:  # noqa: BLE001 - a display must never fail the run
            pass

    def _loop(self) -> None:
        while not self._stop.is_set():
            if self._poll():
                self.display.close()
                return
            self._stop.wait(self.poll_s)

    def _poll(self) -> bool:
        """Draw the latest numbers; True when the run's scoring is complete."""
        try:
            p = self.store.run_progress(self.run_id)
        except Exception:  # noqa: BLE001 - a display must never fail the run
            return False
        todo, done = int(p["todo"]), int(p["done"])
        if todo <= 0:
            return False
        if self.display is None:
            self.display = ProgressDisplay(todo, self.desc, str(p["unit"]), stream=self.stream, ticker=False)
        self.display.set_total(todo)
        self.display.set(min(done, todo))
        self.display.tick()
        return done >= todo
