"""The gate's options, once: the pytest flags, the ``rmgap eval`` flags, ini keys and variables.

Both tools are generated from ``OPTIONS``, so a flag means the same thing in
both, ``rmgap eval`` accepts the pytest spelling too (``--rm-dtype`` and
``--dtype``), and an error message can name the flag of the tool that is
running (``flag``). Values are checked here, with messages that name where the
value came from (the flag, the ini key or the environment variable).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import RMGapError, did_you_mean

__all__ = ["OPTIONS", "Option", "OTHER_ENV", "UsageError", "by_name", "check_value", "flag", "flag_name", "gate_env",
           "set_tool", "stray_settings", "tool"]


class UsageError(RMGapError):
    """An option value that cannot be used (bad number, unknown choice, options without a model)."""


@dataclass(frozen=True)
class Option:
    """One setting. ``name`` is the ini key and the ``GateSettings``/scorer field; ``pytest`` its pytest
    flag; ``cli`` the spelling ``rmgap eval`` prefers (it accepts ``pytest`` too), None when only pytest has it.
    ``scorer``: the ``ScorerOptions`` field it sets. ``path``: a relative value in the ini file is resolved
    against the ini file's directory."""

    name: str
    pytest: str
    cli: str | None
    env: str | None
    metavar: str | None  # None: an on/off flag
    help: str
    kind: str = "str"  # str | int (positive) | float | choice | flag
    choices: tuple[str, ...] = ()
    scorer: str | None = None
    path: bool = False


_SPEC_HELP = ("reward model: a model directory, a Hugging Face hub id already in the local HF cache (org/name), "
              "classifier:PATH, logprob:PATH, dpo:PATH, builtin:length|random|minilm, python:MODULE:ATTR, "
              "http(s)://URL, vllm:URL or sglang:URL, or an LLM judge verifier:|judge:|ranker: + a model "
              "directory or an OpenAI-compatible base URL (docs/judges.md)")

