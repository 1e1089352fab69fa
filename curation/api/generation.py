"""Teachers and generation jobs over the API: ``/api/v1/teachers/`` and ``/api/v1/generation-jobs/``."""

from __future__ import annotations

from django.db.models import Q
from django.http import Http404
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from config.api import router
from config.limits import MAX_ID, MAX_INT32
from curation.jobs.api import JOB_FIELDS, JobStateSerializer
from curation.models import GenerationJob, Membership, Teacher
from curation.selectors.access import access_project, projects_visible_to
from curation.selectors.generation import (
    access_generation_job,
    generation_jobs_visible_to,
    job_percent,
    teacher_details_visible,
    teacher_lookup,
)
from curation.services.generation import (
    generation_job_cancel,
    generation_job_create,
    generation_job_resume,
    teacher_register,
)

CURATOR = Membership.Role.CURATOR
MAX_NEW_TOKENS = 32768
SERVER_DETAILS = ("model_path", "gguf_file", "base_url", "api_key_env")


class TeacherSerializer(serializers.ModelSerializer):
    project = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    # A plain string: URL validation refuses dotless hosts such as http://vllm:8000/v1; the service checks it.
    base_url = serializers.CharField(required=False, allow_blank=True, max_length=200)

    class Meta:
        model = Teacher
        fields = ["id", "name", "kind", "engine", "project", "model_path", "gguf_file", "base_url", "model_name",
                  "api_key_env", "default_params", "terms_of_use", "price_per_million_tokens", "created_at"]
        read_only_fields = ["id", "created_at"]
        # Shape only: the service validates, and answers for existing names by updating them.
        validators = []

    def to_representation(self, teacher: Teacher) -> dict:
        data = super().to_representation(teacher)
        request = self.context.get("request")
        if request is not None and not teacher_details_visible(request.user, teacher):
            data.update({field: "" for field in SERVER_DETAILS})
        return data


class TeacherRegisterSerializer(TeacherSerializer):
    project = serializers.SlugField(required=False, allow_null=True, default=None)


class TeacherViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = TeacherSerializer
    ordering = ["id"]

    def get_queryset(self):
        visible = projects_visible_to(self.request.user)
        return Teacher.objects.filter(Q(project__isnull=True) | Q(project__in=visible)).select_related("project")

    @extend_schema(request=TeacherRegisterSerializer, responses={201: TeacherSerializer})
    def create(self, request):
        data = TeacherRegisterSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        slug = fields.pop("project")
        if slug:
            fields["project"] = access_project(request.user, slug=slug, role=CURATOR)
        teacher = teacher_register(actor=request.user, **fields)
        return Response(TeacherSerializer(teacher, context={"request": request}).data, status=status.HTTP_201_CREATED)


class GenerationJobSerializer(JobStateSerializer, serializers.ModelSerializer):
    project = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    teacher = serializers.SlugRelatedField(slug_field="name", read_only=True)
    percent = serializers.SerializerMethodField()

    class Meta:
        model = GenerationJob
        fields = ["id", "project", "teacher", "teacher_id", "selection", "n", "temperature", "top_p",
                  "max_new_tokens", "system_prompt", "seed", "total", "done", "skipped", "percent", "generated_tokens",
                  "tokens_per_second", "eta_seconds", *JOB_FIELDS]
        read_only_fields = fields

    def get_percent(self, job: GenerationJob) -> int:
        return job_percent(job)


class GenerationJobCreateSerializer(serializers.Serializer):
    project = serializers.SlugField()
    teacher = serializers.CharField(required=False, help_text="The teacher's name (a project's own comes first).")
    teacher_id = serializers.IntegerField(required=False, min_value=1, max_value=MAX_ID)
    selection = serializers.JSONField(required=False, help_text="{'mode': 'pending'|'all'|'ids'|'filter', ...}")
    n = serializers.IntegerField(required=False, min_value=1, max_value=32)
    temperature = serializers.FloatField(required=False, min_value=0, max_value=10)
    top_p = serializers.FloatField(required=False, min_value=0, max_value=1)
    max_new_tokens = serializers.IntegerField(required=False, min_value=1, max_value=MAX_NEW_TOKENS)
    system_prompt = serializers.CharField(required=False, allow_blank=True)
    seed = serializers.IntegerField(required=False, min_value=-MAX_INT32, max_value=MAX_INT32)

    def validate(self, attrs):
        if ("teacher" in attrs) == ("teacher_id" in attrs):
            raise serializers.ValidationError("Give exactly one of teacher (a name) or teacher_id.")
        if "selection" in attrs and not isinstance(attrs["selection"], dict):
            raise serializers.ValidationError({"selection": "An object, e.g. {'mode': 'pending'}."})
        return attrs


@extend_schema_view(list=extend_schema(parameters=[OpenApiParameter("project", str, description="A project's slug.")]))
class GenerationJobViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = GenerationJobSerializer
    ordering = ["-id"]
    filterset_fields = ["status"]

    def get_queryset(self):
        jobs = generation_jobs_visible_to(self.request.user)
        if slug := self.request.query_params.get("project"):
            jobs = jobs.filter(project__slug=slug)
        return jobs

    @extend_schema(request=GenerationJobCreateSerializer, responses={201: GenerationJobSerializer})
    def create(self, request):
        data = GenerationJobCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        params = dict(data.validated_data)
        project = access_project(request.user, slug=params.pop("project"), role=CURATOR)
        teacher = teacher_lookup(project, name=params.pop("teacher", None), pk=params.pop("teacher_id", None))
        if teacher is None:
            raise Http404("No such teacher for this project.")
        job = generation_job_create(project=project, teacher=teacher, created_by=request.user, **params)
        return Response(GenerationJobSerializer(job).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None)
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        job = generation_job_cancel(job=access_generation_job(request.user, pk=pk, role=CURATOR))
        return Response(GenerationJobSerializer(job).data)

    @extend_schema(request=None)
    @action(detail=True, methods=["post"])
    def resume(self, request, pk=None):
        job = generation_job_resume(job=access_generation_job(request.user, pk=pk, role=CURATOR))
        return Response(GenerationJobSerializer(job).data)


router.register("teachers", TeacherViewSet, basename="teacher")
router.register("generation-jobs", GenerationJobViewSet, basename="generation-job")
