"""Dataset versions: list, detail, freeze, and an export streamed as a JSON-lines download."""

from __future__ import annotations

import json

import django_filters
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import renderers, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from config.api import router
from config.limits import MAX_INT32
from curation.downloads import export_response
from curation.models import DatasetVersion, Membership
from curation.selectors.access import access_project, check_role, projects_visible_to
from curation.selectors.versions import dataset_version_card
from curation.services.datasets import (
    EXPORT_FORMATS,
    EXPORT_SPLITS,
    dataset_version_freeze,
)


class DatasetVersionSerializer(serializers.ModelSerializer):
    project = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    contamination_count = serializers.SerializerMethodField(help_text="Contaminated training rows; null if unchecked.")

    class Meta:
        model = DatasetVersion
        fields = [
            "id", "project", "number", "created_by", "created_at", "rule", "note", "heldout_fraction", "seed",
            "row_count", "train_count", "heldout_count", "pair_count", "content_hash", "contamination_count",
        ]
        read_only_fields = fields

    def get_contamination_count(self, version) -> int | None:
        return (version.contamination or {}).get("count")


class FreezeSerializer(serializers.Serializer):
    project = serializers.SlugField(help_text="The project's slug.")
    heldout_fraction = serializers.FloatField(default=0.1, min_value=0.0, max_value=0.99)
    seed = serializers.IntegerField(default=0, min_value=-MAX_INT32, max_value=MAX_INT32)
    note = serializers.CharField(default="", allow_blank=True)


class ExportQuerySerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=EXPORT_FORMATS, default="sft")
    split = serializers.ChoiceField(choices=EXPORT_SPLITS, default="train")


class MarkdownRenderer(renderers.BaseRenderer):
    media_type = "text/markdown"
    format = "md"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return data.encode("utf-8") if isinstance(data, str) else json.dumps(data).encode("utf-8")


class ContaminatedRowSerializer(serializers.Serializer):
    position = serializers.IntegerField()
    prompt_id = serializers.IntegerField()
    source = serializers.CharField(help_text="The evaluation data it overlaps.")
    match = serializers.CharField(help_text="The row's words that overlap it.")
    prompt = serializers.CharField()


class ContaminationSerializer(serializers.Serializer):
    checked = serializers.BooleanField()
    checked_at = serializers.DateTimeField(required=False)
    n = serializers.IntegerField(required=False, help_text="n-gram length in words (13).")
    rows_checked = serializers.IntegerField(required=False)
    count = serializers.IntegerField(required=False, help_text="Contaminated training rows.")
    sources = serializers.ListField(child=serializers.DictField(), required=False)
    skipped = serializers.ListField(child=serializers.CharField(), required=False)
    rows = ContaminatedRowSerializer(many=True, required=False)


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
        name = f"{version.project.slug}-v{version.number}-{kind}-{split}.jsonl"
        return export_response(request, version, kind=kind, split=split, filename=name)

    @extend_schema(responses={(200, "text/markdown"): OpenApiResponse(OpenApiTypes.STR, description="The card.")})
    @action(detail=True, methods=["get"], filter_backends=[], renderer_classes=[MarkdownRenderer])
    def card(self, request, pk=None):
        """The dataset card in Markdown: teachers and their terms, counts, filters, annotators and agreement,
        hash, decontamination, and the runs that used the version."""
        return Response(dataset_version_card(self.get_object()))

    @extend_schema(responses={200: ContaminationSerializer})
    @action(detail=True, methods=["get"], filter_backends=[])
    def contamination(self, request, pk=None):
        """The stored 13-gram overlap check of the version's training rows against the project's evaluation data
        (held-out splits, local task data); ``checked: false`` when it was never run."""
        version = self.get_object()
        result = version.contamination or {}
        return Response({"checked": bool(result), **result})


router.register("dataset-versions", DatasetVersionViewSet, basename="dataset-version")
