"""Asking a model about companies on a date, through the decision log: what is logged is never
asked again, what is new is asked in one batch and logged as each result arrives.

Used by strategies/llm.py inside 03 and by `python -m equity_backtest.llm` to log decisions ahead
of a backtest (the served, batched path for large runs).
"""

from __future__ import annotations

import atexit
import hashlib
import json
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from ..config import Parameters
from ..errors import BadInputError
from . import answers, cutoffs
from .backends import OpenAIBackend, Request, Sampling, TransformersBackend, VLLMBackend
from .decision_log import DecisionLog, decision_key, read_records
from .prompts import Prompt, build_prompts, load_template
from .spec import LlmSpec, llm_spec

log = logging.getLogger(__name__)
_OPEN: dict[tuple, tuple] = {}  # one backend and log per process and settings
USED: dict[str, dict] = {}  # decisions handed to a strategy in this run (runner: forget_used)
RUN_COLUMNS = [
    "key", "as_of", "ticker", "model_id", "revision", "quantisation", "prompt_version",
    "sampling", "window", "status", "decision", "confidence", "reason",
]  # fmt: skip


def sampling(settings: Parameters | LlmSpec) -> Sampling:
    spec = llm_spec(settings)
    return Sampling(
        spec.max_new_tokens,
        spec.temperature,
        1.0,
        spec.seed,
        spec.repetition_penalty,
    )


def make_backend(settings: Parameters | LlmSpec):
    """The backend parameters.py names (loaded once per process)."""
    spec = llm_spec(settings)
    if not spec.model:
        raise BadInputError("llm_model is empty: name a model folder, hub id or s3:// URL")
    # what the two local backends share: the weights, their precision and the decoding rules
    local = dict(
        dtype=spec.dtype, quantisation=spec.quantisation, sampling=sampling(spec),
        constrained=spec.constrained, reasoning=spec.reasoning, cache_dir=spec.cache_dir,
    )  # fmt: skip
    if spec.backend == "transformers":
        return TransformersBackend(
            spec.model, gguf_file=spec.gguf_file, batch_size=spec.batch_size, **local
        )
    if spec.backend == "vllm":
        return VLLMBackend(
            spec.model,
            tensor_parallel=spec.tensor_parallel,
            max_model_len=spec.max_model_len,
            **local,
        )
    if spec.backend == "openai":
        return OpenAIBackend(
            spec.base_url,
            spec.model,
            concurrency=spec.concurrency,
            retries=spec.retries,
            sampling=sampling(spec),
            constrained=spec.constrained,
            timeout_s=spec.timeout_s,
        )
    raise BadInputError(f"llm_backend {spec.backend!r}: use one of {', '.join(BACKENDS)}")


def model_revision(settings: Parameters | LlmSpec) -> str:
    """What exactly answered, for the decision key and the record: for a local model folder a
    hash of its config and of its files' names and sizes ("folder:<hash>"), so re-downloaded or
    re-quantised weights are a new revision; a hub id's commit hash when the local hub cache
    has it; for a server, "server"."""
    spec = llm_spec(settings)
    if spec.backend == "openai":
        return "server"
    folder = Path(spec.model)
    if folder.is_dir():
        h = hashlib.sha256()
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            h.update(f"{path.relative_to(folder)}:{path.stat().st_size}\n".encode())
            if path.name in ("config.json", "generation_config.json"):
                h.update(path.read_bytes())
        return f"folder:{h.hexdigest()[:16]}"
    try:  # a hub id: the commit the local cache resolved it to
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(spec.model, "config.json")
        if isinstance(cached, str):
            return f"hub:{Path(cached).parent.name[:16]}"
    except (ImportError, ValueError):  # no hub client, or a name that is no hub id (a typo'd path)
        pass
    return "unknown"


BACKENDS = ("transformers", "vllm", "openai")
_WARNED: set[str] = set()  # models whose unknown cutoff was reported in this process


