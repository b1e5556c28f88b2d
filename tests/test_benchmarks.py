"""The benchmarks' own measuring: a script's peak memory is its process's, not its parent's."""

import importlib.util

import numpy as np

from .conftest import REPO


def _measure():
    spec = importlib.util.spec_from_file_location("measure", REPO / "benchmarks" / "measure.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_childs_peak_is_its_own_not_its_large_parents(tmp_path):
    """Linux carries the largest resident size over exec: a child started by a process holding
    800 MB reported 800 MB through getrusage. run_script reports what the child itself used."""
    measure = _measure()
    held = np.ones(100_000_000)  # 800 MB resident in this process
    script = tmp_path / "small.py"
    script.write_text("import numpy as np\nx = np.ones(12_500_000)  # 100 MB\n")
    seconds, peak = measure.run_script(script, cwd=tmp_path)
    assert seconds > 0 and 100 <= peak < 400, peak
    assert measure.own_peak_mb() >= held.nbytes / 2**20