OPTIONS: tuple[Option, ...] = (
    Option("rm_model", "--rm-model", "--rm-model", "RMGAP_MODEL", "SPEC", _SPEC_HELP + ". Turns the gate on.",
           path=True),
    Option("rm_ref_model", "--rm-ref-model", "--ref-model", "RMGAP_REF_MODEL", "PATH", "reference model for dpo:",
           scorer="ref_model", path=True),
    Option("rm_device", "--rm-device", "--device", "RMGAP_DEVICE", "DEVICE", "auto (default), cpu, cuda or cuda:N",
           scorer="device"),
    Option("rm_device_map", "--rm-device-map", "--device-map", "RMGAP_DEVICE_MAP", "MAP",
           "split one model across this machine's GPUs: auto, balanced, balanced_low_0 or sequential "
           "(transformers' device_map; needs accelerate)", kind="choice",
           choices=("auto", "balanced", "balanced_low_0", "sequential"), scorer="device_map"),
    Option("rm_dtype", "--rm-dtype", "--dtype", "RMGAP_DTYPE", "DTYPE", "auto (default), float32, bfloat16 or "
           "float16", kind="choice", choices=("auto", "float32", "bfloat16", "float16"), scorer="dtype"),
    Option("rm_batch_size", "--rm-batch-size", "--batch-size", None, "N",
           "fixed pairs per batch (default: a token budget)", kind="int", scorer="batch_size"),
    Option("rm_max_length", "--rm-max-length", "--max-length", None, "N",
           "tokens per pair; longer prompts lose their start; more than the model's positions is refused",
           kind="int", scorer="max_length"),
    Option("rm_aggregate", "--rm-aggregate", "--aggregate", None, "HOW", "logprob: mean (default), sum or "
           "discounted_sum; dpo: sum (default) or these", kind="choice", choices=("mean", "sum", "discounted_sum"),
           scorer="aggregate"),
    Option("rm_beta", "--rm-beta", "--beta", None, "B", "dpo: beta of the DPO implicit reward beta * (policy - "
           "reference) log-probs (default 0.1)", kind="float", scorer="beta"),
    Option("rm_chat_template", "--rm-chat-template", "--chat-template", None, "FILE",
           "a Jinja chat template used instead of the tokenizer's (classifier, logprob, dpo)",
           scorer="chat_template", path=True),
    Option("rm_pool", "--rm-pool", "--pool", None, "POOL", "classifier: read the reward at the pair's last token "
           "(last, default) or at the last token that is not the pad id (last_non_pad, transformers' rule)",
           kind="choice", choices=("last", "last_non_pad"), scorer="pool"),
    Option("rm_add_bos", "--rm-add-bos", "--add-bos", None, None, "chat templates: prepend the tokenizer's BOS "
           "when the template does not write it", kind="flag", scorer="add_bos"),
    Option("rm_label", "--rm-label", "--label", None, "K", "classifier: the logit of a multi-label head to score "
           "with (0-based)", kind="index", scorer="label"),
    Option("rm_trust_remote_code", "--rm-trust-remote-code", "--trust-remote-code", None, None,
           "run the model repository's own Python code (off by default)", kind="flag", scorer="trust_remote_code"),
    Option("rm_allow_pickle", "--rm-allow-pickle", "--allow-pickle", None, None,
           "load *.bin/*.pt weights (default: safetensors only)", kind="flag", scorer="allow_pickle"),
    Option("rm_scorer_version", "--rm-scorer-version", "--scorer-version", None, "V",
           "python: and http(s): scorers are cached only under a version (vllm:/sglang: it replaces the "
           "server's reported identity)", scorer="version"),
    Option("rm_concurrency", "--rm-concurrency", "--concurrency", "RMGAP_CONCURRENCY", "N",
           "remote kinds: requests in flight (default 16; http(s): 1)", kind="int", scorer="concurrency"),
    Option("rm_api_model", "--rm-api-model", "--api-model", "RMGAP_API_MODEL", "NAME",
           "remote kinds: the served model name to request", scorer="api_model"),
    Option("rm_tokenizer", "--rm-tokenizer", "--tokenizer", None, "DIR", "vllm:/sglang: render and truncate on "
           "the client with this model directory's tokenizer files and config.json, and send token ids",
           scorer="tokenizer", path=True),
    Option("rm_judge_template", "--rm-judge-template", "--judge-template", None, "FILE",
           "verifier/judge/ranker: a prompt template file replacing the default (docs/judges.md)",
           scorer="judge_template", path=True),
    Option("rm_judge_score", "--rm-judge-score", "--judge-score", None, "HOW", "judge: rating (default) or "
           "expected (probability-weighted rating; needs log-probs)", kind="choice", choices=("rating", "expected"),
           scorer="judge_score"),
    Option("rm_judge_max_tokens", "--rm-judge-max-tokens", "--judge-max-tokens", None, "N",
           "judge/ranker: tokens per answer (default 2048, room to reason)", kind="int", scorer="judge_max_tokens"),
    Option("rm_ranker_orders", "--rm-ranker-orders", "--ranker-orders", None, "N", "ranker: orders each item is "
           "asked in, ranks averaged (default 1; 4 = every position once)", kind="int", scorer="ranker_orders"),
    Option("rmgap_data", "--rmgap-data", "--data", "RMGAP_DATA", "PATH",
           "RMGAP JSONL file or JSON array (default: the embedded sample)", path=True),
    Option("rmgap_limit", "--rmgap-limit", "--limit", "RMGAP_LIMIT", "N", "score a seeded subset of N records, "
           "stratified by domain (a quick smoke check; the report says it is a subset)", kind="int"),
    Option("rmgap_thresholds", "--rmgap-thresholds", "--thresholds", "RMGAP_THRESHOLDS", "PATH",
           "thresholds YAML (default: thresholds.yaml in the rootdir if there is one, else the one shipped with "
           "rmgap-pytest)", path=True),
    Option("rmgap_report", "--rmgap-report", "--out", "RMGAP_REPORT", "DIR",
           "directory for metrics.json, report.json, report.md, report.html, heatmap.png", path=True),
    Option("rmgap_baseline", "--rmgap-baseline", "--baseline", "RMGAP_BASELINE", "PATH",
           "report.json of the accepted run to compare with, or 'last': the last accepted run in --rmgap-history",
           path=True),
    Option("rmgap_update_baseline", "--rmgap-update-baseline", "--update-baseline", None, None,
           "write this run to --rmgap-baseline (after comparing, when the data is the same)", kind="flag"),
    Option("rmgap_history", "--rmgap-history", "--history", "RMGAP_HISTORY", "DIR",
           "keep this run's report in a history directory (see `rmgap history`)", path=True),
    Option("rmgap_cache", "--rmgap-cache", "--cache", "RMGAP_CACHE", "PATH",
           "score cache file, or 'off' (default: ~/.cache/rmgap-pytest/scores.sqlite)", path=True),
)

# Variables that are not gate options (the CLI and the Python API read them too, or they hold secrets):
# set without --rm-model they are not a mistake. Other modules' variables belong here.
OTHER_ENV: tuple[str, ...] = ("RMGAP_CACHE", "RMGAP_HISTORY", "RMGAP_DEBUG", "RMGAP_REMOTE_TOKEN", "RMGAP_API_KEY",
                              "RMGAP_BENCH_LOG")

