"""The review round trip's hand-written SQL (curation.rows) gives the same models the ORM gives, on either database."""

from datetime import timedelta

import pytest
from django.db import transaction
from django.forms.models import model_to_dict
from django.utils import timezone

from curation import rows
from curation.models import Assignment, Completion, CompletionRevision, Flag, Membership, Project, Prompt, Review
from tests.curation.review_helpers import make_item
from tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db


def same_fields(a, b, *, skip=()):
    fields = [f.attname for f in type(a)._meta.concrete_fields if f.name not in skip]
    return {f: getattr(a, f) for f in fields} == {f: getattr(b, f) for f in fields}


def test_reads_equal_the_orm_rows_field_by_field(project, annotator):
    item = make_item(project, candidates=3, logprobs=[{"token": "a", "logprob": -0.5}])
    item.messages = [{"role": "user", "content": "Ünïcode ✓ and \"quotes\""}]
    item.metadata = {"nested": {"list": [1, 2.5, None, True]}}
    item.save()
    chosen = item.completions.order_by("id").first()
    review = Review.objects.create(prompt=item, annotator=annotator, decision="approve", ranking=[3, 1],
                                   chosen=chosen, seconds_spent=1.5, is_adjudication=True, version=4)
    assignment = Assignment.objects.create(prompt=item, annotator=annotator, draft={"comment": "half"})

    with transaction.atomic():
        locked = rows.prompt_locked(prompt_id=item.pk, project_id=project.pk)
    assert same_fields(locked, Prompt.objects.get(pk=item.pk))
    assert rows.prompt_locked(prompt_id=item.pk, project_id=project.pk + 1) is None

    [read] = rows.reviews_for_save(prompt_id=item.pk, annotator_id=annotator.pk)
    assert same_fields(read, Review.objects.get(pk=review.pk))
    assert isinstance(read.is_adjudication, bool) and read.ranking == [3, 1]

    [(held, project_id)] = rows.assignments_for_save(prompt_id=item.pk, annotator_id=annotator.pk)
    assert same_fields(held, Assignment.objects.get(pk=assignment.pk)) and project_id == project.pk

    read = rows.completions_of(item.pk)
    assert [c.pk for c in read] == list(item.completions.order_by("id").values_list("pk", flat=True))
    assert all(same_fields(c, Completion.objects.get(pk=c.pk), skip=("logprobs",)) for c in read)
    assert "logprobs" in read[0].get_deferred_fields()  # not read; loads on access like a deferred ORM field
    assert read[0].logprobs == [{"token": "a", "logprob": -0.5}]


def test_the_queue_candidate_skips_reviewed_full_and_empty_items_and_reads_the_page_facts(project, annotator):
    other = MembershipFactory(project=project, role=Membership.Role.ANNOTATOR).user
    reviewed, taken, empty, flagged, plain = (make_item(project) for _ in range(5))
    empty.completions.all().delete()
    Review.objects.create(prompt=reviewed, annotator=annotator, decision="reject")
    Prompt.objects.filter(pk=taken.pk).update(claimed=1)
    Flag.objects.create(prompt=flagged, kind="short", detail="2 words")

    def candidate(user):
        with transaction.atomic():
            return rows.queue_candidate(project_id=project.pk, annotator_id=user.pk, status="pending",
                                        reviews_required=1)

    found = candidate(annotator)
    assert found.pk == flagged.pk and found.a_flag_id is not None
    assert found.my_review_id is None and found.a_tag_id is None
    assert candidate(other).pk == reviewed.pk  # reviewed by someone else only: open to this one
    Prompt.objects.filter(pk__in=[reviewed.pk, flagged.pk]).update(status="approved")
    assert candidate(annotator).pk == plain.pk


def test_insert_and_update_apply_defaults_and_auto_now_as_save_does(project, annotator):
    item = make_item(project)
    before = timezone.now()
    review = rows.insert(Review(prompt=item, annotator=annotator, decision="approve", ranking=[1, 2]))
    stored = Review.objects.get(pk=review.pk)
    assert same_fields(review, stored)
    assert stored.created_at >= before and stored.updated_at >= before and stored.version == 1
    assert not review._state.adding

    review.comment, review.version = "second thoughts", 2
    old = stored.updated_at
    rows.update(review, ["comment", "version", "updated_at"])
    stored = Review.objects.get(pk=review.pk)
    assert (stored.comment, stored.version) == ("second thoughts", 2) and stored.updated_at > old

    revision = rows.insert(CompletionRevision(completion=item.completions.first(), review=review, author=annotator,
                                              text_before="a", text_after="b"))
    assert model_to_dict(CompletionRevision.objects.get(pk=revision.pk))["text_after"] == "b"

    assignment = rows.insert(Assignment(prompt=item, annotator=annotator))
    assert Assignment.objects.get(pk=assignment.pk).touched_at > timezone.now() - timedelta(minutes=1)
    rows.assignment_release(prompt_id=item.pk, annotator_id=annotator.pk)
    assert not Assignment.objects.filter(pk=assignment.pk).exists()


def test_a_project_is_read_with_the_users_role_or_none(project, annotator, django_user_model):
    outsider = django_user_model.objects.create_user("outsider", password="x-password-1")
    found = rows.project_with_role(user_id=annotator.pk, slug=project.slug)
    assert same_fields(found, Project.objects.get(pk=project.pk))
    assert found.member_role == Membership.objects.get(project=project, user=annotator).role
    assert rows.project_with_role(user_id=outsider.pk, pk=project.pk).member_role is None
    assert rows.project_with_role(user_id=annotator.pk, slug="no-such-project") is None
    assert rows.project_with_role(user_id=annotator.pk, pk=10**30) is None
