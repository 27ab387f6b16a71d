"""The gate's pytest items and terminal output.

Items live under one collector node ``rmgap`` so their ids read
``rmgap::cell[Chat/Conciseness=terse]`` and ``-k``, ``-m rmgap`` and
``--deselect`` work as for any test.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from .session import GateSession

PREFIX = "rmgap::"


class GateFailure(Exception):
    """A check failed: shown as its message, never as a traceback."""


class GateError(pytest.fail.Exception):  # type: ignore[misc,name-defined]
    """The gate could not score the model (server down, CUDA error, scorer exception): pytest's
    *error* outcome for every gate item (raised in setup), not a failure, so "broke" reads
    differently from "regressed". The cause is printed once, in the RMGAP summary. A ``fail``
    exception without ``pytrace`` is shown as its message, never as a traceback."""

    def __init__(self, msg: str) -> None:
        super().__init__(msg, pytrace=False)


BROKE = ("not checked: the gate could not score the model (the cause is printed once, under "
         "\"RMGAP generalization report\" below; exit status 6)")


class GateCollector(pytest.Collector):
    def __init__(self, *, gate: GateSession, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.gate = gate
        self._examples: dict[str, list[str]] | None = None

    def collect(self) -> list["GateItem"]:
        # The node id is given as text so that pytest 9 parses it as it parses ids read back from its
        # cache ("rmgap::cell[...]": name "cell", params "..."); built from the name it would not match,
        # and --lf would never find the failed gate items.
        return [GateItem.from_parent(self, name=spec.id, nodeid=f"{PREFIX}{spec.id}", gate=self.gate)
                for spec in self.gate.checks]

    def failure_text(self, check_id: str, rows: Any) -> str:
        """The item's FAILURES entry; the examples of all failing items are planned together, once."""
        from .failures import Texts, gate_message, plan_examples

        width, verbose = terminal_width(self.config), self.config.get_verbosity()
        if self._examples is None:
            selected = {i.name for i in self.session.items if isinstance(i, GateItem)}
            self._examples = plan_examples(self.gate, selected, verbose, width, Texts.of(self.gate.bench))
        return gate_message(self.gate, check_id, rows, examples=self._examples.get(check_id, []), width=width,
                            verbose=verbose)


def terminal_width(config: pytest.Config) -> int:
    """The terminal's columns; an xdist worker has no terminal and uses the controller's."""
    workerinput = getattr(config, "workerinput", None)
    if workerinput and workerinput.get("rmgap_width"):
        return int(workerinput["rmgap_width"])
    return int(config.get_terminal_writer().fullwidth)


class GateItem(pytest.Item):
    def __init__(self, *, gate: GateSession, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.gate = gate
        self.add_marker("rmgap")

    def setup(self) -> None:
        if self.gate.error is not None:
            raise GateError(BROKE)

    def runtest(self) -> None:
        gate = self.gate
        if gate.result is None:
            raise GateFailure("the gate was not prepared (scoring did not run in this process)")
        status, rows = gate.verdict(self.name)
        for r in rows.itertuples(index=False):
            self.user_properties += [(f"{r.metric or 'check'}.{k}", _prop(getattr(r, k)))
                                     for k in ("value", "lo", "hi", "threshold", "support")]
        if status == "skip":
            # Reported at the item ("rmgap::cell[...]"), not at this line of the plugin.
            raise pytest.skip.Exception(f"{self.name}: {rows['reason'].iloc[0]}", _use_item_location=True)
        if status == "fail":
            raise GateFailure(self.parent.failure_text(self.name, rows))

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, (GateFailure, GateError)):
            return FailureText(str(excinfo.value), self.nodeid)
        return super().repr_failure(excinfo, style)

    def reportinfo(self) -> tuple[str, int, str]:
        """The third part heads the item's FAILURES entry: the id, then who it speaks for, if it fits."""
        from .views import clip
        from .words import who

        spec = next((s for s in self.gate.checks if s.id == self.name), None)
        words = who(spec.kind, spec.domain, spec.dimension, spec.level) if spec else ""
        head = f"{PREFIX}{self.name}"
        room = terminal_width(self.config) - len(head) - 10  # pytest draws "___ head ___"
        return "rmgap", 0, f"{head}: {clip(words, room)}" if words and room >= 16 else head


