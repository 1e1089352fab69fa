"""The lifecycle's fields in every job's API answer: one serializer base, so the four APIs cannot drift."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from curation.jobs.selectors import job_is_stale, queue_state

JOB_FIELDS = ["status", "attempts", "error", "cancel_requested", "stale", "queue", "created_at", "queued_at",
              "started_at", "finished_at"]


class QueueStateSerializer(serializers.Serializer):
    queue = serializers.CharField(help_text="The Celery queue this kind of job runs on.")
    waited_seconds = serializers.FloatField(allow_null=True, help_text="Seconds in the queue so far (queued only).")
    workers = serializers.ListField(child=serializers.CharField(), help_text="Workers consuming that queue now.")
    worker_listening = serializers.BooleanField(help_text="False: no worker consumes the queue; nothing will run it.")
    stale = serializers.BooleanField()


class JobStateSerializer(serializers.Serializer):
    """Mix into a job's ModelSerializer (first base) and add JOB_FIELDS to its Meta.fields."""

    stale = serializers.SerializerMethodField(help_text="Running, but its worker stopped sending heartbeats.")
    queue = serializers.SerializerMethodField()

    def get_stale(self, job) -> bool:
        return job_is_stale(job)

    @extend_schema_field(QueueStateSerializer)
    def get_queue(self, job) -> dict:
        return queue_state(job).as_dict()
