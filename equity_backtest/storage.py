"""Atomic, write-once file operations so that nothing half-written is ever read as complete.

Every file the pipeline produces is written to a temporary name beside its final place and then
renamed into place (rename is atomic on POSIX file systems). Local paths only in this version; the
functions are the single seam where fsspec URLs (O3) plug in.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from . import faults


def file_mode() -> int:
    """The mode a new file gets under the process's umask (0o666 & ~umask), so that results on a
    shared drive or written by a container are as readable as any other file the user makes."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write_bytes(path: str | Path, data: bytes, *, overwrite: bool = True) -> bool:
    """Write `data` to `path` via a temp file + fsync + rename.

    With overwrite=False an existing file is left untouched and False is returned (write-once).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    faults.point("write")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, file_mode())  # mkstemp makes 0600 whatever the umask
        with os.fdopen(fd, "wb") as fh:
            fh.write(data[: len(data) // 2])
            faults.point("write")  # half written
            fh.write(data[len(data) // 2 :])
            fh.flush()
            os.fsync(fh.fileno())
        faults.point("write")  # written, not yet in place
        if overwrite:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)  # fails if the target exists: never replaces a logged file
            except FileExistsError:
                return False
            finally:
                os.unlink(tmp)
        return True
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | Path, text: str, *, overwrite: bool = True) -> bool:
    """Text version of atomic_write_bytes (UTF-8, newlines as given)."""
    return atomic_write_bytes(path, text.encode("utf-8"), overwrite=overwrite)


def sha256_file(path: str | Path) -> str:
    """Hex digest of a file's bytes, for manifests."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fsync_dir(path: str | Path) -> None:
    """Persist a directory entry (after a rename) where the platform allows it."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_csv(
    path: str | Path, frame, *, index: bool = False, date_format: str = "%Y-%m-%d"
) -> None:
    """A DataFrame as CSV (\\n line ends, ISO dates), written atomically: the one CSV writer of
    every stage's outputs."""
    atomic_write_text(path, frame.to_csv(index=index, lineterminator="\n", date_format=date_format))
