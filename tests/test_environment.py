"""The tests run on what users install (D9+): the suite's pandas, numpy and pyarrow are the
versions a plain `pip install -e .` resolves today, so a dev dependency that caps one of them (as
the wrds package capped pandas below 2.3) fails here instead of testing another environment."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import version

import pytest

from tests.conftest import REPO

CORE = ("pandas", "numpy", "pyarrow")


@pytest.mark.slow
def test_the_suite_runs_on_the_versions_a_plain_install_resolves(tmp_path):
    report = tmp_path / "plain.json"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
         "--report", str(report), "-e", str(REPO)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    resolved = {
        item["metadata"]["name"].lower(): item["metadata"]["version"]
        for item in json.loads(report.read_text())["install"]
    }
    # major.minor: a patch release published between the install and this test is not a cap
    mine = {name: version(name).split(".")[:2] for name in CORE}
    plain = {name: resolved[name].split(".")[:2] for name in CORE}
    assert mine == plain, (
        f"the suite runs on {mine}, a plain install gets {plain}: a dev dependency holds one back"
    )
