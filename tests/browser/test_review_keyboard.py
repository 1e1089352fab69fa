"""End to end in a real browser: an annotator reviews by keyboard only; two contexts never share an item;
a stale save is refused with the text kept. Screenshots go to test-artifacts/screenshots/."""

from __future__ import annotations

import pytest

from curation.models import Assignment, Review
from tests.browser.conftest import logged_in_page
from tests.factories import CompletionFactory, MembershipFactory, ProjectFactory, PromptFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def make_project(n_items: int):
    project = ProjectFactory(guidelines="## Guidelines\n\nPrefer **short, correct** answers.\n\n- Reject anything unsafe.")
    prompts = []
    for i in range(n_items):
        prompt = PromptFactory(project=project, text=f"Question {i}: what is {i} + {i}?",
                               messages=[{"role": "system", "content": "Be brief."},
                                         {"role": "user", "content": f"Question {i}: what is **{i} + {i}**?"}])
        CompletionFactory(prompt=prompt, text=f"The answer is {2 * i}.", source="teacher-a")
        CompletionFactory(prompt=prompt, text=f"Let me think. {i} plus {i} makes {2 * i}, so the answer is {2 * i}.",
                          source="teacher-b", finish_reason="length" if i == 3 else "stop")
        prompts.append(prompt)
    return project, prompts


def current_item(page) -> int:
    return int(page.locator(".ws[data-prompt]").get_attribute("data-prompt"))


def press_and_wait_next(page, key: str) -> None:
    before = current_item(page)
    page.keyboard.press(key)
    page.wait_for_function(  # the next item is on screen and its keyboard handling is ready (or the queue is empty)
        "before => { const ws = document.querySelector('.ws');"
        " return ws && ws.dataset.prompt !== String(before) && (ws.dataset.ready === '1' || !ws.dataset.prompt); }",
        arg=before)


def test_annotator_reviews_several_items_by_keyboard_only(chromium, live_server, screenshot_dir):
    project, prompts = make_project(5)
    annotator = UserFactory()
    MembershipFactory(project=project, user=annotator)
    page = logged_in_page(chromium, live_server, annotator)
    page.goto(f"{live_server.url}/p/{project.slug}/queue/")
    c = {p.pk: list(p.completions.order_by("id").values_list("id", flat=True)) for p in prompts}

    assert current_item(page) == prompts[0].pk
    page.screenshot(path=str(screenshot_dir / "review-queue.png"), full_page=True)
    page.keyboard.press("j")  # focus candidate B
    page.keyboard.press("b")  # B is the best
    press_and_wait_next(page, "a")  # approve

    assert current_item(page) == prompts[1].pk
    press_and_wait_next(page, "r")  # reject

    assert current_item(page) == prompts[2].pk
    page.keyboard.press("2")  # candidate A goes to rank 2: B, A
    assert page.locator(".cand").first.get_attribute("data-id") == str(c[prompts[2].pk][1])
    press_and_wait_next(page, "a")  # approve; the top of the ranking is the chosen one

    assert current_item(page) == prompts[3].pk
    page.keyboard.press("?")
    assert page.locator("#shortcuts").is_visible()
    page.keyboard.press("Escape")
    page.keyboard.press("e")  # edit candidate A
    page.keyboard.press("End")
    page.keyboard.press("Control+End")
    page.keyboard.type(" Double-checked.")
    page.wait_for_selector(".live-diff ins")
    assert "Double-checked." in page.locator(".live-diff ins").inner_text()
    page.screenshot(path=str(screenshot_dir / "review-edit-diff.png"), full_page=True)
    press_and_wait_next(page, "Control+Enter")  # save the edit and approve

    assert current_item(page) == prompts[4].pk
    page.keyboard.press("s")  # skip: the queue is empty afterwards
    page.wait_for_selector("text=Nothing left for you")

    reviews = {r.prompt_id: r for r in Review.objects.filter(annotator=annotator)}
    assert set(reviews) == {p.pk for p in prompts}
    first, second, third, fourth, fifth = (reviews[p.pk] for p in prompts)
    assert (first.decision, first.chosen_id) == ("approve", c[prompts[0].pk][1])
    assert second.decision == "reject"
    assert (third.decision, third.ranking, third.chosen_id) == (
        "approve", [c[prompts[2].pk][1], c[prompts[2].pk][0]], c[prompts[2].pk][1])
    assert (fourth.decision, fourth.chosen_id, fourth.edited_text) == ("approve", c[prompts[3].pk][0], "The answer is 6. Double-checked.")
    assert fifth.decision == "skip"
    assert all(r.version == 1 and r.seconds_spent > 0 for r in reviews.values())
    assert Review.objects.count() == 5 and not Assignment.objects.exists()

    page.goto(f"{live_server.url}/p/{project.slug}/")
    page.wait_for_selector("text=Agreement needs items reviewed by at least two annotators")  # lazy fragment loaded
    page.screenshot(path=str(screenshot_dir / "dashboard.png"), full_page=True)
    assert "80.0%" in page.locator("#progress").inner_text()  # 4 of 5 decided (the skip is still pending)
    page.goto(f"{live_server.url}/p/{project.slug}/browse/?has_edit=on")
    assert page.locator("tr.row-link").count() == 1
    page.screenshot(path=str(screenshot_dir / "browse.png"), full_page=True)
    page.goto(f"{live_server.url}/p/{project.slug}/items/{prompts[3].pk}/history/")
    assert "Double-checked." in page.locator("#diff ins").first.inner_text()  # opens on the latest edit
    page.locator("input[name=b]").first.check()  # compare the original with itself: nothing changed
    page.wait_for_function("() => !document.querySelector('#diff ins')")
    page.screenshot(path=str(screenshot_dir / "history.png"), full_page=True)
    page.context.close()


