"""Backends (L2): one interface that takes a batch of requests and yields results as they finish.

- TransformersBackend: local inference with transformers; bf16/fp16/fp32, or 4-bit NF4 with
  double quantisation through bitsandbytes; batched generation with left padding; JSON-schema
  constrained decoding through lm-format-enforcer (for reasoning models only after </think>).
- OpenAIBackend: any OpenAI-compatible server (vLLM, llama.cpp server, Ollama, TGI,
  `transformers serve`), a bounded number of concurrent requests, retries with backoff, and the
  schema sent as `response_format` for servers that constrain decoding. The scale-out path.

Models load from a local folder, a hub id when online, or any fsspec URL such as s3://bucket/model
(L7): the folder is copied once into a local cache.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from ..errors import BadInputError, VendorUnavailableError
from .answers import ANSWER_PATTERN, CONSTRAINED_SCHEMA

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Request:
    key: str
    messages: list[dict[str, str]]


@dataclasses.dataclass(frozen=True)
class Result:
    key: str
    text: str
    prompt_tokens: int
    completion_tokens: int
    latency_s: float
    finish_reason: str  # "stop", "length" (hit max_new_tokens) or "error"
    error: str | None = None


@dataclasses.dataclass(frozen=True)
class Sampling:
    max_new_tokens: int = 512
    temperature: float = 0.0  # 0 = greedy
    top_p: float = 1.0
    seed: int = 0
    repetition_penalty: float = 1.0  # > 1 discourages loops (small models), local backend only

    def label(self) -> str:
        text = f"t{self.temperature:g}-p{self.top_p:g}-n{self.max_new_tokens}-s{self.seed}"
        return text + (f"-r{self.repetition_penalty:g}" if self.repetition_penalty != 1.0 else "")


def fetch_model(location: str, cache_dir: str | Path) -> str:
    """A local folder for a model given as an fsspec URL (copied once); anything else as given."""
    from ..infra.remote import RemoteStore, is_url

    if not is_url(location):
        return location
    store = RemoteStore(location, Path(cache_dir) / "models")
    return str(store.pull())


class TransformersBackend:
    """Local generation with transformers, `batch_size` prompts at a time."""

    def __init__(
        self,
        model: str,
        *,
        gguf_file: str | None = None,
        dtype: str = "auto",
        quantisation: str | None = None,
        batch_size: int = 8,
        sampling: Sampling = Sampling(),
        constrained: bool = True,
        reasoning: bool = False,
        revision: str | None = None,
        cache_dir: str | Path = ".store_cache",
    ):
        try:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer
        except ImportError:
            raise BadInputError(
                "the transformers backend needs the llm extra: pip install 'equity_backtest[llm]'"
            ) from None
        self.torch = torch
        path = fetch_model(model, cache_dir)
        self.model_id = model
        self.revision = revision or "local"
        self.quantisation = quantisation or ("gguf" if gguf_file else dtype)
        self.sampling = sampling
        self.batch_size = max(1, batch_size)
        self.reasoning = reasoning
        kwargs: dict = {"revision": revision} if revision else {}
        if gguf_file:
            kwargs["gguf_file"] = gguf_file
        if quantisation == "nf4":
            from transformers import BitsAndBytesConfig

            kwargs["quantization_config"] = BitsAndBytesConfig(
                load_in_4bit=True,
                bnb_4bit_quant_type="nf4",
                bnb_4bit_use_double_quant=True,
                bnb_4bit_compute_dtype=torch.bfloat16,
            )
        elif quantisation not in (None, "none"):
            raise BadInputError(f"quantisation {quantisation!r}: use None or 'nf4'")
        if dtype != "auto":
            kwargs["dtype"] = getattr(torch, dtype)
        # on GPUs the weights are placed by accelerate (spread over several when one is too small)
        placement = {"device_map": "auto"} if torch.cuda.is_available() else {}
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(path, **kwargs)
            self.model = AutoModelForCausalLM.from_pretrained(path, **kwargs, **placement)
        except OSError as exc:
            raise BadInputError(f"model {model!r} could not be loaded: {exc}") from None
        self.model.eval()
        self.tokenizer.padding_side = "left"  # decoder-only batching: pad on the left
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self._constraint = _json_constraint(self.tokenizer, reasoning) if constrained else None

    def generate(self, requests: Sequence[Request]) -> Iterator[Result]:
        """Batches of similar length (less padding), each yielded as it finishes."""
        encoded = {
            r.key: self.tokenizer.apply_chat_template(
                r.messages, add_generation_prompt=True, tokenize=False
            )
            for r in requests
        }
        order = sorted(requests, key=lambda r: len(encoded[r.key]))
        i = 0
        while i < len(order):
            batch = order[i : i + self.batch_size]
            try:
                results = self._generate_batch(batch, [encoded[r.key] for r in batch])
            except RuntimeError as exc:  # torch.cuda.OutOfMemoryError is a RuntimeError
                if "out of memory" not in str(exc).lower() or self.batch_size == 1:
                    raise
                self.batch_size = max(1, self.batch_size // 2)
                log.warning("out of memory: batches of %d prompts from now on", self.batch_size)
                if self.torch.cuda.is_available():
                    self.torch.cuda.empty_cache()
                continue  # the same prompts again, in a smaller batch
            i += len(batch)
            yield from results

    def _generate_batch(self, batch: list[Request], texts: list[str]) -> list[Result]:
        torch, s = self.torch, self.sampling
        inputs = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        inputs = inputs.to(self.model.device)
        torch.manual_seed(s.seed)
        options = {
            "max_new_tokens": s.max_new_tokens,
            "do_sample": s.temperature > 0,
            "pad_token_id": self.tokenizer.pad_token_id,
            "repetition_penalty": s.repetition_penalty,
        }
        if s.temperature > 0:
            options.update(temperature=s.temperature, top_p=s.top_p)
        if self._constraint is not None:
            options["prefix_allowed_tokens_fn"] = self._constraint()
        started = time.perf_counter()
        with torch.inference_mode():
            out = self.model.generate(**inputs, **options)
        elapsed = time.perf_counter() - started
        width = inputs["input_ids"].shape[1]
        eos = {self.tokenizer.eos_token_id, self.tokenizer.pad_token_id}
        eos |= set(_as_list(getattr(self.model.generation_config, "eos_token_id", None)))
        results = []
        for row, request in enumerate(batch):
            new = out[row, width:].tolist()
            while new and new[-1] == self.tokenizer.pad_token_id:
                new.pop()
            stopped = bool(new) and new[-1] in eos
            results.append(
                Result(
                    request.key,
                    self.tokenizer.decode(new, skip_special_tokens=True),
                    int(inputs["attention_mask"][row].sum()),
                    len(new),
                    elapsed / len(batch),
                    "stop" if stopped or len(new) < s.max_new_tokens else "length",
                )
            )
        return results


def _as_list(value) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def _json_constraint(tokenizer, reasoning: bool):
    """A factory of prefix_allowed_tokens_fn that keeps replies to the decision schema (fresh
    per batch: the enforcer caches per-sequence state). For reasoning models every token is
    allowed until the reply has closed its </think> block."""
    import transformers
    import transformers.tokenization_utils as tu

    # lm-format-enforcer 0.11 imports this name from its transformers 4 location
    if not hasattr(tu, "PreTrainedTokenizerBase"):
        tu.PreTrainedTokenizerBase = transformers.PreTrainedTokenizerBase
    from lmformatenforcer import RegexParser
    from lmformatenforcer.integrations.transformers import (
        build_token_enforcer_tokenizer_data,
        build_transformers_prefix_allowed_tokens_fn,
    )

    tokenizer_data = build_token_enforcer_tokenizer_data(tokenizer)
    everything = list(range(len(tokenizer)))

    def factory():
        enforce = build_transformers_prefix_allowed_tokens_fn(
            tokenizer_data, RegexParser(ANSWER_PATTERN)
        )
        if not reasoning:
            return enforce
        started: dict[int, int] = {}

        def after_think(batch_id: int, sent):
            ids = sent.tolist()
            if batch_id not in started:
                started[batch_id] = len(ids)
            tail = tokenizer.decode(ids[started[batch_id] :])
            return enforce(batch_id, sent) if "</think>" in tail else everything

        return after_think

    return factory


STOP_AFTER = 3  # requests in a row the server did not answer at all


def _timeout(seconds: float):
    """The OpenAI client's timeout: 10 s to connect, `seconds` for the reply."""
    from openai import Timeout

    return Timeout(seconds, connect=min(10.0, seconds))


