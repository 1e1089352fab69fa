"""Reads for teachers and generation jobs: which prompts a job covers, what a user may see."""

from __future__ import annotations

from django.db.models import Count, F, Q, QuerySet
from django.http import Http404

from curation.models import GenerationJob, JobStatus, Membership, Project, Prompt, Teacher
from curation.selectors.access import check_role, is_operator, projects_visible_to

SELECTION_MODES = ("pending", "all", "ids", "filter")


def selection_prompts(project: Project, selection: dict) -> QuerySet[Prompt]:
    """The prompts a job's selection names (validated by the service before it is stored)."""
    prompts = Prompt.objects.filter(project=project)
    mode = selection.get("mode", "pending")
    if mode == "pending":
        prompts = prompts.filter(status=Prompt.Status.PENDING)
    elif mode == "ids":
        prompts = prompts.filter(id__in=selection.get("ids", []))
    elif mode == "filter" and "browse" in selection:  # the browse page's filters, exactly as browse applies them
        from curation.selectors.browse import browse_queryset

        prompts = browse_queryset(project, selection["browse"])
    elif mode == "filter":
        if selection.get("status"):
            prompts = prompts.filter(status=selection["status"])
        if selection.get("tag"):
            prompts = prompts.filter(tags__name=selection["tag"])
        if selection.get("search"):
            prompts = prompts.filter(text__icontains=selection["search"])
    return prompts.distinct().order_by("id")


def prompts_needing_candidates(project: Project, selection: dict, *, source: str, n: int) -> list[Prompt]:
    """Selected prompts with fewer than ``n`` completions from ``source``, each annotated with ``have``.

    Counting per source is what makes a re-run resume: prompts this teacher already answered are
    skipped, while a different teacher still answers prompts that only have imported outputs.
    """
    return list(
        selection_prompts(project, selection)
        .annotate(have=Count("completions", filter=Q(completions__source=source)))
        .filter(have__lt=n)
        .only("id", "messages")
    )


def teachers_for_project(project: Project) -> QuerySet[Teacher]:
    """The project's own teachers and the global ones."""
    return Teacher.objects.filter(Q(project=project) | Q(project__isnull=True)).order_by("name")


def teacher_lookup(project: Project, *, name: str | None = None, pk: int | None = None) -> Teacher | None:
    """A teacher usable in the project, by name or id; the project's own wins over a global one of that name."""
    lookup = {"name": name} if name is not None else {"pk": pk}
    return teachers_for_project(project).filter(**lookup).order_by(F("project_id").asc(nulls_last=True)).first()


def teacher_details_visible(user, teacher: Teacher) -> bool:
    """Where a teacher runs (path, host, key variable) is for operators and the owning project's members:
    a global teacher's details say something about the server to every user otherwise."""
    if is_operator(user):
        return True
    return teacher.project_id is not None and Membership.objects.filter(project_id=teacher.project_id,
                                                                         user=user).exists()


def generation_jobs_visible_to(user, project: Project | None = None) -> QuerySet[GenerationJob]:
    jobs = GenerationJob.objects.filter(project__in=projects_visible_to(user))
    if project is not None:
        jobs = jobs.filter(project=project)
    return jobs.select_related("project", "teacher", "created_by")


def access_generation_job(user, *, pk: int, role: str = Membership.Role.ANNOTATOR) -> GenerationJob:
    """The job if the user may act on it with ``role``; 404 for outsiders, 403 for too low a role."""
    job = GenerationJob.objects.select_related("project", "teacher").filter(pk=pk).first()
    if job is None:
        raise Http404("No such generation job.")
    check_role(user, job.project, role)
    return job


def active_generation_job(project: Project) -> GenerationJob | None:
    return project.generation_jobs.filter(status__in=[JobStatus.QUEUED, JobStatus.RUNNING]).first()


def job_percent(job: GenerationJob) -> int:
    return int(100 * job.done / job.total) if job.total else (100 if job.status == JobStatus.SUCCEEDED else 0)
