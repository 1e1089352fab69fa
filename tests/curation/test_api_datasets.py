"""Dataset versions over the API: freeze, list, detail, export download, permissions."""

from __future__ import annotations

import json

import pytest
from rest_framework.test import APIClient

from curation.models import DatasetVersion
from curation.services.datasets import dataset_export_lines
from tests.curation.test_datasets import curate
from tests.factories import ProjectFactory

pytestmark = pytest.mark.django_db


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_curator_freezes_and_downloads(project, curator):
    curate(project, ["good", "bad"], ranking=[0, 1])
    curate(project, ["fine", "poor"], ranking=[0, 1])
    api = client_for(curator)
    response = api.post("/api/v1/dataset-versions/freeze/", {"project": project.slug, "heldout_fraction": 0}, format="json")
    assert response.status_code == 201, response.data
    assert (response.data["number"], response.data["row_count"], response.data["created_by"]) == (1, 2, curator.username)
    version = DatasetVersion.objects.get(pk=response.data["id"])
    download = api.get(f"/api/v1/dataset-versions/{version.pk}/export/", {"kind": "dpo", "split": "train"})
    assert download.status_code == 200 and download["Content-Type"] == "application/x-ndjson"
    assert f'filename="{project.slug}-v1-dpo-train.jsonl"' in download["Content-Disposition"]
    body = b"".join(download.streaming_content)
    assert body == b"".join(dataset_export_lines(version=version, format="dpo", split="train"))
    assert len([json.loads(line) for line in body.splitlines()]) == 2
    assert api.get(f"/api/v1/dataset-versions/{version.pk}/").data["content_hash"] == version.content_hash
    assert [v["id"] for v in api.get("/api/v1/dataset-versions/", {"project": project.slug}).data["results"]] == [version.pk]


def test_empty_freeze_is_400(project, curator):
    response = client_for(curator).post("/api/v1/dataset-versions/freeze/", {"project": project.slug}, format="json")
    assert response.status_code == 400 and "Nothing to freeze" in str(response.data)


def test_bad_export_kind_is_400(project, curator):
    curate(project, ["x"])
    api = client_for(curator)
    version_id = api.post("/api/v1/dataset-versions/freeze/", {"project": project.slug}, format="json").data["id"]
    assert api.get(f"/api/v1/dataset-versions/{version_id}/export/", {"kind": "parquet"}).status_code == 400


def test_permissions(project, curator, annotator, outsider):
    curate(project, ["x"])
    version_id = client_for(curator).post("/api/v1/dataset-versions/freeze/", {"project": project.slug}, format="json").data["id"]
    freeze = {"project": project.slug}
    assert client_for(annotator).post("/api/v1/dataset-versions/freeze/", freeze, format="json").status_code == 403
    assert client_for(outsider).post("/api/v1/dataset-versions/freeze/", freeze, format="json").status_code == 404
    assert client_for(annotator).get(f"/api/v1/dataset-versions/{version_id}/").status_code == 200
    assert client_for(annotator).get(f"/api/v1/dataset-versions/{version_id}/export/").status_code == 403
    assert client_for(outsider).get(f"/api/v1/dataset-versions/{version_id}/").status_code == 404
    assert client_for(outsider).get(f"/api/v1/dataset-versions/{version_id}/export/").status_code == 404
    assert client_for(outsider).get("/api/v1/dataset-versions/").data["results"] == []
    other = ProjectFactory()
    assert client_for(curator).post("/api/v1/dataset-versions/freeze/", {"project": other.slug}, format="json").status_code == 404


def test_prepared_export_downloads_resume_with_range(project, curator, settings, tmp_path):
    from curation.services.datasets import dataset_export_prepare, export_file_path

    settings.DATA_DIR = tmp_path
    for i in range(6):
        curate(project, [f"answer {i} " + "x" * 200, f"worse {i}"], ranking=[0, 1])
    api = client_for(curator)
    version = DatasetVersion.objects.get(pk=api.post(
        "/api/v1/dataset-versions/freeze/", {"project": project.slug, "heldout_fraction": 0}, format="json").data["id"])
    url = f"/api/v1/dataset-versions/{version.pk}/export/"
    streamed = api.get(url, {"kind": "sft", "split": "all"})
    assert streamed["Accept-Ranges"] == "none"  # not prepared yet: streamed from the database
    full = b"".join(streamed.streaming_content)

    assert dataset_export_prepare(version_id=version.pk) == 9  # 3 formats x 3 splits
    assert dataset_export_prepare(version_id=version.pk) == 0  # idempotent
    assert export_file_path(version=version, format="sft", split="all").read_bytes() == full
    whole = api.get(url, {"kind": "sft", "split": "all"})
    assert (whole.status_code, whole["Accept-Ranges"], int(whole["Content-Length"])) == (200, "bytes", len(full))
    etag = whole["ETag"]
    assert b"".join(whole.streaming_content) == full

    # A download broken after 100 bytes resumes from there, and the pieces make the file.
    rest = api.get(url, {"kind": "sft", "split": "all"}, HTTP_RANGE="bytes=100-", HTTP_IF_RANGE=etag)
    assert rest.status_code == 206 and rest["Content-Range"] == f"bytes 100-{len(full) - 1}/{len(full)}"
    assert full[:100] + b"".join(rest.streaming_content) == full
    middle = api.get(url, {"kind": "sft", "split": "all"}, HTTP_RANGE="bytes=10-19")
    assert (middle["Content-Length"], b"".join(middle.streaming_content)) == ("10", full[10:20])
    tail = api.get(url, {"kind": "sft", "split": "all"}, HTTP_RANGE="bytes=-5")
    assert b"".join(tail.streaming_content) == full[-5:]
    # A changed file (another ETag) is sent whole; a range past the end is refused; a cached copy is current.
    stale = api.get(url, {"kind": "sft", "split": "all"}, HTTP_RANGE="bytes=100-", HTTP_IF_RANGE='"other"')
    assert stale.status_code == 200 and b"".join(stale.streaming_content) == full
    past = api.get(url, {"kind": "sft", "split": "all"}, HTTP_RANGE=f"bytes={len(full)}-")
    assert past.status_code == 416 and past["Content-Range"] == f"bytes */{len(full)}"
    assert api.get(url, {"kind": "sft", "split": "all"}, HTTP_IF_NONE_MATCH=etag).status_code == 304

    # The version page's download button is the same door.
    from django.test import Client
    from django.urls import reverse

    page = Client()
    page.force_login(curator)
    button = page.get(reverse("curation:version_download", args=[project.slug, version.number]),
                      {"kind": "sft", "split": "all"}, HTTP_RANGE="bytes=100-")
    assert button.status_code == 206 and full[:100] + b"".join(button.streaming_content) == full
