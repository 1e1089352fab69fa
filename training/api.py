"""Training runs over the API: ``/api/v1/training-runs/`` (list, create, detail, cancel, resume)."""

from __future__ import annotations

from django.http import Http404
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from config.api import router
from config.limits import MAX_ID, MAX_INT32
from curation.jobs.api import JOB_FIELDS, JobStateSerializer
from curation.models import Membership
from curation.selectors.generation import teacher_lookup
from training.models import TrainingRun
from training.selectors import access_dataset_version, access_training_run, training_runs_visible_to
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
