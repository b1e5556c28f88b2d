"""O3: datalog/, datasets/ and results/ on s3:// against moto's standalone S3 server on loopback."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from equity_backtest.data import datasets
from equity_backtest.data.datalog import list_logs

from .conftest import REPO, free_port, run_script, write_parameters_file

pytest.importorskip("s3fs")
pytest.importorskip("moto")
SECRET = "s3cr3t-Never-In-Logs-4f1c9a"
BUCKET = "research"


@pytest.fixture(scope="module")
def s3_env():
    """A moto S3 server on 127.0.0.1 and the environment that points boto/s3fs at it."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            urllib.request.urlopen(url, timeout=1)
            break
        except OSError:
            time.sleep(0.1)
    env = {
        "AWS_ACCESS_KEY_ID": "testing-key",
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "AWS_ENDPOINT_URL": url,
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    import boto3

    boto3.client(
        "s3",
        endpoint_url=url,
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=SECRET,
        region_name="us-east-1",
    ).create_bucket(Bucket=BUCKET)
    yield env
    proc.terminate()
    proc.wait(10)


def run(root: Path, env: dict, script: str, *args: str) -> subprocess.CompletedProcess:
    return run_script(root, str(REPO / script), *args, env=env)


def s3(env: dict):
    import s3fs

    return s3fs.S3FileSystem(
        key=env["AWS_ACCESS_KEY_ID"],
        secret=SECRET,
        endpoint_url=env["AWS_ENDPOINT_URL"],
        skip_instance_cache=True,
    )


def project(root: Path, prefix: str, **kw) -> Path:
    root.mkdir(parents=True)
    shutil.copy(REPO / "algorithm.py", root / "algorithm.py")
    write_parameters_file(
        root / "parameters.py",
        datalog_dir=f"s3://{BUCKET}/{prefix}/datalog",
        datasets_dir=f"s3://{BUCKET}/{prefix}/datasets",
        results_dir=f"s3://{BUCKET}/{prefix}/results",
        **kw,
    )
    return root


def test_pipeline_runs_on_s3_stores(s3_env, tmp_path, small_store):
    """Acceptance 5: 01-04 with every store on s3://; the datasets equal a local build's, the run
    is in the bucket with its tear sheet, and a second machine (an empty cache) evaluates it."""
    root = project(tmp_path / "a", "team")
    for script in ("01_query_vendor.py", "02_build_datasets.py", "03_trade.py", "04_evaluate.py"):
        out = run(root, s3_env, script)
    fs = s3(s3_env)
    logs = fs.ls(f"{BUCKET}/team/datalog")
    assert len(logs) == len(list_logs(small_store / "datalog"))
    assert fs.cat(f"{BUCKET}/team/datasets/CURRENT") == b"v000001\n"
    local = datasets.read_manifest(small_store / "datasets", "v000001")["tables"]
    remote_manifest = fs.cat(f"{BUCKET}/team/datasets/v000001/manifest.json")
    import json

    assert json.loads(remote_manifest)["tables"] == local
    runs = fs.ls(f"{BUCKET}/team/results")
    assert len(runs) == 1
    files = {Path(p).name for p in fs.find(runs[0])}
    assert {"run.json", "runtime_log.csv", "metrics.json", "tearsheet.html"} <= files
    assert not [p for p in fs.find(f"{BUCKET}/team") if "/." in p]  # no temp or lock objects
    # another machine: a fresh project folder and cache, same stores
    other = project(tmp_path / "b", "team")
    out = run(other, s3_env, "04_evaluate.py", Path(runs[0]).name)
    assert "tearsheet.html" in out.stdout
    assert "contest style and liquidity checks skipped" not in out.stderr  # its dataset was pulled
    # credentials appear in no log, archive or output
    for folder in (root, other):
        for p in folder.rglob("*"):
            if p.is_file():
                assert SECRET.encode() not in p.read_bytes(), p
    for p in fs.find(f"{BUCKET}/team"):
        assert SECRET.encode() not in fs.cat(p), p
    assert SECRET not in out.stdout + out.stderr


def test_logs_from_two_terminals_merge_in_one_store(s3_env, tmp_path):
    """Two machines write logs into one s3 datalog (each through its own cache); 02 on either
    builds both, and rerunning writes nothing new (logfiles are immutable objects)."""
    a = project(tmp_path / "a", "shared", source="files", index="SAMPLE10")
    b = project(tmp_path / "b", "shared", source="files", index="SAMPLE10")
    run(
        a,
        s3_env,
        "01_query_vendor.py",
        "--import",
        str(REPO / "mappings/constituents.toml"),
        str(REPO / "samples/constituents.csv"),
    )
    # terminal b keeps its credentials in a .env file (git-ignored) instead of the environment
    (b / ".env").write_text(
        f"AWS_ACCESS_KEY_ID={s3_env['AWS_ACCESS_KEY_ID']}\nAWS_SECRET_ACCESS_KEY={SECRET}\n"
    )
    env_b = {
        k: v for k, v in s3_env.items() if not k.startswith("AWS_S") and k != "AWS_ACCESS_KEY_ID"
    }
    run(
        b,
        env_b,
        "01_query_vendor.py",
        "--import",
        str(REPO / "mappings/datastream_close.toml"),
        str(REPO / "samples/datastream_close.csv"),
    )
    again = run(
        a,
        s3_env,
        "01_query_vendor.py",
        "--import",
        str(REPO / "mappings/constituents.toml"),
        str(REPO / "samples/constituents.csv"),
    )
    assert "0 logfiles written" in again.stderr
    run(b, env_b, "02_build_datasets.py")
    fs = s3(s3_env)
    import json

    manifest = json.loads(fs.cat(f"{BUCKET}/shared/datasets/v000001/manifest.json"))
    kinds = {entry["file"].split("__")[2] for entry in manifest["logs"]}
    assert kinds == {"constituent_list", "ticker_market_data"}
    assert len(manifest["logs"]) == len(fs.ls(f"{BUCKET}/shared/datalog"))
    assert (
        manifest["tables"]["constituents"]["rows"] > 0 and manifest["tables"]["market"]["rows"] > 0
    )


def test_an_unreachable_store_is_exit_3_with_a_clear_message(s3_env, tmp_path):
    root = project(tmp_path / "x", "team")
    env = {
        **s3_env,
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}",
        "AWS_MAX_ATTEMPTS": "1",
        "AWS_RETRY_MODE": "standard",
    }
    proc = run_script(root, str(REPO / "02_build_datasets.py"), check=False, env=env)
    assert proc.returncode == 3, proc.stderr
    assert "cannot be listed" in proc.stderr and "Traceback" not in proc.stderr
    assert SECRET not in proc.stderr


