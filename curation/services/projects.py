"""Projects and their members."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.text import slugify

from curation.models import Membership, Project


@transaction.atomic
def project_create(*, name: str, created_by=None, slug: str = "", **fields) -> Project:
    slug = slug or slugify(name)
    if not slug:
        raise ValidationError({"name": "A project needs a name with at least one letter or digit."})
    if Project.objects.filter(slug=slug).exists():
        raise ValidationError({"slug": f"A project with the slug '{slug}' exists already."})
    project = Project(name=name, slug=slug, created_by=created_by, **fields)
    project.full_clean()
    project.save()
    if created_by is not None:
        membership_set(project=project, user=created_by, role=Membership.Role.CURATOR)
    return project


def membership_set(*, project: Project, user, role: str) -> Membership:
    if role not in Membership.Role.values:
        raise ValidationError({"role": f"Unknown role '{role}'. Use one of: {', '.join(Membership.Role.values)}."})
    membership, _ = Membership.objects.update_or_create(project=project, user=user, defaults={"role": role})
    return membership


PROJECT_EDITABLE = {"name", "description", "guidelines", "system_prompt", "candidates_per_prompt", "reviews_required"}


@transaction.atomic
def project_update(*, project: Project, **fields) -> Project:
    """Change a project's settings; the slug stays (it is in every URL and command)."""
    unknown = set(fields) - PROJECT_EDITABLE
    if unknown:
        raise ValidationError({name: "This field cannot be changed." for name in sorted(unknown)})
    for name, value in fields.items():
        setattr(project, name, value)
    project.full_clean()
    project.save()
    return project
