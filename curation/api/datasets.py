"""Dataset versions: list, detail, freeze, and an export streamed as a JSON-lines download."""

from __future__ import annotations

import django_filters
from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from config.api import router
from config.limits import MAX_INT32
from curation.models import DatasetVersion, Membership
from curation.selectors.access import access_project, check_role, projects_visible_to
from curation.services.datasets import EXPORT_FORMATS, EXPORT_SPLITS, dataset_export_lines, dataset_version_freeze


class DatasetVersionSerializer(serializers.ModelSerializer):
    project = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = DatasetVersion
        fields = [
            "id", "project", "number", "created_by", "created_at", "rule", "note", "heldout_fraction", "seed",
            "row_count", "train_count", "heldout_count", "pair_count", "content_hash",
        ]
        read_only_fields = fields


class FreezeSerializer(serializers.Serializer):
    project = serializers.SlugField(help_text="The project's slug.")
    heldout_fraction = serializers.FloatField(default=0.1, min_value=0.0, max_value=0.99)
    seed = serializers.IntegerField(default=0, min_value=-MAX_INT32, max_value=MAX_INT32)
    note = serializers.CharField(default="", allow_blank=True)


class ExportQuerySerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=EXPORT_FORMATS, default="sft")
    split = serializers.ChoiceField(choices=EXPORT_SPLITS, default="train")


class DatasetVersionFilter(django_filters.FilterSet):
    project = django_filters.CharFilter(field_name="project__slug", help_text="Project slug.")

    class Meta:
        model = DatasetVersion
        fields = ["project"]


class DatasetVersionViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = DatasetVersionSerializer
    filterset_class = DatasetVersionFilter
    ordering = ["-id"]
    ordering_fields = ["id"]

    def get_queryset(self):
        visible = projects_visible_to(self.request.user)
        return DatasetVersion.objects.filter(project__in=visible).select_related("project", "created_by")

    @extend_schema(request=FreezeSerializer, responses={201: DatasetVersionSerializer})
    @action(detail=False, methods=["post"])
    def freeze(self, request):
        """Freeze the project's approved prompts into a new immutable version."""
        form = FreezeSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        project = access_project(request.user, slug=data.pop("project"), role=Membership.Role.CURATOR)
        version = dataset_version_freeze(project=project, created_by=request.user, **data)
        return Response(DatasetVersionSerializer(version).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        parameters=[
            OpenApiParameter("kind", enum=EXPORT_FORMATS, default="sft", description="sft, prompt-completion or dpo."),
            OpenApiParameter("split", enum=EXPORT_SPLITS, default="train"),
        ],
        responses={(200, "application/x-ndjson"): OpenApiResponse(OpenApiTypes.BINARY, description="JSON lines.")},
    )
    @action(detail=True, methods=["get"], filter_backends=[])
    def export(self, request, pk=None):
        """Download the version as JSON lines; the same version always gives the same bytes.

        The layout is ``kind``, not ``format``: DRF reserves ``?format=`` for choosing a renderer.
        """
        version = self.get_object()
        check_role(request.user, version.project, Membership.Role.CURATOR)
        query = ExportQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        kind, split = query.validated_data["kind"], query.validated_data["split"]
        lines = dataset_export_lines(version=version, format=kind, split=split)
        response = StreamingHttpResponse(lines, content_type="application/x-ndjson")
        name = f"{version.project.slug}-v{version.number}-{kind}-{split}.jsonl"
        response["Content-Disposition"] = f'attachment; filename="{name}"'
        return response


router.register("dataset-versions", DatasetVersionViewSet, basename="dataset-version")
