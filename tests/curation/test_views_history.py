"""Item history: revisions with author and time, diff between any two, revert with its permissions."""

import pytest
from django.urls import reverse

from curation.models import CompletionRevision, Review
from tests.curation.review_helpers import make_item, post_review
from tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def edited(client, project, annotator):
    item = make_item(project)
    chosen = item.completions.first()
    client.force_login(annotator)
    post_review(client, item, chosen=chosen.pk, edited_text="First try.")
    post_review(client, item, chosen=chosen.pk, edited_text="Second <b>try</b>.", version=1)
    return item


def test_history_lists_every_edit_with_author(client, project, annotator, edited):
    page = client.get(reverse("curation:item_history", args=[project.slug, edited.pk]))
    assert page.status_code == 200
    body = page.content.decode()
    assert body.count("Revision ") >= 2 and annotator.username in body
    assert "&lt;b&gt;try&lt;/b&gt;" in body and "<b>try" not in body  # escaped


def test_diff_between_any_two_versions(client, project, edited):
    first, second = CompletionRevision.objects.order_by("id")
    url = reverse("curation:item_diff", args=[project.slug, edited.pk])
    response = client.get(url, {"a": f"r{first.pk}", "b": f"r{second.pk}"}, HTTP_HX_REQUEST="true")
    assert b"<del>First</del><ins>Second</ins> <del>try.</del><ins>&lt;b&gt;try&lt;/b&gt;.</ins>" in response.content
    original = client.get(url, {"a": f"o{first.completion_id}", "b": f"r{first.pk}"}, HTTP_HX_REQUEST="true")
    assert b"<del>The</del><ins>First</ins> <del>answer is " in original.content and b"<ins>try.</ins>" in original.content


def test_revert_by_the_author(client, project, edited):
    first = CompletionRevision.objects.order_by("id").first()
    response = client.post(reverse("curation:revision_revert", args=[project.slug, first.pk]), {"version": 2})
    assert response.status_code == 302
    review = Review.objects.get(prompt=edited)
    assert (review.edited_text, review.version) == ("First try.", 3)


def test_stale_revert_is_refused(client, project, edited):
    first = CompletionRevision.objects.order_by("id").first()
    response = client.post(reverse("curation:revision_revert", args=[project.slug, first.pk]), {"version": 1})
    assert response.status_code == 409 and b"nothing was reverted" in response.content
    assert Review.objects.get(prompt=edited).edited_text == "Second <b>try</b>."


def test_other_annotators_may_not_revert_but_curators_may(client, project, edited, curator):
    first = CompletionRevision.objects.order_by("id").first()
    url = reverse("curation:revision_revert", args=[project.slug, first.pk])
    client.force_login(MembershipFactory(project=project).user)
    assert client.post(url, {"version": 2}).status_code == 403
    client.force_login(curator)
    assert client.post(url, {"version": 2}).status_code == 302


def test_outsiders_get_404(client, project, edited, outsider):
    client.force_login(outsider)
    revision = CompletionRevision.objects.first()
    assert client.get(reverse("curation:item_history", args=[project.slug, edited.pk])).status_code == 404
    assert client.get(reverse("curation:item_diff", args=[project.slug, edited.pk])).status_code == 404
    assert client.post(reverse("curation:revision_revert", args=[project.slug, revision.pk]), {"version": 2}).status_code == 404
