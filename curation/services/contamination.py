"""Decontamination: word 13-gram overlap between training rows and the project's evaluation data.

The practice of GPT-3 (Brown et al. 2020, appendix C) and lm-eval's decontamination: text is lowercased and split
into words, and a training row is contaminated when it shares any 13-word sequence with an evaluation document.
An evaluation document shorter than 13 words (but at least 8) counts as one sequence of its own length, so short
benchmark questions are not invisible. Hand-written rather than a library: lm-eval's janitor needs a compiled
extension and writes to disk, and exact n-gram sets of this size fit in memory and take well under a second.

The evaluation data a project uses: the held-out split of every frozen version (an evaluation of a version scores
its held-out rows), and the local data files (``dataset_path: json|csv`` with ``dataset_kwargs.data_files``) of the
tasks its evaluation runs used: as lm-eval recorded them for runs that ran (named lm-eval tasks included), and from
the task YAML of folders named by runs that have not run yet. Tasks whose data is on the hub have no local data to
compare offline; they are listed as skipped.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from curation.models import DatasetRow, DatasetVersion, Flag, Project, Prompt, Review

N = 13
MIN_SHORT = 8
MAX_MATCHES = 500  # stored per version; the count is exact beyond that
CONTAMINATED_FLAG = "contaminated"
_WORD = re.compile(r"\w+", re.UNICODE)
_LOCAL_BUILDERS = {"json", "csv"}


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


@dataclass
class EvalIndex:
    """Hashes of the evaluation data's word n-grams, each with the name of the first source holding it."""

    grams: dict[int, int] = field(default_factory=dict)
    short: dict[int, dict[int, int]] = field(default_factory=dict)  # length -> hash -> source
    sources: list[dict] = field(default_factory=list)  # {name, documents}
    skipped: list[str] = field(default_factory=list)

    def add_source(self, name: str, documents: Iterable[str]) -> None:
        index, count = len(self.sources), 0
        for text in documents:
            count += 1
            tokens = words(text)
            if len(tokens) >= N:
                for start in range(len(tokens) - N + 1):
                    self.grams.setdefault(hash(tuple(tokens[start:start + N])), index)
            elif len(tokens) >= MIN_SHORT:
                self.short.setdefault(len(tokens), {}).setdefault(hash(tuple(tokens)), index)
        self.sources.append({"name": name, "documents": count})

    def match(self, text: str) -> tuple[str, str] | None:
        """(source name, the row's matching words) for the first overlap found, or None."""
        tokens = words(text)
        hits: list[tuple[int, int, int]] = []  # (start, end, source)
        for start in range(len(tokens) - N + 1):
            source = self.grams.get(hash(tuple(tokens[start:start + N])))
            if source is not None:
                hits.append((start, start + N, source))
        for length, table in self.short.items():
            for start in range(len(tokens) - length + 1):
                source = table.get(hash(tuple(tokens[start:start + length])))
                if source is not None:
                    hits.append((start, start + length, source))
        if not hits:
            return None
        hits.sort()
        first_start, end, source = hits[0]
        for start, stop, _ in hits[1:]:  # the first contiguous stretch of overlapping matches
            if start > end:
                break
            end = max(end, stop)
        return self.sources[source]["name"], " ".join(tokens[first_start:end])


def row_text(messages: list[dict], response: str) -> str:
    """What a training row teaches: its user turns and the answer (the system prompt is shared boilerplate)."""
    return "\n".join([m["content"] for m in messages if m.get("role") == "user"] + [response])


def project_eval_index(project: Project, *, versions: Iterable[DatasetVersion] | None = None) -> EvalIndex:
    index = EvalIndex()
    versions = list(versions) if versions is not None else list(project.dataset_versions.order_by("number"))
    for version in versions:
        heldout = version.rows.filter(split=DatasetRow.Split.HELDOUT).values_list("messages", "response")
        index.add_source(f"held-out split of v{version.number}",
                         (row_text(m, r) for m, r in heldout.iterator(chunk_size=1000)))
    for name, documents in _task_sources(project):
        if documents is None:
            index.skipped.append(name)
        else:
            index.add_source(name, documents)
    return index


