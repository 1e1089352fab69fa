"""Prompts with their completions, read-only (reviews are written on the review pages)."""

from __future__ import annotations

import django_filters
from rest_framework import serializers, viewsets

from config.api import router
from curation.models import Completion, Prompt
from curation.selectors.prompts import prompts_truncated, prompts_visible_to, prompts_with_edit, prompts_with_source


class CompletionSerializer(serializers.ModelSerializer):
    class Meta:
        model = Completion
        fields = ["id", "text", "source", "finish_reason", "truncated", "params", "length", "created_at"]
        read_only_fields = fields


class PromptSerializer(serializers.ModelSerializer):
    project = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    completions = CompletionSerializer(many=True, read_only=True)

    class Meta:
        model = Prompt
        fields = [
            "id", "project", "messages", "text", "external_id", "metadata", "content_hash", "status",
            "review_count", "created_at", "updated_at", "completions",
        ]
        read_only_fields = fields


class PromptFilter(django_filters.FilterSet):
    project = django_filters.CharFilter(field_name="project__slug", help_text="Project slug.")
    status = django_filters.ChoiceFilter(choices=Prompt.Status.choices)
    external_id = django_filters.CharFilter()
    source = django_filters.CharFilter(method="filter_source", help_text="Has a completion from this source.")
    has_edit = django_filters.BooleanFilter(method="filter_has_edit", help_text="A review edited its answer.")
    truncated = django_filters.BooleanFilter(method="filter_truncated", help_text="A completion hit the length limit.")

    class Meta:
        model = Prompt
        fields = ["project", "status", "external_id", "source", "has_edit", "truncated"]

    def filter_source(self, queryset, name, value):
        return prompts_with_source(queryset, value)

    def filter_has_edit(self, queryset, name, value):
        return prompts_with_edit(queryset, value)

    def filter_truncated(self, queryset, name, value):
        return prompts_truncated(queryset, value)


class PromptViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = PromptSerializer
    filterset_class = PromptFilter
    ordering = ["-id"]
    ordering_fields = ["id"]

    def get_queryset(self):
        return prompts_visible_to(self.request.user)


router.register("prompts", PromptViewSet, basename="prompt")
