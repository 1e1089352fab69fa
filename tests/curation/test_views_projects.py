"""Project list and dashboard: figures, agreement, import upload with progress, freezing a version."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from curation.models import DatasetVersion, ImportJob
from tests.curation.review_helpers import make_items, post_review
from tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db


def test_dashboard_shows_progress_throughput_and_versions(client, project, annotator, curator):
    items = make_items(project, 4)
    client.force_login(annotator)
    post_review(client, items[0])
    post_review(client, items[1], decision="reject")
    page = client.get(reverse("curation:project_dashboard", args=[project.slug]))
    assert page.status_code == 200
    body = page.content.decode()
    assert "50.0%" in body and "decided (2 of 4)" in body
    assert annotator.username in body  # throughput row
    assert "Start reviewing" in body and "{# generation panel #}" not in body
    assert "Import teacher outputs" not in body  # curator-only panel


def test_agreement_fragment_reports_statistics(client, project, annotator):
    project.reviews_required = 2
    project.save()
    other = MembershipFactory(project=project).user
    items = make_items(project, 3)
    for user in (annotator, other):
        client.force_login(user)
        for item in items:
            post_review(client, item, decision="approve" if user == annotator or item != items[2] else "reject")
    response = client.get(reverse("curation:project_agreement", args=[project.slug]), HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert b"Krippendorff" in response.content and b"latest 3 items" in response.content


def test_curator_uploads_an_import_and_polls_its_progress(client, project, curator):
    client.force_login(curator)
    upload = SimpleUploadedFile("outputs.jsonl", b'{"prompt": "Hi?", "completion": "Hello."}\n')
    response = client.post(reverse("curation:import_create", args=[project.slug]),
                           {"file": upload, "format": "jsonl"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    job = ImportJob.objects.get(project=project)
    assert (job.status, job.format, job.created_by) == ("queued", "jsonl", curator)
    assert f'hx-get="/p/{project.slug}/imports/{job.pk}/"'.encode() in response.content  # polls while queued
    job.status, job.imported_count = "succeeded", 1
    job.save()
    done = client.get(reverse("curation:import_job", args=[project.slug, job.pk]), HTTP_HX_REQUEST="true")
    assert b"imported 1" in done.content and b"hx-trigger" not in done.content  # finished: polling stops


def test_the_import_page_shows_its_follow_up_job_and_polls_until_it_ends(client, project, curator):
    from curation.models import QualityFlagJob

    client.force_login(curator)
    job = ImportJob.objects.create(project=project, original_name="o.jsonl", status="succeeded", imported_count=5)
    flags = QualityFlagJob.objects.create(import_job=job, status="running", total=5, done=2)
    url = reverse("curation:import_job", args=[project.slug, job.pk])
    running = client.get(url, HTTP_HX_REQUEST="true").content.decode()
    assert "quality flags" in running and "2 of 5 prompts" in running and "hx-trigger" in running
    QualityFlagJob.objects.filter(pk=flags.pk).update(status="succeeded", done=5)
    done = client.get(url, HTTP_HX_REQUEST="true").content.decode()
    assert "5 of 5 prompts" in done and "hx-trigger" not in done


def test_import_form_errors_are_shown(client, project, curator):
    client.force_login(curator)
    response = client.post(reverse("curation:import_create", args=[project.slug]), {"format": "jsonl"})
    assert response.status_code == 422 and b"This field is required" in response.content
    assert not ImportJob.objects.exists()


def test_curator_freezes_a_version(client, project, curator, annotator):
    items = make_items(project, 3)
    client.force_login(annotator)
    for item in items:
        post_review(client, item)
    client.force_login(curator)
    response = client.post(reverse("curation:version_freeze", args=[project.slug]),
                           {"heldout_fraction": "0.3", "seed": "1", "note": "first"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    version = DatasetVersion.objects.get(project=project)
    assert version.row_count == 3 and b"Froze v1" in response.content


def test_freezing_nothing_says_why(client, project, curator):
    client.force_login(curator)
    response = client.post(reverse("curation:version_freeze", args=[project.slug]), {"heldout_fraction": "0.1", "seed": "0"})
    assert response.status_code == 422 and b"Nothing to freeze" in response.content


@pytest.mark.parametrize("name", ["import_create", "version_freeze"])
def test_annotators_may_not_import_or_freeze(client, project, annotator, name):
    client.force_login(annotator)
    assert client.post(reverse(f"curation:{name}", args=[project.slug]), {}).status_code == 403


@pytest.mark.parametrize("name", ["project_dashboard", "project_agreement", "import_create", "version_freeze"])
def test_outsiders_get_404(client, project, outsider, name):
    client.force_login(outsider)
    method = client.post if name in ("import_create", "version_freeze") else client.get
    assert method(reverse(f"curation:{name}", args=[project.slug])).status_code == 404
