"""Evaluation runs over the API: ``/api/v1/evaluation-runs/`` with results, samples, cancel and send-back."""

from __future__ import annotations

from dataclasses import asdict

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response

from config.api import router
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
                  "stage", *JOB_FIELDS]
        read_only_fields = fields


class EvaluationRunCreateSerializer(serializers.Serializer):
    project = serializers.SlugField()
    name = serializers.CharField(required=False, allow_blank=True, max_length=200)
    dataset_version = serializers.IntegerField(required=False, help_text="The version's number in the project.")
    models = serializers.ListField(
        child=serializers.DictField(), min_length=1,
        help_text="[{teacher_id} | {training_run_id} | {kind: hf|gguf|api, path, api_model?}], "
                  "each with an optional label and role",
    )
    tasks = serializers.ListField(child=serializers.CharField(), required=False,
                                  help_text="'heldout', lm-eval task names, or folders of task YAML.")
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
    doc_ids = serializers.ListField(child=serializers.IntegerField(min_value=0), min_length=1)
    student = serializers.CharField(required=False, allow_blank=True, max_length=100)


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
        role = CURATOR if self.action in ("cancel", "send_back") else Membership.Role.ANNOTATOR
        return selectors.access_run(self.request.user, pk=int(self.kwargs["pk"]), role=role)

    @extend_schema(request=EvaluationRunCreateSerializer, responses=EvaluationRunSerializer)
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

    @action(detail=True, methods=["get"])
    def results(self, request, pk=None):
        """Per task and metric: teacher, students, stderr and retention; sizes, speeds and their ratios."""
        run = self.get_object()
        comparison = selectors.run_comparison(run)
        return Response({
            "id": run.pk, "status": run.status, "teacher": run.teacher_label, "students": run.student_labels,
            "metrics": [asdict(row) for row in comparison.metrics],
            "models": [asdict(row) for row in comparison.models],
            "results": run.results,
        })

    @extend_schema(responses=SampleSerializer(many=True))
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

    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        run = services.evaluation_run_cancel(run=self.get_object())
        return Response(EvaluationRunSerializer(run).data)

    @extend_schema(request=SendBackSerializer)
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
