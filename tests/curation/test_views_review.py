"""The review workspace over HTTP: queue, item page, decisions, drafts, stale saves, permissions, escaping."""

import re

import pytest
from django.urls import reverse

from curation.models import Assignment, CompletionRevision, Flag, Review, Tag
from curation.services import reviews
from curation.services.reviews import ReviewInput, review_submit
from tests.curation.review_helpers import make_item, make_items, post_review
from tests.factories import CompletionFactory, MembershipFactory, PromptFactory

pytestmark = pytest.mark.django_db


def queue_url(project):
    return reverse("curation:queue", args=[project.slug])


def test_queue_hands_out_an_item_and_resumes_it_on_reload(client, project, annotator):
    first, _ = make_items(project, 2)
    client.force_login(annotator)
    page = client.get(queue_url(project))
    assert page.status_code == 200
    assert f'data-prompt="{first.pk}"'.encode() in page.content
    assert Assignment.objects.filter(prompt=first, annotator=annotator).exists()
    again = client.get(queue_url(project))
    assert f'data-prompt="{first.pk}"'.encode() in again.content
    assert Assignment.objects.filter(annotator=annotator).count() == 1


def test_two_annotators_never_get_the_same_item_without_overlap(client, project, annotator):
    other = MembershipFactory(project=project).user
    make_items(project, 2)
    client.force_login(annotator)
    client.get(queue_url(project))
    client.force_login(other)
    client.get(queue_url(project))
    held = list(Assignment.objects.values_list("prompt_id", flat=True))
    assert len(held) == 2 and len(set(held)) == 2


def test_overlap_hands_the_same_item_to_as_many_annotators_as_required(client, project, annotator):
    project.reviews_required = 2
    project.save()
    others = [MembershipFactory(project=project).user for _ in range(2)]
    first, second = make_items(project, 2)
    for user in [annotator, *others]:
        client.force_login(user)
        client.get(queue_url(project))
    held = sorted(Assignment.objects.values_list("prompt_id", flat=True))
    assert held == [first.pk, first.pk, second.pk]


def test_approve_saves_the_review_and_swaps_in_the_next_item(client, project, annotator):
    first, second = make_items(project, 2)
    client.force_login(annotator)
    client.get(queue_url(project))
    chosen = first.completions.last()
    response = post_review(client, first, chosen=chosen.pk, ranking=[chosen.pk, first.completions.first().pk],
                           comment="clear and right")
    assert response.status_code == 200
    assert f'data-prompt="{second.pk}"'.encode() in response.content
    assert b"<html" not in response.content  # only the workspace fragment
    assert response["HX-Push-Url"] == reverse("curation:item", args=[project.slug, second.pk])
    review = Review.objects.get(prompt=first, annotator=annotator)
    assert (review.decision, review.chosen_id, review.version, review.comment) == ("approve", chosen.pk, 1, "clear and right")
    assert review.ranking == [chosen.pk, first.completions.first().pk]
    first.refresh_from_db()
    assert (first.status, first.review_count, first.claimed) == ("approved", 1, 0)


def test_reject_and_skip(client, project, annotator):
    first, second = make_items(project, 2)
    client.force_login(annotator)
    post_review(client, first, decision="reject")
    post_review(client, second, decision="skip")
    first.refresh_from_db(), second.refresh_from_db()
    assert first.status == "rejected"
    assert (second.status, second.review_count) == ("pending", 0)
    # A skipped item is not offered to the same annotator again.
    assert b"Nothing left for you" in client.get(queue_url(project)).content


def test_edit_is_stored_with_a_revision(client, project, annotator):
    item = make_item(project)
    chosen = item.completions.first()
    client.force_login(annotator)
    post_review(client, item, chosen=chosen.pk, edited_text="A better answer.\r\nTwo lines.")
    review = Review.objects.get(prompt=item)
    assert review.edited_text == "A better answer.\nTwo lines."
    revision = CompletionRevision.objects.get(completion=chosen)
    assert (revision.text_before, revision.text_after, revision.author) == (chosen.text, review.edited_text, annotator)


def test_an_edit_equal_to_the_original_is_no_edit(client, project, annotator):
    item = make_item(project)
    chosen = item.completions.first()
    client.force_login(annotator)
    post_review(client, item, chosen=chosen.pk, edited_text=chosen.text)
    assert Review.objects.get(prompt=item).edited_text == ""
    assert not CompletionRevision.objects.exists()