def _task_sources(project: Project) -> Iterator[tuple[str, Iterator[str] | None]]:
    """Local task data the project's evaluation runs use: what lm-eval itself resolved for runs that ran (its
    ``configs``, named lm-eval tasks included), and the task YAML of folders named by runs that have not run yet."""
    from evaluation.models import EvaluationRun

    seen_files: set[Path] = set()
    named: set[str] = set()
    for artifact_dir, tasks in EvaluationRun.objects.filter(project=project).values_list("artifact_dir", "tasks"):
        for name, data_file in _resolved_task_files(artifact_dir):
            named.add(name)
            if data_file is None:
                yield f"lm-eval task {name} (no local data)", None
            elif data_file not in seen_files:
                seen_files.add(data_file)
                yield f"task {name}: {data_file.name}", _documents(data_file)
        for task in tasks or []:
            path = Path(task)
            if task == "heldout" or task in named:
                continue
            yamls = sorted(path.rglob("*.yaml")) if path.is_dir() else [path] if path.suffix in (".yaml", ".yml") and path.is_file() else []
            if not yamls:
                named.add(task)
                yield f"lm-eval task {task} (not run yet, no local data found)", None
                continue
            for yaml_path in yamls:
                for data_file in _local_data_files(yaml_path):
                    if data_file.resolve() not in seen_files:
                        seen_files.add(data_file.resolve())
                        yield f"task data {data_file.name} ({yaml_path.parent.name}/{yaml_path.name})", _documents(data_file)


def _resolved_task_files(artifact_dir: str) -> Iterator[tuple[str, Path | None]]:
    """(task, local data file or None) from lm-eval's own record of a finished run (one model's is enough: every
    model of a run gets the same tasks). The curated held-out tasks are skipped: the held-out split is a source."""
    if not artifact_dir:
        return
    results = sorted(Path(artifact_dir).glob("models/*/lm_eval_results.json"))
    if not results:
        return
    try:
        configs = json.loads(results[0].read_text()).get("configs") or {}
    except (OSError, ValueError):
        return
    for name, config in sorted(configs.items()):
        if name.startswith("heldout"):
            continue
        data_files = (config.get("dataset_kwargs") or {}).get("data_files") or {}
        values = data_files.values() if isinstance(data_files, dict) else [data_files]
        files = [Path(f) for value in values for f in (value if isinstance(value, list) else [value])
                 if isinstance(f, str) and "://" not in f]
        local = [f for f in files if f.is_file()] if config.get("dataset_path") in _LOCAL_BUILDERS else []
        if not local:
            yield name, None
        for data_file in local:
            yield name, data_file.resolve()


def _local_data_files(yaml_path: Path) -> list[Path]:
    import yaml

    class _Loader(yaml.SafeLoader):
        pass

    # Task YAML holds tags such as ``!function utils.process``; they name code, not data, so read them as null.
    _Loader.add_multi_constructor("!", lambda loader, suffix, node: None)
    try:
        config = yaml.load(yaml_path.read_text(errors="replace"), Loader=_Loader) or {}  # noqa: S506 - SafeLoader subclass
    except (OSError, yaml.YAMLError):
        return []
    if not isinstance(config, dict) or config.get("dataset_path") not in _LOCAL_BUILDERS:
        return []
    data_files = (config.get("dataset_kwargs") or {}).get("data_files") or {}
    names = data_files.values() if isinstance(data_files, dict) else [data_files]
    found = []
    for name in names:
        for item in name if isinstance(name, list) else [name]:
            candidate = Path(str(item))
            candidate = candidate if candidate.is_absolute() else yaml_path.parent / candidate
            if candidate.is_file():
                found.append(candidate)
    return found


def _documents(path: Path) -> Iterator[str]:
    """Every record of a JSON, JSON-lines or CSV file as one text (its string values joined)."""
    with open(path, encoding="utf-8", errors="replace") as handle:
        if path.suffix == ".csv":
            for record in csv.DictReader(handle):
                yield "\n".join(str(v) for v in record.values() if v)
            return
        head = handle.read(1)
        handle.seek(0)
        records = json.load(handle) if head == "[" else (json.loads(line) for line in handle if line.strip())
        for record in records:
            yield "\n".join(_strings(record))


def _strings(value) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


# --- checks -------------------------------------------------------------------------------------------------