SCHEMA_CHECK_AFTER = 8  # replies after which a server that ignores the schema is reported


def _unreachable(error: str | None) -> bool:
    """Whether a request failed because nothing answered (not because the reply was bad)."""
    return bool(error) and any(
        name in error
        for name in ("APIConnectionError", "APITimeoutError", "ConnectError", "ConnectionError")
    )


def _looks_like_the_schema(text: str) -> bool:
    body = re.sub(r"(?s)^.*</think>", "", text).strip()
    return body.startswith("{") and '"decision"' in body


class OpenAIBackend:
    """Chat completions from an OpenAI-compatible server, `concurrency` requests in flight."""

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        concurrency: int = 8,
        retries: int = 2,
        sampling: Sampling = Sampling(),
        constrained: bool = True,
        timeout_s: float = 120.0,
        revision: str | None = None,
        quantisation: str = "server",
    ):
        try:
            from openai import OpenAI
        except ImportError:
            raise BadInputError(
                "the OpenAI-compatible backend needs the openai package: "
                "pip install 'equity_backtest[llm]'"
            ) from None
        self.client = OpenAI(
            base_url=base_url,
            api_key=os.environ.get("OPENAI_API_KEY", "not-needed"),
            max_retries=0,  # our own loop retries, with backoff and a stop for a dead server
            # a connection is refused or made within 10 s; the reply may take timeout_s
            timeout=_timeout(timeout_s),
        )
        self.base_url = base_url
        self.model_id = model
        self.revision = revision or "server"
        self.quantisation = quantisation
        self.sampling = sampling
        self.concurrency = max(1, concurrency)
        self.retries = retries
        self.constrained = constrained

    def _one(self, request: Request) -> Result:
        s = self.sampling
        extra = {}
        if self.constrained:
            extra["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "decision", "schema": CONSTRAINED_SCHEMA},
            }
        started = time.perf_counter()
        last_error = None
        for attempt in range(self.retries + 1):
            try:
                reply = self.client.chat.completions.create(
                    model=self.model_id,
                    messages=request.messages,
                    max_tokens=s.max_new_tokens,
                    temperature=s.temperature,
                    top_p=s.top_p,
                    seed=s.seed,
                    **extra,
                )
                choice = reply.choices[0]
                usage = reply.usage
                return Result(
                    request.key,
                    choice.message.content or "",
                    getattr(usage, "prompt_tokens", 0) or 0,
                    getattr(usage, "completion_tokens", 0) or 0,
                    time.perf_counter() - started,
                    "length" if choice.finish_reason == "length" else "stop",
                )
            except Exception as exc:  # the server went away, overloaded, or refused the request
                last_error = f"{type(exc).__name__}: {exc}"
                if "response_format" in extra and "response_format" in str(exc):
                    extra = {}  # a server without structured outputs: ask without the schema
                    continue
                if "Timeout" in type(exc).__name__:
                    break  # a hung server: asking again only waits as long again
                if attempt < self.retries:
                    time.sleep(min(30.0, 0.5 * 2**attempt))
        return Result(request.key, "", 0, 0, time.perf_counter() - started, "error", last_error)

    def generate(self, requests: Sequence[Request]) -> Iterator[Result]:
        """Results as they finish. A server that does not answer STOP_AFTER requests in a row
        stops the run (exit 3) instead of spending minutes of retries on every remaining prompt;
        one that ignores the schema is reported once (SCHEMA_CHECK_AFTER replies)."""
        unanswered, replies, off_schema, warned = 0, 0, 0, False
        pool = ThreadPoolExecutor(self.concurrency)
        try:
            futures = [pool.submit(self._one, r) for r in requests]
            for future in as_completed(futures):
                result = future.result()
                if result.finish_reason == "error" and _unreachable(result.error):
                    unanswered += 1
                    if unanswered >= STOP_AFTER:
                        raise VendorUnavailableError(
                            f"the LLM server at {self.base_url} did not answer {unanswered} "
                            f"requests in a row ({result.error}); start it or fix llm_base_url "
                            "and rerun: the decisions logged so far are kept"
                        )
                else:
                    unanswered = 0
                if self.constrained and result.finish_reason != "error":
                    replies += 1
                    off_schema += not _looks_like_the_schema(result.text)
                    if not warned and replies >= SCHEMA_CHECK_AFTER and off_schema * 2 > replies:
                        warned = True
                        log.warning(
                            "the server at %s seems to ignore response_format: %d of %d replies "
                            "are not the JSON object the schema asks for. Use a server with "
                            "structured outputs (vLLM's guided decoding) or set "
                            "llm_constrained = False to stop asking for it",
                            self.base_url,
                            off_schema,
                            replies,
                        )
                yield result
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


