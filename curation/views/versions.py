"""A dataset version's page: rows (searched, paged), split, DPO pairs, a diff against another version, downloads
of every export and of the card, decontamination, and the runs that used it."""

from __future__ import annotations

import tempfile
import zipfile

from django.core.exceptions import ValidationError
from django.http import FileResponse, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from curation.downloads import export_response
from curation.markdown import render_markdown
from curation.models import Membership
from curation.selectors.access import access_project, access_project_role
from curation.selectors.versions import (
    dataset_version_card,
    row_pairs,
    rows_page,
    version_by_number,
    version_diff,
    version_lineage,
    version_rows,
)
from curation.services.contamination import (
    dataset_version_check_contamination,
    dataset_version_exclude_contaminated,
    project_check_contamination,
    prompts_exclude_contaminated,
)
from curation.services.datasets import EXPORT_FORMATS, EXPORT_SPLITS, dataset_export

TEMPLATE = "curation/version_detail.html"
CURATOR = Membership.Role.CURATOR


def _int(value, default: int = 1) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _rows_context(request: HttpRequest, version) -> dict:
    q, split = request.GET.get("q", "").strip(), request.GET.get("split", "")
    pairs_only = request.GET.get("pairs") == "1"
    page = rows_page(version_rows(version, q=q, split=split, pairs_only=pairs_only), page=_int(request.GET.get("page")))
    for row in page.rows:
        row.pairs = row_pairs(row) if pairs_only else []
    return {"page": page, "q": q, "split": split, "pairs_only": pairs_only}


@require_GET
def version_detail(request: HttpRequest, slug: str, number: int) -> HttpResponse:
    project, role = access_project_role(request.user, slug=slug)
    version = version_by_number(project, number)
    context = {"project": project, "role": role, "version": version, **_rows_context(request, version)}
    if request.htmx and request.htmx.target == "rows":
        return render(request, f"{TEMPLATE}#rows", context)
    context.update(
        card_html=render_markdown(dataset_version_card(version)), lineage=version_lineage(version),
        others=project.dataset_versions.exclude(pk=version.pk), formats=EXPORT_FORMATS, splits=("train", "heldout"),
        contamination=version.contamination,
    )
    return render(request, TEMPLATE, context)


@require_GET
def version_diff_view(request: HttpRequest, slug: str, number: int) -> HttpResponse:
    project, role = access_project_role(request.user, slug=slug)
    version = version_by_number(project, number)
    other = version_by_number(project, _int(request.GET.get("against"), 0))
    old, new = (other, version) if other.number < version.number else (version, other)
    context = {"project": project, "role": role, "version": version, "old": old, "new": new,
               "diff": version_diff(old, new)}
    return render(request, f"{TEMPLATE}#diff", context)


@require_GET
def version_download(request: HttpRequest, slug: str, number: int) -> HttpResponse:
    """One export (?kind=&split=) as JSON lines, the card (?kind=card) as Markdown, or everything (?kind=zip)."""
    project = access_project(request.user, slug=slug, role=CURATOR)
    version = version_by_number(project, number)
    kind, split = request.GET.get("kind", "sft"), request.GET.get("split", "train")
    stem = f"{project.slug}-v{version.number}"
    if kind == "card":
        response = HttpResponse(dataset_version_card(version), content_type="text/markdown; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{stem}-README.md"'
        return response
    if kind == "zip":
        return _bundle(version, stem)
    try:
        return export_response(request, version, kind=kind, split=split, filename=f"{stem}-{kind}-{split}.jsonl")
    except ValidationError as error:
        return HttpResponse(" ".join(error.messages), status=400, content_type="text/plain")


def _bundle(version, stem: str) -> FileResponse:
    """README.md (the card) and every export of every split, zipped in a temporary file (exports can be large)."""
    handle = tempfile.TemporaryFile()  # noqa: SIM115 - FileResponse closes it
    with zipfile.ZipFile(handle, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(f"{stem}/README.md", dataset_version_card(version))
        for kind in EXPORT_FORMATS:
            for split in EXPORT_SPLITS:
                if split == "all":
                    continue
                with archive.open(f"{stem}/{kind}-{split}.jsonl", "w") as member:
                    dataset_export(version=version, format=kind, split=split, out=member)
    handle.seek(0)
    return FileResponse(handle, as_attachment=True, filename=f"{stem}.zip", content_type="application/zip")


@require_POST
def version_contamination_check(request: HttpRequest, slug: str, number: int) -> HttpResponse:
    project = access_project(request.user, slug=slug, role=CURATOR)
    version = version_by_number(project, number)
    dataset_version_check_contamination(version=version)
    return render(request, f"{TEMPLATE}#contamination",
                  {"project": project, "role": CURATOR, "version": version, "contamination": version.contamination})


@require_POST
def version_exclude_contaminated(request: HttpRequest, slug: str, number: int) -> HttpResponse:
    project = access_project(request.user, slug=slug, role=CURATOR)
    version = version_by_number(project, number)
    try:
        new = dataset_version_exclude_contaminated(version=version, actor=request.user)
    except ValidationError as error:
        return render(request, f"{TEMPLATE}#contamination", {
            "project": project, "role": CURATOR, "version": version, "contamination": version.contamination,
            "error": " ".join(error.messages)}, status=422)
    url = reverse("curation:version_detail", kwargs={"slug": project.slug, "number": new.number})
    if request.htmx:
        return HttpResponse(status=204, headers={"HX-Redirect": url})
    return redirect(url)


@require_POST
def project_contamination(request: HttpRequest, slug: str) -> HttpResponse:
    """Before a freeze: check the approved items (``action=check``), or exclude those found (``action=exclude``)."""
    project = access_project(request.user, slug=slug, role=CURATOR)
    result = project_check_contamination(project=project)
    excluded = 0
    if request.POST.get("action") == "exclude" and result["rows"]:
        excluded = prompts_exclude_contaminated(project=project, matches=result["rows"], actor=request.user)
        result = project_check_contamination(project=project)
    return render(request, "curation/project_dashboard.html#precheck",
                  {"project": project, "role": CURATOR, "precheck": result, "excluded": excluded})
