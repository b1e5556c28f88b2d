"""The docs' commands as written (A1+, D12+): every fenced command in the README or docs/ is run
here in a fresh folder (or named with what it needs that CI lacks), the figures the docs quote
next to a command are compared with what it prints, within the rounding shown, and every script
and module a command names takes the flags it is given.

Not compared: the performance tables' timings (this machine's, measured by the benchmark named
beside each; benchmarks/ prints them, tests/test_benchmarks.py runs the scripts)."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import REPO, run_script

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
README, DOCS_DIR = REPO / "README.md", REPO / "docs"
# commands that need what CI has not, by a word they contain, and what that is
ELSEWHERE = {
    "source=bloomberg": "a Bloomberg terminal (tests/test_bloomberg.py: a stand-in terminal)",
    "source=wrds": "a WRDS account (tests/test_wrds_vendor.py: PostgreSQL in WRDS's shapes)",
    "WRDS_USERNAME": "a WRDS account's credentials",
    "source=datastream": "a Datastream account (tests/test_datastream.py: a stand-in DSWS)",
    "DSWS_USERNAME": "a Datastream account's credentials",
    ".pgpass": "a WRDS account's credentials",
    "llm_model=Qwen": "a 7B model and a GPU (tests/test_llm.py: tiny models and SmolLM2)",
    "vllm serve": "vLLM on a GPU",
    "/tmp/peersenv": "vectorbt and bt in their own venv (benchmarks/peers.py)",
    "docker ": "a Docker daemon (tests/test_operations.py lints the Dockerfile with hadolint)",
    "pip install": "an install (.ci/run makes the same from scratch)",
    "python3 -m venv": "a new venv (.ci/run makes it)",
    "source .venv/bin/activate": "an interactive shell's state",
    "bash .ci/run": "CI itself",
    "investor serve": "a long-running server (tests/test_investor_page.py starts it and drives "
    "it in Chromium)",
    "python benchmarks/": "a timing of this machine, which the benchmark prints (not compared; "
    "tests/test_benchmarks.py runs the scripts at a small size)",
}


def fenced_blocks(path: Path) -> list[list[str]]:
    """The command lines of each of a document's ```bash blocks (comments cut, '&&' chains
    split)."""
    blocks = []
    for block in re.findall(r"```bash\n(.*?)```", path.read_text(), re.S):
        out = []
        for line in block.splitlines():
            line = line.split("  #")[0].strip()
            if line and not line.startswith("#"):
                out.extend(part.strip() for part in line.split("&&"))
        blocks.append(out)
    return blocks


def fenced_commands(path: Path) -> list[str]:
    return [command for block in fenced_blocks(path) for command in block]


# what installs or sets up (its needs do not carry over to the rest of its block)
SETUP = ("pip install", "python3 -m venv", "source .venv/bin/activate")


def needs(command: str) -> str | None:
    """What a command needs that CI has not, or None: it runs here."""
    return next((why for word, why in ELSEWHERE.items() if word in command), None)


def runnable(path: Path) -> list[str]:
    """A document's fenced commands that run here: those that need nothing CI lacks and do not
    follow, in their block, one that needs more than an install (`04_evaluate.py` after an LLM
    run on a GPU evaluates that run)."""
    out = []
    for block in fenced_blocks(path):
        for command in block:
            if needs(command) and not any(word in command for word in SETUP):
                break
            if needs(command) is None:
                out.append(command)
    return out


def _python_calls() -> dict[tuple[str, ...], set[str]]:
    """(script) or ("-m", module) -> the flags the docs give it."""
    calls: dict[tuple[str, ...], set[str]] = {}
    for doc in DOCS:
        for command in fenced_commands(doc):
            if needs(command) and "python" not in command.split()[0]:
                continue
            words = shlex.split(command.replace("[", "").replace("]", ""))
            if not words or not re.search(r"(^|/)python3?$", words[0]):
                continue
            target = tuple(words[1:3]) if words[1] == "-m" else (words[1],)
            if target[0] in ("-c",) or target[:2] == ("-m", "venv"):
                continue
            flags = {w.split("=")[0] for w in words if w.startswith("--")}
            calls.setdefault(target, set()).update(flags)
    return calls


def test_every_documented_command_names_a_script_and_flags_that_exist():
    calls = _python_calls()
    assert ("03_trade.py",) in calls and ("-m", "equity_backtest.investor") in calls
    for target, flags in sorted(calls.items()):
        proc = subprocess.run(
            [sys.executable, *target, "--help"], cwd=REPO, capture_output=True, text=True,
            timeout=120,
        )  # fmt: skip
        assert proc.returncode == 0, (target, proc.stderr[-500:])
        missing = sorted(f for f in flags if f not in proc.stdout)
        assert not missing, f"{' '.join(target)} --help lacks {missing} that the docs use"


# The commands each test below runs, picked from the documents as written.
def readme_main_job() -> list[str]:
    return runnable(README)


def one_stock_example() -> list[str]:
    return fenced_blocks(DOCS_DIR / "coming_from.md")[0]


def goog_example() -> list[str]:
    return fenced_blocks(DOCS_DIR / "coming_from.md")[1]


def investor_example() -> list[str]:
    return runnable(DOCS_DIR / "investor.md")


def pipeline_import_example() -> list[str]:
    return runnable(DOCS_DIR / "pipeline.md")


def research_examples() -> list[str]:
    return [
        c for c in fenced_commands(DOCS_DIR / "strategies.md") if "equity_backtest.research" in c
    ]


def sweep_example() -> list[str]:
    doc = DOCS_DIR / "strategies.md"
    return [c for c in fenced_commands(doc) if "--grid" in c or "__trials__" in c]


def live_example() -> list[str]:
    return runnable(DOCS_DIR / "live.md")


RUNNERS = (readme_main_job, one_stock_example, goog_example, investor_example,
           pipeline_import_example, research_examples, sweep_example, live_example)  # fmt: skip


def test_every_fenced_command_is_run_here_or_needs_what_ci_lacks():
    here = sorted(c for doc in DOCS for c in runnable(doc))
    assert here == sorted(c for runner in RUNNERS for c in runner())
    for runner in RUNNERS:
        assert runner(), f"{runner.__name__} finds no command: the document changed"


def _project(tmp_path: Path) -> Path:
    """A fresh clone's working folder: the scripts, parameters.py, algorithm.py and the folders
    the docs' commands read."""
    for name in ("01_query_vendor.py", "02_build_datasets.py", "03_trade.py", "04_evaluate.py",
                 "parameters.py", "algorithm.py"):  # fmt: skip
        shutil.copy(REPO / name, tmp_path / name)
    for folder in ("mappings", "samples", "examples", "strategies"):
        shutil.copytree(REPO / folder, tmp_path / folder)
    return tmp_path


