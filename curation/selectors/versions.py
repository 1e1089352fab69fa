"""Reads of one dataset version: its rows (searched, paged), DPO pairs, a diff against another version, the runs
that used it, and its dataset card (Markdown)."""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass

from django.db.models import Count, Q, QuerySet
from django.http import Http404

from curation.models import DatasetRow, DatasetVersion, Membership, Review, Teacher
from curation.selectors.access import access_in_project
from curation.selectors.stats import agreement_summary

PAGE_SIZE = 25


def access_version(user, *, pk: int, role: str = Membership.Role.ANNOTATOR) -> DatasetVersion:
    return access_in_project(
        user, DatasetVersion.objects.select_related("project", "created_by"), pk=pk,
        project_of=lambda version: version.project, role=role, what="dataset version",
    )


def version_by_number(project, number: int) -> DatasetVersion:
    version = project.dataset_versions.select_related("project", "created_by").filter(number=number).first()
    if version is None:
        raise Http404("No such dataset version.")
    return version


def version_rows(version: DatasetVersion, *, q: str = "", split: str = "", pairs_only: bool = False) -> QuerySet[DatasetRow]:
    rows = version.rows.order_by("position")
    if split in (DatasetRow.Split.TRAIN, DatasetRow.Split.HELDOUT):
        rows = rows.filter(split=split)
    if q:
        # The prompt turns are JSON; their text is matched through the JSON's string form.
        rows = rows.filter(Q(response__icontains=q) | Q(messages__icontains=q))
    if pairs_only:  # a row gives pairs when worse candidates were kept or the answer was edited
        rows = rows.filter(~Q(rejected=[]) | Q(metadata__edited=True))
    return rows


@dataclass
class RowPage:
    rows: list[DatasetRow]
    page: int
    pages: int
    total: int


