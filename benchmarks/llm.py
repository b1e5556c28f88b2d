#!/usr/bin/env python3
"""LLM throughput: the same prompts one at a time and in batches, on the same model.

By default a small random Llama (built locally, nothing downloaded) on CPU with real prompts from
the simulated market; --model for any local folder or hub id, --device cuda on a GPU machine,
--dtype bfloat16 and --nf4 for 4-bit. Prints seconds per prompt, prompts per second and the
speed-up; with --shape reference, the reference notebook's workload shape (about 2,900 prompt
tokens and up to 1,000 new tokens; a random model never stops early, so every reply is full).

    OMP_NUM_THREADS=1 python benchmarks/llm.py [--shape short|market|reference] [--batch 8]
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from equity_backtest.llm.backends import Request, Sampling, TransformersBackend  # noqa: E402


def prompts_from_market(n: int) -> list[Request]:
    """Real L1 prompts from a small simulated market."""
    import numpy as np

    from equity_backtest.config import Parameters
    from equity_backtest.data import datasets
    from equity_backtest.data.panel import load_panel
    from equity_backtest.data.vendors import simulated
    from equity_backtest.engine.view import View
    from equity_backtest.llm.prompts import build_prompts, load_template

    root = Path(tempfile.mkdtemp())
    settings = simulated.SimulationSettings(80, 40, dt.date(2010, 1, 1), dt.date(2012, 12, 31), 1)
    simulated.query(settings, root / "datalog")
    datasets.build(root / "datalog", root / "datasets")
    params = Parameters(
        index="TOP40",
        datasets_dir=str(root / "datasets"),
        sim_start=settings.start,
        sim_end=settings.end,
        start=dt.date(2011, 1, 1),
        end=settings.end,
    )
    panel = load_panel(params)
    view = View(panel, len(panel.dates) - 2, np.zeros(len(panel.tickers)), 1e6, 260)
    prompts = build_prompts(view, load_template("v1"))
    prompts = (prompts * (n // max(1, len(prompts)) + 1))[:n]
    return [Request(f"{k}", p.messages()) for k, p in enumerate(prompts)]


def sized_prompts(n: int, tokenizer, size: int) -> list[Request]:
    """Prompts of about `size` tokens (2,900 is the reference workload's size)."""
    word = " revenue 1,234.5"
    per = len(tokenizer.encode(word, add_special_tokens=False))
    body = word * (size // max(1, per))
    return [Request(f"{k}", [{"role": "user", "content": f"{k}{body}"}]) for k in range(n)]


def timed(backend: TransformersBackend, requests: list[Request]) -> tuple[float, int]:
    start = time.perf_counter()
    tokens = sum(r.completion_tokens for r in backend.generate(requests))
    return time.perf_counter() - start, tokens


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--model", help="model folder or hub id (default: a random Llama built here)")
    ap.add_argument("--hidden", type=int, default=768, help="hidden size of the built model")
    ap.add_argument("--layers", type=int, default=8, help="layers of the built model")
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--dtype", default="auto")
    ap.add_argument("--nf4", action="store_true", help="4-bit NF4 (bitsandbytes)")
    ap.add_argument(
        "--shape",
        choices=["market", "short", "reference"],
        default="short",
        help="market: real L1 prompts; short: 64-token prompts (decoding dominates); "
        "reference: 2,900-token prompts",
    )
    args = ap.parse_args()

    model = args.model
    if model is None:
        from equity_backtest.llm.tiny import build

        model = str(build(tempfile.mkdtemp(), hidden=args.hidden, layers=args.layers))
    sampling = Sampling(max_new_tokens=args.new_tokens)
    common = dict(
        dtype=args.dtype,
        quantisation="nf4" if args.nf4 else None,
        sampling=sampling,
        constrained=False,  # measure generation itself; the constraint costs the same per token
    )
    batched = TransformersBackend(model, batch_size=args.batch, **common)
    single = TransformersBackend(model, batch_size=1, **common)
    single.model, single.tokenizer = batched.model, batched.tokenizer  # the very same weights
    if args.shape != "market":
        size = {"reference": 2900, "short": 64}[args.shape]
        requests = sized_prompts(args.prompts, batched.tokenizer, size)
    else:
        requests = prompts_from_market(args.prompts)
    tok = batched.tokenizer
    prompt_tokens = [
        len(tok(tok.apply_chat_template(r.messages, tokenize=False))["input_ids"]) for r in requests
    ]
    timed(batched, requests[:2])  # warm-up
    t_single, n_single = timed(single, requests)
    t_batched, n_batched = timed(batched, requests)
    print(
        f"model: {model} ({batched.model.num_parameters() / 1e6:.1f} M parameters, "
        f"{batched.quantisation}, device {batched.model.device})"
    )
    print(
        f"{len(requests)} prompts, {sum(prompt_tokens) / len(prompt_tokens):.0f} prompt tokens "
        f"on average, {args.new_tokens} new tokens each"
    )
    print(
        f"one at a time : {t_single / len(requests):.3f} s per prompt, "
        f"{len(requests) / t_single:.2f} prompts/s, {n_single / t_single:.0f} tokens/s"
    )
    print(
        f"batches of {args.batch:<3d}: {t_batched / len(requests):.3f} s per prompt, "
        f"{len(requests) / t_batched:.2f} prompts/s, {n_batched / t_batched:.0f} tokens/s"
    )
    print(f"speed-up: {t_single / t_batched:.1f}x")


if __name__ == "__main__":
    main()