def _run(folder: Path, command: str) -> subprocess.CompletedProcess:
    """A documented command as a user types it: `python` (or `.venv/bin/python`) is this
    environment's interpreter; `results/<time>__...` is the newest folder it names."""
    words = shlex.split(command)
    assert re.fullmatch(r"(\.venv/bin/)?python", words[0]), command
    for k, word in enumerate(words):
        if "<time>" in word:
            (words[k],) = [str(p.relative_to(folder)) for p in
                           sorted(folder.glob(word.replace("<time>", "*")))[-1:]]  # fmt: skip
    return run_script(folder, *words[1:])


@pytest.fixture(scope="module")
def default_project(tmp_path_factory) -> Path:
    """The README's main job up to 02, as written, in a fresh folder: the default market that
    the README's and docs' figures are measured on."""
    folder = _project(tmp_path_factory.mktemp("default_project"))
    for command in readme_main_job()[:2]:
        assert re.search(r"0[12]_", command), command
        _run(folder, command)
    return folder


@pytest.mark.slow
def test_the_readme_main_job_runs_as_written_and_ends_with_the_tear_sheet(default_project):
    *_, evaluate = [_run(default_project, c) for c in readme_main_job()[2:]]
    sheet = default_project / evaluate.stdout.strip().splitlines()[-1]
    assert sheet.name == "tearsheet.html" and sheet.is_file()
    assert (sheet.parent / "metrics.json").is_file()


def _table(text: str) -> str:
    """The README's themes block: the line that starts 'Default simulated market' to the
    table's last row."""
    found = re.search(r"^Default simulated market.*?(?=\n\n(?!\|)|\Z)", text, re.S | re.M)
    assert found, "no themes table"
    return found.group(0).strip()


@pytest.mark.slow
def test_the_live_page_runs_as_written(default_project, tmp_path):
    """docs/live.md's two commands on the default market: an account opened on 2 December 2024
    catches up 21 bars, a second run finds nothing new, and 04 finds it equal to its backtest."""
    folder = tmp_path / "p"
    shutil.copytree(default_project, folder, ignore=shutil.ignore_patterns("results", "live"))
    trade, evaluate = live_example()
    first = _run(folder, trade).stdout
    assert re.search(r"live/algorithm: 21 new bar\(s\), last bar 2024-12-31, value", first), first
    assert "no new bar" in _run(folder, trade).stdout
    sheet = _run(folder, evaluate).stdout.strip().splitlines()[-1]
    assert sheet.endswith("tearsheet.html") and (folder / sheet).is_file()
    (report,) = (folder / "live" / "algorithm" / "reports").iterdir()
    summary = json.loads((report / "live_vs_backtest.json").read_text())
    assert summary["days"] == 21 and summary["largest_value_gap"] < 1e-6


