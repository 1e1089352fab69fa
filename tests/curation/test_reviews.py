"""The review services: overlap accounting, status, disagreement, adjudication, re-queue, expiry, revert."""

import threading
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.utils import timezone

from curation.models import Assignment, CompletionRevision, Flag, Prompt, Review, Tag
from curation.services import bulk
from curation.services.reviews import NotHeld, ReviewInput, StaleReview, assignment_next, review_revert, review_submit
from tests.curation.review_helpers import make_item, make_items
from tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db


def approve(prompt, user, *, chosen=None, version=0, edited_text="", adjudicate=False):
    chosen = chosen or prompt.completions.order_by("id").first()
    data = ReviewInput(decision="approve", version=version, chosen_id=chosen.pk, edited_text=edited_text)
    return review_submit(project=prompt.project, prompt_id=prompt.pk, annotator=user, data=data, adjudicate=adjudicate)


def reject(prompt, user, version=0, adjudicate=False):
    return review_submit(project=prompt.project, prompt_id=prompt.pk, annotator=user, data=ReviewInput(decision="reject", version=version),
                         adjudicate=adjudicate)


@pytest.fixture
def overlap_project(project):
    project.reviews_required = 2
    project.save()
    return project


def test_unanimous_reviews_decide_once_enough_are_in(overlap_project, annotator):
    other = MembershipFactory(project=overlap_project).user
    item = make_item(overlap_project)
    approve(item, annotator)
    item.refresh_from_db()
    assert (item.status, item.review_count) == ("in_review", 1)
    approve(item, other)
    item.refresh_from_db()
    assert (item.status, item.review_count, item.needs_adjudication) == ("approved", 2, False)


def test_disagreement_waits_for_a_curator_whose_adjudication_is_final(overlap_project, annotator, curator):
    other = MembershipFactory(project=overlap_project).user
    item = make_item(overlap_project)
    approve(item, annotator)
    reject(item, other)
    item.refresh_from_db()
    assert (item.status, item.needs_adjudication) == ("in_review", True)
    assert assignment_next(project=overlap_project, annotator=curator) is None  # quota reached: not in the queue
    approve(item, curator, adjudicate=True)
    item.refresh_from_db()
    assert (item.status, item.needs_adjudication) == ("approved", False)


def test_different_chosen_candidates_are_a_disagreement(overlap_project, annotator):
    other = MembershipFactory(project=overlap_project).user
    item = make_item(overlap_project)
    first, second = item.completions.order_by("id")
    approve(item, annotator, chosen=first)
    approve(item, other, chosen=second)
    item.refresh_from_db()
    assert item.needs_adjudication


def test_stale_version_is_refused(project, annotator):
    item = make_item(project)
    approve(item, annotator)
    with pytest.raises(StaleReview) as caught:
        reject(item, annotator, version=0)
    assert caught.value.current.version == 1
    assert Review.objects.get().decision == "approve"


def test_ranking_and_chosen_must_belong_to_the_item(project, annotator):
    item, elsewhere = make_items(project, 2)
    alien = elsewhere.completions.first().pk
    with pytest.raises(ValidationError):
        review_submit(project=project, prompt_id=item.pk, annotator=annotator, data=ReviewInput(decision="approve", version=0, chosen_id=alien))
    with pytest.raises(ValidationError):
        review_submit(project=project, prompt_id=item.pk, annotator=annotator, data=ReviewInput(decision="reject", version=0, ranking=[alien]))
    ranked = review_submit(project=project, prompt_id=item.pk, annotator=annotator, data=ReviewInput(
        decision="approve", version=0, ranking=[c.pk for c in item.completions.order_by("-id")]))
    assert ranked.chosen_id == item.completions.order_by("-id").first().pk  # the top of the ranking


