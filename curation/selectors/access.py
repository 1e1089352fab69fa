"""Who may see and do what in a project.

Annotators review in the projects they belong to; curators also import, freeze and launch runs;
admins (staff) may do everything everywhere. Non-members get 404, so project names do not leak.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404

from curation import rows
from curation.models import Membership, Project

ROLE_RANK = {Membership.Role.ANNOTATOR: 1, Membership.Role.CURATOR: 2}
OPERATE_PERMISSION = "curation.operate_server"
# The actor of a door with no web user: a management command, run by whoever holds the server's shell.
SERVER_SHELL = "server-shell"


def is_operator(actor) -> bool:
    """Operators (superusers, holders of ``curation.operate_server``, the server's shell) decide what on
    the server curators may use: model paths, task folders, API key variables, private hosts."""
    if actor == SERVER_SHELL:
        return True
    return bool(
        actor is not None and getattr(actor, "is_active", False)
        and (actor.is_superuser or actor.has_perm(OPERATE_PERMISSION))
    )


def is_admin(user) -> bool:
    return bool(user.is_authenticated and (user.is_superuser or user.is_staff))


def projects_visible_to(user) -> QuerySet[Project]:
    if is_admin(user):
        return Project.objects.all()
    if not user.is_authenticated:
        return Project.objects.none()
    return Project.objects.filter(memberships__user=user)


def user_role(user, project: Project) -> str | None:
    """The user's role in the project: 'curator' for admins, None for outsiders."""
    if is_admin(user):
        return Membership.Role.CURATOR
    if not user.is_authenticated:
        return None
    known = getattr(project, "_role_of", None)
    if known is not None and known[0] == user.pk:
        return known[1]
    return (
        Membership.objects.filter(project=project, user=user).values_list("role", flat=True).first()
    )


def _project_for(user, **lookup) -> Project | None:
    """The project with the user's membership role read in the same query (one query per request less)."""
    if not user.is_authenticated or is_admin(user):
        return Project.objects.filter(**lookup).first()
    project = rows.project_with_role(user_id=user.pk, **lookup)  # SQL written once: every project page asks
    if project is not None:
        project._role_of = (user.pk, project.member_role)
    return project


def access_project(user, *, slug: str | None = None, pk: int | None = None, role: str = Membership.Role.ANNOTATOR) -> Project:
    """The project if the user may act in it with at least ``role``; 404 for outsiders, 403 for too low a role."""
    lookup = {"slug": slug} if slug is not None else {"pk": pk}
    project = _project_for(user, **lookup)
    if project is None:
        raise Http404("No such project.")
    check_role(user, project, role)
    return project


def access_project_role(user, *, slug: str, role: str = Membership.Role.ANNOTATOR) -> tuple[Project, str]:
    """``access_project`` that also returns the user's role, for pages that show role-dependent parts."""
    project = _project_for(user, slug=slug)
    if project is None:
        raise Http404("No such project.")
    return project, check_role(user, project, role)


def check_role(user, project: Project, role: str = Membership.Role.ANNOTATOR) -> str:
    have = user_role(user, project)
    if have is None:
        raise Http404("No such project.")
    if ROLE_RANK[have] < ROLE_RANK[role]:
        raise PermissionDenied(f"This needs the {role} role in {project.name}.")
    return have


def access_in_project(user, queryset: QuerySet, *, pk: int, project_of, role: str, what: str):
    """One row of ``queryset`` (a run, a job...) if the user may act on its project with ``role``;
    404 when the row is missing or the user is an outsider, 403 for too low a role."""
    row = queryset.filter(pk=pk).first()
    if row is None:
        raise Http404(f"No such {what}.")
    check_role(user, project_of(row), role)
    return row


def can_create_projects(user) -> bool:
    """Admins, and users trusted as curators somewhere, may start new projects (they become its curator)."""
    if is_admin(user):
        return True
    return bool(user.is_authenticated and Membership.objects.filter(user=user, role=Membership.Role.CURATOR).exists())
