"""Teachers and generation jobs: register a teacher, queue a job, run it in a worker, cancel, resume.

The run happens in a Celery worker (``curation.tasks.generation_run``) outside any transaction:
the model works for minutes while each finished prompt is stored, with the job's progress, in
its own short transaction. Cancel is a flag the run reads after every prompt. Claim, heartbeat,
cancel, resume and recovery are the shared lifecycle (``curation.jobs``); a resumed attempt skips
the prompts that already have their candidates from this teacher.
"""

from __future__ import annotations

import logging
import re
import time
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import F

from config.limits import is_db_id
from curation.hashing import text_hash
from curation.jobs import services as jobs
from curation.models import Completion, GenerationJob, JobStatus, Project, Prompt, Teacher
from curation.services.quality import quality_flag_prompts
from curation.services.trust import (
    check_key_env,
    check_operator,
    check_outbound_url,
    is_operator,
    registered_model_path,
)
from curation.selectors.generation import (
    SELECTION_MODES,
    active_generation_job,
    prompts_needing_candidates,
    selection_prompts,
)
from curation.teachers import GenerationParams, LocalTeacher, OpenAICompatibleTeacher, TeacherError
from curation.teachers.base import Teacher as TeacherClient
from curation.teachers.llama_cpp import LlamaCppTeacher
from curation.teachers.vllm_engine import VLLMTeacher

logger = logging.getLogger(__name__)

ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
SAMPLING_KEYS = {"n", "temperature", "top_p", "max_new_tokens", "seed", "system_prompt"}
RUNTIME_KEYS = {"batch_size", "device", "threads", "logprobs", "concurrency", "timeout", "max_retries", "tokenizer"}


@transaction.atomic
def teacher_register(
    *, actor, name: str, kind: str, project: Project | None = None, model_path: str = "", gguf_file: str = "",
    base_url: str = "", model_name: str = "", api_key_env: str = "", default_params: dict | None = None,
    terms_of_use: str = "", price_per_million_tokens=None, engine: str = Teacher.Engine.TRANSFORMERS,
) -> Teacher:
    """Create the teacher, or update the one of that name in the same scope (project or global).

    ``actor`` is the user registering it (``SERVER_SHELL`` for a command). Only operators register a
    teacher for every project, name a key variable, or give a model path; a curator's local teacher
    names a model an operator registered. Every base URL must be one the server may call.
    """
    operator = is_operator(actor)
    if project is None:
        check_operator(actor, "register a teacher for every project")
    errors = {}
    if kind == Teacher.Kind.LOCAL and not model_path:
        errors["model_path"] = "A local teacher needs a model folder or a .gguf file."
    elif kind == Teacher.Kind.LOCAL and not operator:
        try:
            model_path, gguf_file = str(registered_model_path(model_path, field="model_path")), ""
        except ValidationError as error:
            errors.update(error.message_dict)
    if engine not in Teacher.Engine.values:
        errors["engine"] = f"Unknown engine '{engine}'. Use one of: {', '.join(Teacher.Engine.values)}."
    elif kind == Teacher.Kind.OPENAI and engine != Teacher.Engine.TRANSFORMERS:
        errors["engine"] = "An OpenAI-compatible teacher runs on its server; the engine applies to local teachers."
    elif engine == Teacher.Engine.LLAMA_CPP and not (gguf_file or model_path).endswith(".gguf"):
        errors["engine"] = "The llama.cpp engine runs .gguf files: give a .gguf model file."
    if kind == Teacher.Kind.OPENAI:
        try:
            check_outbound_url(base_url)
        except ValidationError as error:
            errors.update(error.message_dict)
        if not model_name:
            errors["model_name"] = "Give the model name the server expects."
    if api_key_env and not ENV_NAME.match(api_key_env):
        errors["api_key_env"] = "Give the NAME of an environment variable (e.g. DISTILLERY_KEY_OPENAI), never the key."
    elif api_key_env:
        if not operator:
            # A key and a URL chosen together would let the chooser send the key anywhere.
            raise PermissionDenied("Only an operator can give a teacher an API key; ask one to register it.")
        try:
            check_key_env(api_key_env)
        except ValidationError as error:
            errors.update(error.message_dict)
    unknown = set(default_params or {}) - SAMPLING_KEYS - RUNTIME_KEYS
    if unknown:
        errors["default_params"] = f"Unknown settings: {', '.join(sorted(unknown))}."
    elif (default_params or {}).get("tokenizer"):
        # An API teacher's tokenizer (for caching its logits) is a model folder an operator registered, by name.
        try:
            registered_model_path(str(default_params["tokenizer"]), field="default_params")
        except ValidationError as error:
            errors.update(error.message_dict)
    if price_per_million_tokens is not None and price_per_million_tokens < 0:
        errors["price_per_million_tokens"] = "A price cannot be negative."
    if errors:
        raise ValidationError(errors)
    teacher = Teacher.objects.filter(project=project, name=name).first() or Teacher(project=project, name=name)
    if teacher.pk and not operator and teacher.api_key_env:
        # Otherwise a curator could point an operator's keyed teacher at a server of their own.
        check_operator(actor, "change a teacher that holds an API key")
    for field, value in {
        "kind": kind, "model_path": model_path, "gguf_file": gguf_file, "base_url": base_url,
        "model_name": model_name, "api_key_env": api_key_env, "default_params": default_params or {},
        "terms_of_use": terms_of_use, "price_per_million_tokens": price_per_million_tokens,
        "engine": engine,
    }.items():
        setattr(teacher, field, value)
    # Uniqueness was handled by the lookup above. URLField's validator refuses hosts without a dot
    # (http://vllm:8000/v1 in a compose network), so base_url was checked by hand instead.
    teacher.full_clean(exclude=["base_url"], validate_constraints=False)
    teacher.save()
    return teacher