_BY_NAME = {o.name: o for o in OPTIONS}
_TOOL: list[str | None] = [None]  # "pytest", "rmgap" or None (the Python API)


def by_name(name: str) -> Option:
    return _BY_NAME[name]


def set_tool(name: str | None) -> None:
    """Which tool is running, so that messages name its flags (None: the Python API; both are named)."""
    _TOOL[0] = name


def tool() -> str | None:
    return _TOOL[0]


def _scorer_option(field: str) -> Option:
    return next(o for o in OPTIONS if o.scorer == field)


def flag(field: str) -> str:
    """The flag to pass for a ScorerOptions field (or option name), in the running tool's spelling.

    ``flag("label")``: ``--rm-label K`` under pytest, ``--label K`` under ``rmgap eval``,
    both under the Python API.
    """
    o = _BY_NAME.get(field) or _scorer_option(field)
    arg = f" {o.metavar}" if o.metavar else ""
    pytest_flag, cli_flag = f"{o.pytest}{arg}", f"{o.cli or o.pytest}{arg}"
    if _TOOL[0] == "pytest":
        return pytest_flag
    if _TOOL[0] == "rmgap":
        return cli_flag
    return f"pytest {pytest_flag}; rmgap eval {cli_flag}"


def flag_name(name: str) -> str:
    """The bare flag of an option in the running tool's spelling (pytest's under the Python API)."""
    o = _BY_NAME.get(name) or _scorer_option(name)
    return (o.cli or o.pytest) if _TOOL[0] == "rmgap" else o.pytest


def check_value(o: Option, value: Any, where: str) -> Any:
    """A raw value (text from the command line, the ini file or the environment) as its type.

    ``where`` names the source in messages (``--rm-batch-size``, ``rm_batch_size in pytest.ini``, ...).
    """
    if value is None:
        return None
    if o.kind == "flag":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off", ""):
            return False
        raise UsageError(f"{where}: {value!r} is not true or false.")
    text = str(value).strip()
    if o.kind == "int":
        if not text.isdigit() or int(text) < 1:
            raise UsageError(f"{where}: {value!r} is not a positive integer.")
        return int(text)
    if o.kind == "index":
        if not text.isdigit():
            raise UsageError(f"{where}: {value!r} is not a logit index (0, 1, ...).")
        return int(text)
    if o.kind == "float":
        try:
            return float(text)
        except ValueError:
            raise UsageError(f"{where}: {value!r} is not a number.") from None
    if o.kind == "choice" and text not in o.choices:
        raise UsageError(f"{where}: {value!r} is not one of {', '.join(o.choices)}.{did_you_mean(text, o.choices)}")
    return text


def gate_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The ``RMGAP_*`` variables that are set (non-empty)."""
    env = os.environ if environ is None else environ
    return {k: v for k, v in env.items() if k.startswith("RMGAP_") and v}


def stray_settings(given: Iterable[str], has_model: bool, environ: Mapping[str, str] | None = None) -> str | None:
    """The usage error for gate settings without a model, or for an unknown ``RMGAP_*`` variable; None if fine.

    ``given``: the pytest flags set on the command line; ``has_model``: a model is given anywhere. A model given nowhere turns the
    gate off, so flags and variables that configure it would be ignored without a word
    (a misspelt RMGAP_MODEL turns the gate off in CI).
    """
    env = gate_env(environ)
    known = list(dict.fromkeys([o.env for o in OPTIONS if o.env] + list(OTHER_ENV)))
    unknown = sorted(k for k in env if k not in known)
    given = list(given)
    if unknown:
        hints = " ".join(f"{k}: {did_you_mean(k, known).strip() or 'not a variable rmgap-pytest reads.'}"
                         for k in unknown)
        return (f"unknown environment variable{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} ({hints}) "
                f"rmgap-pytest reads {', '.join(known)}. Fix: correct the name, or unset it.")
    if has_model:
        return None
    gate_vars = sorted(k for k in env if k not in OTHER_ENV)
    if not given and not gate_vars:
        return None
    named = [*given, *gate_vars]
    return (f"{', '.join(named)} {'is' if len(named) == 1 else 'are'} set but no reward model is given, so the "
            "gate would not run and the job would stay green without checking anything. Gate options need "
            "--rm-model=SPEC (or RMGAP_MODEL, or rm_model in the ini file); a misspelt one is the usual cause. "
            "Fix: pass --rm-model, or drop those options (-p no:rmgap turns the plugin off entirely).")