def rows_page(rows: QuerySet[DatasetRow], *, page: int, size: int = PAGE_SIZE) -> RowPage:
    total = rows.count()
    pages = max(1, -(-total // size))
    page = min(max(1, page), pages)
    return RowPage(list(rows[(page - 1) * size:page * size]), page, pages, total)


def row_pairs(row: DatasetRow) -> list[str]:
    from curation.services.datasets import _pairs

    return _pairs(row.response, row.original, row.rejected)


# --- diff ----------------------------------------------------------------------------------------------------


@dataclass
class VersionDiff:
    added: list[DatasetRow]
    removed: list[DatasetRow]
    changed: list[tuple[DatasetRow, DatasetRow]]  # (old, new)
    counts: dict[str, int]  # added, removed, changed, unchanged: all of them, not only those listed
    limit: int


def _fingerprints(version: DatasetVersion) -> dict[int, tuple[str, str, int]]:
    """prompt id -> (content digest, split, position), read in one pass without loading the texts twice."""
    out = {}
    for pid, messages, response, split, position in version.rows.values_list(
        "prompt_id", "messages", "response", "split", "position"
    ).iterator(chunk_size=2000):
        digest = hashlib.sha256(repr((messages, response)).encode()).hexdigest()
        out[pid] = (digest, split, position)
    return out


def version_diff(old: DatasetVersion, new: DatasetVersion, *, limit: int = 100) -> VersionDiff:
    """Rows matched by their prompt: added, removed, and changed (answer, prompt turns or split), first ``limit`` each."""
    before, after = _fingerprints(old), _fingerprints(new)
    added = [pid for pid in after if pid not in before]
    removed = [pid for pid in before if pid not in after]
    changed = [pid for pid in after if pid in before and before[pid][:2] != after[pid][:2]]

    def rows(version, ids):
        wanted = ids[:limit]
        by_pid = {r.prompt_id: r for r in version.rows.filter(prompt_id__in=wanted)}
        return [by_pid[pid] for pid in wanted if pid in by_pid]

    old_changed, new_changed = rows(old, changed), rows(new, changed)
    pairs = list(zip(old_changed, new_changed, strict=True))
    counts = {"added": len(added), "removed": len(removed), "changed": len(changed),
              "unchanged": len(after) - len(added) - len(changed)}
    return VersionDiff(added=rows(new, added), removed=rows(old, removed), changed=pairs, counts=counts, limit=limit)


# --- lineage and card ----------------------------------------------------------------------------------------


def version_lineage(version: DatasetVersion) -> dict:
    """The training runs trained on the version, and the evaluations of it or of students trained on it."""
    from evaluation.models import EvaluationRun
    from training.models import TrainingRun

    trained = list(TrainingRun.objects.filter(dataset_version=version).order_by("-created_at"))
    run_ids = {run.pk for run in trained}
    evaluations = [
        run for run in EvaluationRun.objects.filter(project=version.project).order_by("-created_at")
        if run.dataset_version_id == version.pk
        or any((m.get("source") or {}).get("training_run_id") in run_ids for m in run.models_spec)
    ]
    return {"training_runs": trained, "evaluation_runs": evaluations}


def version_sources(version: DatasetVersion) -> list[tuple[str, int, Teacher | None]]:
    """Where the rows' answers came from (completion sources), with the registered teacher of that name."""
    from curation.services.generation import teacher_source

    counts = Counter(dict(version.rows.values_list("source").annotate(n=Count("id")).values_list("source", "n")))
    teachers = {}
    for teacher in Teacher.objects.filter(Q(project=version.project) | Q(project__isnull=True)):
        teachers.setdefault(teacher_source(teacher), teacher)
        teachers.setdefault(teacher.name, teacher)
    return [(source, n, teachers.get(source)) for source, n in counts.most_common()]


def _md(text: str) -> str:
    """A value for a Markdown table cell or line: no pipes or newlines breaking the layout."""
    return " ".join(str(text).split()).replace("|", "\\|")


def dataset_version_card(version: DatasetVersion) -> str:
    """The dataset card, in Markdown: what is in the version, where it came from, who curated it, what used it."""
    project = version.project
    edited = version.rows.filter(metadata__edited=True).count()
    lines = [
        f"# {_md(project.name)}: dataset v{version.number}", "",
        f"Frozen {version.created_at:%Y-%m-%d %H:%M} UTC"
        + (f" by {_md(version.created_by.get_username())}" if version.created_by else "") + ".", "",
    ]
    if version.note:
        lines += [f"> {_md(version.note)}", ""]
    lines += [
        "## Contents", "",
        "| What | Value |", "|---|---|",
        f"| Rows | {version.row_count} |",
        f"| Train / held-out | {version.train_count} / {version.heldout_count} |",
        f"| DPO preference pairs | {version.pair_count} |",
        f"| Answers edited by annotators | {edited} |",
        f"| Content hash (sha256) | `{version.content_hash}` |", "",
        "## Teachers and sources", "",
    ]
    for source, n, teacher in version_sources(version):
        lines.append(f"- **{_md(source)}**: {n} rows" + (
            f" (teacher *{_md(teacher.name)}*, {teacher.get_kind_display()})" if teacher else ""))
    terms = {t.name: t.terms_of_use for _, _, t in version_sources(version) if t and t.terms_of_use}
    lines += ["", "### Terms of use", ""]
    if terms:
        for name, text in terms.items():
            lines += [f"**{_md(name)}**: {_md(text)}", ""]
    else:
        lines += ["No terms of use were recorded for these teachers: check the model licences before sharing.", ""]
    lines += ["## Selection and filters", ""]
    for key, value in sorted((version.rule or {}).items()):  # sorted: jsonb does not keep key order
        lines.append(f"- {_md(key.replace('_', ' '))}: {_md(value)}")
    lines += [f"- held-out fraction: {version.heldout_fraction}, seed {version.seed}", ""]
    if project.system_prompt:
        lines += ["System prompt added to rows without one:", "", "```", project.system_prompt, "```", ""]
    lines += _annotator_lines(version)
    lines += _contamination_lines(version)
    lineage = version_lineage(version)
    lines += ["## Used by", ""]
    for run in lineage["training_runs"]:
        lines.append(f"- Training run #{run.pk} {_md(run.name)} ({run.method}, {run.status})")
    for run in lineage["evaluation_runs"]:
        lines.append(f"- Evaluation run #{run.pk} {_md(run.name)} ({run.status})")
    if not lineage["training_runs"] and not lineage["evaluation_runs"]:
        lines.append("No training or evaluation run has used this version yet.")
    lines += ["", "## Files", "",
              "JSON lines, one object per row: `sft` (`messages`), `prompt-completion` (TRL's conversational "
              "prompt/completion) and `dpo` (`prompt`, `chosen`, `rejected`), each for the train and held-out splits.", ""]
    return "\n".join(lines)


def _annotator_lines(version: DatasetVersion) -> list[str]:
    prompt_ids = version.rows.values("prompt_id")
    by_annotator = (
        Review.objects.filter(prompt_id__in=prompt_ids, superseded=False)
        .values_list("annotator__username").annotate(n=Count("id")).order_by("-n")
    )
    lines = ["## Annotators", ""]
    lines += [f"- {_md(name)}: {n} reviews" for name, n in by_annotator] or ["No reviews recorded."]
    agreement = agreement_summary(version.project)
    if agreement.get("items"):
        alpha = agreement["alpha"]
        lines += ["", f"Agreement over {agreement['items']} items with two or more reviews: Krippendorff's α "
                      f"{alpha:.3f}" if alpha is not None else "", ""]
    return [*lines, ""]


def _contamination_lines(version: DatasetVersion) -> list[str]:
    result = version.contamination or {}
    lines = ["## Decontamination", ""]
    if not result:
        return [*lines, "Not checked.", ""]
    sources = ", ".join(f"{s['name']} ({s['documents']} documents)" for s in result.get("sources", [])) or "none"
    lines.append(f"{result.get('n', 13)}-gram overlap of {result.get('rows_checked', 0)} training rows against: "
                 f"{_md(sources)}. Checked {result.get('checked_at', '')[:16].replace('T', ' ')} UTC.")
    lines.append("")
    if result.get("count"):
        lines.append(f"**{result['count']} contaminated training rows**:")
        lines += [f"- row {m['position']} (prompt {m['prompt_id']}), {_md(m['source'])}: “{_md(m['match'][:200])}”"
                  for m in result.get("rows", [])[:50]]
    else:
        lines.append("No training row overlaps the evaluation data.")
    if result.get("skipped"):
        lines += ["", "Not compared (no local data): " + _md(", ".join(result["skipped"]))]
    return [*lines, ""]