@pytest.mark.slow
def test_the_readme_themes_table_is_what_its_command_prints(default_project):
    said = re.search(r"from\s+`(python examples/themes_table.py)`", README.read_text())
    printed = _run(default_project, said.group(1)).stdout
    assert _table(printed) == _table(README.read_text())


@pytest.mark.slow
def test_coming_from_a_single_stock_tool_runs_as_written(tmp_path):
    doc = (DOCS_DIR / "coming_from.md").read_text()
    folder = _project(tmp_path)
    outputs = [_run(folder, c) for c in one_stock_example()]
    final = re.search(r"`final value ([\d.]+)`", doc).group(1)
    mine, theirs = re.search(
        r"annual return of ([\d.]+)% against the stock's own\s+([\d.]+)%", doc
    ).groups()
    assert f"final value {final}" in outputs[2].stderr
    said = re.search(r"annual_return\s+portfolio\s+([\d.]+)%\s+DKYN\s+([\d.]+)%", outputs[3].stderr)
    assert said and said.groups() == (mine, theirs), outputs[3].stderr[-2000:]
    sheet = folder / outputs[3].stdout.strip()
    assert "Against the benchmark (DKYN)" in sheet.read_text()


def _backtesting_tutorial():
    """backtesting.py's own SmaCross tutorial on its GOOG data, run by backtesting.py 0.6.6
    (its trades, the one open at the end included, and its final equity)."""
    from backtesting import Backtest, Strategy
    from backtesting.lib import crossover
    from backtesting.test import GOOG, SMA

    class SmaCross(Strategy):
        def init(self):
            self.sma1 = self.I(SMA, self.data.Close, 10)
            self.sma2 = self.I(SMA, self.data.Close, 20)

        def next(self):
            if crossover(self.sma1, self.sma2):
                self.position.close()
                self.buy()
            elif crossover(self.sma2, self.sma1):
                self.position.close()
                self.sell()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # bokeh's and its own notices
        stats = Backtest(GOOG, SmaCross, cash=10_000, commission=0.002,
                         exclusive_orders=True).run()  # fmt: skip
        open_at_end = Backtest(GOOG, SmaCross, cash=10_000, commission=0.002,
                               exclusive_orders=True, finalize_trades=True).run()  # fmt: skip
    return open_at_end["_trades"], stats["Equity Final [$]"]


@pytest.mark.slow
def test_backtesting_pys_own_example_gives_the_same_entries_and_the_quoted_values(tmp_path):
    doc = (DOCS_DIR / "coming_from.md").read_text()
    folder = _project(tmp_path)
    outputs = [_run(folder, c) for c in goog_example()]
    ours = _figure(doc, r"03 ends with `final value ([\d.]+)`\. backtesting\.py")
    assert f"final value {ours} (completed)" in outputs[3].stderr
    trades, equity = _backtesting_tutorial()
    assert f"Equity Final [$] {equity:.2f}" in " ".join(doc.split())
    run = folder / outputs[3].stdout.strip()
    fills = pd.read_csv(run / "trades.csv")
    assert len(fills) == len(trades) == 94
    assert list(fills["date"]) == list(trades["EntryTime"].dt.strftime("%Y-%m-%d"))
    assert list(fills["price"]) == list(trades["EntryPrice"])
    assert list(np.sign(fills["shares"])) == list(np.sign(trades["Size"]))
    # the sizes differ by convention only (docs/coming_from.md): 2 shares or fewer in 90 of
    # the 94 positions, none more than 5 or 6.1%
    held, theirs = fills["shares"].cumsum().to_numpy(), trades["Size"].to_numpy()
    apart = abs(held - theirs)
    assert (apart <= 2).sum() >= 90 and apart.max() <= 5 and (apart / abs(theirs)).max() < 0.061


@pytest.mark.slow
def test_the_investor_example_runs_as_written_on_the_default_market(default_project):
    (command,) = [c for c in investor_example() if "--holdings" in c]
    proc = _run(default_project, command)
    assert "orders written to" in proc.stderr and "value after" in proc.stdout


@pytest.mark.slow
def test_the_pipeline_import_example_runs_as_written(tmp_path):
    folder = _project(tmp_path)
    for command in pipeline_import_example():
        _run(folder, command)
    assert list((folder / "datalog").iterdir())


def _figure(text: str, pattern: str) -> str:
    found = re.search(pattern, " ".join(text.split()))
    assert found, pattern
    return found.group(1)


