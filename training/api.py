"""Training runs over the API: ``/api/v1/training-runs/`` (list, create, detail, cancel, resume)."""

from __future__ import annotations

from django.http import Http404
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from config.api import router
from config.limits import MAX_ID, MAX_INT32
from curation.jobs import services as jobs
from curation.jobs.api import JOB_FIELDS, JobStateSerializer
from curation.models import Membership
from curation.selectors.generation import teacher_lookup
from training.logit_caches import logit_cache_create
from training.models import LogitCache, TrainingRun
from training.selectors import (
    access_dataset_version,
    access_logit_cache,
    access_training_run,
    default_teacher,
    logit_caches_visible_to,
    training_runs_visible_to,
)
from training.services import training_run_cancel, training_run_create, training_run_resume

CURATOR = Membership.Role.CURATOR


class TrainingRunSerializer(JobStateSerializer, serializers.ModelSerializer):
    project = serializers.SlugRelatedField(source="dataset_version.project", slug_field="slug", read_only=True)
    teacher = serializers.SlugRelatedField(slug_field="name", read_only=True)
    progress = serializers.FloatField(read_only=True)
    model_dir = serializers.CharField(read_only=True, help_text="The trained student folder, once succeeded.")

    class Meta:
        model = TrainingRun
        fields = [
            "id", "name", "project", "dataset_version", "method", "student_source", "student_path", "teacher",
            "keep_layers", "recovery_version", "hyperparams", "seed", "step", "total_steps", "progress", "metrics",
            "metrics_history", "checkpoint_step", "log_tail", "report", "artifact_dir", "model_dir", "heartbeat_at",
            *JOB_FIELDS,
        ]
        read_only_fields = fields


class TrainingRunListSerializer(TrainingRunSerializer):
    """The list leaves out the long fields (history, log, report)."""

    class Meta(TrainingRunSerializer.Meta):
        fields = [f for f in TrainingRunSerializer.Meta.fields if f not in ("metrics_history", "log_tail", "report")]


class TrainingRunCreateSerializer(serializers.Serializer):
    dataset_version = serializers.IntegerField(min_value=1, max_value=MAX_ID, help_text="A frozen dataset version's id.")
    method = serializers.ChoiceField(choices=TrainingRun.Method.choices, default=TrainingRun.Method.SFT)
    student_source = serializers.ChoiceField(
        choices=TrainingRun.StudentSource.choices, default=TrainingRun.StudentSource.DERIVE
    )
    student_path = serializers.CharField(required=False, allow_blank=True, default="")
    teacher = serializers.CharField(required=False, help_text="A local teacher's name (the project's own first).")
    teacher_id = serializers.IntegerField(required=False, min_value=1, max_value=MAX_ID)
    keep_layers = serializers.IntegerField(required=False, min_value=1, max_value=1000)
    recovery_version = serializers.IntegerField(
        required=False, min_value=1, max_value=MAX_ID,
        help_text="A frozen dataset version of general teacher text for the recovery stage.",
    )
    hyperparams = serializers.DictField(required=False, help_text="TrainConfig fields, e.g. {'max_steps': 100}.")
    seed = serializers.IntegerField(required=False, default=0, min_value=-MAX_INT32, max_value=MAX_INT32)
    name = serializers.CharField(required=False, allow_blank=True, default="", max_length=200)

    def validate(self, attrs):
        if "teacher" in attrs and "teacher_id" in attrs:
            raise serializers.ValidationError("Give at most one of teacher (a name) or teacher_id.")
        return attrs


class TrainingRunViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    ordering = ["-id"]
    filterset_fields = ["status", "method", "dataset_version"]

    def get_serializer_class(self):
        return TrainingRunListSerializer if self.action == "list" else TrainingRunSerializer

    def get_queryset(self):
        runs = training_runs_visible_to(self.request.user)
        if slug := self.request.query_params.get("project"):
            runs = runs.filter(dataset_version__project__slug=slug)
        return runs

    def get_object(self):
        return access_training_run(self.request.user, pk=self.kwargs["pk"])

    @extend_schema(request=TrainingRunCreateSerializer, responses={201: TrainingRunSerializer})
    def create(self, request):
        data = TrainingRunCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        params = dict(data.validated_data)
        version = access_dataset_version(request.user, pk=params.pop("dataset_version"), role=CURATOR)
        if (recovery := params.pop("recovery_version", None)) is not None:
            params["recovery_version"] = access_dataset_version(request.user, pk=recovery, role=CURATOR)
        name, pk = params.pop("teacher", None), params.pop("teacher_id", None)
        teacher = None
        if name is not None or pk is not None:
            teacher = teacher_lookup(version.project, name=name, pk=pk)
            if teacher is None:
                raise Http404("No such teacher for this project.")
        run = training_run_create(dataset_version=version, created_by=request.user, teacher=teacher, **params)
        return Response(TrainingRunSerializer(run).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses=TrainingRunSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        run = training_run_cancel(run=access_training_run(request.user, pk=pk, role=CURATOR))
        return Response(TrainingRunSerializer(run).data)

    @extend_schema(request=None, responses=TrainingRunSerializer)
    @action(detail=True, methods=["post"])
    def resume(self, request, pk=None):
        run = training_run_resume(run=access_training_run(request.user, pk=pk, role=CURATOR))
        return Response(TrainingRunSerializer(run).data)


router.register("training-runs", TrainingRunViewSet, basename="training-run")


class LogitCacheSerializer(JobStateSerializer, serializers.ModelSerializer):
    project = serializers.SlugRelatedField(source="dataset_version.project", slug_field="slug", read_only=True)
    teacher = serializers.SlugRelatedField(slug_field="name", read_only=True)

    class Meta:
        model = LogitCache
        fields = ["id", "project", "dataset_version", "teacher", "top_k", "max_seq_len", "progress", "examples",
                  "tokens", "size_bytes", "sha256", "train_file_sha256", "manifest", "heartbeat_at", *JOB_FIELDS]
        read_only_fields = fields


class LogitCacheCreateSerializer(serializers.Serializer):
    dataset_version = serializers.IntegerField(min_value=1, max_value=MAX_ID, help_text="A frozen dataset version's id.")
    teacher = serializers.CharField(required=False, max_length=100,
                                    help_text="A teacher's name (the project's own first): a local model folder, "
                                              "or an API teacher naming its tokenizer.")
    teacher_id = serializers.IntegerField(required=False, min_value=1, max_value=MAX_ID)
    top_k = serializers.IntegerField(required=False, default=32, min_value=1, max_value=1024)


class LogitCacheViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Offline teacher logits (top-k per reply token) of a version's training export; KD runs on it use them."""

    serializer_class = LogitCacheSerializer
    ordering = ["-id"]  # cursor pagination orders by this
    filterset_fields = ["status", "dataset_version"]

    def get_queryset(self):
        return logit_caches_visible_to(self.request.user)

    def get_object(self):
        return access_logit_cache(self.request.user, pk=self.kwargs["pk"])

    @extend_schema(request=LogitCacheCreateSerializer, responses=LogitCacheSerializer)
    def create(self, request):
        data = LogitCacheCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        params = dict(data.validated_data)
        version = access_dataset_version(request.user, pk=params["dataset_version"], role=CURATOR)
        name, pk = params.get("teacher"), params.get("teacher_id")
        teacher = teacher_lookup(version.project, name=name, pk=pk) if name or pk else default_teacher(version.project)
        if teacher is None:
            raise Http404("No such local teacher for this project.")
        cache = logit_cache_create(dataset_version=version, teacher=teacher, top_k=params["top_k"],
                                   created_by=request.user)
        return Response(LogitCacheSerializer(cache).data, status=status.HTTP_201_CREATED)

    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        cache = access_logit_cache(request.user, pk=pk, role=CURATOR)
        return Response(LogitCacheSerializer(jobs.job_cancel(job=cache)).data)

    @action(detail=True, methods=["post"])
    def resume(self, request, pk=None):
        cache = access_logit_cache(request.user, pk=pk, role=CURATOR)
        return Response(LogitCacheSerializer(jobs.job_resume(job=cache)).data)


router.register("logit-caches", LogitCacheViewSet, basename="logit-cache")
