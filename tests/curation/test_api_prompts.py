"""Prompts with nested completions: visibility, filters, cursor pagination."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from curation.models import Completion, Prompt, Review
from tests.factories import CompletionFactory, ProjectFactory, PromptFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(annotator) -> APIClient:
    client = APIClient()
    client.force_authenticate(annotator)
    return client


def ids(response) -> set[int]:
    assert response.status_code == 200, response.data
    return {p["id"] for p in response.data["results"]}


def test_list_shows_visible_prompts_with_completions(api, project):
    prompt = PromptFactory(project=project)
    CompletionFactory(prompt=prompt, text="An answer", logprobs=[{"token": "An", "logprob": -0.1}])
    PromptFactory(project=ProjectFactory())  # someone else's
    response = api.get("/api/v1/prompts/")
    assert ids(response) == {prompt.id}
    item = response.data["results"][0]
    assert item["project"] == project.slug and item["completions"][0]["text"] == "An answer"
    assert "logprobs" not in item["completions"][0]


def test_detail_of_an_invisible_prompt_is_404(api):
    other = PromptFactory(project=ProjectFactory())
    assert api.get(f"/api/v1/prompts/{other.id}/").status_code == 404


def test_filters(api, project, annotator):
    plain = PromptFactory(project=project)
    CompletionFactory(prompt=plain, source="teacher-a")
    truncated = PromptFactory(project=project, status=Prompt.Status.APPROVED)
    cut = CompletionFactory(prompt=truncated, source="teacher-b", finish_reason=Completion.FinishReason.LENGTH)
    Review.objects.create(prompt=truncated, annotator=annotator, decision="approve", chosen=cut, edited_text="Fixed.")
    assert ids(api.get("/api/v1/prompts/", {"status": "approved"})) == {truncated.id}
    assert ids(api.get("/api/v1/prompts/", {"source": "teacher-a"})) == {plain.id}
    assert ids(api.get("/api/v1/prompts/", {"has_edit": "true"})) == {truncated.id}
    assert ids(api.get("/api/v1/prompts/", {"has_edit": "false"})) == {plain.id}
    assert ids(api.get("/api/v1/prompts/", {"truncated": "true"})) == {truncated.id}
    assert ids(api.get("/api/v1/prompts/", {"project": project.slug})) == {plain.id, truncated.id}
    assert api.get("/api/v1/prompts/", {"status": "nonsense"}).status_code == 400


def test_cursor_pagination_walks_every_prompt_once(api, project, monkeypatch):
    from curation.api.prompts import PromptViewSet

    monkeypatch.setattr(PromptViewSet.pagination_class, "page_size", 3)
    created = {PromptFactory(project=project).id for _ in range(7)}
    seen, url, pages = [], "/api/v1/prompts/", 0
    while url:
        response = api.get(url)
        seen += [p["id"] for p in response.data["results"]]
        url, pages = response.data["next"], pages + 1
    assert sorted(seen, reverse=True) == seen and set(seen) == created and pages == 3
