"""pytest hooks: thin, each hands off to ``GateSession``.

Without ``--rm-model`` (or its ini/env equivalents) every hook returns at
once, so a project's ordinary test suite runs exactly as before.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:  # the gate's modules import pandas; load them only when a model is given
    from .session import GateSession, GateSettings

PREFIX = "rmgap::"

# (option, ini name, environment variable or None, help)
OPTIONS: list[tuple[str, str, str | None, str]] = [
    ("--rm-model", "rm_model", "RMGAP_MODEL", "reward model spec: a model directory, classifier:PATH, "
     "logprob:PATH, dpo:PATH, builtin:length|random|minilm or python:MODULE:ATTR. Turns the gate on."),
    ("--rm-ref-model", "rm_ref_model", "RMGAP_REF_MODEL", "reference model for dpo:"),
    ("--rm-device", "rm_device", "RMGAP_DEVICE", "auto (default), cpu, cuda or cuda:N"),
    ("--rm-dtype", "rm_dtype", "RMGAP_DTYPE", "auto (default), float32, bfloat16 or float16"),
    ("--rm-batch-size", "rm_batch_size", None, "fixed pairs per batch (default: a token budget)"),
    ("--rm-max-length", "rm_max_length", None, "tokens per pair; longer prompts lose their start"),
    ("--rm-aggregate", "rm_aggregate", None, "logprob: mean (default), sum or discounted_sum; dpo: sum (default)"),
    ("--rm-beta", "rm_beta", None, "dpo: beta of the DPO implicit reward beta * (policy - reference) log-probs "
     "(default 0.1)"),
    ("--rm-chat-template", "rm_chat_template", None, "a Jinja chat template FILE used instead of the tokenizer's "
     "(classifier, logprob, dpo)"),
    ("--rm-pool", "rm_pool", None, "classifier: read the reward at the pair's last token (last, default) or at "
     "the last token that is not the pad id (last_non_pad, transformers' rule)"),
    ("--rm-add-bos", "rm_add_bos", None, "chat templates: prepend the tokenizer's BOS when the template does not "
     "write it"),
    ("--rm-label", "rm_label", None, "classifier: the logit of a multi-label head to score with (0-based)"),
    ("--rm-trust-remote-code", "rm_trust_remote_code", None, "run the model repository's own code"),
    ("--rm-allow-pickle", "rm_allow_pickle", None, "load *.bin/*.pt weights (default: safetensors only)"),
    ("--rm-scorer-version", "rm_scorer_version", None, "python: and http(s): scorers are cached only under a version (vllm:/sglang: it replaces the server's "
     "reported identity)"),
    ("--rm-concurrency", "rm_concurrency", "RMGAP_CONCURRENCY", "remote kinds: requests in flight (default 16; "
     "http(s): 1)"),
    ("--rm-api-model", "rm_api_model", "RMGAP_API_MODEL", "remote kinds: the served model name to request"),
    ("--rm-tokenizer", "rm_tokenizer", None, "vllm:/sglang: render and truncate on the client with this model "
     "directory's tokenizer files and config.json, and send token ids"),
    ("--rmgap-data", "rmgap_data", "RMGAP_DATA", "RMGAP JSONL file (default: the embedded sample)"),
    ("--rmgap-thresholds", "rmgap_thresholds", "RMGAP_THRESHOLDS", "thresholds YAML (default: built-in)"),
    ("--rmgap-report", "rmgap_report", "RMGAP_REPORT", "directory for metrics.json, report.json/.md/.html"),
    ("--rmgap-baseline", "rmgap_baseline", "RMGAP_BASELINE", "report.json of the accepted run to compare with"),
    ("--rmgap-update-baseline", "rmgap_update_baseline", None, "write this run as the baseline"),
    ("--rmgap-cache", "rmgap_cache", "RMGAP_CACHE", "score cache file, or 'off' (default: "
     "~/.cache/rmgap-pytest/scores.sqlite)"),
]
_FLAGS = {"--rm-trust-remote-code", "--rm-allow-pickle", "--rmgap-update-baseline", "--rm-add-bos"}
_AGGREGATES = ("mean", "sum", "discounted_sum")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("rmgap", "RMGAP reward-model gate")
    for opt, ini, env, help_ in OPTIONS:
        env_note = f" [env {env}]" if env else ""
        if opt in _FLAGS:
            group.addoption(opt, action="store_true", default=None, dest=ini, help=help_)
            parser.addini(ini, help_, type="bool", default=False)
        else:
            group.addoption(opt, default=None, dest=ini, metavar="VALUE", help=help_ + env_note)
            parser.addini(ini, help_ + env_note, default=None)


def _value(config: pytest.Config, ini: str, env: str | None) -> Any:
    """Command line, then environment, then ini."""
    value = config.getoption(ini)
    if value is None and env:
        value = os.environ.get(env) or None
    if value is None:
        value = config.getini(ini) or None
    return value


def settings_from_config(config: pytest.Config) -> "GateSettings | None":
    values = {ini: _value(config, ini, env) for _, ini, env, _ in OPTIONS}
    if not values["rm_model"]:
        return None
    from .session import GateSettings
    ints = {}
    if values["rm_aggregate"] is not None and values["rm_aggregate"] not in _AGGREGATES:
        raise pytest.UsageError(f"--rm-aggregate: {values['rm_aggregate']!r} is not one of "
                                f"{', '.join(_AGGREGATES)}.")
    if values["rm_label"] is not None and not str(values["rm_label"]).strip().isdigit():
        raise pytest.UsageError(f"--rm-label: {values['rm_label']!r} is not a logit index (0, 1, ...).")
    beta = None
    if values["rm_beta"] is not None:
        try:
            beta = float(values["rm_beta"])
        except ValueError:
            raise pytest.UsageError(f"--rm-beta: {values['rm_beta']!r} is not a number.") from None
    for name in ("rm_batch_size", "rm_max_length", "rm_concurrency"):
        if values[name] is not None:
            text = str(values[name]).strip()
            if not text.isdigit() or int(text) < 1:
                raise pytest.UsageError(f"--{name.replace('_', '-')}: {values[name]!r} is not a positive "
                                        "integer.")
            ints[name] = int(text)
    options = dict(ref_model=values["rm_ref_model"], device=values["rm_device"], dtype=values["rm_dtype"],
                   batch_size=ints.get("rm_batch_size"), max_length=ints.get("rm_max_length"),
                   trust_remote_code=bool(values["rm_trust_remote_code"]) or None,
                   allow_pickle=bool(values["rm_allow_pickle"]) or None, aggregate=values["rm_aggregate"],
                   label=int(values["rm_label"]) if values["rm_label"] is not None else None,
                   beta=beta, chat_template=values["rm_chat_template"], pool=values["rm_pool"],
                   add_bos=bool(values["rm_add_bos"]) or None,
                   version=values["rm_scorer_version"], concurrency=ints.get("rm_concurrency"),
                   api_model=values["rm_api_model"], tokenizer=values["rm_tokenizer"])
    return GateSettings(model=values["rm_model"], data=values["rmgap_data"], thresholds=values["rmgap_thresholds"],
                        report=values["rmgap_report"], baseline=values["rmgap_baseline"],
                        update_baseline=bool(values["rmgap_update_baseline"]), cache=values["rmgap_cache"],
                        scorer_options={k: v for k, v in options.items() if v is not None})


def pytest_configure(config: pytest.Config) -> None:
    settings = settings_from_config(config)
    if settings is None:
        return
    from .errors import RMGapError
    from .session import GateSession

    try:
        session = GateSession.from_settings(settings)
    except RMGapError as exc:
        raise pytest.UsageError(f"rmgap: {exc}") from None
    config.addinivalue_line("markers", "rmgap: an RMGAP gate check (select with -m rmgap)")
    config.pluginmanager.register(GatePlugin(config, session), "rmgap-gate")


class GatePlugin:
    """The hooks that need the gate's state; registered only when a model is given."""

    def __init__(self, config: pytest.Config, session: "GateSession") -> None:
        self.config = config
        self.gate = session
        self.worker_error: str | None = None  # a worker's scoring error, reported to the controller
        self.worker_seconds: list[float] = []  # the workers' scoring times (the controller only reads)
        workerinput = getattr(config, "workerinput", None)
        self.worker_id = workerinput["workerid"] if workerinput else None
        # Under xdist the controller makes a run-scoped store (pytest_configure_node) and hands
        # it to every worker, so uncached scorers still score each pair once in total.
        self.store: str | None = workerinput.get("rmgap_store") if workerinput else None
        self.run_id: str = workerinput.get("rmgap_run_id") if workerinput else uuid.uuid4().hex
        self.watcher: Any = None  # the controller's progress display of the workers' scoring

    def pytest_report_header(self) -> list[str]:
        b, gate = self.gate.bench, self.gate
        return [f"rmgap: model {gate.settings.model}; data {b.path} ({len(b.records)} records, {b.n_items} items, "
                f"sha256 {b.sha256[:12]}); thresholds {gate.thresholds.source}; {len(gate.checks)} checks"]

    @pytest.hookimpl(tryfirst=True)  # before -k/-m/--deselect filter the items
    def pytest_collection_modifyitems(self, session: pytest.Session, items: list) -> None:
        from .items import collect_gate_items

        items.extend(collect_gate_items(session, self.gate))

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

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.nodeid.startswith(PREFIX) and report.when == "call":
            self.gate.ran.add(report.nodeid.removeprefix(PREFIX))

    def pytest_sessionfinish(self) -> None:
        if self.worker_id is not None:
            self.config.workeroutput["rmgap_error"] = self.gate.error  # type: ignore[attr-defined]
            self.config.workeroutput["rmgap_seconds"] = self.gate.scoring_seconds()  # type: ignore[attr-defined]
            return
        if self.watcher is not None:
            self.watcher.stop()
        if self.worker_error is not None:
            self.gate.error = self.worker_error  # do not load the model again to hit the same error
        elif _is_controller(self.config) and self.gate.ran:
            self._prepare()  # the workers stored every score: this reads them, no model work
            self.gate.set_scoring_seconds(max(self.worker_seconds, default=None))
        self.gate.finish()

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

    @pytest.hookimpl(optionalhook=True)  # an xdist hook: pytest without xdist must not reject it
    def pytest_configure_node(self, node: Any) -> None:
        if self.store is None:
            self.store = str(Path(tempfile.mkdtemp(prefix="rmgap-run-")) / "scores.sqlite")
        node.workerinput["rmgap_store"] = self.store
        node.workerinput["rmgap_run_id"] = self.run_id
        node.workerinput["rmgap_width"] = self.config.get_terminal_writer().fullwidth  # workers have no terminal

    def _prepare(self) -> None:
        from .items import prepare_with_progress
        from .session import worker_placement

        workers = int(getattr(self.config, "workerinput", {}).get("workercount", 1))
        prepare_with_progress(self.config, self.gate, self.store, self.run_id, None, self.worker_id is not None,
                              worker_placement(self.worker_id, workers, self.gate.settings))


def _is_controller(config: pytest.Config) -> bool:
    """The xdist process that hands out items and runs none itself."""
    return (not hasattr(config, "workerinput") and config.pluginmanager.hasplugin("dsession")
            and getattr(config.option, "dist", "no") != "no")
