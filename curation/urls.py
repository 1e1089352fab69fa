from django.urls import path

from curation.views import browse, costs, curator, datasets, generation, history, projects, review, versions

app_name = "curation"

urlpatterns = [
    path("", projects.project_list, name="project_list"),
    path("p/<slug:slug>/", projects.project_dashboard, name="project_dashboard"),
    path("p/<slug:slug>/agreement/", projects.project_agreement, name="project_agreement"),
    path("p/<slug:slug>/imports/", datasets.import_create, name="import_create"),
    path("p/<slug:slug>/imports/<int:pk>/", datasets.import_job, name="import_job"),
    path("p/<slug:slug>/freeze/", datasets.version_freeze, name="version_freeze"),
    path("p/<slug:slug>/contamination/", versions.project_contamination, name="project_contamination"),
    path("p/<slug:slug>/cost/", costs.project_cost, name="project_cost"),
    path("p/<slug:slug>/versions/<int:number>/", versions.version_detail, name="version_detail"),
    path("p/<slug:slug>/versions/<int:number>/diff/", versions.version_diff_view, name="version_diff"),
    path("p/<slug:slug>/versions/<int:number>/download/", versions.version_download, name="version_download"),
    path("p/<slug:slug>/versions/<int:number>/contamination/", versions.version_contamination_check,
         name="version_contamination"),
    path("p/<slug:slug>/versions/<int:number>/exclude-contaminated/", versions.version_exclude_contaminated,
         name="version_exclude_contaminated"),
    path("p/<slug:slug>/queue/", review.queue, name="queue"),
    path("p/<slug:slug>/items/<int:pk>/", review.item, name="item"),
    path("p/<slug:slug>/items/<int:pk>/review/", review.review_submit, name="review_submit"),
    path("p/<slug:slug>/items/<int:pk>/draft/", review.item_draft, name="item_draft"),
    path("p/<slug:slug>/items/<int:pk>/history/", history.item_history, name="item_history"),
    path("p/<slug:slug>/items/<int:pk>/history/diff/", history.item_diff, name="item_diff"),
    path("p/<slug:slug>/revisions/<int:pk>/revert/", history.revision_revert, name="revision_revert"),
    path("p/<slug:slug>/browse/", browse.browse, name="browse"),
    path("p/<slug:slug>/browse/bulk/", browse.bulk_action, name="bulk_action"),
    path("p/<slug:slug>/browse/bulk/<int:pk>/", browse.bulk_job, name="bulk_job"),
    path("p/<slug:slug>/disagreements/", curator.disagreements, name="disagreements"),
    path("p/<slug:slug>/items/<int:pk>/adjudicate/", curator.adjudicate, name="adjudicate"),
    path("p/<slug:slug>/generation/", generation.generation_panel, name="generation_panel"),
    path("p/<slug:slug>/generation/start/", generation.generation_start, name="generation_start"),
    path("p/<slug:slug>/generation/synthesize/", generation.synthesis_start, name="synthesis_start"),
    path("p/<slug:slug>/generation/<int:pk>/", generation.generation_job, name="generation_job"),
    path("p/<slug:slug>/generation/<int:pk>/cancel/", generation.generation_job_cancel, name="generation_job_cancel"),
    path("p/<slug:slug>/generation/<int:pk>/resume/", generation.generation_job_resume, name="generation_job_resume"),
]
