"""Magpie synthesis over the API: ``/api/v1/synthesis-jobs/`` (list, create, detail, cancel, resume)."""

from __future__ import annotations

from django.http import Http404
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from config.api import router
from curation.jobs import services as jobs
from curation.jobs.api import JOB_FIELDS, JobStateSerializer
from curation.models import Membership, SynthesisJob
from curation.selectors.access import access_in_project, access_project, projects_visible_to
from curation.selectors.generation import teacher_lookup
from curation.services.synthesis import synthesis_job_create

CURATOR = Membership.Role.CURATOR


class SynthesisJobSerializer(JobStateSerializer, serializers.ModelSerializer):
    project = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    teacher = serializers.SlugRelatedField(slug_field="name", read_only=True)

    class Meta:
        model = SynthesisJob
        fields = ["id", "project", "teacher", "count", "system_prompt", "temperature", "top_p", "max_new_tokens",
                  "seed", "keep_flagged", "answer", "created", "sampled", "duplicates", "flagged", "prompt_ids",
                  "generation_job", "heartbeat_at", *JOB_FIELDS]
        read_only_fields = fields


class SynthesisJobCreateSerializer(serializers.Serializer):
    project = serializers.SlugField()
    teacher = serializers.CharField(help_text="A local teacher's name (a project's own comes first).")
    count = serializers.IntegerField(min_value=1, help_text="New prompts to add.")
    system_prompt = serializers.CharField(required=False, allow_blank=True,
                                          help_text="Default: the project's system prompt.")
    temperature = serializers.FloatField(required=False, default=1.0)
    top_p = serializers.FloatField(required=False, default=1.0)
    max_new_tokens = serializers.IntegerField(required=False, default=64)
    seed = serializers.IntegerField(required=False, default=0)
    keep_flagged = serializers.BooleanField(required=False, default=False)
    answer = serializers.BooleanField(required=False, default=True,
                                      help_text="Queue a greedy generation job for the new prompts afterwards.")


def _access(user, pk, role=Membership.Role.ANNOTATOR) -> SynthesisJob:
    rows = SynthesisJob.objects.select_related("project", "teacher")
    return access_in_project(user, rows, pk=pk, project_of=lambda job: job.project, role=role, what="synthesis job")


class SynthesisJobViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = SynthesisJobSerializer
    ordering = ["-id"]
    filterset_fields = ["status"]

    def get_queryset(self):
        rows = SynthesisJob.objects.filter(project__in=projects_visible_to(self.request.user))
        return rows.select_related("project", "teacher")

    def get_object(self):
        return _access(self.request.user, self.kwargs["pk"])

    @extend_schema(request=SynthesisJobCreateSerializer, responses={201: SynthesisJobSerializer})
    def create(self, request):
        data = SynthesisJobCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        params = dict(data.validated_data)
        project = access_project(request.user, slug=params.pop("project"), role=CURATOR)
        teacher = teacher_lookup(project, name=params.pop("teacher"))
        if teacher is None:
            raise Http404("No such teacher for this project.")
        job = synthesis_job_create(project=project, teacher=teacher, created_by=request.user, **params)
        return Response(SynthesisJobSerializer(job).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None)
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        return Response(SynthesisJobSerializer(jobs.job_cancel(job=_access(request.user, pk, CURATOR))).data)

    @extend_schema(request=None)
    @action(detail=True, methods=["post"])
    def resume(self, request, pk=None):
        return Response(SynthesisJobSerializer(jobs.job_resume(job=_access(request.user, pk, CURATOR))).data)


router.register("synthesis-jobs", SynthesisJobViewSet, basename="synthesis-job")
