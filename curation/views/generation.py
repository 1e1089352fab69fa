"""Generation on the project page: the form, the job list and a live progress bar per job (htmx polling)."""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse, QueryDict
from django.shortcuts import render
from django.views.decorators.http import require_GET, require_POST

from curation.forms import BrowseForm
from curation.models import GenerationJob, JobStatus, Membership, Project, Teacher
from curation.selectors.access import access_project, user_role
from curation.selectors.browse import active_filters
from curation.selectors.generation import (
    access_generation_job,
    generation_jobs_visible_to,
    teacher_lookup,
    teachers_for_project,
)
from curation.services import generation as service
from curation.services.synthesis import synthesis_job_create

TEMPLATE = "curation/generation/page.html"
CURATOR = Membership.Role.CURATOR


class GenerationForm(forms.Form):
    teacher = forms.ModelChoiceField(queryset=None, empty_label=None)
    mode = forms.ChoiceField(label="Prompts", choices=[
        ("pending", "Pending prompts"), ("all", "All prompts"), ("filter", "The browse filter (below)")])
    limit = forms.IntegerField(label="At most (prompts)", min_value=1, required=False,
                               help_text="Empty: every selected prompt. A number: only the first N, to try a teacher.")
    n = forms.IntegerField(label="Candidates per prompt", min_value=1, max_value=32)
    temperature = forms.FloatField(min_value=0, max_value=5)
    top_p = forms.FloatField(label="top_p", min_value=0.01, max_value=1)
    max_new_tokens = forms.IntegerField(label="Max new tokens", min_value=1, max_value=8192)
    seed = forms.IntegerField()
    system_prompt = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    browse = forms.CharField(required=False, widget=forms.HiddenInput, help_text="The browse filter, as a query string.")

    SAMPLING = ("n", "temperature", "top_p", "max_new_tokens", "seed", "system_prompt")

    def __init__(self, *args, project: Project, teacher=None, browse: str = "", **kwargs) -> None:
        teachers = teachers_for_project(project)
        teacher = teacher or teachers.first()
        # The chosen teacher's own defaults, as the service would apply them (teacher, then project, then model).
        initial = {name: GenerationJob._meta.get_field(name).default for name in self.SAMPLING}
        initial.update(n=project.candidates_per_prompt, system_prompt=project.system_prompt)
        if teacher is not None:
            initial.update({k: v for k, v in (teacher.default_params or {}).items() if k in self.SAMPLING})
            initial["teacher"] = teacher.pk
        if browse:
            initial.update(mode="filter", browse=browse)
        kwargs.setdefault("initial", initial)
        super().__init__(*args, **kwargs)
        self.fields["teacher"].queryset = teachers
        if not browse and not (self.data.get("browse") if self.is_bound else ""):
            self.fields["mode"].choices = self.fields["mode"].choices[:2]

    def selection(self) -> dict:
        data = self.cleaned_data
        selection: dict = {"mode": data["mode"]}
        if data["mode"] == "filter":
            browse = BrowseForm(QueryDict(data["browse"]))
            selection["browse"] = active_filters(browse.cleaned_data) if browse.is_valid() else {}
        if data["limit"]:
            selection["limit"] = data["limit"]
        return selection


