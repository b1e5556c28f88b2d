"""What every numbered script shares: arguments, logging, exit codes (O1).

Exit codes: 0 ok, 1 internal error (a bug: the traceback goes to the log), 2 bad input (the
message names the file, row or field), 3 vendor unavailable, 4 lock held, 5 the portfolio's
equity ran out, 130 interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import logging
import os
import socket
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from dotenv import load_dotenv

from . import remote
from .config import Parameters, load_parameters, parse_assignments
from .errors import EXIT_INTERNAL, BacktestError, LockHeldError

log = logging.getLogger("equity_backtest")


def parser(description: str, *, window: bool = True) -> argparse.ArgumentParser:
    """An argument parser with the flags every script takes."""
    p = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--parameters",
        default="parameters.py",
        metavar="PATH",
        help="the parameters file (default: parameters.py)",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override any parameter, e.g. --set rebalance=quarterly (repeatable)",
    )
    if window:
        p.add_argument(
            "--start", help="first day of the backtest, YYYY-MM-DD (overrides parameters.py)"
        )
        p.add_argument("--end", help="last day of the backtest, YYYY-MM-DD (inclusive)")
    p.add_argument(
        "--quiet", action="store_true", help="print only warnings and errors; no progress bars"
    )
    p.add_argument("--verbose", action="store_true", help="print debug messages")
    return p


def load(args: argparse.Namespace, **extra) -> Parameters:
    """parameters.py + --set + the named flags (flags win)."""
    overrides = parse_assignments(args.set)
    for name in ("start", "end"):
        if getattr(args, name, None):
            overrides[name] = getattr(args, name)
    overrides.update({k: v for k, v in extra.items() if v is not None})
    return load_parameters(args.parameters, overrides)


def setup_logging(args: argparse.Namespace, log_file: Path | None = None) -> None:
    """Console logging (quiet/verbose aware) and, if given, a full log file for the run."""
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.setLevel(logging.DEBUG)
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(
        logging.WARNING if args.quiet else logging.DEBUG if args.verbose else logging.INFO
    )
    console.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    root.addHandler(console)
    if log_file is not None:
        add_log_file(log_file)
    logging.getLogger("matplotlib").setLevel(logging.WARNING)


def add_log_file(path: Path) -> logging.Handler:
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(handler)
    return handler


def stage_log_file(stage: str) -> Path:
    """logs/<stage>_<UTC start time>.log for scripts whose outputs have no run folder."""
    return Path("logs") / f"{stage}_{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S%fZ}.log"


def show_progress(args: argparse.Namespace) -> bool:
    """Progress bars only for a person at a terminal."""
    return not args.quiet and sys.stderr.isatty()


def run(main: Callable[[], int | None]) -> None:
    """Call a script's main and turn the outcome into an exit code; never a bare traceback for
    a user's mistake. Credentials may sit in a git-ignored .env file beside parameters.py;
    variables already set in the environment win."""
    load_dotenv(Path.cwd() / ".env", override=False)
    try:
        code = main() or 0
    except BacktestError as exc:
        log.error("%s", exc)
        code = exc.exit_code
    except KeyboardInterrupt:
        log.error("interrupted")
        code = 130
    except Exception:
        log.exception("internal error: please report it with the log file")
        code = EXIT_INTERNAL
    logging.shutdown()
    sys.exit(code)


@contextlib.contextmanager
def stage_lock(folder: str | Path, stage: str, enabled: bool = True):
    """Hold `<folder>/.lock-<stage>` while a stage writes to a shared store, so two cron runs of
    the same stage cannot overlap. A second run gets LockHeldError (exit code 4) naming the holder;
    a lock left by a process that no longer runs on this host is reported and cleared."""
    if not enabled:  # the caller (a sweep's parent process) holds it
        yield
        return
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f".lock-{stage}"
    me = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started_utc": dt.datetime.now(dt.UTC).isoformat(),
    }
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                holder = json.loads(path.read_text())
            except (OSError, ValueError):
                holder = {}
            if holder.get("host") == me["host"] and not process_alive(holder.get("pid", -1)):
                log.warning(
                    "clearing a stale %s lock left by process %s (no longer running)",
                    stage,
                    holder.get("pid"),
                )
                path.unlink(missing_ok=True)
                continue
            raise LockHeldError(
                f"another {stage} run holds {path} (pid {holder.get('pid')} on {holder.get('host')}, "
                f"since {holder.get('started_utc')}); wait for it or remove the file if it is gone"
            ) from None
        with os.fdopen(fd, "w") as fh:
            json.dump(me, fh)
        break
    try:
        yield
    finally:
        path.unlink(missing_ok=True)


def process_alive(pid: int) -> bool:
    """Whether a process with this pid runs on this host (for stale locks and shards)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def trading_stores(params: Parameters) -> Iterator[Parameters]:
    """03's stores as local folders: the dataset version it reads (pulled when datasets_dir is a
    URL) and the results folder it writes (pushed back when results_dir is one)."""
    cache = params.store_cache_dir
    with (
        remote.mirrored(
            params.datasets_dir,
            cache,
            pull=remote.dataset_version(params.dataset_version),
            push=False,
        ) as datasets_dir,
        remote.mirrored(params.results_dir, cache, pull=None) as results_dir,
    ):
        yield params.replace(datasets_dir=str(datasets_dir), results_dir=str(results_dir))