def test_approve_without_a_chosen_candidate_is_refused_and_keeps_the_text(client, project, annotator):
    item = make_item(project, candidates=2)
    client.force_login(annotator)
    response = client.post(reverse("curation:review_submit", args=[project.slug, item.pk]),
                           {"decision": "approve", "version": 0, "comment": "my careful note"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 422
    assert b"Pick the best candidate" in response.content
    assert b"my careful note" in response.content
    assert not Review.objects.exists()


def test_stale_save_is_refused_with_the_annotators_text_kept(client, project, annotator):
    item = make_item(project)
    client.force_login(annotator)
    post_review(client, item, decision="reject", version=0)  # saved elsewhere: version 1 now
    response = post_review(client, item, version=0, edited_text="My long edit that must not be lost.")
    assert response.status_code == 409
    assert b"Not saved: this item changed since you opened it." in response.content
    assert b"My long edit that must not be lost." in response.content
    assert b'name="version" value="1"' in response.content  # saving again is a deliberate overwrite
    review = Review.objects.get(prompt=item)
    assert (review.decision, review.version, review.edited_text) == ("reject", 1, "")


def test_saving_again_after_a_conflict_overwrites_deliberately(client, project, annotator):
    item = make_item(project)
    client.force_login(annotator)
    post_review(client, item, decision="reject", version=0)
    assert post_review(client, item, version=1, edited_text="Mine after all.").status_code == 200
    review = Review.objects.get(prompt=item)
    assert (review.decision, review.version, review.edited_text) == ("approve", 2, "Mine after all.")


def test_item_page_shows_the_saved_review_and_its_version(client, project, annotator):
    item = make_item(project)
    client.force_login(annotator)
    post_review(client, item, comment="remember me")
    page = client.get(reverse("curation:item", args=[project.slug, item.pk]))
    assert page.status_code == 200
    assert b'data-version="1"' in page.content and b"remember me" in page.content


def test_draft_is_autosaved_on_a_held_item(client, project, annotator):
    item = make_item(project)
    client.force_login(annotator)
    client.get(queue_url(project))
    url = reverse("curation:item_draft", args=[project.slug, item.pk])
    response = client.post(url, {"edited_text": "half-way", "comment": "", "ranking": "", "chosen": ""}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200 and b"Draft saved" in response.content
    assert Assignment.objects.get(prompt=item).draft["edited_text"] == "half-way"
    assert b"half-way" in client.get(reverse("curation:item", args=[project.slug, item.pk])).content


def test_regression_flags_are_shown_prominently(client, project, annotator):
    item = make_item(project)
    Flag.objects.create(prompt=item, kind="eval-regression", detail="eval run #7: student 0.2 vs teacher 0.9")
    client.force_login(annotator)
    page = client.get(reverse("curation:item", args=[project.slug, item.pk]))
    assert b"Sent back by evaluation." in page.content and b"eval run #7" in page.content


def test_model_text_is_inert(client, project, annotator):
    prompt = PromptFactory(project=project, text="hi", messages=[{"role": "user", "content": "<script>alert(1)</script>"}])
    CompletionFactory(prompt=prompt, text='<img src=x onerror="alert(2)"> [click](javascript:alert(3)) <script>alert(4)</script>')
    client.force_login(annotator)
    body = client.get(reverse("curation:item", args=[project.slug, prompt.pk])).content.decode()
    assert "<script>alert" not in body
    assert not re.search(r"<img[^>]*onerror", body)  # the tag arrives as text (&lt;img ...), never as an element
    assert not re.search(r"<[a-z]+[^>]*\son\w+=", body)  # no event-handler attribute on any element of the page
    assert 'href="javascript:' not in body


@pytest.mark.parametrize("name", ["queue", "item", "review_submit", "item_draft"])
def test_non_members_get_404(client, project, outsider, name):
    item = make_item(project)
    client.force_login(outsider)
    args = [project.slug] if name == "queue" else [project.slug, item.pk]
    method = client.get if name in ("queue", "item") else client.post
    assert method(reverse(f"curation:{name}", args=args)).status_code == 404
    assert not Review.objects.exists() and not Assignment.objects.exists()


def test_anonymous_htmx_requests_are_sent_to_login(client, project):
    item = make_item(project)
    response = post_review(client, item)
    assert response.status_code == 401 and response["HX-Redirect"].startswith("/accounts/login/")


def test_csrf_is_enforced_and_the_page_sends_the_token_header(project, annotator):
    from django.test import Client

    item = make_item(project)
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(annotator)
    page = strict.get(reverse("curation:item", args=[project.slug, item.pk]))
    assert b'hx-headers=\'{"x-csrftoken": "' in page.content
    assert post_review(strict, item).status_code == 403
    token = strict.cookies["csrftoken"].value
    ok = strict.post(reverse("curation:review_submit", args=[project.slug, item.pk]),
                     {"decision": "reject", "version": 0}, HTTP_HX_REQUEST="true", HTTP_X_CSRFTOKEN=token)
    assert ok.status_code == 200


# Query counts of the annotator's round trip, pinned exactly so that a query added to the hot path fails here
# (how fast it runs is measured in bench/review_latency.py, not asserted). Every request reads the session,
# the user and the project with the user's role (3). Under the test's transaction, atomic() shows as a
# SAVEPOINT and its RELEASE.

def test_next_item_runs_five_queries(client, project, annotator, django_assert_num_queries):
    make_items(project, 2)
    client.force_login(annotator)
    reviews._last_reclaim.pop(project.pk, None)  # the look for abandoned items is due (then not for 10 s)
    # Hand-out: the held item (none); the candidate, with the annotator's review of it and whether it has
    # flags or tags; its assignment; the prompt's counts; the page reads only the candidates.
    with django_assert_num_queries(3 + 1 + 5):
        client.get(queue_url(project), HTTP_HX_REQUEST="true")
    # Resuming a held item: one query for the assignment with its prompt and facts, one for the candidates.
    with django_assert_num_queries(3 + 2):
        client.get(queue_url(project), HTTP_HX_REQUEST="true")


def test_save_and_next_runs_sixteen_queries(client, project, annotator, django_assert_num_queries):
    first, _ = make_items(project, 2)
    client.force_login(annotator)
    reviews._last_reclaim.pop(project.pk, None)
    client.get(queue_url(project))  # looks for abandoned items: the save's hand-out does not (10 s apart)
    # The save: the prompt's lock, its reviews, the item's and the annotator's assignments (one query), its
    # candidates, the review's write, the assignment's release, the prompt's counts (7). The next item: the
    # candidate with its facts, its assignment, its counts (3), the page's candidates (1).
    chosen = first.completions.order_by("id").first().pk
    with django_assert_num_queries(3 + 1 + 7 + 3 + 1 + 1):
        response = post_review(client, first, chosen=chosen)
    assert response.status_code == 200 and b"Saved #" in response.content


def test_save_of_an_item_without_an_assignment_runs_no_release(project, annotator, django_assert_num_queries):
    item = make_item(project)
    data = ReviewInput(decision="reject", version=0)
    with django_assert_num_queries(2 + 6):  # no assignment to release; the slot check reads nothing more
        review_submit(project=project, prompt_id=item.pk, annotator=annotator, data=data)
    item.refresh_from_db()
    assert (item.status, item.review_count, item.claimed) == ("rejected", 1, 0)


def test_the_handed_out_item_shows_its_flags_tags_and_own_review(client, project, annotator):
    """The page skips the reads the hand-out found empty, and makes them when they are not."""
    bare, marked = make_items(project, 2)
    Flag.objects.create(prompt=marked, kind="near-duplicate", detail="like #12")
    Tag.objects.create(prompt=marked, name="math")
    client.force_login(annotator)
    client.get(queue_url(project))
    response = post_review(client, bare)
    assert f'data-prompt="{marked.pk}"'.encode() in response.content
    assert b"near-duplicate" in response.content and b"#math" in response.content
    # An annotator whose earlier review was superseded (a curator sent the item back) sees it again.
    Review.objects.filter(prompt=bare, annotator=annotator).update(version=3, superseded=True, comment="my earlier note")
    Assignment.objects.all().delete()
    bare.status, bare.review_count = "pending", 0
    bare.save()
    marked.status = "approved"
    marked.save()
    page = client.get(queue_url(project))
    assert f'data-prompt="{bare.pk}"'.encode() in page.content
    assert b'data-version="3"' in page.content and b"my earlier note" in page.content


def test_saving_another_item_resumes_the_one_held(client, project, annotator):
    held, other, _ = make_items(project, 3)
    client.force_login(annotator)
    client.get(queue_url(project))
    client.post(reverse("curation:item_draft", args=[project.slug, held.pk]),
                {"edited_text": "half-way", "comment": "", "ranking": "", "chosen": ""}, HTTP_HX_REQUEST="true")
    response = post_review(client, other, decision="reject")
    assert response.status_code == 200
    assert f'data-prompt="{held.pk}"'.encode() in response.content and b"half-way" in response.content
    assert list(Assignment.objects.filter(annotator=annotator).values_list("prompt_id", flat=True)) == [held.pk]


@pytest.mark.django_db(transaction=True)
def test_resuming_a_held_item_opens_no_transaction(client, project, annotator, django_assert_num_queries):
    """Outside a test's wrapping transaction, as in production: on PostgreSQL a BEGIN and a COMMIT would show
    here as two more queries."""
    make_items(project, 2)
    client.force_login(annotator)
    reviews._last_reclaim.pop(project.pk, None)
    client.get(queue_url(project))
    with django_assert_num_queries(3 + 2):
        page = client.get(queue_url(project), HTTP_HX_REQUEST="true")
    assert page.status_code == 200 and Assignment.objects.filter(annotator=annotator).count() == 1
