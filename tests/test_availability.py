"""/healthz and the 503 a dead database earns: the real driver pointed at a database that cannot be reached."""

from __future__ import annotations

from contextlib import contextmanager

import pytest
from django.db import connection

pytestmark = pytest.mark.django_db(transaction=True)


@contextmanager
def database_unreachable():
    """Point the live connection at nothing (a missing folder for SQLite, a closed port for PostgreSQL)."""
    saved = dict(connection.settings_dict)
    connection.close()
    if connection.vendor == "sqlite":
        connection.settings_dict["NAME"] = "/nonexistent-folder/db.sqlite3"
    else:
        connection.settings_dict.update(HOST="127.0.0.1", PORT="1")
    try:
        yield
    finally:
        connection.close()
        connection.settings_dict.clear()
        connection.settings_dict.update(saved)


def test_healthz_checks_the_database_and_the_broker(client, settings):
    body = client.get("/healthz").json()
    assert body == {"status": "ok", "database": "ok", "broker": "ok"}
    with database_unreachable():
        down = client.get("/healthz")
    assert down.status_code == 503 and down.json()["database"].startswith("down")
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    down = client.get("/healthz")
    assert down.status_code == 503 and down.json()["database"] == "ok" and down.json()["broker"].startswith("down")


def test_pages_and_api_answer_503_with_a_short_message_when_the_database_is_down(client, curator, project):
    client.force_login(curator)
    client.raise_request_exception = False  # the test client would re-raise what the server turned into a 503
    assert client.get("/").status_code == 200
    with database_unreachable():
        page = client.get("/")
        api = client.get("/api/v1/projects/")
    assert page.status_code == 503 and b"database is unavailable" in page.content and page["Retry-After"]
    assert api.status_code == 503 and api.json() == {"detail": "The database is unavailable right now; try again "
                                                               "in a moment."}
    assert client.get("/").status_code == 200  # back as soon as the database is


def test_other_errors_stay_500(client, curator, project, monkeypatch):
    from django.db import OperationalError

    from curation.views import projects

    def broken(*args, **kwargs):
        raise OperationalError("database is locked")

    monkeypatch.setattr(projects, "render", broken)
    client.force_login(curator)
    client.raise_request_exception = False
    assert client.get("/").status_code == 500  # the database answers: a bug, not an outage
