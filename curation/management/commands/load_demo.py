"""Create the demo project and import the demo teacher outputs (idempotent: re-running adds nothing)."""

from __future__ import annotations

import os

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from curation.models import ImportJob, JobStatus, Membership, Project, ServerResource, Teacher
from curation.services.generation import teacher_register
from curation.services.trust import SERVER_SHELL, server_resource_register
from curation.services.imports import import_file
from curation.services.projects import membership_set, project_create
from curation.teachers.demo_model import (
    DEMO_MODEL_FOLDER,
    DEMO_MODEL_NAME,
    DEMO_SYSTEM_PROMPT,
    demo_model_dir,
    is_built,
)

DEMO_SLUG = "demo"
DEMO_DIR = settings.BASE_DIR / "demo"
# 300 prompts, each answered twice by the real demo teacher (curation/teachers/demo_outputs.py made it).
DEMO_FILES = [DEMO_DIR / "demo_outputs.jsonl"]
GUIDELINES = """\
**Goal:** teach a small student to answer short questions correctly and concisely.

- Prefer the candidate that is **correct**; then the one that is **shorter and clearer**.
- Reject items where every candidate is wrong and not worth fixing.
- Fix small mistakes by editing the best candidate (an edit also becomes a preference pair).
- Truncated answers (marked *length*) are usually worse than complete ones.
"""


class Command(BaseCommand):
    help = "Create the demo project, make the admin account its curator, and import the demo outputs."

    def add_arguments(self, parser):
        parser.add_argument("--force", action="store_true", help="Import again even if imported before.")

    def handle(self, *args, force: bool = False, **options):
        admin = get_user_model().objects.filter(username=os.environ.get("DISTILLERY_ADMIN_USER", "admin")).first()
        project = Project.objects.filter(slug=DEMO_SLUG).first()
        if project is None:
            project = project_create(
                name="Demo: SmolLM2 distillation", slug=DEMO_SLUG, created_by=admin, guidelines=GUIDELINES,
                system_prompt=DEMO_SYSTEM_PROMPT, candidates_per_prompt=2,
                description="Prompts answered by SmolLM2-135M-Instruct, ready to curate.",
            )
            self.stdout.write(f"Created the project '{project.name}'.")
        if admin is not None:
            membership_set(project=project, user=admin, role=Membership.Role.CURATOR)
        else:
            self.stderr.write("No admin account yet (run ensure_admin): the demo has no curator.")
        self._register_teacher(project)
        path = next((p for p in DEMO_FILES if p.exists()), None)
        if path is None:
            raise CommandError(f"No demo outputs in {DEMO_DIR}.")
        done = ImportJob.objects.filter(
            project=project, status=JobStatus.SUCCEEDED, original_name__endswith=f"/{path.name}"
        )
        if done.exists() and not force:
            self.stdout.write(f"The demo outputs ({path.name}) are imported already.")
            return
        job = import_file(project=project, path=path, created_by=admin)
        if job.status != JobStatus.SUCCEEDED:
            raise CommandError(f"The demo import failed: {job.message}")
        self.stdout.write(f"Demo outputs ({path.name}): {job.message}")

    def _register_teacher(self, project: Project) -> None:
        """The demo teacher, with the parameters the committed outputs were generated with."""
        if not is_built(demo_model_dir(settings.DATA_DIR)):
            self.stdout.write("The demo teacher model is not built: `make demo-model`, then load_demo again.")
            return
        teacher_register(
            actor=SERVER_SHELL, name=DEMO_MODEL_NAME, kind=Teacher.Kind.LOCAL, project=project, model_name=DEMO_MODEL_NAME,
            model_path=f"models/{DEMO_MODEL_FOLDER}",  # relative: read from the data dir
            default_params={"temperature": 0.7, "top_p": 0.9, "max_new_tokens": 128, "batch_size": 8},
            terms_of_use="SmolLM2-135M-Instruct by Hugging Face, Apache License 2.0: outputs may be used, "
                         "including to train other models; keep the licence notice when redistributing the weights.",
        )
        # Also offered to curators as a student or LoRA base (a curator never types a path).
        server_resource_register(actor=SERVER_SHELL, kind=ServerResource.Kind.MODEL, name=DEMO_MODEL_FOLDER,
                                 path=f"models/{DEMO_MODEL_FOLDER}", note="The demo teacher, SmolLM2-135M-Instruct.")
        self.stdout.write(f"Demo teacher '{DEMO_MODEL_NAME}' registered (and model '{DEMO_MODEL_FOLDER}').")
