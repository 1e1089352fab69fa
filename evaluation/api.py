"""Evaluation runs over the API: ``/api/v1/evaluation-runs/`` with results, samples, cancel and send-back."""

from __future__ import annotations

from dataclasses import asdict

from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from config.api import router
from config.limits import MAX_INT32
from config.pagination import CursorPagination
from curation.jobs.api import JOB_FIELDS, JobStateSerializer
from curation.models import DatasetVersion, Membership
from curation.selectors.access import access_project
from evaluation import selectors, services
from evaluation.models import EvaluationRun, EvaluationSample

CURATOR = Membership.Role.CURATOR


class EvaluationRunSerializer(JobStateSerializer, serializers.ModelSerializer):
    project = serializers.SlugRelatedField(slug_field="slug", read_only=True)

    class Meta:
        model = EvaluationRun
        fields = ["id", "project", "name", "dataset_version", "models_spec", "tasks", "options", "progress",
                  "stage", "fidelity", "speed", *JOB_FIELDS]
        read_only_fields = fields


class EvaluationRunCreateSerializer(serializers.Serializer):
    project = serializers.SlugField()
    name = serializers.CharField(required=False, allow_blank=True, max_length=200)
    dataset_version = serializers.IntegerField(required=False, min_value=1, max_value=MAX_INT32, help_text="The version's number in the project.")
    models = serializers.ListField(
        child=serializers.DictField(), min_length=1,
        help_text="[{teacher_id} | {training_run_id} | {kind: hf|gguf, path: a registered model's name} | "
                  "{kind: api, path: URL, api_model}], "
                  "each with an optional label and role",
    )
    tasks = serializers.ListField(child=serializers.CharField(), required=False,
                                  help_text="'heldout', lm-eval task names, or registered task folders' names.")
    options = serializers.DictField(required=False,
                                    help_text="limit, num_fewshot, apply_chat_template, batch_size, max_gen_toks")


class SampleSerializer(serializers.ModelSerializer):
    class Meta:
        model = EvaluationSample
        fields = ["id", "model_label", "task", "doc_id", "prompt_id", "prompt", "target", "response", "metrics",
                  "sent_back_at"]
        read_only_fields = fields


class SamplePagination(CursorPagination):
    ordering = "id"
    page_size = 200


class SendBackSerializer(serializers.Serializer):
    doc_ids = serializers.ListField(child=serializers.IntegerField(min_value=0, max_value=MAX_INT32), min_length=1)
    student = serializers.CharField(required=False, allow_blank=True, max_length=100)


RESULTS = inline_serializer("EvaluationResults", fields={
    "id": serializers.IntegerField(), "status": serializers.CharField(),
    "teacher": serializers.CharField(allow_null=True), "students": serializers.ListField(child=serializers.CharField()),
    "metrics": serializers.ListField(child=serializers.DictField(), help_text="Per task and metric: every model's value."),
    "models": serializers.ListField(child=serializers.DictField(), help_text="Sizes and speeds per model."),
    "results": serializers.DictField(help_text="The raw summary per model label."),
})
SENT_BACK = inline_serializer("SentBack", fields={"sent_back": serializers.IntegerField()})
# ``samples`` answers a cursor page of samples, or (with ``regressions_for``) a ranked list of regressions.
SAMPLES_OR_REGRESSIONS = {"oneOf": [
    {"type": "object", "required": ["results"], "properties": {
        "next": {"type": "string", "nullable": True}, "previous": {"type": "string", "nullable": True},
        "results": {"type": "array", "items": {"type": "object"}}}},
    {"type": "array", "items": {"type": "object"}},
]}


class EvaluationRunViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = EvaluationRunSerializer
    ordering = ["-id"]
    filterset_fields = ["status"]

    def get_queryset(self):
        runs = selectors.runs_visible_to(self.request.user)
        if slug := self.request.query_params.get("project"):
            runs = runs.filter(project__slug=slug)
        return runs

    def get_object(self) -> EvaluationRun:
        role = CURATOR if self.action in ("cancel", "resume", "send_back") else Membership.Role.ANNOTATOR
        return selectors.access_run(self.request.user, pk=self.kwargs["pk"], role=role)

    @extend_schema(request=EvaluationRunCreateSerializer, responses={201: EvaluationRunSerializer})
    def create(self, request):
        data = EvaluationRunCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        project = access_project(request.user, slug=fields.pop("project"), role=CURATOR)
        number = fields.pop("dataset_version", None)
        version = None
        if number is not None:
            version = DatasetVersion.objects.filter(project=project, number=number).first()
            if version is None:
                raise serializers.ValidationError({"dataset_version": f"{project.slug} has no version {number}."})
        run = services.evaluation_run_create(project=project, created_by=request.user, dataset_version=version,
                                             **fields)
        return Response(EvaluationRunSerializer(run).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses=RESULTS)
    @action(detail=True, methods=["get"])
    def results(self, request, pk=None):
        """Fidelity to the teacher first (teacher-forced KL, top-1 agreement, cross-entropy, with stderr), then per
        task and metric: teacher, students, stderr and retention; fixed-length speed; sizes and their ratios."""
        run = self.get_object()
        comparison = selectors.run_comparison(run)
        return Response({
            "id": run.pk, "status": run.status, "teacher": run.teacher_label, "students": run.student_labels,
            "fidelity": [asdict(row) for row in comparison.fidelity],
            "speed": [asdict(row) for row in comparison.speed],
            "metrics": [asdict(row) for row in comparison.metrics],
            "models": [asdict(row) for row in comparison.models],
            "results": run.results,
        })

    @extend_schema(responses={200: SAMPLES_OR_REGRESSIONS}, parameters=[
        OpenApiParameter("model", str, description="Only this model's samples."),
        OpenApiParameter("task", str, description="Only this task's samples."),
        OpenApiParameter("regressions_for", str, description="A student's label: rank its regressions instead."),
        OpenApiParameter("metric", str, description="The metric regressions are ranked by (default rougeL)."),
        OpenApiParameter("sort", str, description="gap (default) or another order of regressions."),
        OpenApiParameter("cursor", str, description="The page cursor."),
    ])
    @action(detail=True, methods=["get"], filter_backends=[], pagination_class=SamplePagination)
    def samples(self, request, pk=None):
        """Per-sample logs; ``?model=&task=`` narrow them, ``?regressions_for=STUDENT&metric=`` ranks by gap."""
        run = self.get_object()
        params = request.query_params
        if student := params.get("regressions_for"):
            items = selectors.regressions(run, student=student, task=params.get("task", selectors.GEN_TASK),
                                          metric=params.get("metric", "rougeL"), sort=params.get("sort", "gap"))
            return Response([asdict(item) for item in items])
        rows = run.samples.all().order_by("id")
        for field, param in (("model_label", "model"), ("task", "task")):
            if params.get(param):
                rows = rows.filter(**{field: params[param]})
        page = self.paginate_queryset(rows)
        return self.get_paginated_response(SampleSerializer(page, many=True).data)

    @extend_schema(request=None, responses=EvaluationRunSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        run = services.evaluation_run_cancel(run=self.get_object())
        return Response(EvaluationRunSerializer(run).data)

    @extend_schema(request=None, responses=EvaluationRunSerializer)
    @action(detail=True, methods=["post"])
    def resume(self, request, pk=None):
        """Queue a failed or cancelled run again; the models already scored keep their results."""
        run = services.evaluation_run_resume(run=self.get_object())
        return Response(EvaluationRunSerializer(run).data)

    @extend_schema(request=SendBackSerializer, responses=SENT_BACK)
    @action(detail=True, methods=["post"], url_path="send-back")
    def send_back(self, request, pk=None):
        """Send held-out items back to the review queue, flagged with this run."""
        data = SendBackSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = data.validated_data
        count = services.evaluation_items_send_back(run=self.get_object(), doc_ids=fields["doc_ids"],
                                                    actor=request.user, student_label=fields.get("student", ""))
        return Response({"sent_back": count})


router.register("evaluation-runs", EvaluationRunViewSet, basename="evaluation-run")
