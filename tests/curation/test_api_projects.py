"""Projects over the API: visibility, creating, updating, members."""

from __future__ import annotations

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from curation.models import Membership, Project
from tests.factories import ProjectFactory

pytestmark = pytest.mark.django_db


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_anonymous_gets_401_and_a_token_works(project, annotator):
    assert APIClient().get("/api/v1/projects/").status_code in (401, 403)
    token = Token.objects.create(user=annotator)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    response = client.get("/api/v1/projects/")
    assert response.status_code == 200 and [p["slug"] for p in response.data["results"]] == [project.slug]


def test_members_see_their_projects_only_outsiders_get_404(project, annotator, outsider):
    ProjectFactory()
    assert [p["slug"] for p in client_for(annotator).get("/api/v1/projects/").data["results"]] == [project.slug]
    assert client_for(outsider).get(f"/api/v1/projects/{project.slug}/").status_code == 404
    assert client_for(outsider).get(f"/api/v1/projects/{project.slug}/members/").status_code == 404


def test_members_listing(project, curator, annotator):
    response = client_for(annotator).get(f"/api/v1/projects/{project.slug}/members/")
    assert response.status_code == 200
    assert {(m["username"], m["role"]) for m in response.data} == {(curator.username, "curator"), (annotator.username, "annotator")}


def test_curator_updates_annotator_gets_403(project, curator, annotator):
    url = f"/api/v1/projects/{project.slug}/"
    assert client_for(annotator).patch(url, {"guidelines": "no"}, format="json").status_code == 403
    response = client_for(curator).patch(url, {"guidelines": "Be exact.", "slug": "ignored"}, format="json")
    assert response.status_code == 200, response.data
    project.refresh_from_db()
    assert project.guidelines == "Be exact." and project.slug != "ignored"
    assert client_for(curator).patch(url, {"reviews_required": -1}, format="json").status_code == 400


def test_create_needs_admin_or_curator(project, curator, annotator, admin_user):
    payload = {"name": "New one", "system_prompt": "Be kind."}
    assert client_for(annotator).post("/api/v1/projects/", payload, format="json").status_code == 403
    response = client_for(curator).post("/api/v1/projects/", payload, format="json")
    assert response.status_code == 201 and response.data["slug"] == "new-one"
    created = Project.objects.get(slug="new-one")
    assert Membership.objects.get(project=created, user=curator).role == "curator"
    assert client_for(admin_user).post("/api/v1/projects/", {"name": "Admin's"}, format="json").status_code == 201
    assert client_for(admin_user).post("/api/v1/projects/", {"name": "New one"}, format="json").status_code == 400