def test_expired_assignments_go_back_to_the_queue(project, annotator):
    other = MembershipFactory(project=project).user
    item = make_item(project)
    assert assignment_next(project=project, annotator=annotator) == item
    assert assignment_next(project=project, annotator=other) is None
    Assignment.objects.update(touched_at=timezone.now() - timedelta(hours=2))
    assert assignment_next(project=project, annotator=other) == item
    item.refresh_from_db()
    assert item.claimed == 1
    # The first annotator's late save would be a second review of an overlap-1 item: refused, saying why (the
    # page keeps the text); the holder's save counts.
    with pytest.raises(NotHeld, match="not assigned to you"):
        approve(item, annotator)
    approve(item, other)
    assert list(Review.objects.filter(prompt=item).values_list("annotator", flat=True)) == [other.pk]


def test_requeue_supersedes_reviews_and_flags_the_reason(project, annotator):
    item = make_item(project)
    approve(item, annotator)
    done = bulk.prompts_requeue(project=project, prompt_ids=[item.pk], flag_kind="eval-regression", flag_detail="run 3")
    item.refresh_from_db()
    assert done == 1 and (item.status, item.review_count) == ("pending", 0)
    assert Review.objects.get().superseded
    assert Flag.objects.get(prompt=item).detail == "run 3"
    assert assignment_next(project=project, annotator=annotator) == item  # the same annotator may look again
    approve(item, annotator, version=1)
    assert not Review.objects.get().superseded


def test_bulk_decisions_are_recorded_as_adjudications_keeping_the_answer(project, annotator, curator):
    reviewed, fresh = make_items(project, 2)
    chosen = reviewed.completions.last()
    approve(reviewed, annotator, chosen=chosen, edited_text="edited answer")
    assert bulk.prompts_bulk_decide(project=project, prompt_ids=Prompt.objects.filter(project=project).values_list("id", flat=True),
                                    decision="approve", actor=curator) == 2
    adjudication = Review.objects.get(prompt=reviewed, annotator=curator)
    assert adjudication.is_adjudication and (adjudication.chosen_id, adjudication.edited_text) == (chosen.pk, "edited answer")
    assert set(Prompt.objects.values_list("status", flat=True)) == {"approved"}
    assert bulk.prompts_tag(project=project, prompt_ids=[reviewed.pk, fresh.pk], name="gold") == 2
    assert Tag.objects.filter(name="gold").count() == 2


def test_revert_restores_a_revision_as_a_new_revision(project, annotator):
    item = make_item(project)
    chosen = item.completions.first()
    approve(item, annotator, chosen=chosen, edited_text="first edit")
    approve(item, annotator, chosen=chosen, edited_text="second edit", version=1)
    first_revision = CompletionRevision.objects.order_by("id").first()
    with pytest.raises(StaleReview):
        review_revert(revision=first_revision, actor=annotator, expected_version=1)
    review = review_revert(revision=first_revision, actor=annotator, expected_version=2)
    assert (review.edited_text, review.version) == ("first edit", 3)
    last = CompletionRevision.objects.order_by("id").last()
    assert (last.text_before, last.text_after) == ("second edit", "first edit")
    assert CompletionRevision.objects.count() == 3


@pytest.mark.integration  # also in the PostgreSQL run, where it exercises FOR UPDATE SKIP LOCKED
@pytest.mark.django_db(transaction=True)
def test_concurrent_hand_outs_never_give_one_item_twice(project):
    annotators = [MembershipFactory(project=project).user for _ in range(6)]
    make_items(project, 4)
    results, errors = [], []
    barrier = threading.Barrier(len(annotators))

    def take(user):
        try:
            barrier.wait()
            prompt = assignment_next(project=project, annotator=user)
            results.append(prompt.pk if prompt else None)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=take, args=(user,)) for user in annotators]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert not errors
    handed = [pk for pk in results if pk]
    assert len(handed) == 4 and len(set(handed)) == 4
    assert results.count(None) == 2
    assert sorted(Prompt.objects.values_list("claimed", flat=True)) == [1, 1, 1, 1]
