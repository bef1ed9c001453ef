"""A fast, defensive walk over a GGUF file's header: metadata scalars, array lengths, tensor table.

gguf-py's GGUFReader materialises every token string (about 1.5 s and long GC pauses for a 49k vocabulary);
this scan only skips over arrays, so it takes milliseconds and can vet a file before llama.cpp touches it:
counts, string lengths and tensor extents must all fit inside the file.
"""

from __future__ import annotations

import math
import mmap
import struct
from dataclasses import dataclass, field
from pathlib import Path

from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, GGUFValueType

from slm_studio.errors import UserError

_SCALARS = {GGUFValueType.UINT8: "B", GGUFValueType.INT8: "b", GGUFValueType.UINT16: "H",
            GGUFValueType.INT16: "h", GGUFValueType.UINT32: "I", GGUFValueType.INT32: "i",
            GGUFValueType.FLOAT32: "f", GGUFValueType.BOOL: "?", GGUFValueType.UINT64: "Q",
            GGUFValueType.INT64: "q", GGUFValueType.FLOAT64: "d"}


@dataclass
class TensorInfo:
    name: str
    n_elements: int
    nbytes: int


@dataclass
class GGUFSummary:
    version: int
    fields: dict[str, object] = field(default_factory=dict)  # scalars and strings; arrays as their length
    tensors: list[TensorInfo] = field(default_factory=list)


class _Cursor:
    def __init__(self, data) -> None:
        self.data, self.pos = data, 0

    def take(self, fmt: str):
        size = struct.calcsize("<" + fmt)
        if self.pos + size > len(self.data):
            raise ValueError("file ends inside the header")
        value = struct.unpack_from("<" + fmt, self.data, self.pos)[0]
        self.pos += size
        return value

    def string(self) -> str:
        n = self.take("Q")
        if self.pos + n > len(self.data):
            raise ValueError(f"a string claims {n} bytes past the end of the file")
        text = bytes(self.data[self.pos:self.pos + n]).decode("utf-8", errors="replace")
        self.pos += n
        return text

    def value(self, kind: int):
        kind = GGUFValueType(kind)
        if kind == GGUFValueType.STRING:
            return self.string()
        if kind == GGUFValueType.ARRAY:
            item, count = GGUFValueType(self.take("I")), self.take("Q")
            if item == GGUFValueType.STRING:
                for _ in range(count):
                    length = self.take("Q")
                    self.pos += length
            elif item in _SCALARS:
                self.pos += count * struct.calcsize("<" + _SCALARS[item])
            else:
                self._nested(item, count)
            if self.pos > len(self.data):
                raise ValueError(f"an array of {count} items runs past the end of the file")
            return count
        return self.take(_SCALARS[kind])

    def _nested(self, item, count) -> None:
        for _ in range(count):
            self.value(item)


def scan_gguf(path: Path) -> GGUFSummary:
    path = Path(path)
    try:
        with open(path, "rb") as f:
            if path.stat().st_size < 24:
                raise ValueError("too short for a GGUF header")
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
                return _scan(data)
    except (ValueError, KeyError, struct.error, OverflowError, OSError) as exc:
        raise UserError(f"{path} is not a readable GGUF file ({exc})") from None


def _scan(data) -> GGUFSummary:
    c = _Cursor(data)
    if bytes(data[:4]) != b"GGUF":
        raise ValueError("no GGUF magic number")
    c.pos = 4
    summary = GGUFSummary(version=c.take("I"))
    if summary.version not in (2, 3):
        raise ValueError(f"unsupported GGUF version {summary.version}")
    n_tensors, n_fields = c.take("Q"), c.take("Q")
    if n_tensors > len(data) // 16 or n_fields > len(data) // 16:
        raise ValueError(f"header claims {n_tensors} tensors and {n_fields} fields, more than the file can hold")
    for _ in range(n_fields):
        key = c.string()
        summary.fields[key] = c.value(c.take("I"))
    infos = []
    for _ in range(n_tensors):
        name = c.string()
        n_dims = c.take("I")
        if n_dims > 8:
            raise ValueError(f"tensor {name} claims {n_dims} dimensions")
        dims = [c.take("Q") for _ in range(n_dims)]
        kind, offset = GGMLQuantizationType(c.take("I")), c.take("Q")
        block, type_size = GGML_QUANT_SIZES[kind]
        n = math.prod(dims)
        infos.append((name, n, n // block * type_size, offset))
    alignment = int(summary.fields.get("general.alignment", 32))
    data_start = -(-c.pos // alignment) * alignment
    for name, n, nbytes, offset in infos:
        if data_start + offset + nbytes > len(data):
            raise ValueError(f"tensor {name} ({nbytes} bytes at {offset}) lies past the end of the file")
        summary.tensors.append(TensorInfo(name, n, nbytes))
    return summary