class LazyBackend:
    """A backend that is made (a model loaded, a server contacted) only when a prompt has to be
    asked: replaying a decision log needs no GPU and no server. Its identity (model, revision,
    quantisation: what decision keys are made of) is known from the settings alone."""

    def __init__(self, settings: Parameters | LlmSpec):
        spec = llm_spec(settings)
        if not spec.model:
            raise BadInputError("llm_model is empty: name a model folder, hub id or s3:// URL")
        if spec.backend not in BACKENDS:
            raise BadInputError(f"llm_backend {spec.backend!r}: use one of {', '.join(BACKENDS)}")
        self._spec = spec
        self._backend = None
        self.model_id = spec.model
        self.revision = model_revision(spec)
        local = spec.backend in ("transformers", "vllm")
        self.quantisation = spec.quantisation if local else None

    @property
    def loaded(self) -> bool:
        return self._backend is not None

    def generate(self, requests):
        if self._backend is None:
            self._backend = make_backend(self._spec)
        yield from self._backend.generate(requests)


def open_session(settings: Parameters | LlmSpec):
    """(backend, decision log) for these settings, kept for the life of the process. The backend
    is lazy: nothing is loaded until a decision is missing from the log."""
    spec = llm_spec(settings)
    # everything that makes another backend: one process may compare two ways of decoding
    key = (
        spec.model,
        spec.decisions_dir,
        spec.quantisation,
        decoding(spec),
        sampling(spec).label(),
    )
    if key not in _OPEN:
        backend = LazyBackend(spec)
        decisions = DecisionLog(
            spec.decisions_dir, sync_to=spec.sync_to, store_wait_s=spec.store_timeout_s
        )
        if not _OPEN:
            atexit.register(close_sessions)
        _OPEN[key] = (backend, decisions)
    return _OPEN[key]


def close_sessions() -> None:
    """Close every open session's decision log (its open shard rolled and uploaded) and forget
    the sessions: run at exit, and by whoever is done with a decisions folder before then."""
    while _OPEN:
        _, (_, decisions) = _OPEN.popitem()
        decisions.close()
    atexit.unregister(close_sessions)


def decoding(settings: Parameters | LlmSpec) -> str:
    """How the answer is decoded, beyond the model and sampling: the backend, the weights' dtype
    and GGUF file, constrained decoding, reasoning first, the context length. Each can change an
    answer (constraints off, a truncated reply came back where a constrained one had not), so
    each is in the decision key."""
    spec = llm_spec(settings)
    return json.dumps(
        {
            "backend": spec.backend,
            "dtype": spec.dtype,
            "gguf_file": spec.gguf_file,
            "constrained": spec.constrained,
            "reasoning": spec.reasoning,
            "max_model_len": spec.max_model_len,
        },
        sort_keys=True,
    )


def record_base(backend, prompt: Prompt, settings: Parameters | LlmSpec) -> dict:
    spec = llm_spec(settings)
    base = {
        "model_id": backend.model_id,
        "revision": backend.revision,
        "quantisation": backend.quantisation,
        "prompt_version": prompt.version,
        "ticker": prompt.ticker,
        "as_of": prompt.as_of,
        "sampling": sampling(spec).label(),
        "prompt_sha": prompt.sha,
        "decoding": decoding(spec),
        "dataset_version": prompt.dataset_version,
    }
    base["key"] = decision_key(base)
    return base


