import pytest
from django.urls import reverse


@pytest.mark.django_db
def test_login_page_is_served(client):
    response = client.get(reverse("login"))
    assert response.status_code == 200
    assert b"Log in to Distillery" in response.content


@pytest.mark.django_db
def test_pages_require_login(client):
    response = client.get(reverse("curation:project_list"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


@pytest.mark.django_db
def test_project_list_shows_only_member_projects(client, project, annotator, outsider):
    client.force_login(annotator)
    assert project.name.encode() in client.get(reverse("curation:project_list")).content
    client.force_login(outsider)
    assert project.name.encode() not in client.get(reverse("curation:project_list")).content
    assert client.get(reverse("curation:project_dashboard", args=[project.slug])).status_code == 404
