"""A model folder as a zip stream: written as it is sent, so a 500 MB student needs no temporary copy."""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path

CHUNK = 1024 * 1024


class _Sink:
    """What zipfile writes into: collected and handed to the response a chunk at a time. zipfile handles an
    output without seek/tell by writing data descriptors after each member."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def write(self, data: bytes) -> int:
        self.parts.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        data, self.parts = b"".join(self.parts), []
        return data


def zip_folder(folder: Path, prefix: str) -> Iterator[bytes]:
    """Every file under ``folder`` (checkpoints excluded: the export is the model), stored uncompressed:
    safetensors do not compress, and deflating half a gigabyte would only cost CPU."""
    sink = _Sink()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for path in sorted(p for p in folder.rglob("*") if p.is_file() and "checkpoint-" not in p.as_posix()):
            info = zipfile.ZipInfo.from_file(path, f"{prefix}/{path.relative_to(folder).as_posix()}")
            with open(path, "rb") as source, archive.open(info, "w", force_zip64=True) as member:
                while chunk := source.read(CHUNK):
                    member.write(chunk)
                    yield sink.take()
            yield sink.take()
    yield sink.take()
