"""What the LLM layer reads from the settings, built once: a small frozen spec instead of the
whole Parameters object (the llm_* settings without their prefix, and the few others it uses)."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..config import Parameters


@dataclasses.dataclass(frozen=True)
class LlmSpec:
    """The model and how it is run, the prompt, sampling, and where decisions are logged."""

    backend: str
    model: str
    gguf_file: str | None
    dtype: str
    quantisation: str | None
    base_url: str
    timeout_s: float
    retries: int
    store_timeout_s: float
    max_model_len: int | None
    concurrency: int
    tensor_parallel: int
    batch_size: int
    max_new_tokens: int
    temperature: float
    repetition_penalty: float
    constrained: bool
    reasoning: bool
    prompt: str
    periods: int
    statement_items: tuple[tuple[str, tuple[str, ...]], ...]
    decisions_dir: str
    sync_to: str | None
    cutoffs: tuple[tuple[str, str], ...]
    seed: int
    cache_dir: str
    lookback_days: int

    @classmethod
    def of(cls, params: Parameters) -> LlmSpec:
        return cls(
            backend=params.llm_backend,
            model=params.llm_model,
            gguf_file=params.llm_gguf_file,
            dtype=params.llm_dtype,
            quantisation=params.llm_quantisation,
            base_url=params.llm_base_url,
            timeout_s=params.llm_timeout_s,
            retries=params.llm_retries,
            store_timeout_s=params.llm_store_timeout_s,
            max_model_len=params.llm_max_model_len,
            concurrency=params.llm_concurrency,
            tensor_parallel=params.llm_tensor_parallel,
            batch_size=params.llm_batch_size,
            max_new_tokens=params.llm_max_new_tokens,
            temperature=params.llm_temperature,
            repetition_penalty=params.llm_repetition_penalty,
            constrained=params.llm_constrained,
            reasoning=params.llm_reasoning,
            prompt=params.llm_prompt,
            periods=params.llm_periods,
            statement_items=tuple(
                (section, tuple(items)) for section, items in params.llm_statement_items.items()
            ),
            decisions_dir=str(params.llm_decisions_dir),
            sync_to=params.llm_sync_to,
            cutoffs=tuple(sorted((str(k), str(v)) for k, v in params.llm_cutoffs.items())),
            seed=params.seed,
            cache_dir=str(params.store_cache_dir),
            lookback_days=params.lookback_days,
        )

    @property
    def cutoff_dates(self) -> dict[str, str]:
        return dict(self.cutoffs)

    @property
    def statements(self) -> dict[str, tuple[str, ...]]:
        return dict(self.statement_items)


def llm_spec(settings: Parameters | LlmSpec) -> LlmSpec:
    return settings if isinstance(settings, LlmSpec) else LlmSpec.of(settings)
