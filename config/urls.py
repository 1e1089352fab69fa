from django.contrib import admin
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic.base import RedirectView
from csp.decorators import csp_update
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerSplitView

import curation.api  # noqa: F401  (registers viewsets on the router)
import evaluation.api  # noqa: F401
import training.api  # noqa: F401
from config.api import router
from config.availability import healthz

admin.site.site_header = "Distillery admin"
admin.site.site_title = "Distillery"

_docs_csp = csp_update({"style-src": ["'unsafe-inline'"], "worker-src": ["blob:"]})

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("favicon.ico", RedirectView.as_view(url=static("favicon.svg"), permanent=True)),
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("api/v1/", include(router.urls)),
    path("api/v1/auth/", include("rest_framework.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # Swagger UI and Redoc come from this server (drf-spectacular-sidecar); both style their widgets
    # with inline styles and Redoc runs a blob: worker, so their pages (only) relax the CSP for that.
    path("api/docs/", _docs_csp(SpectacularSwaggerSplitView.as_view(url_name="schema")), name="api-docs"),
    path("api/redoc/", _docs_csp(SpectacularRedocView.as_view(url_name="schema")), name="api-redoc"),
    path("training/", include("training.urls")),
    path("evaluation/", include("evaluation.urls")),
    path("", include("curation.urls")),
]