class SynthesisForm(forms.Form):
    teacher = forms.ModelChoiceField(queryset=None, empty_label=None, help_text="a local teacher")
    count = forms.IntegerField(label="New prompts", min_value=1, max_value=100_000, initial=100)
    temperature = forms.FloatField(min_value=0.01, max_value=2, initial=1.0)
    max_new_tokens = forms.IntegerField(label="Longest prompt (tokens)", min_value=4, max_value=1024, initial=64)
    seed = forms.IntegerField(initial=0)
    answer = forms.BooleanField(label="Answer them (greedy)", required=False, initial=True)

    def __init__(self, *args, project: Project, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["teacher"].queryset = teachers_for_project(project).filter(kind=Teacher.Kind.LOCAL)


def _synthesis_context(request: HttpRequest, project: Project, role: str, form=None, error: str = "") -> dict:
    return {
        "synthesis_form": form or (SynthesisForm(project=project) if role == CURATOR else None),
        "synthesis_jobs": project.synthesis_jobs.select_related("teacher").order_by("-id")[:10],
        "synthesis_error": error,
    }


def _render(request: HttpRequest, project: Project, *, form: GenerationForm | None = None,
            status: int = 200) -> HttpResponse:
    role = user_role(request.user, project)
    context = {
        "project": project,
        "role": role,
        "form": form or (GenerationForm(project=project, teacher=_teacher(request, project),
                                        browse=request.GET.get("browse", "")) if role == CURATOR else None),
        "jobs": generation_jobs_visible_to(request.user, project)[:10],
        **_synthesis_context(request, project, role),
    }
    template = f"{TEMPLATE}#panel" if request.htmx else TEMPLATE
    return render(request, template, context, status=status)


def _teacher(request: HttpRequest, project: Project):
    """The teacher picked in the form (the panel is fetched again when the choice changes), for its defaults."""
    try:
        return teacher_lookup(project, pk=int(request.GET["teacher"])) if request.GET.get("teacher") else None
    except ValueError:
        return None


def _render_job(request: HttpRequest, job: GenerationJob, *, status: int = 200, error: str = "") -> HttpResponse:
    context = {"job": job, "project": job.project, "role": user_role(request.user, job.project), "error": error}
    return render(request, f"{TEMPLATE}#job", context, status=status)


@require_GET
def generation_panel(request: HttpRequest, slug: str) -> HttpResponse:
    return _render(request, access_project(request.user, slug=slug))


@require_POST
def generation_start(request: HttpRequest, slug: str) -> HttpResponse:
    project = access_project(request.user, slug=slug, role=CURATOR)
    form = GenerationForm(request.POST, project=project)
    if not form.is_valid():
        return _render(request, project, form=form, status=422)
    data = {name: form.cleaned_data[name] for name in (*GenerationForm.SAMPLING, "teacher")}
    data["selection"] = form.selection()
    try:
        service.generation_job_create(project=project, created_by=request.user, **data)
    except ValidationError as error:
        form.add_error(None, error)
        return _render(request, project, form=form, status=422)
    return _render(request, project)


@require_POST
def synthesis_start(request: HttpRequest, slug: str) -> HttpResponse:
    """Queue a Magpie synthesis job (the same service as the API)."""
    project = access_project(request.user, slug=slug, role=CURATOR)
    form = SynthesisForm(request.POST, project=project)
    error, status = "", 200
    if form.is_valid():
        try:
            synthesis_job_create(project=project, created_by=request.user, **form.cleaned_data)
        except ValidationError as exc:
            error, status = "; ".join(exc.messages), 422
        else:
            form = None
    else:
        status = 422
    context = {"project": project, "role": CURATOR, **_synthesis_context(request, project, CURATOR, form, error)}
    return render(request, f"{TEMPLATE}#synthesis", context, status=status)


@require_GET
def generation_job(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    """One job's row; while the job is active the row asks for itself again every two seconds."""
    return _render_job(request, _job(request, slug, pk))


@require_POST
def generation_job_cancel(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    return _act(request, _job(request, slug, pk, role=CURATOR), service.generation_job_cancel)


@require_POST
def generation_job_resume(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    return _act(request, _job(request, slug, pk, role=CURATOR), service.generation_job_resume)


def _job(request: HttpRequest, slug: str, pk: int, role: str = Membership.Role.ANNOTATOR) -> GenerationJob:
    job = access_generation_job(request.user, pk=pk, role=role)
    if job.project.slug != slug:  # the URL's project must be the job's, or links could leak across projects
        raise Http404("No such generation job.")
    return job


def _act(request: HttpRequest, job: GenerationJob, action) -> HttpResponse:
    try:
        job = action(job=job)
    except ValidationError as error:
        return _render_job(request, job, status=422, error=" ".join(error.messages))
    return _render_job(request, job)
