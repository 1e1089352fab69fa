"""Curator tools: the disagreement list and adjudication."""

import pytest
from django.urls import reverse

from curation.models import Review
from tests.curation.review_helpers import make_item, post_review
from tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def disputed(client, project, annotator):
    project.reviews_required = 2
    project.save()
    item = make_item(project)
    client.force_login(annotator)
    post_review(client, item, edited_text="An edited answer.")
    client.force_login(MembershipFactory(project=project).user)
    post_review(client, item, decision="reject", comment="wrong")
    item.refresh_from_db()
    assert item.needs_adjudication
    return item


def test_disagreements_list_shows_every_review(client, project, curator, annotator, disputed):
    client.force_login(curator)
    page = client.get(reverse("curation:disagreements", args=[project.slug]))
    assert page.status_code == 200
    assert f"Item #{disputed.pk}".encode() in page.content and b"\xe2\x80\x9cwrong\xe2\x80\x9d" in page.content


def test_adjudication_keeps_the_chosen_reviewers_edit(client, project, curator, annotator, disputed):
    client.force_login(curator)
    mine = Review.objects.get(prompt=disputed, annotator=annotator)
    response = client.post(reverse("curation:adjudicate", args=[project.slug, disputed.pk]),
                           {"decision": "approve", "version": 0, "answer": f"r{mine.pk}"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200 and b"approved by you, with an edit" in response.content
    final = Review.objects.get(prompt=disputed, annotator=curator)
    assert final.is_adjudication and final.edited_text == "An edited answer." and final.chosen_id == mine.chosen_id
    disputed.refresh_from_db()
    assert (disputed.status, disputed.needs_adjudication) == ("approved", False)
    assert b"No disagreement waiting" in client.get(reverse("curation:disagreements", args=[project.slug])).content


def test_annotators_get_403(client, project, annotator, disputed):
    client.force_login(annotator)
    assert client.get(reverse("curation:disagreements", args=[project.slug])).status_code == 403
    response = client.post(reverse("curation:adjudicate", args=[project.slug, disputed.pk]), {"decision": "reject", "version": 0})
    assert response.status_code == 403


def test_outsiders_get_404(client, project, outsider, disputed):
    client.force_login(outsider)
    assert client.get(reverse("curation:disagreements", args=[project.slug])).status_code == 404