def teacher_source(teacher: Teacher) -> str:
    """The model name stored on every completion this teacher writes."""
    return teacher.model_name or teacher.name


def teacher_client(teacher: Teacher) -> TeacherClient:
    """The client for the teacher's engine. Engines that cannot run here fail at ``load`` with the reason."""
    options = teacher.default_params or {}
    threads = int(options["threads"]) if options.get("threads") else None
    if teacher.kind == Teacher.Kind.LOCAL and teacher.engine == Teacher.Engine.LLAMA_CPP:
        return LlamaCppTeacher(teacher.local_path, source=teacher_source(teacher), threads=threads,
                               batch_size=int(options.get("batch_size", 8)),
                               logprobs=bool(options.get("logprobs", False)))
    if teacher.kind == Teacher.Kind.LOCAL and teacher.engine == Teacher.Engine.VLLM:
        return VLLMTeacher(teacher.local_path, source=teacher_source(teacher),
                           batch_size=int(options.get("batch_size", 64)))
    if teacher.kind == Teacher.Kind.LOCAL:
        return LocalTeacher(teacher.local_path, source=teacher_source(teacher), batch_size=int(options.get("batch_size", 8)),
                            device=options.get("device", "cpu"), threads=threads)
    if teacher.api_key_env:
        try:  # again at run time: the allowlist may have shrunk since the teacher was registered
            check_key_env(teacher.api_key_env)
        except ValidationError as error:
            raise TeacherError(" ".join(error.messages)) from None
    return OpenAICompatibleTeacher(
        base_url=teacher.base_url, model=teacher.model_name, api_key_env=teacher.api_key_env,
        allowed_hosts=settings.TEACHER_ALLOWED_HOSTS,
        source=teacher_source(teacher), concurrency=int(options.get("concurrency", 4)),
        timeout=float(options.get("timeout", 120)), max_retries=int(options.get("max_retries", 5)),
    )


def _clean_selection(selection: dict | None) -> dict:
    selection = dict(selection or {"mode": "pending"})
    mode = selection.setdefault("mode", "pending")
    if mode not in SELECTION_MODES:
        raise ValidationError({"selection": f"Unknown mode '{mode}'. Use one of: {', '.join(SELECTION_MODES)}."})
    if mode == "ids":
        ids = selection.get("ids")
        if not isinstance(ids, list) or not ids or not all(is_db_id(i) for i in ids):
            raise ValidationError({"selection": "Mode 'ids' needs a non-empty list of prompt ids."})
    if mode == "filter" and selection.get("status") and selection["status"] not in Prompt.Status.values:
        raise ValidationError({"selection": f"Unknown status '{selection['status']}'."})
    if mode == "filter" and not isinstance(selection.get("browse", {}), dict):
        raise ValidationError({"selection": "browse must be the browse page's filters, as an object."})
    limit = selection.get("limit")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValidationError({"selection": "limit must be a whole number of prompts, at least 1."})
    return selection


def _fix_limit(project: Project, selection: dict) -> dict:
    """"The first N prompts" is decided once, when the job is created: a resume answers the same N prompts
    even if the selection (say, the pending ones) has changed since."""
    limit = selection.pop("limit", None)
    if limit is None:
        return selection
    ids = list(selection_prompts(project, selection).values_list("id", flat=True)[:limit])
    if not ids:
        raise ValidationError({"selection": "No prompt matches this selection."})
    return {"mode": "ids", "ids": ids, "limited_from": selection, "limited_to": limit}


def job_params(job: GenerationJob) -> GenerationParams:
    return GenerationParams(
        n=job.n, temperature=job.temperature, top_p=job.top_p, max_new_tokens=job.max_new_tokens,
        seed=job.seed, system_prompt=job.system_prompt,
        logprobs=bool(job.teacher.default_params.get("logprobs", False)),
    )


