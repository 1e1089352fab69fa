from django.urls import path

from curation.views import projects

app_name = "curation"

urlpatterns = [
    path("", projects.project_list, name="project_list"),
    path("p/<slug:slug>/", projects.project_dashboard, name="project_dashboard"),
]
