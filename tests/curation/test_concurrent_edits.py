"""Twenty annotators edit the same item at once, each in its own thread and database connection: every edit is
either refused with a reason or stored, and stored edits that differ go to a curator side by side."""

from __future__ import annotations

import threading

import pytest
from django.db import connection
from django.urls import reverse

from curation.models import CompletionRevision, DatasetRow, Prompt, Review
from curation.services.datasets import dataset_version_freeze
from curation.services.reviews import NotHeld, ReviewInput, StaleReview, assignment_next, review_submit
from tests.curation.review_helpers import make_item
from tests.factories import MembershipFactory

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

ANNOTATORS = 20


def _edit_at_once(project, prompt: Prompt, annotators) -> dict[int, str]:
    """Each annotator asks for work, then saves an edit of the first candidate, all released by one barrier."""
    chosen = prompt.completions.order_by("id").first()
    barrier, outcomes, lock = threading.Barrier(len(annotators)), {}, threading.Lock()

    def annotate(index: int, user) -> None:
        try:
            barrier.wait()
            assignment_next(project=project, annotator=user)  # some get the item, the rest nothing
            data = ReviewInput(decision="approve", version=0, chosen_id=chosen.pk,
                               edited_text=f"{chosen.text} (edited by annotator {index})")
            try:
                review_submit(project=project, prompt_id=prompt.pk, annotator=user, data=data)
                outcome = "saved"
            except NotHeld as refused:
                outcome = "refused: " + " ".join(refused.messages)
            except StaleReview:
                outcome = "stale"
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below, with its thread
            outcome = f"error: {exc!r}"
        finally:
            connection.close()
        with lock:
            outcomes[user.pk] = outcome

    threads = [threading.Thread(target=annotate, args=(i, user)) for i, user in enumerate(annotators)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return outcomes


def test_twenty_annotators_editing_one_item_lose_no_edit(client, project, curator):
    project.reviews_required = 2
    project.save()
    prompt = make_item(project, candidates=2)
    annotators = [MembershipFactory(project=project).user for _ in range(ANNOTATORS)]

    outcomes = _edit_at_once(project, prompt, annotators)

    assert len(outcomes) == ANNOTATORS and not [o for o in outcomes.values() if o.startswith("error")], outcomes
    saved = {pk for pk, outcome in outcomes.items() if outcome == "saved"}
    refused = [outcome for outcome in outcomes.values() if outcome.startswith("refused")]
    assert len(saved) == project.reviews_required and len(refused) == ANNOTATORS - len(saved)
    assert all("not assigned to you" in outcome for outcome in refused)
    # Zero edits missing: every save that was not refused is in the database, with its revision.
    stored = dict(Review.objects.filter(prompt=prompt).values_list("annotator", "edited_text"))
    assert set(stored) == saved and all("edited by annotator" in text for text in stored.values())
    assert CompletionRevision.objects.filter(review__prompt=prompt).count() == len(saved)

    # Two different edits of one answer: a disagreement for a curator, not a silent pick.
    prompt.refresh_from_db()
    assert prompt.needs_adjudication and prompt.status == Prompt.Status.IN_REVIEW
    client.force_login(curator)
    page = client.get(reverse("curation:disagreements", args=[project.slug])).content.decode()
    for text in stored.values():
        assert f"annotator {text.rsplit(' ', 1)[1]}" in page  # both edits on the page, side by side

    winner = Review.objects.filter(prompt=prompt).order_by("id").last()
    response = client.post(reverse("curation:adjudicate", args=[project.slug, prompt.pk]),
                           {"decision": "approve", "version": 0, "answer": f"r{winner.pk}", "seconds_spent": "3"})
    assert response.status_code == 200, response.content.decode()[-2000:]
    prompt.refresh_from_db()
    assert prompt.status == Prompt.Status.APPROVED and not prompt.needs_adjudication
    version = dataset_version_freeze(project=project, heldout_fraction=0)
    assert DatasetRow.objects.get(version=version).response == winner.edited_text  # the curator's choice freezes
