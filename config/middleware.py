"""Every page and endpoint requires login, except the few listed here."""

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.shortcuts import resolve_url
from django.http import HttpRequest, HttpResponse, JsonResponse

PUBLIC_PREFIXES = ("/accounts/login/", "/static/", "/admin/login/", "/healthz")
# API pages a browser opens: without login they redirect to it, like every page (the rest of /api/ answers 403).
API_PAGES = ("/api/docs/", "/api/redoc/")


class LoginRequiredMiddleware:
    """Django 5.1 ships one, but it leaves the API to answer 403 from DRF; we keep the API's own auth."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        path = request.path_info
        # Public paths first: /healthz must answer without reading the session from the database.
        api = path.startswith("/api/") and not path.startswith(API_PAGES)
        if path.startswith(PUBLIC_PREFIXES) or api or request.user.is_authenticated:
            return self.get_response(request)
        if path.startswith("/admin/"):
            return self.get_response(request)  # the admin has its own login redirect
        if getattr(request, "htmx", False):
            response = HttpResponse(status=401)
            response["HX-Redirect"] = resolve_url(settings.LOGIN_URL)
            return response
        if request.headers.get("accept", "").startswith("application/json"):
            return JsonResponse({"detail": "Authentication credentials were not provided."}, status=401)
        return redirect_to_login(request.get_full_path(), settings.LOGIN_URL)
