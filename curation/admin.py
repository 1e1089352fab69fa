"""The Django admin for curation. Large tables use raw-id widgets, indexed filters and no full counts."""

from __future__ import annotations

import json

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db import connections
from django.db.models import QuerySet
from django.utils.functional import cached_property
from django.template.response import TemplateResponse
from django.utils.html import format_html

from curation import models
from curation.jobs.admin import JobAdmin
from curation.services.datasets import dataset_version_freeze
from curation.selectors.access import is_operator
from curation.services.generation import generation_job_create, teacher_register
from curation.services.trust import server_resource_delete, server_resource_register
from curation.services.reviews import ReviewInput, StaleReview, review_check, review_correct


class LargeTableAdmin(admin.ModelAdmin):
    show_full_result_count = False
    list_per_page = 50


class MembershipInline(admin.TabularInline):
    model = models.Membership
    extra = 1
    raw_id_fields = ["user"]


@admin.register(models.Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "candidates_per_prompt", "reviews_required", "created_at"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [MembershipInline]
    actions = ["freeze_dataset", "generate_candidates"]

    @admin.action(description="Freeze approved prompts into a new dataset version")
    def freeze_dataset(self, request, queryset) -> None:
        for project in queryset:
            try:
                version = dataset_version_freeze(project=project, created_by=request.user)
            except ValidationError as exc:
                self.message_user(request, f"{project}: {' '.join(exc.messages)}", messages.ERROR)
            else:
                self.message_user(request, f"{version}: {version.row_count} rows, hash {version.content_hash[:12]}")

    @admin.action(description="Generate teacher candidates for pending prompts…")
    def generate_candidates(self, request, queryset):
        """First a page to choose the teacher and parameters, then one generation job per project."""
        form = GenerateCandidatesForm(request.POST if "apply" in request.POST else None)
        if not form.is_valid():
            context = {**self.admin_site.each_context(request), "form": form, "queryset": queryset,
                       "title": "Generate teacher candidates", "opts": self.model._meta}
            return TemplateResponse(request, "curation/generation/admin_start.html", context)
        for project in queryset:
            try:
                job = generation_job_create(project=project, created_by=request.user, **form.cleaned_data)
            except ValidationError as exc:
                self.message_user(request, f"{project}: {' '.join(exc.messages)}", messages.ERROR)
            else:
                self.message_user(request, f"{project}: generation job #{job.pk} queued for {job.total} prompts")
        return None


@admin.register(models.Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "project", "role"]
    list_filter = ["role", "project"]
    raw_id_fields = ["user"]
    search_fields = ["user__username", "project__name"]


class EstimatedCountPaginator(Paginator):
    """COUNT(*) over millions of rows takes seconds on PostgreSQL: an unfiltered big table shows the planner's
    estimate instead (the page links stay right to within a few percent)."""

    LARGE = 100_000

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        if isinstance(queryset, QuerySet) and not queryset.query.where:
            connection = connections[queryset.db]
            if connection.vendor == "postgresql":
                with connection.cursor() as cursor:
                    cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE relname = %s", [queryset.model._meta.db_table])
                    row = cursor.fetchone()
                if row and row[0] > self.LARGE:
                    return int(row[0])
        return super().count


class BigTableAdmin(LargeTableAdmin):
    """Lists over tables that grow with every import: newest first by primary key, estimated counts."""

    paginator = EstimatedCountPaginator
    ordering = ["-id"]


class ReadOnlyAdminMixin:
    """Immutable records (frozen datasets, the edit history): viewable, never changed here."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


def _short(text: str, size: int = 80) -> str:
    return text if len(text) <= size else text[: size - 1] + "…"


def _pretty_json(value) -> str:
    # format_html escapes the JSON: prompts and errors are user text.
    return format_html("<pre style='white-space: pre-wrap'>{}</pre>", json.dumps(value, indent=1, ensure_ascii=False))


class CompletionInline(admin.TabularInline):
    model = models.Completion
    fields = ["id", "text", "source", "finish_reason", "length", "created_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(models.Prompt)
class PromptAdmin(BigTableAdmin):
    list_display = ["id", "short_text", "project", "status", "review_count", "external_id", "created_at"]
    list_filter = ["status", "project"]
    list_select_related = ["project"]
    search_fields = ["=id", "=external_id", "=content_hash", "text"]
    readonly_fields = ["messages_display", "text", "content_hash", "review_count", "created_at", "updated_at"]
    exclude = ["messages"]
    raw_id_fields = ["project"]
    inlines = [CompletionInline]

    @admin.display(description="Prompt")
    def short_text(self, obj: models.Prompt) -> str:
        return _short(obj.text)

    @admin.display(description="Messages")
    def messages_display(self, obj: models.Prompt) -> str:
        return _pretty_json(obj.messages)


@admin.register(models.Completion)
class CompletionAdmin(BigTableAdmin):
    list_display = ["id", "prompt_id", "short_text", "source", "finish_reason", "length", "created_at"]
    list_filter = ["finish_reason"]
    search_fields = ["=id", "=prompt__id", "=source"]
    raw_id_fields = ["prompt"]
    # The text changes only through reviews, which keep every revision.
    readonly_fields = ["prompt", "text", "text_hash", "length", "created_at"]

    @admin.display(description="Text")
    def short_text(self, obj: models.Completion) -> str:
        return _short(obj.text)


@admin.register(models.Flag)
class FlagAdmin(BigTableAdmin):
    list_display = ["id", "kind", "prompt_id", "completion_id", "detail", "created_at"]
    list_filter = ["kind"]
    search_fields = ["=prompt__id", "kind"]
    raw_id_fields = ["prompt", "completion"]


@admin.register(models.Tag)
class TagAdmin(BigTableAdmin):
    list_display = ["id", "name", "prompt_id"]
    search_fields = ["name", "=prompt__id"]
    raw_id_fields = ["prompt"]


@admin.register(models.Assignment)
class AssignmentAdmin(BigTableAdmin):
    list_display = ["id", "prompt_id", "annotator", "created_at"]
    list_select_related = ["annotator"]
    search_fields = ["=prompt__id", "annotator__username"]
    raw_id_fields = ["prompt", "annotator"]


class ReviewAdminForm(forms.ModelForm):
    """The admin's change form runs the review service's checks, so it refuses what the review page refuses."""

    class Meta:
        model = models.Review
        fields = ["decision", "chosen", "ranking", "edited_text", "comment"]

    def review_input(self) -> ReviewInput:
        data = self.cleaned_data
        return ReviewInput(decision=data["decision"], version=self.instance.version, ranking=data.get("ranking") or [],
                           chosen_id=data["chosen"].pk if data.get("chosen") else None,
                           edited_text=data.get("edited_text") or "", comment=data.get("comment") or "")

    def clean(self):
        cleaned = super().clean()
        if not self.errors:
            review_check(prompt=self.instance.prompt, data=self.review_input())
        return cleaned


@admin.register(models.Review)
class ReviewAdmin(BigTableAdmin):
    """Reviews come from the review page and adjudication; here an operator may correct one, through the same
    service: the edit gets its revision and version bump, and the item's counts and status are recomputed."""

    form = ReviewAdminForm
    list_display = ["id", "prompt_id", "annotator", "decision", "is_adjudication", "version", "updated_at"]
    list_filter = ["decision", "is_adjudication"]
    list_select_related = ["annotator"]
    search_fields = ["=prompt__id", "annotator__username"]
    raw_id_fields = ["prompt", "annotator", "chosen"]
    readonly_fields = ["prompt", "annotator", "is_adjudication", "superseded", "seconds_spent", "version",
                       "created_at", "updated_at"]

    def has_add_permission(self, request) -> bool:
        return False

    def save_model(self, request, obj, form, change) -> None:
        stored = models.Review.objects.get(pk=obj.pk)
        try:
            saved = review_correct(review=stored, actor=request.user, data=form.review_input())
        except StaleReview:
            self.message_user(request, "This review changed while you edited it; nothing was saved. Reload it.",
                              messages.ERROR)
            return
        obj.version = saved.version


@admin.register(models.CompletionRevision)
class CompletionRevisionAdmin(ReadOnlyAdminMixin, BigTableAdmin):
    list_display = ["id", "completion_id", "review_id", "author", "created_at"]
    list_select_related = ["author"]
    search_fields = ["=completion__id", "=review__id", "author__username"]
    raw_id_fields = ["completion", "review", "author"]


class DatasetRowInline(admin.TabularInline):
    model = models.DatasetRow
    fields = ["position", "split", "prompt_id", "short_response"]
    readonly_fields = fields
    ordering = ["position"]
    max_num = 0
    can_delete = False
    show_change_link = True

    @admin.display(description="Response")
    def short_response(self, obj: models.DatasetRow) -> str:
        return _short(obj.response)

    def get_queryset(self, request):
        # A version can hold a million rows: the page shows the first ones, the row list has them all.
        return super().get_queryset(request).filter(position__lt=20)


@admin.register(models.DatasetVersion)
class DatasetVersionAdmin(ReadOnlyAdminMixin, LargeTableAdmin):
    list_display = ["__str__", "number", "row_count", "train_count", "heldout_count", "pair_count", "created_by", "created_at"]
    list_filter = ["project"]
    list_select_related = ["project", "created_by"]
    search_fields = ["=content_hash", "project__slug"]
    inlines = [DatasetRowInline]


@admin.register(models.DatasetRow)
class DatasetRowAdmin(ReadOnlyAdminMixin, BigTableAdmin):
    list_display = ["id", "version", "position", "split", "prompt_id", "short_response"]
    list_filter = ["split"]
    list_select_related = ["version__project"]
    search_fields = ["=version__id", "=prompt_id"]
    ordering = ["version", "position"]

    @admin.display(description="Response")
    def short_response(self, obj: models.DatasetRow) -> str:
        return _short(obj.response)


@admin.register(models.ImportJob)
class ImportJobAdmin(JobAdmin, LargeTableAdmin):
    list_display = [
        "id", "project", "original_name", "format", "detected_format", "status", "read_count", "imported_count",
        "duplicate_count", "invalid_count", "created_at",
    ]
    list_filter = ["status", "format", "project"]
    list_select_related = ["project"]
    search_fields = ["=id", "original_name"]
    exclude = ["errors"]
    readonly_fields = [
        "project", "created_by", "file", "original_name", "batch_input_file", "format", "detected_format",
        "skip_invalid", "errors_display", "rejects_path", "message",
    ]
    progress_fields = ["read_count", "imported_count", "duplicate_count", "invalid_count", "resume_line"]

    @admin.display(description="Errors (line, reason)")
    def errors_display(self, obj: models.ImportJob) -> str:
        return _pretty_json(obj.errors)


@admin.register(models.BulkActionJob)
class BulkActionJobAdmin(JobAdmin, LargeTableAdmin):
    list_display = ["id", "project", "action", "tag_name", "status", "done", "total", "created_by", "created_at"]
    list_filter = ["status", "action", "project"]
    list_select_related = ["project", "created_by"]
    readonly_fields = ["project", "created_by", "action", "tag_name", "filters"]
    progress_fields = ["total", "done", "last_id"]


@admin.register(models.QualityFlagJob)
class QualityFlagJobAdmin(JobAdmin, LargeTableAdmin):
    """An import's follow-up: the quality flags and search documents of the prompts it wrote."""

    list_display = ["id", "import_job", "status", "done", "total", "created_at"]
    list_filter = ["status"]
    list_select_related = ["import_job"]
    readonly_fields = ["import_job"]
    progress_fields = ["total", "done"]


@admin.register(models.PendingFlag)
class PendingFlagAdmin(ReadOnlyAdminMixin, BigTableAdmin):
    """Batches of prompts an import wrote whose follow-up job has not flagged them yet: for inspection only."""

    list_display = ["id", "import_job_id", "size"]
    search_fields = ["=import_job__id"]


class ServiceSavedAdmin(admin.ModelAdmin):
    """Change forms whose save goes through a service, so the admin gets the service's checks.

    The service's ValidationError lands on the form's fields; PermissionDenied becomes the form's error.
    """

    def register(self, request, obj, form):  # pragma: no cover - each subclass names its service
        raise NotImplementedError

    def get_form(self, request, obj=None, change=False, **kwargs):
        form_class = super().get_form(request, obj, change=change, **kwargs)
        admin_self = self

        class ServiceForm(form_class):
            def _post_clean(self):
                super()._post_clean()
                if self.errors:
                    return
                try:
                    self.saved = admin_self.register(request, self.instance, self)
                except ValidationError as error:
                    messages_by_field = error.message_dict if hasattr(error, "error_dict") else {None: error.messages}
                    for field, texts in messages_by_field.items():
                        self.add_error(field if field in self.fields else None, texts)
                except PermissionDenied as error:
                    self.add_error(None, str(error))

        return form_class if request.method != "POST" else ServiceForm

    def save_model(self, request, obj, form, change) -> None:
        saved = getattr(form, "saved", None)
        if saved is not None:
            obj.pk = saved.pk  # the service saved it; the admin's log and redirect need the id


@admin.register(models.Teacher)
class TeacherAdmin(ServiceSavedAdmin):
    list_display = ["name", "kind", "engine", "project", "model_name", "price_per_million_tokens", "created_at"]
    list_filter = ["kind", "engine"]
    search_fields = ["name", "model_name"]
    raw_id_fields = ["project"]

    def register(self, request, obj, form):
        data = form.cleaned_data
        return teacher_register(
            actor=request.user, name=data["name"], kind=data["kind"], project=data.get("project"),
            model_path=data.get("model_path", ""), gguf_file=data.get("gguf_file", ""),
            base_url=data.get("base_url", ""), model_name=data.get("model_name", ""),
            api_key_env=data.get("api_key_env", ""), default_params=data.get("default_params") or {},
            terms_of_use=data.get("terms_of_use", ""), price_per_million_tokens=data.get("price_per_million_tokens"),
            engine=data.get("engine") or models.Teacher.Engine.TRANSFORMERS,
        )


@admin.register(models.ServerResource)
class ServerResourceAdmin(ServiceSavedAdmin):
    """What operators offer curators: model folders and lm-eval task folders, by name."""

    list_display = ["name", "kind", "path", "note", "created_by", "created_at"]
    list_filter = ["kind"]
    search_fields = ["name", "path"]
    fields = ["kind", "name", "path", "note"]

    def has_module_permission(self, request) -> bool:
        return is_operator(request.user)

    def has_view_permission(self, request, obj=None) -> bool:
        return is_operator(request.user)

    def has_add_permission(self, request) -> bool:
        return is_operator(request.user)

    def has_change_permission(self, request, obj=None) -> bool:
        return is_operator(request.user)

    def has_delete_permission(self, request, obj=None) -> bool:
        return is_operator(request.user)

    def register(self, request, obj, form):
        data = form.cleaned_data
        return server_resource_register(actor=request.user, kind=data["kind"], name=data["name"],
                                        path=data["path"], note=data.get("note", ""))

    def delete_model(self, request, obj) -> None:
        server_resource_delete(actor=request.user, resource=obj)

    def delete_queryset(self, request, queryset) -> None:
        for resource in queryset:
            server_resource_delete(actor=request.user, resource=resource)


@admin.register(models.GenerationJob)
class GenerationJobAdmin(JobAdmin, LargeTableAdmin):
    list_display = ["id", "project", "teacher", "status", "done", "total", "tokens_per_second", "created_at"]
    list_filter = ["status", "project"]
    list_select_related = ["project", "teacher"]
    autocomplete_fields = ["teacher"]
    raw_id_fields = ["project", "created_by"]
    progress_fields = ["total", "done", "generated_tokens", "tokens_per_second", "eta_seconds"]


@admin.register(models.SynthesisJob)
class SynthesisJobAdmin(JobAdmin):
    list_display = ["id", "project", "teacher", "status", "created", "count", "duplicates", "flagged", "created_at"]
    list_filter = ["status", "project"]
    list_select_related = ["project", "teacher"]
    raw_id_fields = ["project", "teacher", "created_by", "generation_job"]
    progress_fields = ["created", "sampled", "duplicates", "flagged", "prompt_ids", "generation_job"]


@admin.register(models.WorkerBeat)
class WorkerBeatAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """The Celery workers up now and the queues they consume (what "no worker is listening" is read from)."""

    list_display = ["name", "queues", "pid", "started_at", "seen_at"]


class GenerateCandidatesForm(forms.Form):
    teacher = forms.ModelChoiceField(queryset=models.Teacher.objects.all())
    n = forms.IntegerField(label="Candidates per prompt", min_value=1, max_value=32, initial=2)
    temperature = forms.FloatField(min_value=0, initial=0.7)
    max_new_tokens = forms.IntegerField(min_value=1, initial=256)


@admin.register(models.SimilarityKey)
class SimilarityKeyAdmin(ReadOnlyAdminMixin, BigTableAdmin):
    """Derived rows (near-duplicate band keys), rebuilt by the detector: for inspection only."""

    list_display = ["id", "project", "kind", "key", "prompt_id", "completion_id"]
    list_filter = ["kind"]
    list_select_related = ["project"]
    search_fields = ["=key", "=prompt__id"]