class FailureText:
    """A gate item's failure as pytest shows it: every line in FAILURES and in a JUnit ``<failure>`` body,
    the first line alone on the short-summary line and as the JUnit ``message``.

    A plain string would do everywhere but on CI: with ``CI`` set pytest prints a string failure whole on
    its short-summary line, so each cell's "most wrong" records would be printed twice. pytest reads the
    summary line from ``longrepr.reprcrash.message``, as for an exception."""

    def __init__(self, text: str, where: str) -> None:
        self.text = text
        self.reprcrash = _Crash(where, text.partition("\n")[0])

    def toterminal(self, tw: Any) -> None:
        for line in self.text.splitlines():
            tw.line(line)

    def __str__(self) -> str:
        return self.text


class _Crash:
    """Where and what, as pytest's own crash location: ``--tb=line`` prints it as the failure's line."""

    def __init__(self, where: str, message: str) -> None:
        self.path, self.lineno, self.message = where, 0, message

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


def one_line_summary(report: pytest.TestReport) -> None:
    """Under xdist a worker sends the failure as a string; give it back its one summary line."""
    if isinstance(report.longrepr, str) and report.nodeid.startswith(PREFIX):
        report.longrepr = FailureText(report.longrepr, report.nodeid)  # type: ignore[assignment]


def _prop(value: Any) -> str:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return "" if value is None else str(value)
    return "" if v != v else f"{v:.6g}"


def collect_gate_items(session: pytest.Session, gate: GateSession) -> list[GateItem]:
    """Collect through pytest's own report hooks, so "collected N items" and -k counts include the gate."""
    collector = GateCollector.from_parent(session, name="rmgap", nodeid="rmgap", gate=gate)
    report = collector.ihook.pytest_make_collect_report(collector=collector)
    session.ihook.pytest_collectreport(report=report)
    return list(report.result)


def keep_selected(config: pytest.Config, items: list, selected: set[str]) -> None:
    """``pytest "rmgap::cell[Chat/Conciseness=terse]"``: keep the named gate items, deselect the other ones."""
    known = {i.name for i in items if isinstance(i, GateItem)}
    unknown = sorted(selected - known)
    if unknown:
        from .errors import did_you_mean

        raise pytest.UsageError(f"rmgap: no gate item {PREFIX}{unknown[0]}.{did_you_mean(unknown[0], known)} "
                                "Fix: copy the id from a FAILED line, or list them with --collect-only -q -m rmgap.")
    dropped = [i for i in items if isinstance(i, GateItem) and i.name not in selected]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [i for i in items if not (isinstance(i, GateItem) and i.name not in selected)]


def header_lines(gate: GateSession) -> list[str]:
    """The session header: model, data (loudly when it is a subset), thresholds, checks."""
    b = gate.bench
    found = f" ({gate.settings.thresholds_note})" if gate.settings.thresholds_note else ""
    lines = [f"rmgap: model {gate.settings.model}; data {b.path} ({len(b.records)} records, {b.n_items} items, "
             f"sha256 {b.sha256[:12]}); thresholds {gate.thresholds.source}{found}; {len(gate.checks)} checks"]
    if b.subset:
        lines.append(f"rmgap: SUBSET: {b.subset['records']} of {b.subset['of']} records (--rmgap-limit, seeded, "
                     "every domain): a smoke check, not a verdict on the model")
    return lines


def prepare_with_progress(config: pytest.Config, gate: GateSession, store: str | None = None,
                          run_id: str | None = None, device: str | None = None, worker: bool = False,
                          placement: Callable[[], str | None] | None = None) -> None:
    """Score with pytest's capture off, so the progress display reaches the terminal."""
    capman = config.pluginmanager.getplugin("capturemanager")
    if capman is None:
        gate.prepare(store, run_id, device, worker, placement)
        return
    with capman.global_and_fixture_disabled():
        gate.prepare(store, run_id, device, worker, placement)


def write_summary(terminalreporter: Any, gate: GateSession) -> None:
    from .report import terminal_summary

    tr = terminalreporter
    tr.write_sep("=", "RMGAP generalization report")
    if gate.error is not None:
        tr.write_line(f"rmgap: the gate could not score the model, so no check was decided (exit status 6): "
                      f"{gate.error}", red=True)
        return
    if gate.none_ran():
        tr.write_line("Gate: no checks ran (pytest stopped before the gate's items, e.g. -x or --maxfail, or they "
                      "were deselected); nothing was decided.", yellow=True)
        for message in gate.messages:
            tr.write_line(message)
        return
    checks, comparison = gate.shown()
    tr.write_line(terminal_summary(gate.result.evaluation, checks=checks, comparison=comparison,
                                   files=gate.files or None, width=terminal_width(tr.config),
                                   verbose=tr.config.get_verbosity()))
    for message in gate.messages:
        tr.write_line(message)