def ask(
    backend,
    prompts: list[Prompt],
    decisions: DecisionLog,
    settings: Parameters | LlmSpec,
    progress: bool = False,
) -> dict[str, int]:
    """Ask for every prompt whose key is not logged; log each result as it arrives."""
    spec = llm_spec(settings)
    model_cutoff = cutoffs.cutoff(backend.model_id, spec.cutoff_dates)
    if model_cutoff is None and backend.model_id not in _WARNED:
        _WARNED.add(backend.model_id)
        log.warning(
            "the training cutoff of %s is unknown: its decisions are flagged 'unknown' and "
            "whether it read about these companies' later fortunes cannot be judged; set "
            'llm_cutoffs = {"<model name>": "YYYY-MM-DD"} in parameters.py',
            backend.model_id,
        )
    bases = {}
    for p in prompts:
        base = record_base(backend, p, spec)
        if base["key"] not in decisions.done:
            bases[base["key"]] = (base, p)
    counts = {"asked": len(bases), "already_logged": len(prompts) - len(bases)}
    if not bases:
        return counts
    requests = [Request(k, p.messages()) for k, (_, p) in bases.items()]
    started, fractional = time.perf_counter(), 0
    bar = tqdm(total=len(requests), desc="LLM decisions", unit="prompt", disable=not progress)
    for result in backend.generate(requests):
        base, prompt = bases[result.key]
        if result.finish_reason == "error":
            answer = answers.Answer("error", error=result.error)
        else:
            answer = answers.parse(
                result.text, truncated=result.finish_reason == "length", reasoning=spec.reasoning
            )
            if answer.confidence is not None and 0 < answer.confidence < 1:
                fractional += 1
        decisions.append(
            {
                **base,
                "status": answer.status,
                "decision": answer.decision,
                "confidence": answer.confidence,
                "reason": answer.reason,
                "ratios": answer.ratios,
                "error": answer.error,
                "raw": result.text,
                "finish_reason": result.finish_reason,
                "prompt_tokens": result.prompt_tokens,
                "completion_tokens": result.completion_tokens,
                "latency_s": round(result.latency_s, 4),
                "window": cutoffs.window_flag(prompt.as_of, model_cutoff),
            }
        )
        bar.update(1)
        elapsed = time.perf_counter() - started
        bar.set_postfix(prompts_per_s=f"{bar.n / elapsed:.2f}" if elapsed else "-")
    bar.close()
    if fractional:
        log.warning(
            "%d of %d answers gave a confidence between 0 and 1 on the 0-100 scale the prompt "
            "asks for; they are kept as given (low), not rescaled. If the model answers on a 0-1 "
            "scale, use a template that asks for it or lower llm_min_confidence",
            fractional,
            len(requests),
        )
    return counts


def run_decisions(panel, settings: Parameters | LlmSpec, days) -> pd.DataFrame:
    """The logged decisions a run of strategies/llm.py used: for each rebalance day, the prompts
    of that day's universe (the ones the strategy asked), matched by key in the decision log.
    Rebuilt from the panel, so a run resumed from a checkpoint gets them all too."""
    from ..engine.view import View

    spec = llm_spec(settings)
    backend = LazyBackend(spec)  # keys only: nothing is loaded
    latest = {r["key"]: r for r in read_records(spec.decisions_dir)}  # open shards too
    template = load_template(spec.prompt)
    rows = []
    for t in days:
        view = View(panel, int(t), np.zeros(len(panel.tickers)), 0.0, spec.lookback_days)
        for prompt in build_prompts(view, template, None, spec.periods, spec.statements):
            record = latest.get(record_base(backend, prompt, spec)["key"])
            if record:
                rows.append(record)
    return _frame(rows)


def _frame(records) -> pd.DataFrame:
    return pd.DataFrame([{k: r.get(k) for k in RUN_COLUMNS} for r in records], columns=RUN_COLUMNS)


def forget_used() -> None:
    """Start a run: the decisions handed to strategies so far belong to earlier runs."""
    USED.clear()


def used_decisions() -> pd.DataFrame:
    """The decisions handed to the strategy since `forget_used` (whatever its file is called),
    one row per key, in the order they were first used."""
    return _frame(USED.values())


def decisions_for(view, settings: Parameters | LlmSpec, tickers=None) -> pd.DataFrame:
    """The logged decisions for the view's date and universe, asking the model for missing ones.
    Columns: ticker, decision, confidence, status."""
    spec = llm_spec(settings)
    backend, decisions = open_session(spec)
    template = load_template(spec.prompt)
    prompts = build_prompts(view, template, tickers, spec.periods, spec.statements)
    ask(backend, prompts, decisions, spec)
    columns = ["ticker", "decision", "confidence", "status"]
    rows = [decisions.latest.get(record_base(backend, p, spec)["key"]) for p in prompts]
    for r in rows:
        if r:
            USED.setdefault(r["key"], r)  # the run records what it traded on
    return pd.DataFrame([[r.get(c) for c in columns] for r in rows if r], columns=columns)
