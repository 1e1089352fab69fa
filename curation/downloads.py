"""One export download for every door (the version page and the API): resumable when prepared, else streamed."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, StreamingHttpResponse

from config.downloads import ranged_file_response
from curation.models import DatasetVersion
from curation.services.datasets import dataset_export_lines, prepared_export


def export_response(request: HttpRequest, version: DatasetVersion, *, kind: str, split: str, filename: str) -> HttpResponse:
    """The export as JSON lines. Raises ValidationError for an unknown kind or split (before any byte is sent)."""
    lines = dataset_export_lines(version=version, format=kind, split=split)  # checks kind and split first
    prepared = prepared_export(version=version, format=kind, split=split)
    if prepared is not None:
        # Resumable: Range / If-Range against an ETag of the version's content hash.
        return ranged_file_response(request, prepared, filename=filename, content_type="application/x-ndjson",
                                    etag=f"{version.content_hash}-{kind}-{split}")
    # Not prepared yet (the worker writes the files after a freeze): stream from the database, constant memory.
    response = StreamingHttpResponse(lines, content_type="application/x-ndjson")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Accept-Ranges"] = "none"
    return response
