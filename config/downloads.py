"""Serve a prepared file with HTTP Range support, so a broken download of a large export resumes.

Hand-written because Django's FileResponse has no Range support and the packages that add it
(django-ranged-response, django-ranged-fileresponse) are unmaintained since 2017. One byte range per
request is what resuming clients (curl -C -, wget -c, browsers, download managers) ask for; a request
for several ranges gets the whole file (RFC 9110 allows ignoring Range). The file is read in blocks:
nothing holds it in memory.
"""

from __future__ import annotations

import re
from pathlib import Path

from django.http import FileResponse, HttpRequest, HttpResponse

SINGLE_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
BLOCK = 1 << 16


class _Slice:
    """A file object that ends after ``length`` bytes from ``start`` (FileResponse reads it in blocks)."""

    def __init__(self, path: Path, start: int, length: int) -> None:
        self._handle = open(path, "rb")  # noqa: SIM115 - closed by FileResponse through close()
        self._handle.seek(start)
        self._left = length

    def read(self, size: int = -1) -> bytes:
        if self._left <= 0:
            return b""
        size = self._left if size is None or size < 0 else min(size, self._left)
        data = self._handle.read(size)
        self._left -= len(data)
        return data

    def close(self) -> None:
        self._handle.close()


def parse_range(header: str, size: int) -> tuple[int, int] | None | bool:
    """(start, end inclusive) of one satisfiable range; None to send the whole file; False if unsatisfiable."""
    match = SINGLE_RANGE.match(header.strip())
    if not match or match.groups() == ("", ""):
        return None  # absent, malformed or several ranges: the whole file
    first, last = match.groups()
    if first == "":  # "bytes=-N": the last N bytes
        length = int(last)
        if length == 0:
            return False
        return max(0, size - length), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or end < start:
        return False
    return start, end


def ranged_file_response(
    request: HttpRequest, path: Path, *, filename: str, content_type: str, etag: str
) -> HttpResponse:
    """200 with the whole file, 206 with the asked range, 304 when the client has it, 416 past the end."""
    size = path.stat().st_size
    quoted = f'"{etag}"'
    if request.headers.get("If-None-Match") == quoted:
        response = HttpResponse(status=304)
        response["ETag"] = quoted
        return response
    wanted = None
    if_range = request.headers.get("If-Range")
    if "Range" in request.headers and (if_range is None or if_range == quoted):
        wanted = parse_range(request.headers["Range"], size)
    if wanted is False:
        response = HttpResponse(status=416)
        response["Content-Range"] = f"bytes */{size}"
    elif wanted is None:
        response = FileResponse(open(path, "rb"), as_attachment=True, filename=filename,  # noqa: SIM115
                                content_type=content_type)
    else:
        start, end = wanted
        response = FileResponse(_Slice(path, start, end - start + 1), as_attachment=True, filename=filename,
                                content_type=content_type, status=206)
        response.block_size = BLOCK
        response["Content-Length"] = str(end - start + 1)
        response["Content-Range"] = f"bytes {start}-{end}/{size}"
    response["Accept-Ranges"] = "bytes"
    response["ETag"] = quoted
    return response
