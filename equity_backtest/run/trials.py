"""Trials (E10): many algorithms and/or parameter combinations, each its own reproducible run.

Every trial is a separate process (a local one, or a Ray task on a cluster) running 03_trade.py
with its own --run-dir and --set overrides,
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
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from ..config import FIELDS, Parameters, coerce, parse_assignments
from ..engine.archive import safe_name_part
from ..errors import BadInputError, LockHeldError
from ..infra import locks
from ..infra.storage import (
    atomic_write_csv,
    atomic_write_text,
    fsync_dir,
    remove_abandoned_temporaries,
)

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Trial:
    name: str
    algorithm: Path
    overrides: dict[str, str]  # parameter -> value as given on the command line (seed included)


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
            name = safe_name_part(
                algo.stem + "".join(f"--{k}-{v}" for k, v in chosen.items()), "trial"
            )
            if name in seen:
                raise BadInputError(
                    f"two trials are both named {name}; give the algorithm files different names"
                )
            seen.add(name)
            out.append(Trial(name, algo, {**chosen, "seed": str(trial_seed(params.seed, name))}))
    return out


def command(
    trial: Trial,
    script: Path,
    parameters: str,
    run_dir: Path,
    window: dict[str, str],
    stores: dict[str, str] | None = None,
) -> list[str]:
    """The command line that runs one trial alone (stores: the local folders the parent works
    in, so trials read and write the same mirrors)."""
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
    for k, v in {**(stores or {}), **trial.overrides}.items():
        cmd += ["--set", f"{k}={v}"]
    return cmd


def _run_local(
    cmds: dict[str, list[str]], jobs: int, progress: bool
) -> dict[str, subprocess.CompletedProcess]:
    """Each command in its own process, `jobs` at a time (default: the CPU count)."""
    results = {}
    with ThreadPoolExecutor(max_workers=jobs if jobs > 0 else None) as pool:
        futures = {
            pool.submit(subprocess.run, cmd, capture_output=True, text=True): name
            for name, cmd in cmds.items()
        }
        for fut in tqdm(
            as_completed(futures),
            total=len(futures),
            desc="trials",
            unit="trial",
            disable=not progress,
            leave=False,
        ):
            results[futures[fut]] = fut.result()
    return results


def _run_ray(cmds: dict[str, list[str]], address: str) -> dict[str, subprocess.CompletedProcess]:
    """Each command as a Ray task: `address` is 'local' (start a runtime here), 'auto' (join the
    running cluster) or a cluster address. Workers must see the same files (repository, datasets,
    results) at the same paths, as on a shared file system."""
    try:
        import ray
    except ImportError:
        raise BadInputError(
            "--ray needs the ray package: pip install 'equity_backtest[ray]'"
        ) from None

    @ray.remote(num_cpus=1)
    def run(cmd: list[str], cwd: str) -> tuple[int, str, str]:
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd)
        return proc.returncode, proc.stdout, proc.stderr

    started = not ray.is_initialized()
    if started:
        ray.init(
            address=None if address == "local" else address,
            include_dashboard=False,
            log_to_driver=False,
        )
    try:
        cwd = str(Path.cwd())
        refs = {name: run.remote(cmd, cwd) for name, cmd in cmds.items()}
        return {
            name: subprocess.CompletedProcess(cmds[name], *ray.get(ref))
            for name, ref in refs.items()
        }
    finally:
        if started:
            ray.shutdown()


def sweep_fingerprint(params: Parameters, trials: list[Trial], window: dict | None) -> str:
    """What a sweep depends on: the same command rerun after a kill finds its hidden folder."""
    from ..engine.checkpoint import file_digest, fingerprint
    from .runner import run_fingerprint

    return fingerprint(
        {
            "base": run_fingerprint(params),
            "window": window or {},
            "trials": [
                [t.name, file_digest(t.algorithm), sorted(t.overrides.items())] for t in trials
            ],
        }
    )


def _work_folder(parent: Path) -> Path:
    return parent.parent / f".{parent.name}.sweep"


def _resumable(results_dir: Path, fp: str) -> Path | None:
    """The visible name of a killed sweep with these inputs, whose hidden folder is still there."""
    if not results_dir.is_dir():
        return None
    for work in sorted(results_dir.glob(".*.sweep"), reverse=True):
        try:
            same = json.loads((work / SWEEP).read_text()).get("fingerprint") == fp
        except (OSError, ValueError):
            continue
        if same and not locks.owned_by_live_process(work):
            return results_dir / work.name[1:].removesuffix(".sweep")
    return None


SWEEP = "sweep.json"


def run_all(
    trials: list[Trial],
    params: Parameters,
    parameters: str,
    script: Path,
    jobs: int,
    parent: Path | None = None,
    window: dict[str, str] | None = None,
    progress: bool = False,
    ray_address: str | None = None,
) -> tuple[Path, int]:
    """Run every trial (`jobs` at a time, or on Ray); write trials.csv. Returns (folder, worst
    exit code).

    The sweep works in a hidden folder `.<name>.sweep` and appears under its name only when every
    trial has run and trials.csv is written, so a killed sweep is never read as a complete set.
    Rerunning the same command finds the hidden folder by a fingerprint of its inputs and runs
    only the trials that have no finished archive yet."""
    results_dir = Path(params.results_dir)
    fp = sweep_fingerprint(params, trials, window)
    parent = (
        parent
        or _resumable(results_dir, fp)
        or results_dir
        / (
            f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}__trials__{safe_name_part(params.source)}__"
            f"{safe_name_part(params.index)}"
        )
    )
    if parent.exists():
        raise BadInputError(
            f"trials folder {parent} already exists; archives are never overwritten"
        )
    work = _work_folder(parent)
    if locks.owned_by_live_process(work):
        raise LockHeldError(f"another sweep is writing {parent}; wait for it to finish")
    if work.exists():
        try:
            same = json.loads((work / SWEEP).read_text()).get("fingerprint") == fp
        except (OSError, ValueError):
            same = False
        if not same:
            raise BadInputError(
                f"{work} holds an interrupted sweep with other inputs; rerun that sweep to "
                "finish it, or remove the folder"
            )
        log.info("resuming the interrupted sweep %s", parent.name)
    work.mkdir(parents=True, exist_ok=True)
    locks.claim(work)
    remove_abandoned_temporaries(work)  # a killed sweep's half-written trials.csv, say
    atomic_write_text(work / SWEEP, json.dumps({"fingerprint": fp}) + "\n")
    stores = {"datasets_dir": params.datasets_dir, "results_dir": params.results_dir}
    cmds = {
        t.name: command(t, script, parameters, work / t.name, window or {}, stores) for t in trials
    }
    todo = {n: c for n, c in cmds.items() if not (work / n / "run.json").is_file()}
    if len(todo) < len(cmds):
        log.info("%d of %d trials already finished", len(cmds) - len(todo), len(cmds))
    ran = _run_ray(todo, ray_address) if ray_address and todo else _run_local(todo, jobs, progress)
    results = {n: ran.get(n) for n in cmds}
    for name, proc in ran.items():
        if proc.returncode not in (0, 5):
            log.error(
                "trial %s failed (exit %d): %s",
                name,
                proc.returncode,
                proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "",
            )
    rows = []
    for t in trials:  # in plan order, whatever order they finished in
        info_path = work / t.name / "run.json"
        info = json.loads(info_path.read_text()) if info_path.is_file() else {}
        proc = results[t.name]
        exit_code = proc.returncode if proc is not None else (0 if info else 1)
        rows.append(
            {
                "trial": t.name,
                "algorithm": str(t.algorithm),
                "exit_code": exit_code,
                "status": info.get("status", "failed"),
                "final_value": info.get("final_value"),
                **{f"set_{k}": v for k, v in t.overrides.items()},
                "command": " ".join(
                    command(t, script, parameters, parent / t.name, window or {}, stores)
                ),
            }
        )
    atomic_write_csv(work / "trials.csv", pd.DataFrame(rows))
    (work / SWEEP).unlink(missing_ok=True)
    locks.release(work)
    os.replace(work, parent)
    fsync_dir(parent.parent)
    worst = max((r["exit_code"] for r in rows), default=0)
    return parent, worst if worst not in (0, 5) else 0