@transaction.atomic
def generation_job_create(
    *, project: Project, teacher: Teacher, created_by=None, selection: dict | None = None,
    n: int | None = None, temperature: float | None = None, top_p: float | None = None,
    max_new_tokens: int | None = None, system_prompt: str | None = None, seed: int | None = None,
    enqueue: bool = True,
) -> GenerationJob:
    """Queue a job. Unset parameters come from the teacher's defaults, then the project, then the model."""
    if teacher.project_id not in (None, project.pk):
        raise ValidationError({"teacher": f"The teacher '{teacher.name}' belongs to another project."})
    defaults = teacher.default_params or {}
    given = {"n": n, "temperature": temperature, "top_p": top_p, "max_new_tokens": max_new_tokens,
             "system_prompt": system_prompt, "seed": seed}
    fallback = {"n": project.candidates_per_prompt, "system_prompt": project.system_prompt}
    field_default = {name: GenerationJob._meta.get_field(name).default for name in given}
    values = {name: next(v for v in (given[name], defaults.get(name), fallback.get(name), field_default[name])
                         if v is not None) for name in given}
    try:
        GenerationParams(**values)
    except ValueError as error:
        raise ValidationError({"params": str(error)}) from None
    selection = _fix_limit(project, _clean_selection(selection))
    check_no_active_job(project)
    job = GenerationJob.objects.create(
        project=project, teacher=teacher, created_by=created_by, selection=selection,
        total=selection_prompts(project, selection).count(), **values,
    )
    if enqueue:
        jobs.job_enqueue(job)
    return job


def check_no_active_job(project: Project) -> None:
    """One job at a time per project (a lost one is requeued or failed by the sweep, so none blocks forever)."""
    active = active_generation_job(project)
    if active is not None:
        raise ValidationError(f"Generation job #{active.pk} is still {active.status} in this project; "
                              "cancel it or wait for it to finish.")


def generation_job_cancel(*, job: GenerationJob) -> GenerationJob:
    """A queued (or abandoned) job is cancelled at once; a running one stops after its current batch."""
    return jobs.job_cancel(job=job)


def generation_job_resume(*, job: GenerationJob, enqueue: bool = True) -> GenerationJob:
    """Queue a cancelled or failed job again; prompts it already answered are skipped."""
    return jobs.job_resume(job=job, enqueue=enqueue)


def generation_job_run(*, job_id: int) -> str | None:
    """Claim a queued job, generate, store as it goes. Returns the final status (None: not claimed)."""
    return jobs.job_run(GenerationJob, job_id, _generate, select_related=("project", "teacher"),
                        finish_fields=lambda status: {"eta_seconds": None})


def _generate(job: GenerationJob) -> str:
    try:
        return _generate_with(job, teacher_client(job.teacher))
    except TeacherError as exc:
        raise jobs.JobFailed(str(exc)) from exc


def _generate_with(job: GenerationJob, client: TeacherClient) -> str:
    params = job_params(job)
    todo = prompts_needing_candidates(job.project, job.selection, source=client.source, n=job.n)
    # Prompts answered already (by an earlier run of this job, or before) are skipped, not "done": done/total
    # counts only the work this run does, so the progress bar and the ETA mean what they say.
    skipped = selection_prompts(job.project, job.selection).count() - len(todo)
    jobs.job_beat(GenerationJob, job.pk, total=len(todo), done=0, skipped=skipped, tokens_per_second=0,
                  eta_seconds=None)
    if not todo:
        return JobStatus.SUCCEEDED
    client.load()  # before the clock starts: tokens/s should measure generation, not loading
    started, tokens = time.monotonic(), 0
    results = client.generate([prompt.messages for prompt in todo], params)
    try:
        for count, result in enumerate(results, start=1):
            prompt = todo[result.index]
            tokens += result.completion_tokens
            elapsed = max(time.monotonic() - started, 1e-6)
            progress = {
                "done": count, "generated_tokens": F("generated_tokens") + result.completion_tokens,
                "tokens_per_second": tokens / elapsed, "eta_seconds": (len(todo) - count) * elapsed / count,
            }
            with transaction.atomic():
                _store(job, prompt.pk, result.candidates[: job.n - prompt.have], client.source, params)
                # The prompt's candidates and the progress commit together, so a resumed attempt skips exactly
                # the prompts stored; False means cancel was asked for (or the job is no longer ours).
                if not jobs.job_beat(GenerationJob, job.pk, **progress):
                    return JobStatus.CANCELLED
    finally:
        results.close()  # stops a local model before its next batch, drops queued HTTP requests
    return JobStatus.SUCCEEDED


def _store(job: GenerationJob, prompt_id: int, candidates: list, source: str, params: GenerationParams) -> None:
    stored_params = {**params.as_dict(), "teacher": job.teacher.name, "generation_job": job.pk}
    # A model can emit NUL, which PostgreSQL text cannot hold and no annotator can see.
    texts = [(c, c.text.replace("\x00", "")) for c in candidates]
    Completion.objects.bulk_create(
        [
            Completion(
                prompt_id=prompt_id, text=text, text_hash=text_hash(text), source=source,
                params=stored_params, finish_reason=c.finish_reason, logprobs=c.logprobs, length=len(text),
            )
            for c, text in texts
            if text  # an empty answer is nothing to curate; the prompt stays due for a re-run
        ],
        ignore_conflicts=True,  # a sample equal to an existing answer adds nothing
    )
    quality_flag_prompts([prompt_id])
