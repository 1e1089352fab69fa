"""Projects over the API: members read, curators update, admins and curators create."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from config.api import router
from curation.models import Membership, Project
from curation.selectors.access import can_create_projects, check_role, projects_visible_to
from curation.services.projects import project_create, project_update


class ProjectSerializer(serializers.ModelSerializer):
    class Meta:
        model = Project
        fields = [
            "id", "name", "slug", "description", "guidelines", "system_prompt",
            "candidates_per_prompt", "reviews_required", "created_at",
        ]
        read_only_fields = ["id", "created_at"]
        extra_kwargs = {"slug": {"required": False}}


class ProjectUpdateSerializer(ProjectSerializer):
    class Meta(ProjectSerializer.Meta):
        read_only_fields = ["id", "slug", "created_at"]


class MemberSerializer(serializers.ModelSerializer):
    user_id = serializers.IntegerField(source="user.id", read_only=True)
    username = serializers.CharField(source="user.username", read_only=True)

    class Meta:
        model = Membership
        fields = ["user_id", "username", "role", "created_at"]


class ProjectViewSet(mixins.CreateModelMixin, mixins.UpdateModelMixin, viewsets.ReadOnlyModelViewSet):
    serializer_class = ProjectSerializer
    lookup_field = "slug"
    lookup_value_regex = "[-a-zA-Z0-9_]+"
    ordering = ["id"]
    ordering_fields = ["id", "name"]

    def get_queryset(self):
        return projects_visible_to(self.request.user).order_by("id")

    def get_serializer_class(self):
        if self.action in ("update", "partial_update"):
            return ProjectUpdateSerializer
        if self.action == "members":
            return MemberSerializer
        return ProjectSerializer

    def perform_create(self, serializer):
        if not can_create_projects(self.request.user):
            raise PermissionDenied("Only admins and curators may create projects.")
        serializer.instance = project_create(created_by=self.request.user, **serializer.validated_data)

    def perform_update(self, serializer):
        check_role(self.request.user, serializer.instance, Membership.Role.CURATOR)
        serializer.instance = project_update(project=serializer.instance, **serializer.validated_data)

    @extend_schema(responses=MemberSerializer(many=True))
    @action(detail=True, methods=["get"], pagination_class=None, filter_backends=[])
    def members(self, request, slug=None):
        project = self.get_object()
        memberships = project.memberships.select_related("user").order_by("user__username")
        return Response(MemberSerializer(memberships, many=True).data)


router.register("projects", ProjectViewSet, basename="project")