def _summary(index: EvalIndex, matches: list[dict], checked: int) -> dict:
    return {
        "checked_at": timezone.now().isoformat(), "n": N, "rows_checked": checked, "count": len(matches),
        "sources": index.sources, "skipped": index.skipped, "rows": matches[:MAX_MATCHES],
    }


def dataset_version_check_contamination(*, version: DatasetVersion) -> dict:
    """Check the version's training rows against the project's evaluation data; stored on the version."""
    index = project_eval_index(version.project)
    rows = version.rows.filter(split=DatasetRow.Split.TRAIN).order_by("position")
    matches, checked = [], 0
    for position, prompt_id, messages, response in rows.values_list(
        "position", "prompt_id", "messages", "response"
    ).iterator(chunk_size=1000):
        checked += 1
        found = index.match(row_text(messages, response))
        if found:
            matches.append({"position": position, "prompt_id": prompt_id, "source": found[0], "match": found[1],
                            "prompt": row_text(messages, "")[:200]})
    result = _summary(index, matches, checked)
    DatasetVersion.objects.filter(pk=version.pk).update(contamination=result)
    version.contamination = result
    return result


def project_check_contamination(*, project: Project) -> dict:
    """Before a freeze: the approved prompts' curated answers against the evaluation data (nothing is stored)."""
    from curation.services.datasets import _answer, _Candidate, _Review

    index = project_eval_index(project)
    heldout_ids = set(
        DatasetRow.objects.filter(version__project=project, split=DatasetRow.Split.HELDOUT).values_list("prompt_id", flat=True)
    )
    matches, checked = [], 0
    approved = Prompt.objects.filter(project=project, status=Prompt.Status.APPROVED).exclude(pk__in=heldout_ids)
    for prompt in approved.prefetch_related("completions").order_by("id").iterator(chunk_size=500):
        review = (
            Review.objects.filter(prompt=prompt, decision=Review.Decision.APPROVE, superseded=False)
            .order_by("-is_adjudication", "-updated_at", "-id").first()
        )
        if review is None:
            continue
        candidates = [_Candidate(c.id, c.text, c.source) for c in prompt.completions.all()]
        answer = _answer(_Review(review.id, review.chosen_id, review.ranking, review.edited_text), candidates)
        if answer is None:
            continue
        checked += 1
        found = index.match(row_text(prompt.messages, answer[0]))
        if found:
            matches.append({"prompt_id": prompt.pk, "source": found[0], "match": found[1],
                            "prompt": row_text(prompt.messages, "")[:200]})
    return _summary(index, matches, checked)


def prompts_exclude_contaminated(*, project: Project, matches: list[dict], actor) -> int:
    """Reject the contaminated items (as the curator's decision) and flag them with the evaluation text they share,
    so the next freeze leaves them out and browse shows why."""
    from curation.services.bulk import prompts_bulk_decide

    by_prompt = {m["prompt_id"]: m for m in matches}
    ids = list(Prompt.objects.filter(project=project, pk__in=by_prompt).values_list("pk", flat=True))
    if not ids:
        raise ValidationError("No contaminated items to exclude.")
    with transaction.atomic():
        prompts_bulk_decide(project=project, prompt_ids=ids, decision=Review.Decision.REJECT, actor=actor)
        Flag.objects.filter(prompt_id__in=ids, kind=CONTAMINATED_FLAG).delete()
        Flag.objects.bulk_create(
            Flag(prompt_id=pid, kind=CONTAMINATED_FLAG,
                 detail=f"{by_prompt[pid]['source']}: “{by_prompt[pid]['match'][:300]}”"[:500])
            for pid in ids
        )
    return len(ids)


def dataset_version_exclude_contaminated(*, version: DatasetVersion, actor) -> DatasetVersion:
    """One action: exclude the version's contaminated rows from curation and freeze a new version without them."""
    from curation.services.datasets import dataset_version_freeze

    matches = (version.contamination or {}).get("rows") or []
    prompts_exclude_contaminated(project=version.project, matches=matches, actor=actor)
    return dataset_version_freeze(
        project=version.project, created_by=actor, heldout_fraction=version.heldout_fraction, seed=version.seed,
        note=f"v{version.number} without {len(matches)} contaminated row{'s' if len(matches) != 1 else ''}",
    )
