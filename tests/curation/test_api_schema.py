"""The OpenAPI schema builds without warnings, and is served."""

from __future__ import annotations

import pytest
from django.core.management import call_command


def test_schema_generates_without_warnings(tmp_path):
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yml"))
    schema = (tmp_path / "schema.yml").read_text()
    for path in ("/api/v1/prompts/", "/api/v1/imports/", "/api/v1/dataset-versions/freeze/",
                 "/api/v1/dataset-versions/{id}/export/", "/api/v1/projects/{slug}/members/"):
        assert f"{path}:" in schema


@pytest.mark.django_db
def test_schema_is_served_to_logged_in_users_only(client, user):
    assert client.get("/api/schema/").status_code == 403
    client.force_login(user)
    assert client.get("/api/schema/").status_code == 200
