"""Inter-annotator agreement, as small pure functions.

Plain Python on purpose: scipy/statsmodels/krippendorff are not dependencies, the formulas are short, and the
inputs are bounded (the dashboard samples the latest few thousand multiply-reviewed items), so speed is no
reason to pull in a numeric stack. Every function returns None when the statistic is undefined (too few
ratings, or no variation at all), rather than a misleading number.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Sequence
from itertools import combinations


def krippendorff_alpha_nominal(units: Sequence[Sequence[Hashable]]) -> float | None:
    """Krippendorff's alpha for nominal labels; each unit is the labels its raters gave (any number, any raters)."""
    coincidence: Counter = Counter()
    for labels in units:
        m = len(labels)
        if m < 2:
            continue
        for a, b in combinations(labels, 2):
            coincidence[(a, b)] += 1 / (m - 1)
            coincidence[(b, a)] += 1 / (m - 1)
    totals: Counter = Counter()
    for (a, _), weight in coincidence.items():
        totals[a] += weight
    n = sum(totals.values())
    if n <= 1:
        return None
    observed = sum(w for (a, b), w in coincidence.items() if a != b)
    expected = sum(totals[a] * totals[b] for a in totals for b in totals if a != b)
    if expected == 0:
        return None
    return 1 - (n - 1) * observed / expected


def fleiss_kappa(units: Sequence[Sequence[Hashable]]) -> float | None:
    """Fleiss' kappa over the units that have the most common number of ratings (it needs a fixed number)."""
    sizes = Counter(len(u) for u in units if len(u) >= 2)
    if not sizes:
        return None
    raters = sizes.most_common(1)[0][0]
    rows = [Counter(u) for u in units if len(u) == raters]
    categories = {c for row in rows for c in row}
    p_items = [(sum(v * v for v in row.values()) - raters) / (raters * (raters - 1)) for row in rows]
    p_bar = sum(p_items) / len(rows)
    shares = [sum(row[c] for row in rows) / (len(rows) * raters) for c in categories]
    p_e = sum(p * p for p in shares)
    if p_e >= 1:
        return None
    return (p_bar - p_e) / (1 - p_e)


def cohen_kappa(pairs: Sequence[tuple[Hashable, Hashable]]) -> float | None:
    """Cohen's kappa for two raters who labelled the same items."""
    if not pairs:
        return None
    n = len(pairs)
    observed = sum(a == b for a, b in pairs) / n
    first, second = Counter(a for a, _ in pairs), Counter(b for _, b in pairs)
    expected = sum(first[c] * second[c] for c in first) / (n * n)
    if expected >= 1:
        return None
    return (observed - expected) / (1 - expected)


def kendall_tau(ranking_a: Sequence[Hashable], ranking_b: Sequence[Hashable]) -> float | None:
    """Kendall's tau between two best-first rankings, over the items both ranked (rankings have no ties)."""
    common = [item for item in ranking_a if item in set(ranking_b)]
    if len(common) < 2:
        return None
    position = {item: i for i, item in enumerate(ranking_b)}
    concordant = discordant = 0
    for x, y in combinations(common, 2):  # x is ahead of y in ranking_a
        if position[x] < position[y]:
            concordant += 1
        else:
            discordant += 1
    return (concordant - discordant) / (concordant + discordant)


def normalized_edit_distance(a: str, b: str, *, max_tokens: int = 1500) -> float:
    """Word-level Levenshtein distance divided by the longer length: 0 identical, 1 nothing in common."""
    x, y = a.split()[:max_tokens], b.split()[:max_tokens]
    if not x and not y:
        return 0.0
    previous = list(range(len(y) + 1))
    for i, word in enumerate(x, 1):
        current = [i]
        for j, other in enumerate(y, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (word != other)))
        previous = current
    return previous[-1] / max(len(x), len(y))


def mean(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None
