"""Bulk actions and export preparation through a real Celery worker process."""

from __future__ import annotations

import pytest
from django.urls import reverse

from curation.models import BulkActionJob, DatasetVersion, JobStatus, Tag
from curation.services.datasets import prepared_export
from tests.conftest import wait_for
from tests.curation.review_helpers import make_items
from tests.curation.test_datasets import curate

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_bulk_tag_runs_in_the_worker_with_progress(celery_worker, client, project, curator):
    make_items(project, 4)
    client.force_login(curator)
    url = reverse("curation:bulk_action", args=[project.slug])
    response = client.post(url, {"action": "tag", "tag_name": "batch-7", "confirm": "on", "expected": 4},
                           HTTP_HX_REQUEST="true")
    assert response.status_code == 200 and b"of 4 items done" in response.content
    job = wait_for(lambda: BulkActionJob.objects.filter(status__in=JobStatus.finished()).first(), timeout=60,
                   message=f"the bulk job to finish (worker log: {celery_worker.log_path})")
    assert (job.status, job.done, job.total) == (JobStatus.SUCCEEDED, 4, 4), job.error
    assert Tag.objects.filter(name="batch-7").count() == 4
    page = client.get(reverse("curation:bulk_job", args=[project.slug, job.pk]), HTTP_HX_REQUEST="true")
    assert b"Done: tag on 4 items" in page.content


def test_the_worker_prepares_export_files_after_a_freeze(celery_worker, client, project, curator):
    from curation.services.datasets import dataset_version_freeze

    curate(project, ["good", "bad"], ranking=[0, 1])
    version = dataset_version_freeze(project=project, created_by=curator, heldout_fraction=0)
    wait_for(lambda: prepared_export(version=version, format="dpo", split="all"), timeout=60,
             message=f"the export files (worker log: {celery_worker.log_path})")
    assert DatasetVersion.objects.get(pk=version.pk).row_count == 1
