"""The trust model, enforced here so that every door (page, API, admin, command, worker) gets it.

Curators run projects but never touch the server. What names something on the server (a model path,
a task folder that lm-eval may import Python from, an API key's environment variable, a host on the
private network) is an operator's decision: operators are superusers and users holding the
permission ``curation.operate_server``; the server's own shell (``manage.py``) is one too. Curators
pick from what operators registered.
"""

from __future__ import annotations

import fnmatch
from pathlib import Path

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction

from curation.models import ServerResource
from curation.selectors.access import SERVER_SHELL, is_operator
from curation.teachers.outbound import OutboundRefused, check_url

__all__ = ["SERVER_SHELL", "is_operator"]


def check_operator(actor, what: str) -> None:
    if not is_operator(actor):
        raise PermissionDenied(f"Only an operator can {what}; ask one to register it, then pick it here.")


def key_env_allowed(name: str) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in settings.API_KEY_ENV_ALLOW)


def check_key_env(name: str) -> None:
    """An API key may only come from a variable the operator's allowlist names (DISTILLERY_KEY_ENVS)."""
    if name and not key_env_allowed(name):
        allowed = ", ".join(settings.API_KEY_ENV_ALLOW) or "none"
        raise ValidationError(
            {"api_key_env": f"API keys can only come from environment variables matching: {allowed}."}
        )


def check_outbound_url(url: str, *, field: str = "base_url") -> None:
    """Refuse a URL the server must not call: not http(s), or a non-public address the operator did not allow."""
    try:
        check_url(url, settings.TEACHER_ALLOWED_HOSTS)
    except OutboundRefused as error:
        raise ValidationError({field: str(error)}) from None


def _forbidden_roots() -> list[Path]:
    # Uploads are written by curators: no registered path may contain or lie inside them.
    return [Path(settings.MEDIA_ROOT).resolve()]


@transaction.atomic
def server_resource_register(*, actor, kind: str, name: str, path: str, note: str = "") -> ServerResource:
    """Register (or move) a model or a task folder under a name curators can pick."""
    check_operator(actor, "register a path on the server")
    resource = ServerResource.objects.filter(kind=kind, name=name).first() or ServerResource(kind=kind, name=name)
    resource.path, resource.note = path, note
    if actor != SERVER_SHELL and actor is not None:
        resource.created_by = actor
    resource.full_clean(validate_constraints=False)
    full = resource.full_path.resolve()
    errors = {}
    if not full.exists():
        errors["path"] = f"Nothing at {full}."
    elif kind == ServerResource.Kind.TASKS and not full.is_dir():
        errors["path"] = "A task folder must be a folder of lm-eval task YAML files."
    elif kind == ServerResource.Kind.MODEL and not (full.suffix == ".gguf" or (full / "config.json").is_file()):
        errors["path"] = "A model is a folder with config.json or a .gguf file."
    for root in _forbidden_roots():
        if full == root or root in full.parents or full in root.parents:
            errors["path"] = "This path holds uploaded files; register a folder of its own."
    if errors:
        raise ValidationError(errors)
    resource.save()
    return resource


def server_resource_delete(*, actor, resource: ServerResource) -> None:
    check_operator(actor, "remove a registered path")
    resource.delete()


def registered_resource(kind: str, name_or_path: str) -> ServerResource | None:
    """The operator-registered resource a curator picked, by its name (or, for old rows, its exact path)."""
    if not name_or_path:
        return None
    found = ServerResource.objects.filter(kind=kind, name=name_or_path).first()
    if found is None:
        wanted = Path(name_or_path)
        for resource in ServerResource.objects.filter(kind=kind):
            if resource.path == name_or_path or (wanted.is_absolute() and resource.full_path == wanted):
                return resource
    return found


def registered_model_path(name: str, *, field: str) -> Path:
    """The path of a registered model, or a ValidationError on ``field`` listing what may be picked."""
    resource = registered_resource(ServerResource.Kind.MODEL, name)
    if resource is None:
        names = list(ServerResource.objects.filter(kind=ServerResource.Kind.MODEL).values_list("name", flat=True))
        choice = f" Registered: {', '.join(names)}." if names else " None is registered yet."
        raise ValidationError({field: f"Pick a model an operator registered (admin: Server resources).{choice}"})
    return resource.full_path
