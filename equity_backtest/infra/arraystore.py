"""Plain data written as JSON plus one file of raw array bytes, and read back without running code.

What a cache needs and pickle gave, without pickle's hazard: a pickle is a program, so loading
one from a folder another person can write (a shared datasets folder, an s3:// store) runs
whatever they put there. Here the structure is JSON and the arrays are raw bytes memory-mapped
copy-on-write, and reading builds only what `read` is told to expect:

- None, bool, int, float (NaN and infinities too), str; lists, tuples and dicts (str or int keys);
- numpy arrays of numbers, booleans, datetimes and fixed-width text, from the buffers file;
  arrays of Python objects only as JSON lists of the scalars above (never from raw bytes);
- pandas Index, DatetimeIndex and DataFrame (columns rebuilt with their dtype's name);
- instances of the dataclasses the caller names, by class name, field by field.

Anything else is refused when written (`Unstorable`) and when read (`Unreadable`), so a hostile
file can at worst be refused. Arrays of 64 KiB and more go to the buffers file, 64-byte aligned;
smaller ones are kept inline (base64) in the JSON.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

_RAW_KINDS = "biufcmMU"  # dtypes whose bytes are plain values (never "O" or structured "V")
_OUT_OF_LINE = 1 << 16


class Unstorable(TypeError):
    """The object holds something this format does not store."""


class Unreadable(ValueError):
    """The stored file is not what this format writes (damaged, or not ours)."""


def write(obj: Any, meta_path: Path, buffers_path: Path) -> None:
    """Write `obj` as `meta_path` (JSON) and `buffers_path` (the arrays' bytes)."""
    buffers: list[np.ndarray] = []
    tree = _encode(obj, buffers)
    spans, offset = [], 0
    with open(buffers_path, "wb") as fh:
        for array in buffers:
            offset += -offset % 64  # aligned for any dtype
            fh.seek(offset)
            fh.write(np.ascontiguousarray(array).reshape(-1).view(np.uint8).data)
            spans.append([offset, array.nbytes])
            offset += array.nbytes
    meta_path.write_text(json.dumps({"format": 1, "spans": spans, "tree": tree}))


def read(meta_path: Path, buffers_path: Path, dataclasses_allowed: tuple[type, ...] = ()) -> Any:
    """The object `write` stored; arrays map `buffers_path` copy-on-write (nothing is read until
    used, and an array written to becomes a private copy). Raises Unreadable on anything else."""
    try:
        meta = json.loads(meta_path.read_text())
        if not isinstance(meta, dict) or meta.get("format") != 1:
            raise Unreadable("not an array store of format 1")
        spans = meta["spans"]
        size = buffers_path.stat().st_size
        for span in spans:
            if not (
                isinstance(span, list)
                and len(span) == 2
                and all(isinstance(v, int) and v >= 0 for v in span)
                and span[0] + span[1] <= size
            ):
                raise Unreadable(f"array span {span!r} outside the buffers file")
        mapped = np.memmap(buffers_path, dtype=np.uint8, mode="c") if size else None
        allowed = {cls.__name__: cls for cls in dataclasses_allowed}
        return _Decoder(mapped, spans, allowed).decode(meta["tree"])
    except Unreadable:
        raise
    except (OSError, ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
        raise Unreadable(f"{type(exc).__name__}: {exc}") from exc


def _array_entry(array: np.ndarray, buffers: list) -> dict:
    if array.dtype.kind not in _RAW_KINDS or array.dtype.fields is not None:
        raise Unstorable(f"an array of dtype {array.dtype}")
    entry = {"dtype": array.dtype.str, "shape": list(array.shape)}
    if array.nbytes >= _OUT_OF_LINE:
        buffers.append(array)
        entry["buffer"] = len(buffers) - 1
    else:
        entry["inline"] = base64.b64encode(np.ascontiguousarray(array).tobytes()).decode("ascii")
    return {"array": entry}


def _encode(obj: Any, buffers: list) -> Any:
    if obj is None or isinstance(obj, bool | str):
        return obj
    if isinstance(obj, int | np.integer):
        return int(obj)
    if isinstance(obj, float | np.floating):
        value = float(obj)
        return value if math.isfinite(value) else {"float": repr(value)}
    if isinstance(obj, list | tuple):
        items = [_encode(v, buffers) for v in obj]
        return {"list": items} if isinstance(obj, list) else {"tuple": items}
    if isinstance(obj, dict):
        if not all(isinstance(k, str | int) and not isinstance(k, bool) for k in obj):
            raise Unstorable("a dict with keys other than str and int")
        return {"dict": [[k, _encode(v, buffers)] for k, v in obj.items()]}
    if isinstance(obj, np.ndarray):
        if obj.dtype == object:
            if obj.ndim != 1:
                raise Unstorable("an object array of more than one dimension")
            return {"objects": [_scalar(v, buffers) for v in obj.tolist()]}
        return _array_entry(obj, buffers)
    if isinstance(obj, pd.DatetimeIndex):
        return {
            "datetimeindex": _array_entry(obj.asi8, buffers),
            "unit": np.datetime_data(obj.dtype if obj.tz is None else obj.dtype.base)[0],
            "tz": None if obj.tz is None else str(obj.tz),
            "name": _encode(obj.name, buffers),
        }
    if isinstance(obj, pd.Index) and not isinstance(obj, pd.MultiIndex):
        return {
            "index": _encode(obj.to_numpy(dtype=object if obj.dtype == object else None), buffers),
            "dtype": str(obj.dtype),
            "name": _encode(obj.name, buffers),
        }
    if isinstance(obj, pd.DataFrame):
        return {
            "frame": {
                "columns": _encode(obj.columns, buffers),
                "data": [
                    _encode(_column_values(obj.iloc[:, i]), buffers) for i in range(obj.shape[1])
                ],
                "dtypes": [str(d) for d in obj.dtypes],
                "index": _encode(obj.index, buffers),
            }
        }
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        fields = {f.name: _encode(getattr(obj, f.name), buffers) for f in dataclasses.fields(obj)}
        return {"dataclass": type(obj).__name__, "fields": fields}
    raise Unstorable(f"a {type(obj).__name__}")


def _column_values(column: pd.Series) -> np.ndarray:
    if isinstance(column.dtype, np.dtype) and column.dtype.kind in _RAW_KINDS:
        return column.to_numpy()
    return column.to_numpy(dtype=object)


def _scalar(value: Any, buffers: list) -> Any:
    if value is None or isinstance(value, bool | int | float | str | np.integer | np.floating):
        return _encode(value, buffers)
    raise Unstorable(f"a {type(value).__name__} inside an object array")


@dataclasses.dataclass
class _Decoder:
    mapped: np.ndarray | None
    spans: list
    allowed: dict[str, type]

    def decode(self, node: Any) -> Any:
        if node is None or isinstance(node, bool | int | float | str):
            return node
        if not isinstance(node, dict) or len(node) == 0:
            raise Unreadable(f"unexpected {type(node).__name__} in the tree")
        kind = next(iter(node))
        if kind == "float":
            if node["float"] not in ("nan", "inf", "-inf"):
                raise Unreadable(f"float {node['float']!r}")
            return float(node["float"])
        if kind in ("list", "tuple"):
            items = [self.decode(v) for v in self._list(node[kind])]
            return items if kind == "list" else tuple(items)
        if kind == "dict":
            out = {}
            for pair in self._list(node["dict"]):
                if not (
                    isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], str | int)
                ):
                    raise Unreadable("a dict entry that is not [key, value]")
                out[pair[0]] = self.decode(pair[1])
            return out
        if kind == "array":
            return self.array(node["array"])
        if kind == "objects":
            values = [self.decode(v) for v in self._list(node["objects"])]
            if any(isinstance(v, list | tuple | dict | np.ndarray) for v in values):
                raise Unreadable("an object array holds more than scalars")
            out = np.empty(len(values), dtype=object)
            out[:] = values
            return out
        if kind == "datetimeindex":
            values = self.array(node["datetimeindex"]["array"])
            if values.dtype != np.int64 or node["unit"] not in ("s", "ms", "us", "ns"):
                raise Unreadable("a date index that is not int64 with a time unit")
            index = pd.DatetimeIndex(
                values.view(f"datetime64[{node['unit']}]"), name=self.decode(node["name"])
            )
            return index if node["tz"] is None else index.tz_localize("UTC").tz_convert(node["tz"])
        if kind == "index":
            return pd.Index(
                self.decode(node["index"]),
                dtype=self._dtype(node["dtype"]),
                name=self.decode(node["name"]),
            )
        if kind == "frame":
            frame = node["frame"]
            columns = self.decode(frame["columns"])
            data = [self.decode(v) for v in self._list(frame["data"])]
            dtypes = self._list(frame["dtypes"])
            if not (isinstance(columns, pd.Index) and len(columns) == len(data) == len(dtypes)):
                raise Unreadable("a frame whose columns, data and dtypes do not match")
            index = self.decode(frame["index"])
            series = [
                pd.Series(values, index=index, dtype=self._dtype(d), copy=False)
                for values, d in zip(data, dtypes, strict=True)
            ]
            out = pd.concat(series, axis=1) if series else pd.DataFrame(index=index)
            out.columns = columns
            return out
        if kind == "dataclass":
            cls = self.allowed.get(node["dataclass"])
            if cls is None:
                raise Unreadable(f"class {node['dataclass']!r} is not one this reader builds")
            fields = node["fields"]
            names = [f.name for f in dataclasses.fields(cls)]
            if not isinstance(fields, dict) or sorted(fields) != sorted(names):
                raise Unreadable(f"{cls.__name__} with other fields than {names}")
            return cls(**{name: self.decode(fields[name]) for name in names})
        raise Unreadable(f"unknown node {kind!r}")

    def array(self, entry: Any) -> np.ndarray:
        if not isinstance(entry, dict):
            raise Unreadable("an array entry that is not an object")
        dtype = np.dtype(str(entry["dtype"]))
        if dtype.kind not in _RAW_KINDS or dtype.fields is not None or dtype.hasobject:
            raise Unreadable(f"an array of dtype {dtype}")
        shape = tuple(self._list(entry["shape"]))
        if not all(isinstance(n, int) and n >= 0 for n in shape):
            raise Unreadable(f"shape {shape!r}")
        nbytes = math.prod(shape) * dtype.itemsize
        if "buffer" in entry:
            start, size = self.spans[entry["buffer"]]
            if size != nbytes or self.mapped is None:
                raise Unreadable(f"an array of {nbytes} bytes in a span of {size}")
            # a plain ndarray over the mapping (np.memmap's Python hooks would run on every
            # slice the loop takes, thousands of times a run)
            raw = self.mapped[start : start + size].view(np.ndarray)
        else:
            raw = np.frombuffer(base64.b64decode(entry["inline"], validate=True), dtype=np.uint8)
            if raw.nbytes != nbytes:
                raise Unreadable(f"an inline array of {raw.nbytes} bytes, not {nbytes}")
            raw = raw.copy()
        return raw.view(dtype).reshape(shape)

    @staticmethod
    def _list(value: Any) -> list:
        if not isinstance(value, list):
            raise Unreadable(f"a {type(value).__name__} where a list belongs")
        return value

    @staticmethod
    def _dtype(name: Any):
        if not isinstance(name, str):
            raise Unreadable("a dtype that is not a name")
        dtype = pd.api.types.pandas_dtype(name)
        if isinstance(dtype, np.dtype) and dtype.kind == "V":
            raise Unreadable(f"dtype {name}")
        return dtype
