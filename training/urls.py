from django.urls import path

from training import views

app_name = "training"

urlpatterns = [
    path("versions/<int:pk>/train/", views.version_train, name="version_train"),
    path("versions/<int:pk>/cache-logits/", views.version_cache_logits, name="version_cache_logits"),
    path("runs/", views.run_list, name="run_list"),
    path("runs/<int:pk>/", views.run_detail, name="run_detail"),
    path("runs/<int:pk>/cancel/", views.run_cancel, name="run_cancel"),
    path("runs/<int:pk>/evaluate/", views.run_evaluate, name="run_evaluate"),
    path("runs/<int:pk>/download/", views.run_download, name="run_download"),
    path("runs/<int:pk>/resume/", views.run_resume, name="run_resume"),
]
