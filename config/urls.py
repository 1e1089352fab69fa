from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

import curation.api  # noqa: F401  (registers viewsets on the router)
import evaluation.api  # noqa: F401
import training.api  # noqa: F401
from config.api import router
from config.availability import healthz

admin.site.site_header = "Distillery admin"
admin.site.site_title = "Distillery"

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("api/v1/", include(router.urls)),
    path("api/v1/auth/", include("rest_framework.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("training/", include("training.urls")),
    path("evaluation/", include("evaluation.urls")),
    path("", include("curation.urls")),
]