@pytest.mark.slow
def test_factor_research_prints_the_figures_strategies_md_quotes(default_project):
    doc = (DOCS_DIR / "strategies.md").read_text()
    signal, field = [c for c in research_examples() if "research --" in c]
    for command in (signal, field):
        _run(default_project, command)
    report = json.loads(
        (default_project / "results/factor_momentum_12_1/factor_report.json").read_text()
    )
    h21 = next(h for h in report["horizons"] if h["horizon_days"] == 21)
    text = " ".join(doc.split())
    quoted = re.search(r"gives a mean IC of ([\d.]+) \(Newey-West t = ([\d.]+) with (\d+) lags, "
                       r"naive t ([\d.]+); (\d+) monthly windows\)", text).groups()  # fmt: skip
    assert quoted == (f"{h21['mean_ic']:.3f}", f"{h21['ic_t_stat']:.1f}",
                      str(h21["newey_west_lags"]), f"{h21['ic_t_stat_naive']:.1f}",
                      str(h21["windows"]))  # fmt: skip
    flags = _figure(doc, r"The random score \(`(--signal strategies/random_selection.py[^`]*)`\)")
    random_command = f"python -m equity_backtest.research {flags}"
    _run(default_project, random_command)
    rnd = json.loads(
        (default_project / "results/factor_random_selection/factor_report.json").read_text()
    )["horizons"][0]
    assert re.search(rf"gives {rnd['mean_ic']:.3f} \(t = {rnd['ic_t_stat']:.1f}, naive "
                     rf"{rnd['ic_t_stat_naive']:.1f}; not flagged\)", text)  # fmt: skip
    assert not rnd["significant"]


@pytest.mark.slow
def test_the_setup_study_prints_the_figures_strategies_md_quotes(default_project):
    doc = " ".join((DOCS_DIR / "strategies.md").read_text().split())
    (command,) = [c for c in research_examples() if "research.setups" in c]
    log = " ".join(_run(default_project, command).stderr.split())
    horizon, target = re.search(r"finds the hold-to-horizon exit better \(([+−-][\d.]+)R net per "
                                r"qualified setup against ([+−-][\d.]+)R", doc).groups()  # fmt: skip
    dash = lambda s: s.replace("−", "-")  # noqa: E731 (the docs' minus sign)
    assert f"{dash(horizon)}R net per qualified setup against {dash(target)}R" in log
    count, t, naive, low, high = re.search(
        r"with ([\d,]+) qualified setups the expectancy's t is ([\d.]+) \(naive t ([\d.]+)\) and "
        r"its 95% interval \[([+−-][\d.]+)R, ([+−-][\d.]+)R\]", doc).groups()  # fmt: skip
    assert f"({count} vs" in log and f"has t = {t}" in log and f"is {naive})" in log
    assert f"[{dash(low)}R, {dash(high)}R]" in log
    book, index = re.search(
        r"returned ([\d.]+)% a year against the index's ([\d.]+)%", doc
    ).groups()
    assert f"returned {book}% a year, behind the index's {index}%" in log


@pytest.mark.slow
def test_the_sweep_example_runs_as_written(default_project):
    grid, evaluate = sweep_example()
    _run(default_project, grid)
    proc = _run(default_project, evaluate)
    summary = sorted(
        default_project.glob("results/*__trials__simulated__TOP100/trials_summary.csv")
    )
    assert len(pd.read_csv(summary[-1])) == 6 and "PBO" in proc.stderr


@pytest.mark.slow
def test_the_realism_report_prints_the_figures_pipeline_md_quotes(tmp_path):
    doc = " ".join((DOCS_DIR / "pipeline.md").read_text().split())
    command = _figure(doc, r"^.*?`(python -m equity_backtest\.evaluation\.realism)` \(or")
    report = json.loads(_run(_project(tmp_path), f"{command} --json").stdout)
    f, ok = report["figures"], report["in_target"]
    quoted = re.search(
        r"On the default market \(seed 42\) all (\d+) figures are in range: the largest member "
        r"reaches ([\d.]+)% of the index, the top 10 ([\d.]+)%, the largest sector ([\d.]+)%; "
        r"the index's volatility is ([\d.]+)% a year, its worst drawdown ([\d.]+)%, its return "
        r"([\d.]+)% a year \(([\d.]+)% over the 2% cash rate\); index turnover is ([\d.]+)% a year",
        doc,
    ).groups()

    def pct(x: float, like: str) -> str:
        return f"{100 * abs(x):.{len(like.partition('.')[2])}f}"

    names = ("largest_member_max_weight", "top10_max_weight", "largest_sector_max_weight",
             "index_annual_volatility", "index_max_drawdown", "index_annual_return",
             "equity_premium", "index_turnover_per_year")  # fmt: skip
    assert quoted[0] == str(len(ok)) and all(ok.values())
    assert list(quoted[1:]) == [pct(f[n], q) for n, q in zip(names, quoted[1:], strict=True)]
