"""Projects over the API."""

from __future__ import annotations

from rest_framework import serializers, viewsets

from config.api import router
from curation.models import Project
from curation.selectors.access import projects_visible_to


class ProjectSerializer(serializers.ModelSerializer):
    class Meta:
        model = Project
        fields = [
            "id", "name", "slug", "description", "guidelines", "system_prompt",
            "candidates_per_prompt", "reviews_required", "created_at",
        ]
        read_only_fields = fields


class ProjectViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = ProjectSerializer
    lookup_field = "slug"
    ordering = ["id"]

    def get_queryset(self):
        return projects_visible_to(self.request.user).order_by("id")


router.register("projects", ProjectViewSet, basename="project")
