"""Quality signals on import: per-text flags and near-duplicates across batches."""

import pytest

from curation.models import Flag, SimilarityKey
from curation.services.quality import quality_flag_prompts, text_flags
from tests.factories import CompletionFactory, PromptFactory

LONG = "Photosynthesis turns light water and carbon dioxide into glucose and oxygen inside the chloroplasts of plant cells"


def kinds(text, **kw):
    return {kind for kind, _ in text_flags(text, **kw)}


def test_text_flags():
    assert kinds("", finish_reason="stop") == {"empty"}
    assert kinds("Yes.") == {"short"}
    assert kinds(LONG, finish_reason="length") == {"truncated"}
    assert kinds("I'm sorry, but I can't help with that request at all.") == {"refusal"}
    assert kinds("As an AI language model I do not have opinions on this topic whatsoever.") == {"refusal"}
    assert kinds(" ".join(["the cat sat on the mat"] * 8)) == {"repetition"}
    assert kinds(LONG) == set()


@pytest.mark.django_db
def test_flags_and_near_duplicates_across_batches(project):
    first = PromptFactory(project=project, text=LONG, messages=[{"role": "user", "content": LONG}])
    CompletionFactory(prompt=first, text=LONG + " today.", finish_reason="length")
    CompletionFactory(prompt=first, text="No.")
    quality_flag_prompts([first.pk])
    assert set(Flag.objects.values_list("kind", flat=True)) == {"truncated", "short"}
    near = LONG + " please"
    second = PromptFactory(project=project, text=near, messages=[{"role": "user", "content": near}])
    copy = CompletionFactory(prompt=second, text=LONG + " today!")
    other = PromptFactory(project=project, text="What is the capital city of France and why is it famous")
    quality_flag_prompts([second.pk, other.pk])
    dup = Flag.objects.filter(kind="near-duplicate")
    assert {(f.prompt_id, f.completion_id) for f in dup} == {(second.pk, None), (second.pk, copy.pk)}
    assert f"prompt #{first.pk}" in dup.get(completion=None).detail
    # Idempotent: running again replaces the automatic flags instead of adding more.
    Flag.objects.create(prompt=second, kind="eval-regression", detail="kept")
    quality_flag_prompts([second.pk, other.pk])
    assert Flag.objects.filter(kind="near-duplicate").count() == 2
    assert Flag.objects.filter(kind="eval-regression").count() == 1
    assert SimilarityKey.objects.filter(prompt=second).count() == 16  # 8 bands, prompt and completion


@pytest.mark.django_db
def test_chunks_prepared_ahead_match_in_order_and_a_prompt_deleted_meanwhile_is_skipped(project, monkeypatch):
    """The next chunk's text work runs while this one is stored: within a call, a later chunk still finds the
    near-duplicates of an earlier one, and a prompt deleted after it was read gets no flag and no key."""
    from curation.services import quality

    monkeypatch.setattr(quality, "CHUNK", 1)
    prompts = [PromptFactory(project=project, text=f"{LONG} {tail}", messages=[{"role": "user", "content": f"{LONG} {tail}"}])
               for tail in ("first", "second", "third")]
    for prompt in prompts:
        CompletionFactory(prompt=prompt, text="cut", finish_reason="length")
    chunks = quality.prepared_ahead([[p.pk] for p in prompts])
    first, second = next(chunks), next(chunks)  # the third chunk's rows are read by now, its text work under way
    prompts[2].delete()
    stored = [quality._store(first), quality._store(second)] + [quality._store(chunk) for chunk in chunks]
    assert stored[2] == 0
    assert not Flag.objects.filter(prompt_id=prompts[2].pk).exists()
    assert not SimilarityKey.objects.filter(prompt_id=prompts[2].pk).exists()
    near = Flag.objects.get(kind="near-duplicate")
    assert near.prompt_id == prompts[1].pk and f"prompt #{prompts[0].pk}" in near.detail