def test_second_context_gets_another_item_and_a_stale_save_is_refused(chromium, live_server, screenshot_dir):
    project, prompts = make_project(3)
    alice, bob = UserFactory(), UserFactory()
    for user in (alice, bob):
        MembershipFactory(project=project, user=user)
    queue = f"{live_server.url}/p/{project.slug}/queue/"

    page_a = logged_in_page(chromium, live_server, alice)
    page_a.goto(queue)
    page_b = logged_in_page(chromium, live_server, bob)
    page_b.goto(queue)
    item_a, item_b = current_item(page_a), current_item(page_b)
    assert item_a != item_b
    assert sorted(Assignment.objects.values_list("prompt_id", flat=True)) == sorted([item_a, item_b])

    # Alice starts an edit; meanwhile her second window saves the same item.
    page_a.keyboard.press("e")
    page_a.keyboard.press("Control+End")
    page_a.keyboard.type(" My careful addition.")
    other_window = logged_in_page(chromium, live_server, alice)
    other_window.goto(f"{live_server.url}/p/{project.slug}/items/{item_a}/")
    press_and_wait_next(other_window, "r")
    assert Review.objects.get(annotator=alice, prompt_id=item_a).version == 1

    page_a.keyboard.press("Control+Enter")
    page_a.wait_for_selector(".alert.conflict")
    assert "this item changed since you opened it" in page_a.locator(".alert.conflict").inner_text()
    assert current_item(page_a) == item_a
    assert page_a.locator("textarea[name=edited_text]").input_value().endswith("My careful addition.")
    page_a.screenshot(path=str(screenshot_dir / "review-stale-save.png"), full_page=True)
    stored = Review.objects.get(annotator=alice, prompt_id=item_a)
    assert (stored.decision, stored.version) == ("reject", 1)  # the other window's save stands

    # Saving again is a deliberate overwrite of the newer version.
    page_a.locator("textarea[name=edited_text]").focus()
    press_and_wait_next(page_a, "Control+Enter")
    stored.refresh_from_db()
    assert (stored.decision, stored.version) == ("approve", 2)
    assert stored.edited_text.endswith("My careful addition.")
    for page in (page_a, page_b, other_window):
        page.context.close()
