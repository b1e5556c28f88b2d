"""Shared stores (O3): datalog/, datasets/ and results/ given as fsspec URLs (s3://bucket/path).

A stage works on a local mirror of the store (under `store_cache_dir`) and syncs with the URL:
it pulls what it reads, then pushes what it wrote, so everything the local stages guarantee
(atomic, write-once files, versions switched last) holds on the store too:
  - datalog logfiles are immutable objects: pushed once, never overwritten (a name already there
    with other bytes is an error), so logs from two terminals into one store merge;
  - files are pushed in order with the ones that publish a result last (a dataset version's files
    before CURRENT, a run's files before run.json), so a reader never sees half a result;
  - hidden temporary files and folders (leading '.') are never pushed, nor pulled: a cache or a
    half-written file in a shared store is never read from it (nor is a key that would land
    outside the mirror, such as one with '..' in it);
  - what a stage wrote is pushed even when it then fails, so nothing finished is lost.
Credentials come from the environment (or a git-ignored .env file), as fsspec and boto expect:
AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL for an S3-compatible server.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from ..errors import BadInputError, VendorUnavailableError
from .storage import atomic_write_text

log = logging.getLogger(__name__)

PUBLISH_LAST = ("CURRENT", "run.json")
_INDEX = ".remote_index.json"


def is_url(location: str | Path) -> bool:
    """An fsspec URL (s3://, gs://, memory://, ...) rather than a local folder."""
    text = str(location)
    return "://" in text and not text.startswith("file://")


def redact(url: str) -> str:
    """A URL safe for logs: no user:password part."""
    scheme, sep, rest = url.partition("://")
    return f"{scheme}{sep}{rest.rpartition('@')[2]}" if sep else url


def pulls(rel: str) -> bool:
    """Whether a store's key is pulled: a plain relative path whose parts are none of them
    hidden ('.'-prefixed: caches, temporary files), empty or '..'."""
    parts = rel.split("/")
    return bool(rel) and not rel.startswith("/") and all(p and not p.startswith(".") for p in parts)


class RemoteStore:
    """One store URL and its local mirror, with what was last seen of each remote object."""

    def __init__(self, url: str, cache_dir: str | Path):
        try:
            import fsspec
        except ImportError:
            raise BadInputError(
                f"{redact(url)}: remote stores need fsspec and its backend: "
                "pip install 'equity_backtest[s3]'"
            ) from None
        try:
            self.fs, self.root = fsspec.core.url_to_fs(url)
        except (ImportError, ValueError) as exc:
            raise BadInputError(f"{redact(url)}: not a usable store URL ({exc})") from None
        self.url = url
        self.root = self.root.rstrip("/")
        name = hashlib.sha256(url.encode()).hexdigest()[:16]
        self.local = Path(cache_dir) / name
        self.local.mkdir(parents=True, exist_ok=True)
        index = self.local / _INDEX
        self.seen: dict[str, str] = json.loads(index.read_text()) if index.is_file() else {}

    # -- reading
    def _remote_files(self, prefix: str = "") -> dict[str, str]:
        """Relative key -> a token that changes when the object changes."""
        base = f"{self.root}/{prefix}".rstrip("/")
        try:
            found = self.fs.find(base, detail=True) if self.fs.exists(base) else {}
        except Exception as exc:  # an unreachable server or bad credentials
            raise VendorUnavailableError(
                f"store {redact(self.url)} cannot be listed ({type(exc).__name__}: {exc}); check "
                "the URL, the network and the credentials in the environment or .env"
            ) from None
        out = {}
        for path, info in found.items():
            if info.get("type") == "directory":
                continue
            rel = path[len(self.root) + 1 :]
            token = info.get("ETag") or info.get("mtime") or info.get("LastModified") or ""
            out[rel] = f"{info.get('size')}:{token}"
        return out

    def pull(self, prefixes: Iterable[str] | None = None) -> Path:
        """Download objects under the prefixes (default: all) that are new or changed."""
        remote: dict[str, str] = {}
        for prefix in prefixes if prefixes is not None else [""]:
            remote.update(self._remote_files(prefix))
        fetched, skipped = 0, []
        for rel, token in sorted(remote.items()):
            if not pulls(rel):
                skipped.append(rel)
                continue
            target = self.local / rel
            if self.seen.get(rel) == token and target.is_file():
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.pull")
            self.fs.get_file(f"{self.root}/{rel}", str(tmp))
            tmp.replace(target)
            self.seen[rel] = token
            fetched += 1
        self._save_index()
        if fetched:
            log.info("pulled %d files from %s", fetched, redact(self.url))
        if skipped:
            log.debug(
                "not pulled from %s (hidden or not a plain path): %s", redact(self.url), skipped
            )
        return self.local

    # -- writing
    def snapshot(self) -> dict[str, tuple[int, int]]:
        """Local files (not hidden) with size and mtime, to see later what a stage wrote."""
        out = {}
        for p in self.local.rglob("*"):
            rel = p.relative_to(self.local)
            if p.is_file() and not any(part.startswith(".") for part in rel.parts):
                st = p.stat()
                out[rel.as_posix()] = (st.st_size, st.st_mtime_ns)
        return out

    def push(self, before: dict[str, tuple[int, int]], *, immutable: bool) -> int:
        """Upload files written since `before`, publishing files last."""
        now = self.snapshot()
        changed = [rel for rel, stat in now.items() if before.get(rel) != stat]
        changed.sort(key=lambda rel: (Path(rel).name in PUBLISH_LAST, rel))
        for rel in changed:
            key = f"{self.root}/{rel}"
            if immutable and self.fs.exists(key):
                with self.fs.open(key, "rb") as fh:
                    same = fh.read() == (self.local / rel).read_bytes()
                if not same:
                    raise BadInputError(
                        f"{redact(self.url)}/{rel} already exists with other content; logfiles "
                        "are never replaced"
                    )
                continue
            self.fs.put_file(str(self.local / rel), key)
            info = self.fs.info(key)
            token = info.get("ETag") or info.get("mtime") or info.get("LastModified") or ""
            self.seen[rel] = f"{info.get('size')}:{token}"
        self._save_index()
        if changed:
            log.info("pushed %d files to %s", len(changed), redact(self.url))
        return len(changed)

    def _save_index(self) -> None:
        atomic_write_text(self.local / _INDEX, json.dumps(self.seen, sort_keys=True))


@contextlib.contextmanager
def mirrored(
    location: str | Path,
    cache_dir: str | Path,
    *,
    pull: str | Callable[[RemoteStore], None] | None = "all",
    push: bool = True,
    immutable: bool = False,
) -> Iterator[Path]:
    """The folder a stage works in: `location` itself when local; for a URL, a local mirror that
    is pulled first ("all", nothing, or a function of the store) and, if `push`, pushed back
    after the stage, even when it fails."""
    if not is_url(location):
        yield Path(location)
        return
    store = RemoteStore(str(location), cache_dir)
    if pull == "all":
        store.pull()
    elif callable(pull):
        pull(store)
    before = store.snapshot()
    try:
        yield store.local
    finally:
        if push:
            store.push(before, immutable=immutable)


def dataset_version(version: str | None) -> Callable[[RemoteStore], None]:
    """A pull that fetches CURRENT and one dataset version (default: the one CURRENT names)."""

    def pull(store: RemoteStore) -> None:
        store.pull(["CURRENT"])
        current = store.local / "CURRENT"
        chosen = version or (current.read_text().strip() if current.is_file() else None)
        if chosen:
            store.pull([chosen + "/"])

    return pull
