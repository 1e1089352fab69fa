"""Dashboard figures: counts by status, throughput per annotator, agreement between annotators."""

from __future__ import annotations

import statistics
from collections import defaultdict
from datetime import timedelta
from itertools import combinations

from django.db.models import Count, Q, Sum
from django.utils import timezone

from curation import agreement
from curation.models import Project, Prompt, Review

AGREEMENT_SAMPLE = 3000  # latest multiply-reviewed items; keeps the pure-Python statistics well under a second


def status_counts(project: Project) -> dict:
    rows = Prompt.objects.filter(project=project).values_list("status").annotate(n=Count("id"))
    counts = {status: n for status, n in rows}
    total = sum(counts.values())
    done = counts.get(Prompt.Status.APPROVED, 0) + counts.get(Prompt.Status.REJECTED, 0)
    return {
        "by_status": [(value, label, counts.get(value, 0)) for value, label in Prompt.Status.choices],
        "total": total,
        "done": done,
        "percent": {value: (100 * counts.get(value, 0) / total if total else 0) for value in Prompt.Status.values},
        "done_percent": 100 * done / total if total else 0,
        "disagreements": Prompt.objects.filter(project=project, needs_adjudication=True).count(),
    }


def throughput(project: Project, *, days: int = 7, median_sample: int = 200) -> list[dict]:
    """Per annotator over the last ``days``: items, items per hour of active review time, median seconds per item.

    Counts and sums are aggregated in the database; the median comes from each annotator's latest
    ``median_sample`` reviews, so the dashboard costs the same after a million reviews.
    """
    since = timezone.now() - timedelta(days=days)
    recent = Review.objects.filter(prompt__project=project, updated_at__gte=since, is_adjudication=False)
    rows = (
        recent.values("annotator_id", "annotator__username")
        .annotate(items=Count("id"), active=Sum("seconds_spent"))
        .order_by("-items")
    )
    table = []
    for row in rows:
        sample = list(recent.filter(annotator_id=row["annotator_id"]).order_by("-updated_at")
                      .values_list("seconds_spent", flat=True)[:median_sample])
        active = row["active"] or 0.0
        table.append({
            "annotator": row["annotator__username"],
            "items": row["items"],
            "per_hour": row["items"] * 3600 / active if active else None,
            "median_seconds": statistics.median(sample) if sample else None,
        })
    return table


def agreement_summary(project: Project) -> dict:
    """Agreement on decisions (alpha, kappa), rankings (Kendall's tau) and edits (normalised edit distance)."""
    prompt_ids = list(
        Prompt.objects.filter(project=project, review_count__gte=2).order_by("-id").values_list("id", flat=True)[:AGREEMENT_SAMPLE]
    )
    by_prompt: dict[int, list[Review]] = defaultdict(list)
    reviews = (
        Review.objects.filter(prompt_id__in=prompt_ids, superseded=False, is_adjudication=False)
        .filter(~Q(decision=Review.Decision.SKIP))
        .select_related("chosen")
        .only("prompt_id", "annotator_id", "decision", "ranking", "edited_text", "chosen__text")
    )
    for review in reviews:
        by_prompt[review.prompt_id].append(review)
    units = [[r.decision for r in rs] for rs in by_prompt.values() if len(rs) >= 2]
    taus, distances, pairs_by_annotators = [], [], defaultdict(list)
    for rs in by_prompt.values():
        for a, b in combinations(sorted(rs, key=lambda r: r.annotator_id), 2):
            pairs_by_annotators[(a.annotator_id, b.annotator_id)].append((a.decision, b.decision))
            taus.append(agreement.kendall_tau(a.ranking or [], b.ranking or []))
            if a.decision == b.decision == Review.Decision.APPROVE and (a.edited_text or b.edited_text):
                distances.append(agreement.normalized_edit_distance(a.final_text, b.final_text))
    two_raters = len(pairs_by_annotators) == 1
    return {
        "items": len(units),
        "alpha": agreement.krippendorff_alpha_nominal(units),
        "fleiss": agreement.fleiss_kappa(units),
        "cohen": agreement.cohen_kappa(next(iter(pairs_by_annotators.values()))) if two_raters else None,
        "tau": agreement.mean(taus),
        "tau_pairs": len([t for t in taus if t is not None]),
        "edit_distance": agreement.mean(distances),
        "edit_pairs": len(distances),
    }
