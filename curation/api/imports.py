"""Import jobs: a multipart upload creates a job that the worker runs; list, detail and the rejects file."""

from __future__ import annotations

from pathlib import Path

import django_filters
from django.http import FileResponse, Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.response import Response

from config.api import router
from curation.jobs.api import JOB_FIELDS, JobStateSerializer
from curation.models import ImportJob, JobStatus, Membership
from curation.selectors.access import access_project, check_role, projects_visible_to
from curation.services.imports import import_job_create


class ImportJobSerializer(JobStateSerializer, serializers.ModelSerializer):
    project = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    has_rejects = serializers.SerializerMethodField()
    flags = serializers.SerializerMethodField(help_text="The follow-up job computing the quality flags of the "
                                              "imported prompts (status, total, done); null when there is none.")

    class Meta:
        model = ImportJob
        fields = [
            "id", "project", "created_by", "original_name", "format", "detected_format", "skip_invalid",
            "read_count", "imported_count", "duplicate_count", "invalid_count", "errors", "message", "has_rejects",
            "flags", *JOB_FIELDS,
        ]
        read_only_fields = fields

    def get_has_rejects(self, job: ImportJob) -> bool:
        return bool(job.rejects_path)

    @extend_schema_field(OpenApiTypes.OBJECT)
    def get_flags(self, job: ImportJob) -> dict | None:
        flag_job = job.flag_job
        if flag_job is None:
            return None
        return {"id": flag_job.pk, "status": flag_job.status, "total": flag_job.total, "done": flag_job.done,
                "error": flag_job.error}


class ImportJobCreateSerializer(serializers.Serializer):
    project = serializers.SlugField(help_text="The project's slug.")
    file = serializers.FileField()
    format = serializers.ChoiceField(choices=ImportJob.Format.choices, default=ImportJob.Format.AUTO)
    skip_invalid = serializers.BooleanField(default=False)
    batch_input_file = serializers.FileField(required=False, help_text="The OpenAI Batch input, for its prompts.")


class ImportJobFilter(django_filters.FilterSet):
    project = django_filters.CharFilter(field_name="project__slug", help_text="Project slug.")
    status = django_filters.ChoiceFilter(choices=JobStatus.choices)

    class Meta:
        model = ImportJob
        fields = ["project", "status"]


class ImportJobViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = ImportJobSerializer
    filterset_class = ImportJobFilter
    parser_classes = [MultiPartParser, FormParser, JSONParser]
    ordering = ["-id"]
    ordering_fields = ["id"]

    def get_queryset(self):
        visible = projects_visible_to(self.request.user)
        return ImportJob.objects.filter(project__in=visible).select_related("project", "created_by")

    @extend_schema(request={"multipart/form-data": ImportJobCreateSerializer}, responses={201: ImportJobSerializer})
    def create(self, request):
        form = ImportJobCreateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        project = access_project(request.user, slug=data["project"], role=Membership.Role.CURATOR)
        job = import_job_create(
            project=project, uploaded_file=data["file"], format=data["format"], skip_invalid=data["skip_invalid"],
            batch_input_file=data.get("batch_input_file"), created_by=request.user,
        )
        return Response(ImportJobSerializer(job).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses={(200, "application/x-ndjson"): OpenApiResponse(OpenApiTypes.BINARY)})
    @action(detail=True, methods=["get"])
    def rejects(self, request, pk=None):
        """The rejected lines with their reasons (JSON lines), for a job run with skip_invalid."""
        job = self.get_object()
        check_role(request.user, job.project, Membership.Role.CURATOR)
        path = Path(job.rejects_path) if job.rejects_path else None
        if path is None or not path.is_file():
            raise Http404("This import has no rejects file.")
        return FileResponse(
            open(path, "rb"), as_attachment=True, filename=f"import-{job.pk}-rejects.jsonl",  # noqa: SIM115
            content_type="application/x-ndjson",
        )


router.register("imports", ImportJobViewSet, basename="import")