def _vllm_methods() -> tuple[str, ...] | None:
    """The quantization methods the installed vLLM accepts (None where it does not say)."""
    try:
        from vllm.model_executor.layers.quantization import QUANTIZATION_METHODS
    except ImportError:
        return None
    return tuple(QUANTIZATION_METHODS)


def vllm_quantization(quantisation: str, accepted: tuple[str, ...] | None) -> str:
    """vLLM's name for `llm_quantisation`, checked against what the installed release accepts:
    'nf4' (bitsandbytes 4-bit, loaded on the fly) only where the release still takes
    'bitsandbytes'; otherwise a clear message instead of vLLM's error at load time."""
    method = "bitsandbytes" if quantisation == "nf4" else quantisation
    if accepted is not None and method not in accepted:
        advice = (
            "use a pre-quantised model (an AWQ or GPTQ checkpoint with llm_quantisation = 'awq' "
            "or 'gptq'), or llm_backend = 'transformers' for nf4"
            if quantisation == "nf4"
            else f"choose one of {', '.join(sorted(accepted))}"
        )
        raise BadInputError(
            f"llm_quantisation = {quantisation!r}: this vLLM release does not take "
            f"quantization={method!r}; {advice}"
        )
    return method


class VLLMBackend:
    """vLLM in-process (`llm_backend = "vllm"`, pip install vllm on a GPU machine): continuous
    batching over the whole request list, prefix caching (the shared system prompt is computed
    once), bf16/fp16, AWQ/GPTQ/bitsandbytes 4-bit weights (`llm_quantisation`), tensor
    parallelism across `llm_tensor_parallel` GPUs, and the answer held to ANSWER_PATTERN by
    vLLM's structured outputs (for reasoning models the reply is left free, and parsed after
    its </think>). Not run on this project's CI machines, which have no GPU: see docs/llm.md."""

    def __init__(
        self,
        model: str,
        *,
        dtype: str = "auto",
        quantisation: str | None = None,
        sampling: Sampling = Sampling(),
        constrained: bool = True,
        reasoning: bool = False,
        tensor_parallel: int = 1,
        max_model_len: int | None = None,
        cache_dir: str | Path = ".store_cache",
    ):
        try:
            import vllm
        except ImportError:
            raise BadInputError(
                "llm_backend = 'vllm' needs vLLM: pip install vllm on a machine with a GPU, or "
                "use llm_backend = 'transformers' (or 'openai' against a `vllm serve`)"
            ) from None
        self.model_id = model
        self.revision = "local"
        self.quantisation = quantisation
        self.sampling = sampling
        self._vllm = vllm
        kwargs = {
            "model": fetch_model(model, cache_dir),
            "dtype": dtype,
            "tensor_parallel_size": max(1, tensor_parallel),
            "enable_prefix_caching": True,
            "seed": sampling.seed,
        }
        if quantisation:
            kwargs["quantization"] = vllm_quantization(quantisation, _vllm_methods())
        if max_model_len:
            kwargs["max_model_len"] = max_model_len
        self.engine = vllm.LLM(**kwargs)
        self._params = self._sampling_params(constrained and not reasoning)

    def _sampling_params(self, constrained: bool):
        s = self.sampling
        kwargs = {
            "max_tokens": s.max_new_tokens,
            "temperature": s.temperature,
            "top_p": s.top_p,
            "seed": s.seed,
            "repetition_penalty": s.repetition_penalty,
        }
        if constrained:
            try:  # vLLM 0.12 and later
                from vllm.sampling_params import StructuredOutputsParams

                kwargs["structured_outputs"] = StructuredOutputsParams(regex=ANSWER_PATTERN)
            except ImportError:  # earlier releases
                from vllm.sampling_params import GuidedDecodingParams

                kwargs["guided_decoding"] = GuidedDecodingParams(regex=ANSWER_PATTERN)
        return self._vllm.SamplingParams(**kwargs)

    def generate(self, requests: Sequence[Request]) -> Iterator[Result]:
        """All requests in one call: vLLM schedules them (continuous batching)."""
        if not requests:
            return
        started = time.perf_counter()
        outputs = self.engine.chat([r.messages for r in requests], self._params, use_tqdm=False)
        elapsed = (time.perf_counter() - started) / len(requests)
        for request, out in zip(requests, outputs, strict=True):
            first = out.outputs[0]
            yield Result(
                request.key,
                first.text,
                len(out.prompt_token_ids or []),
                len(first.token_ids or []),
                elapsed,
                "length" if first.finish_reason == "length" else "stop",
            )
