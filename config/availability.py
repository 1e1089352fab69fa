"""Being honest when a dependency is down: ``/healthz`` checks the database and the broker, and any request that
fails because the database cannot be reached answers 503 with a short message (JSON for the API), not a 500.
"""

from __future__ import annotations

import sys

from django.core.signals import got_request_exception
from django.db import DatabaseError, InterfaceError, OperationalError, connection
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse, JsonResponse

DB_DOWN = "The database is unavailable right now; try again in a moment."
BROKER_TIMEOUT_SECONDS = 2


def database_down(exc: BaseException | None) -> bool:
    """A lost or refused connection, not a bad query: the request was fine, the database was not there."""
    if not isinstance(exc, (OperationalError, InterfaceError)):
        return False
    # OperationalError also covers "database is locked" or a statement timeout; those are answered 500 unless
    # the connection itself is gone.
    try:
        connection.close_if_unusable_or_obsolete()
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError:
        return True
    return False


@receiver(got_request_exception)
def _note_database_down(sender, request=None, **kwargs) -> None:
    # Django turns an exception anywhere (a view, a middleware reading the session) into a 500 response before an
    # outer middleware sees it; this signal is sent while the exception is being handled, so it can be named.
    if request is not None and database_down(sys.exc_info()[1]):
        request.database_down = True


def unavailable(request: HttpRequest) -> HttpResponse:
    if request.path_info.startswith("/api/") or request.headers.get("accept", "").startswith("application/json"):
        response = JsonResponse({"detail": DB_DOWN}, status=503)
    else:
        # Plain HTML: the site's templates read the session and the user, which live in the database.
        response = HttpResponse(f"<!doctype html><title>Unavailable</title><h1>Distillery is unavailable</h1>"
                                f"<p>{DB_DOWN}</p>", status=503)
    response["Retry-After"] = "30"
    return response


class DatabaseDownMiddleware:
    """First in MIDDLEWARE: a 500 caused by an unreachable database becomes a 503 that says so."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if response.status_code == 500 and getattr(request, "database_down", False):
            return unavailable(request)
        return response


def _check_database() -> str:
    try:
        connection.ensure_connection()
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError as exc:
        return f"down: {type(exc).__name__}"
    return "ok"


def _check_broker() -> str:
    from django.conf import settings

    from config.celery import app

    try:
        with app.connection_for_write(url=settings.CELERY_BROKER_URL) as conn:
            conn.ensure_connection(max_retries=1, timeout=BROKER_TIMEOUT_SECONDS)
            conn.default_channel  # noqa: B018 - opening a channel proves the broker answers
    except Exception as exc:  # noqa: BLE001 - any failure to reach the broker is "down", with its kind
        return f"down: {type(exc).__name__}"
    return "ok"


def healthz(request: HttpRequest) -> JsonResponse:
    """200 when the database and the broker answer, else 503; no login, no session, no template."""
    checks = {"database": _check_database(), "broker": _check_broker()}
    healthy = all(value == "ok" for value in checks.values())
    return JsonResponse({"status": "ok" if healthy else "unavailable", **checks}, status=200 if healthy else 503)
