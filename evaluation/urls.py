from django.urls import path

from evaluation import views

app_name = "evaluation"

urlpatterns = [
    path("p/<slug:slug>/", views.run_list, name="run_list"),
    path("p/<slug:slug>/new/", views.run_create, name="run_create"),
    path("runs/<int:pk>/", views.run_detail, name="run_detail"),
    path("runs/<int:pk>/cancel/", views.run_cancel, name="run_cancel"),
    path("runs/<int:pk>/resume/", views.run_resume, name="run_resume"),
    path("runs/<int:pk>/examples/", views.run_examples, name="run_examples"),
    path("runs/<int:pk>/examples/send-back/", views.run_send_back, name="run_send_back"),
]
