"""Trials (E10): many algorithms and/or parameter combinations, each its own reproducible run.

Every trial is a separate process running 03_trade.py with its own --run-dir and --set overrides,
so a trial's archive is exactly what running it alone gives; trials.csv records the command that
does that. A trial's seed is derived from the base seed and the trial's name, never from the
order or the number of trials running at once.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import itertools
import json
import logging
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from .config import FIELDS, Parameters, coerce, parse_assignments
from .errors import BadInputError
from .storage import atomic_write_text

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Trial:
    name: str
    algorithm: Path
    overrides: dict[str, str]  # parameter -> value as given on the command line (seed included)


def _safe(text: str) -> str:
    """A folder name from letters, digits, '.', '_' and '-' only."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip(".-") or "trial"


def trial_seed(base_seed: int, name: str) -> int:
    """A seed that depends only on the base seed and the trial's name."""
    return int.from_bytes(hashlib.sha256(f"{base_seed}:{name}".encode()).digest()[:4], "big")


def plan(
    params: Parameters, algorithms: list[str], folder: str | None, grid: list[str]
) -> list[Trial]:
    """Expand algorithm files x grid combinations into named trials (checked before any runs)."""
    algos = [Path(a) for a in algorithms]
    if folder:
        found = sorted(Path(folder).glob("*.py"))
        if not found:
            raise BadInputError(f"--trials {folder}: no .py algorithm files there")
        algos += found
    algos = algos or [Path(params.algorithm)]
    for a in algos:
        if not a.is_file():
            raise BadInputError(f"algorithm file {a} not found")
    axes: dict[str, list[str]] = {}
    for name, values in parse_assignments(grid).items():
        if name not in FIELDS:
            raise BadInputError(f"--grid {name}: unknown parameter")
        axes[name] = [v.strip() for v in values.split(",") if v.strip()]
        for v in axes[name]:  # fail now, not in the middle of a sweep
            params.replace(**{name: coerce(name, v)})
    out, seen = [], set()
    for algo in algos:
        for combo in itertools.product(*axes.values()) if axes else [()]:
            chosen = dict(zip(axes, combo, strict=True))
            name = _safe(algo.stem + "".join(f"--{k}-{v}" for k, v in chosen.items()))
            if name in seen:
                raise BadInputError(
                    f"two trials are both named {name}; give the algorithm files different names"
                )
            seen.add(name)
            out.append(Trial(name, algo, {**chosen, "seed": str(trial_seed(params.seed, name))}))
    return out


def command(
    trial: Trial, script: Path, parameters: str, run_dir: Path, window: dict[str, str]
) -> list[str]:
    """The command line that runs one trial alone."""
    cmd = [
        sys.executable,
        str(script),
        "--parameters",
        parameters,
        "--algorithm",
        str(trial.algorithm),
        "--run-dir",
        str(run_dir),
        "--quiet",
    ]
    for flag, value in window.items():
        if value:
            cmd += [f"--{flag}", value]
    for k, v in trial.overrides.items():
        cmd += ["--set", f"{k}={v}"]
    return cmd


def run_all(
    trials: list[Trial],
    params: Parameters,
    parameters: str,
    script: Path,
    jobs: int,
    parent: Path | None = None,
    window: dict[str, str] | None = None,
    progress: bool = False,
) -> tuple[Path, int]:
    """Run every trial (`jobs` at a time); write trials.csv. Returns (folder, worst exit code)."""
    parent = parent or Path(params.results_dir) / (
        f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}__trials__{params.source}__{params.index}"
    )
    if parent.exists():
        raise BadInputError(
            f"trials folder {parent} already exists; archives are never overwritten"
        )
    parent.mkdir(parents=True)
    cmds = {t.name: command(t, script, parameters, parent / t.name, window or {}) for t in trials}
    jobs = jobs if jobs > 0 else None
    results = {}
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = {
            pool.submit(subprocess.run, cmds[t.name], capture_output=True, text=True): t
            for t in trials
        }
        for fut in tqdm(
            as_completed(futures),
            total=len(futures),
            desc="trials",
            unit="trial",
            disable=not progress,
            leave=False,
        ):
            t = futures[fut]
            proc = fut.result()
            results[t.name] = proc
            if proc.returncode not in (0, 5):
                log.error(
                    "trial %s failed (exit %d): %s",
                    t.name,
                    proc.returncode,
                    proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "",
                )
    rows = []
    for t in trials:  # in plan order, whatever order they finished in
        info_path = parent / t.name / "run.json"
        info = json.loads(info_path.read_text()) if info_path.is_file() else {}
        rows.append(
            {
                "trial": t.name,
                "algorithm": str(t.algorithm),
                "exit_code": results[t.name].returncode,
                "status": info.get("status", "failed"),
                "final_value": info.get("final_value"),
                **{f"set_{k}": v for k, v in t.overrides.items()},
                "command": " ".join(cmds[t.name]),
            }
        )
    atomic_write_text(
        parent / "trials.csv", pd.DataFrame(rows).to_csv(index=False, lineterminator="\n")
    )
    worst = max((r["exit_code"] for r in rows), default=0)
    return parent, worst if worst not in (0, 5) else 0