def test_a_pull_skips_hidden_and_escaping_keys(s3_env, tmp_path, monkeypatch):
    """A shared store's caches and temporary files (hidden keys) are never pulled, so nothing a
    colleague's machine cached is read here, and a key with '..' cannot land outside the mirror."""
    from equity_backtest.infra.remote import RemoteStore

    for name, value in s3_env.items():
        monkeypatch.setenv(name, value)
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()  # an earlier test's, made for an unreachable store
    fs = s3(s3_env)
    prefix = f"{BUCKET}/hidden_keys/datasets"
    keys = {
        "CURRENT": b"v000001\n",
        "v000001/manifest.json": b"{}",
        ".panel_cache/v000001-abc/panel.pkl": b"planted",
        "v000001/.market.feather.x.tmp": b"half",
        "../outside.txt": b"escaped",
    }
    for key, data in keys.items():
        fs.pipe_file(f"{prefix}/{key}", data)
    store = RemoteStore(f"s3://{prefix}", tmp_path / "cache")
    local = store.pull()
    pulled = sorted(p.relative_to(local).as_posix() for p in local.rglob("*") if p.is_file())
    assert pulled == [".remote_index.json", "CURRENT", "v000001/manifest.json"]
    assert not list(tmp_path.rglob("outside.txt"))
