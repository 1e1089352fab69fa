"""Bulk decisions on a filter, and what a frozen version then holds."""

import pytest

from curation.models import Completion, Prompt, Review
from curation.services.bulk import prompts_bulk_decide
from curation.services.datasets import dataset_version_freeze
from tests.factories import CompletionFactory, PromptFactory


@pytest.mark.django_db
def test_bulk_approval_without_a_pick_keeps_the_first_complete_candidate_and_freezes_it(project, curator):
    prompts = PromptFactory.create_batch(3, project=project)
    truncated = {}
    for prompt in prompts:
        truncated[prompt.id] = CompletionFactory(prompt=prompt, finish_reason=Completion.FinishReason.LENGTH)
        CompletionFactory(prompt=prompt, text=f"complete answer to {prompt.id}")
    only_truncated = PromptFactory(project=project)
    CompletionFactory(prompt=only_truncated, text="cut off", finish_reason=Completion.FinishReason.LENGTH)
    ids = [p.id for p in prompts] + [only_truncated.id]

    assert prompts_bulk_decide(project=project, prompt_ids=ids, decision="approve", actor=curator) == 4

    chosen = dict(Review.objects.filter(prompt_id__in=ids).values_list("prompt_id", "chosen__text"))
    assert chosen == {**{p.id: f"complete answer to {p.id}" for p in prompts}, only_truncated.id: "cut off"}
    assert set(Prompt.objects.filter(id__in=ids).values_list("status", flat=True)) == {Prompt.Status.APPROVED}
    version = dataset_version_freeze(project=project, created_by=curator)
    assert version.row_count == 4
    assert {r.response for r in version.rows.all()} == set(chosen.values())
