"""pytest hooks: thin, each hands off to ``GateSession`` (the options themselves live in ``options.py``).

Without ``--rm-model`` (or ``RMGAP_MODEL``, or ``rm_model`` in the ini file)
every hook returns at once, so a project's ordinary test suite runs exactly as
before; gate options given without a model are a usage error instead of a gate
that silently stays off.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .options import OPTIONS, Option, UsageError, check_value, set_tool, stray_settings

if TYPE_CHECKING:  # the gate's modules import pandas; load them only when a model is given
    from .result import RMGapResult
    from .session import GateSession, GateSettings

PREFIX = "rmgap::"
THRESHOLDS_FILE = "thresholds.yaml"  # found in the rootdir without a flag


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("rmgap", "RMGAP reward-model gate (every option below needs --rm-model=SPEC, or "
                                     "RMGAP_MODEL; without a model the plugin does nothing)")
    for o in OPTIONS:
        env = f" [env {o.env}]" if o.env else ""
        if o.kind == "flag":
            group.addoption(o.pytest, action="store_true", default=None, dest=o.name, help=o.help)
            parser.addini(o.name, o.help, type="bool", default=False)
        else:
            group.addoption(o.pytest, default=None, dest=o.name, metavar=o.metavar, help=o.help + env)
            parser.addini(o.name, o.help + env, default=None)


def _value(config: pytest.Config, o: Option) -> tuple[Any, str]:
    """(raw value, where it came from): command line, then environment, then ini file."""
    value = config.getoption(o.name)
    if value is not None:
        return value, o.pytest
    if o.env and os.environ.get(o.env):
        return os.environ[o.env], o.env
    value = config.getini(o.name)
    if value in (None, "", False):
        return None, ""
    where = f"{o.name} in {config.inipath.name if config.inipath else 'the ini file'}"
    if o.path and config.inipath is not None and isinstance(value, str):
        value = _ini_path(value, config.inipath.parent, o.name == "rm_model")
    return value, where


def _ini_path(value: str, base: Path, spec: bool) -> str:
    """A relative path in the ini file, resolved against the ini file's directory (as pytest's own
    ``testpaths`` are). A model spec is resolved only where that names something that exists, so a
    hub id (``org/name``) or a ``KIND:`` target that is not a path stays as written."""
    kind, sep, target = value.partition(":")
    if spec and sep and kind in ("classifier", "logprob", "dpo", "python"):
        resolved = _ini_path(target.split(":")[0], base, spec=False)
        return value if resolved == target.split(":")[0] or not Path(resolved).exists() else \
            f"{kind}:{resolved}{target[len(target.split(':')[0]):]}"
    if spec and sep:  # builtin:, http(s)://, vllm:, ...
        return value
    if value == "off" or value == "last" or Path(value).expanduser().is_absolute():
        return value
    resolved = base / value
    return str(resolved) if not spec or resolved.exists() else value


def settings_from_config(config: pytest.Config) -> "GateSettings | None":
    raw = {o.name: _value(config, o) for o in OPTIONS}
    given = [o.pytest for o in OPTIONS if config.getoption(o.name) is not None]
    problem = stray_settings(given, has_model=raw["rm_model"][0] is not None)
    if problem:
        raise pytest.UsageError(f"rmgap: {problem}")
    if raw["rm_model"][0] is None:
        return None
    from .session import settings_from_values

    try:
        values = {o.name: check_value(o, raw[o.name][0], raw[o.name][1]) for o in OPTIONS}
    except UsageError as exc:
        raise pytest.UsageError(str(exc)) from None
    settings = settings_from_values(values)
    if settings.thresholds is None and (config.rootpath / THRESHOLDS_FILE).is_file():
        settings.thresholds = str(config.rootpath / THRESHOLDS_FILE)
        settings.thresholds_note = "found in the rootdir"
    return settings


def pytest_configure(config: pytest.Config) -> None:
    settings = settings_from_config(config)
    if settings is None:
        return
    from .errors import RMGapError
    from .session import GateSession

    set_tool("pytest")  # messages name --rm-... flags
    try:
        session = GateSession.from_settings(settings)
    except RMGapError as exc:
        raise pytest.UsageError(f"rmgap: {exc}") from None
    config.addinivalue_line("markers", "rmgap: an RMGAP gate check (select with -m rmgap)")
    selected = [a for a in config.args if a.startswith(PREFIX)]
    if selected:  # `pytest "rmgap::cell[...]"`: a gate node id, not a file to collect
        config.args[:] = [a for a in config.args if not a.startswith(PREFIX)]
    config.pluginmanager.register(GatePlugin(config, session, selected), "rmgap-gate")


def pytest_unconfigure(config: pytest.Config) -> None:
    set_tool(None)


@pytest.fixture(scope="session")
def rmgap_result(request: pytest.FixtureRequest) -> "RMGapResult":
    """The gate's evaluation for your own assertions (``result.RMGapResult``); scored once per run, shared
    with the gate's items and, under xdist, read from the run's score store rather than scored again."""
    plugin = request.config.pluginmanager.get_plugin("rmgap-gate")
    if plugin is None:
        pytest.skip("rmgap_result: no reward model given (--rm-model, RMGAP_MODEL or rm_model): the gate is off")
    return plugin.result_for_fixture()


class GatePlugin:
    """The hooks that need the gate's state; registered only when a model is given."""

    def __init__(self, config: pytest.Config, session: "GateSession", selected: list[str] | None = None) -> None:
        self.config = config
        self.gate = session
        self.gate.ran = set()  # pytest tracks which checks ran: -x or -k must not make the report claim others
        self.selected = {s.removeprefix(PREFIX) for s in selected or []}
        self.worker_error: str | None = None  # a worker's scoring error, reported to the controller
        self.worker_seconds: list[float] = []  # the workers' scoring times (the controller only reads)
        self.fixture_used = False  # rmgap_result was requested: the controller writes the report too
        workerinput = getattr(config, "workerinput", None)
        self.worker_id = workerinput["workerid"] if workerinput else None
        # Under xdist the controller makes a run-scoped store (pytest_configure_node) and hands
        # it to every worker, so uncached scorers still score each pair once in total.
        self.store: str | None = workerinput.get("rmgap_store") if workerinput else None
        self.run_id: str = workerinput.get("rmgap_run_id") if workerinput else uuid.uuid4().hex
        self.watcher: Any = None  # the controller's progress display of the workers' scoring

    def pytest_report_header(self) -> list[str]:
        from .items import header_lines

        return header_lines(self.gate)

    @pytest.hookimpl(tryfirst=True)  # before -k/-m/--deselect filter the items
    def pytest_collection_modifyitems(self, session: pytest.Session, config: pytest.Config, items: list) -> None:
        from .items import collect_gate_items, keep_selected

        items.extend(collect_gate_items(session, self.gate))
        if self.selected:
            keep_selected(config, items, self.selected)

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session: pytest.Session) -> None:
        """Score once, before the first gate item runs (each xdist worker shares the work)."""
        if self.config.option.collectonly:
            return
        if _is_controller(self.config):  # only the controller draws the workers' progress
            self.watcher = self.gate.watch_workers(self.store, self.run_id)
            return
        if any(i.nodeid.startswith(PREFIX) for i in session.items):
            self._prepare()

    @pytest.hookimpl(tryfirst=True)  # before JUnit reads the failure's message
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        from .items import one_line_summary

        one_line_summary(report)

    @pytest.hookimpl(trylast=True, specname="pytest_runtest_logreport")  # -v prints the worker from rep.node
    def pytest_runtest_logreport_last(self, report: pytest.TestReport) -> None:
        if not report.nodeid.startswith(PREFIX):
            return
        if report.when == "call" or report.when == "setup" and report.failed:
            self.gate.ran.add(report.nodeid.removeprefix(PREFIX))
        # Under xdist every failure's summary would open with "[gw1] linux -- Python ...": one line per
        # failing cell, about a fifth of a failing run's output, saying which worker read the shared result.
        report.__dict__.pop("node", None)

    def result_for_fixture(self) -> "RMGapResult":
        from .items import GateError
        from .result import RMGapResult

        self.fixture_used = True
        self._prepare()
        if self.gate.error is not None:
            raise GateError(self.gate.error)
        assert self.gate.result is not None
        return RMGapResult(self.gate.result.evaluation, self.gate.bench, self.gate.result.checks)

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.worker_id is not None:
            output = self.config.workeroutput  # type: ignore[attr-defined]
            output["rmgap_error"] = self.gate.error
            output["rmgap_seconds"] = self.gate.scoring_seconds()
            output["rmgap_fixture"] = self.fixture_used
            return
        if self.watcher is not None:
            self.watcher.stop()
        if self.worker_error is not None:
            self.gate.error = self.worker_error  # do not load the model again to hit the same error
        elif _is_controller(self.config) and (self.gate.ran or self.fixture_used):
            self._prepare()  # the workers stored every score: this reads them, no model work
            self.gate.set_scoring_seconds(max(self.worker_seconds, default=None))
        self.gate.finish()
        if self.gate.error is not None and (self.gate.ran or self.fixture_used):
            from .session import EXIT_SCORING_FAILED

            session.exitstatus = EXIT_SCORING_FAILED  # "broke", not "regressed": CI can tell them apart

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.worker_id is None and (self.gate.result is not None or self.gate.error):
            from .items import write_summary

            write_summary(terminalreporter, self.gate)

    def pytest_unconfigure(self) -> None:
        if self.worker_id is None and self.store is not None:  # the controller's run-scoped store
            shutil.rmtree(Path(self.store).parent, ignore_errors=True)

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        output = getattr(node, "workeroutput", None) or {}
        if output.get("rmgap_error"):
            self.worker_error = output["rmgap_error"]
        if output.get("rmgap_seconds") is not None:
            self.worker_seconds.append(output["rmgap_seconds"])
        self.fixture_used = self.fixture_used or bool(output.get("rmgap_fixture"))

    @pytest.hookimpl(optionalhook=True)  # an xdist hook: pytest without xdist must not reject it
    def pytest_configure_node(self, node: Any) -> None:
        if self.store is None:
            self.store = str(Path(tempfile.mkdtemp(prefix="rmgap-run-")) / "scores.sqlite")
        node.workerinput["rmgap_store"] = self.store
        node.workerinput["rmgap_run_id"] = self.run_id
        node.workerinput["rmgap_width"] = self.config.get_terminal_writer().fullwidth  # workers have no terminal

    def _prepare(self) -> None:
        from .items import prepare_with_progress
        from .placement import worker_placement

        workers = int(getattr(self.config, "workerinput", {}).get("workercount", 1))
        prepare_with_progress(self.config, self.gate, self.store, self.run_id, None, self.worker_id is not None,
                              worker_placement(self.worker_id, workers, self.gate.settings))


def _is_controller(config: pytest.Config) -> bool:
    """The xdist process that hands out items and runs none itself."""
    return (not hasattr(config, "workerinput") and config.pluginmanager.hasplugin("dsession")
            and getattr(config.option, "dist", "no") != "no")
