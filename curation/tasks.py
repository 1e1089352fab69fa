"""Celery tasks of curation: ids in, one service call. Queued with transaction.on_commit."""

from __future__ import annotations

from celery import shared_task
