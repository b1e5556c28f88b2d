"""The run archive (E9): one folder per backtest holding everything needed to audit or repeat it.

    results/<UTC time>__<source>__<index>__<algorithm>/
        runtime_log.csv    one row per heartbeat: value, cash, orders, fills, costs, dividends...
        trades.csv         every fill and every delisting close-out
        cash_ledger.csv    every change of cash with the running balance
        positions.feather  daily holdings: shares, close, value, weight
        target_weights.csv what compute_weights returned on each rebalance day
        benchmark.csv      the index's point-in-time cap-weighted total return, daily
        metadata.csv       names and sectors of the universe
        parameters.py      copy of the parameters file; parameters.json: the resolved values
        <algorithm>.py     copy of the algorithm file
        dataset.json       dataset version and table checksums used
        versions.json      Python and package versions
        run.json           status, window, final value; run.log: the run's log

The folder is written under a hidden temporary name and renamed into place when complete, so a
folder without the leading dot is always a finished run. Only run.log and run.json's
`created_utc` carry wall-clock times: two runs with the same inputs differ nowhere else.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import os
import platform
import re
import shutil
from collections.abc import Callable
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.feather as feather

from .. import __version__
from ..config import Parameters
from ..data.datasets import read_manifest
from ..data.frequency import PERIODS_PER_YEAR
from ..data.panel import Panel
from ..errors import BadInputError, LockHeldError
from ..infra import locks
from ..infra.storage import (
    atomic_write_csv,
    atomic_write_text,
    fsync_dir,
    remove_abandoned_temporaries,
)
from .checkpoint import NAME as CHECKPOINT
from .loop import RunResult

log = logging.getLogger(__name__)
PACKAGES = ("numpy", "pandas", "pyarrow", "matplotlib", "tqdm")


def run_name(now: dt.datetime, params: Parameters, algorithm_path: str | Path) -> str:
    """`<YYYYmmddTHHMMSSZ>__<source>__<index>__<algorithm>`, so names sort by time. The parts
    are made safe for a folder name: an index called "../x" cannot place a run outside results/."""
    parts = (params.source, params.index, Path(algorithm_path).stem)
    return f"{now:%Y%m%dT%H%M%SZ}__" + "__".join(safe_name_part(p) for p in parts)


def safe_name_part(text: str, empty: str = "-") -> str:
    """Letters, digits, '.', '-' and '_' only (runs of others become '-'), no leading or trailing
    '.' or '-', no '__' (the separator of run names); `empty` if nothing is left."""
    text = re.sub(r"[^A-Za-z0-9._-]+", "-", str(text))
    return re.sub(r"_{2,}", "_", text).strip(".-") or empty


def partial_dir(run_dir: Path) -> Path:
    """The hidden folder a run writes into until it is complete."""
    return run_dir.parent / f".{run_dir.name}.partial"


@dataclasses.dataclass(frozen=True)
class ArchiveFile:
    """One file of a run folder: what it holds, and how 04 (or anyone) reads it back."""

    name: str
    holds: str
    read: Callable[[Path], Any]
    required: bool = True


def _csv(**kwargs) -> Callable[[Path], pd.DataFrame]:
    return lambda path: pd.read_csv(path, **kwargs)


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text())


# The archive is the whole contract between 03 and 04: 03 writes these, `read_run` reads them,
# and a folder holding them (copied anywhere) is evaluated without datasets/ or decisions/.
FILES: tuple[ArchiveFile, ...] = (
    ArchiveFile("runtime_log.csv", "one row per heartbeat", _csv(parse_dates=["date"])),
    ArchiveFile("trades.csv", "every fill and delisting close-out", _csv(parse_dates=["date"])),
    ArchiveFile(
        "cash_ledger.csv",
        "every change of cash with the running balance",
        _csv(
            parse_dates=["date"], keep_default_na=False, na_values={"amount": [""], "balance": [""]}
        ),
    ),
    ArchiveFile("positions.feather", "daily holdings", pd.read_feather),
    ArchiveFile("target_weights.csv", "compute_weights' answers", _csv(parse_dates=["date"])),
    ArchiveFile("benchmark.csv", "the benchmark's return per bar", _csv(parse_dates=["date"])),
    ArchiveFile("metadata.csv", "names and sectors", _csv(dtype=str, keep_default_na=False)),
    ArchiveFile("parameters.json", "the resolved parameters", _read_json),
    ArchiveFile("dataset.json", "the dataset version and its checksums", _read_json),
    ArchiveFile("versions.json", "Python and package versions", _read_json),
    ArchiveFile("run.json", "status, window, values, warnings", _read_json),
    ArchiveFile(
        "contest_inputs.feather",
        "style scores and liquidity of each holding (contest_checks)",
        pd.read_feather,
        required=False,
    ),
    ArchiveFile(
        "llm_decisions_used.csv",
        "the LLM decisions the run traded on, with forward returns (strategies/llm.py)",
        _csv(
            keep_default_na=False,
            na_values={c: [""] for c in ("confidence", "fwd_return", "excess")},
        ),
        required=False,
    ),
)


def read_file(run_dir: str | Path, name: str) -> Any:
    """One file of a run folder, read the way FILES says (None when an optional one is absent)."""
    spec = next(f for f in FILES if f.name == name)
    path = Path(run_dir) / name
    return spec.read(path) if path.is_file() else None


def read_run(run_dir: str | Path) -> dict[str, Any]:
    """Every file of a finished run folder, read (name -> frame or dict; absent optional files
    are None). A missing required file is a clear error naming it."""
    run_dir = Path(run_dir)
    missing = [f.name for f in FILES if f.required and not (run_dir / f.name).is_file()]
    if missing:
        raise BadInputError(
            f"{run_dir} is not a finished run archive (missing {', '.join(missing)})"
        )
    return {f.name: read_file(run_dir, f.name) for f in FILES}


def reserve(run_dir: Path) -> bool:
    """Take a run folder name for this process by creating its hidden folder (atomic: of two
    runs started in the same second only one gets the name). A name already taken (finished,
    being written, or a killed run's folder that may hold a checkpoint) is refused."""
    if run_dir.exists():
        return False
    try:
        partial_dir(run_dir).mkdir(parents=True)
    except FileExistsError:
        return False
    locks.claim(partial_dir(run_dir))
    return True


def start_run_dir(run_dir: Path, keep_partial: bool = False) -> Path:
    """Create (and claim) the hidden temporary folder a run writes into; refuses to overwrite an
    archive or to share a folder with a live run. A folder left by a killed run is removed, unless
    it holds a checkpoint to resume; then only its half-written temporary files are."""
    if run_dir.exists():
        raise BadInputError(
            f"run folder {run_dir} already exists; archives are never overwritten. "
            "Pass another --run-dir or leave it out"
        )
    tmp = partial_dir(run_dir)
    if locks.owned_by_live_process(tmp):
        raise LockHeldError(f"another 03 run is writing {run_dir}; pass another --run-dir")
    if tmp.exists() and not keep_partial and not locks.owned_by_this_process(tmp):
        shutil.rmtree(tmp)  # left by a run that was killed: never read as complete
    tmp.mkdir(parents=True, exist_ok=True)
    remove_abandoned_temporaries(tmp)  # a killed writer's: never part of an archive
    locks.claim(tmp)
    return tmp


def clear_abandoned(results_dir: str | Path) -> None:
    """Remove the hidden folders of killed runs that hold nothing to resume (no checkpoint) and
    whose process is gone. Folders of live runs, and checkpoints, are left alone."""
    root = Path(results_dir)
    if not root.is_dir():
        return
    for folder in root.glob(".*.partial"):
        if not folder.is_dir() or locks.owned_by_live_process(folder):
            continue
        if not (folder / CHECKPOINT).exists():
            log.info("removing %s, left by a killed run with nothing to resume", folder.name)
            shutil.rmtree(folder, ignore_errors=True)


def write_archive(
    tmp: Path,
    result: RunResult,
    params: Parameters,
    parameters_path: Path,
    algorithm_path: Path,
    panel: Panel,
    benchmark: pd.Series,
    datasets_dir: Path,
    contest_inputs: pd.DataFrame | None = None,
    llm_decisions: pd.DataFrame | None = None,
) -> None:
    """Write every table and copy of the inputs into the temporary run folder."""
    if contest_inputs is not None:
        _feather(tmp / "contest_inputs.feather", contest_inputs)
    if llm_decisions is not None:
        atomic_write_csv(tmp / "llm_decisions_used.csv", llm_decisions)
    atomic_write_csv(tmp / "runtime_log.csv", result.runtime_log)
    atomic_write_csv(tmp / "trades.csv", result.trades)
    atomic_write_csv(tmp / "cash_ledger.csv", result.cash_ledger)
    atomic_write_csv(tmp / "target_weights.csv", result.target_weights)
    _feather(tmp / "positions.feather", result.positions)
    atomic_write_csv(
        tmp / "benchmark.csv", benchmark.rename("return").rename_axis("date").reset_index()
    )
    atomic_write_csv(tmp / "metadata.csv", panel.metadata.reset_index())
    if parameters_path.is_file():
        shutil.copyfile(parameters_path, tmp / "parameters.py")
    if params.starting_holdings:
        shutil.copyfile(params.starting_holdings, tmp / "starting_holdings.csv")
    shutil.copyfile(algorithm_path, tmp / algorithm_path.name)
    _json(tmp / "parameters.json", params.as_dict())
    manifest = read_manifest(datasets_dir, panel.dataset_version)
    _json(
        tmp / "dataset.json",
        {
            "datasets_dir": str(datasets_dir),
            "version": panel.dataset_version,
            "source": panel.source,
            "index": panel.index,
            "tables": manifest.get("tables", {}),
            "logs": len(manifest.get("logs", [])),
            **(
                {"fundamentals_vintage": manifest["fundamentals_vintage"][panel.source]}
                if panel.source in manifest.get("fundamentals_vintage", {})
                else {}
            ),
        },
    )
    versions = {"python": platform.python_version(), "equity_backtest": __version__}
    for pkg in PACKAGES:
        try:
            versions[pkg] = importlib_metadata.version(pkg)
        except importlib_metadata.PackageNotFoundError:
            versions[pkg] = None
    _json(tmp / "versions.json", versions)
    rl = result.runtime_log
    _json(
        tmp / "run.json",
        {
            "status": result.status,
            "message": result.message,
            "warnings": result.warnings,
            "algorithm": algorithm_path.name,
            "start": f"{rl['date'].iloc[0]:%Y-%m-%d}",
            "end": f"{rl['date'].iloc[-1]:%Y-%m-%d}",
            "heartbeats": len(rl),
            "bar_frequency": result.bar_frequency,
            "periods_per_year": PERIODS_PER_YEAR[result.bar_frequency],
            "benchmark": params.benchmark,
            "starting_value": result.starting_value,
            "starting_holdings": params.starting_holdings,
            "final_value": float(rl["value"].iloc[-1]),
            "seed": params.seed,
            "created_utc": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        },
    )


def finish_run_dir(tmp: Path, run_dir: Path) -> Path:
    """Rename the finished temporary folder into place (atomic)."""
    remove_abandoned_temporaries(tmp)  # a killed writer's: never part of an archive
    locks.release(tmp)
    os.replace(tmp, run_dir)
    fsync_dir(run_dir.parent)
    return run_dir


def _feather(path: Path, frame: pd.DataFrame) -> None:
    feather.write_feather(
        pa.Table.from_pandas(frame, preserve_index=False), path, compression="zstd"
    )


def _json(path: Path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=1, sort_keys=True, default=str) + "\n")


def latest_run(results_dir: str | Path) -> Path:
    """The most recent folder that holds a finished run (run.json; names sort by time), so a
    factor-research or overfitting folder beside the runs is never taken for one."""
    root = Path(results_dir)
    runs = (
        sorted(
            p
            for p in root.iterdir()
            if p.is_dir() and not p.name.startswith(".") and (p / "run.json").is_file()
        )
        if root.is_dir()
        else []
    )
    if not runs:
        raise BadInputError(
            f"no finished run in {root}; run 03_trade.py first or pass a run folder"
        )
    return runs[-1]
