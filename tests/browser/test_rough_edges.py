"""Rough edges that need a browser to see: a stale refusal message goes once the annotator ranks, relative
times keep up while the page is open, Revert asks first, the generation form follows the chosen teacher,
contamination is checked before a freeze. Screenshots go to test-artifacts/screenshots/."""

from __future__ import annotations

import pytest
from django.utils import timezone

from curation.models import CompletionRevision, Teacher
from curation.services.datasets import dataset_version_freeze
from evaluation.models import EvaluationRun
from tests.browser.conftest import logged_in_page
from tests.curation.test_datasets import curate
from tests.curation.test_versions import BENCH_QUESTION, task_folder
from tests.factories import CompletionFactory, MembershipFactory, ProjectFactory, PromptFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def setup():
    project = ProjectFactory(system_prompt="Answer in one sentence.")
    curator = UserFactory()
    MembershipFactory(project=project, user=curator, role="curator")
    prompt = PromptFactory(project=project, text="What is 2 + 2?")
    CompletionFactory(prompt=prompt, text="It is 4.", source="teacher")
    CompletionFactory(prompt=prompt, text="It is 5, truncated", source="teacher", finish_reason="length")
    return project, curator, prompt


def test_the_refusal_message_goes_once_the_annotator_ranks(chromium, live_server, setup, screenshot_dir):
    project, curator, prompt = setup
    page = logged_in_page(chromium, live_server, curator)
    page.goto(f"{live_server.url}/p/{project.slug}/queue/")
    page.wait_for_selector(".ws[data-ready='1']")
    page.keyboard.press("a")  # approve without a pick: refused (in the page, before any request)
    page.wait_for_selector(".client-error:has-text('Pick the best candidate')")
    page.screenshot(path=str(screenshot_dir / "edge-not-saved.png"), full_page=True)
    page.keyboard.press("2")  # rank: the message no longer describes the screen
    page.wait_for_function("() => document.querySelector('.client-error').textContent === ''")
    assert "Answer in one sentence." in page.locator(".export-system").inner_text()
    page.screenshot(path=str(screenshot_dir / "edge-after-ranking.png"), full_page=True)


def test_history_revert_asks_first_and_relative_times_update(chromium, live_server, setup, screenshot_dir):
    project, curator, prompt = setup
    page = logged_in_page(chromium, live_server, curator)
    page.goto(f"{live_server.url}/p/{project.slug}/queue/")
    page.wait_for_selector(".ws[data-ready='1']")
    page.keyboard.press("b")
    page.keyboard.press("e")
    page.keyboard.press("Control+End")
    page.keyboard.type(" Sure.")
    page.keyboard.press("Control+Enter")
    page.wait_for_selector("text=Nothing left for you")
    assert CompletionRevision.objects.count() == 1

    page.clock.install(time=timezone.now())
    page.goto(f"{live_server.url}/p/{project.slug}/items/{prompt.pk}/history/")
    saved = page.locator("time.rel").first
    assert "now" in saved.inner_text() or "second" in saved.inner_text()
    page.clock.fast_forward("03:00")  # three minutes later, same page, no reload
    page.wait_for_function("() => document.querySelector('time.rel').textContent.includes('3 minutes ago')")
    assert "Revision 1 of candidate A" in page.content()
    page.screenshot(path=str(screenshot_dir / "edge-history.png"), full_page=True)

    messages = []
    page.once("dialog", lambda dialog: (messages.append(dialog.message), dialog.dismiss()))
    page.click("button:has-text('Revert to this')")
    assert "Put the text of revision 1 back" in messages[0]
    assert CompletionRevision.objects.count() == 1  # dismissed: nothing happened
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("button:has-text('Revert to this')")
    page.wait_for_load_state()
    page.wait_for_function("() => document.querySelectorAll('[aria-label^=\"compare to revision\"]').length === 2")
    assert CompletionRevision.objects.count() == 2


def test_generation_form_follows_the_teacher_and_browse_filter(chromium, live_server, setup, screenshot_dir):
    project, curator, prompt = setup
    Teacher.objects.create(project=project, name="a-default", kind="local", model_path="models/a")
    Teacher.objects.create(project=project, name="b-tuned", kind="local", model_path="models/b",
                           default_params={"top_p": 0.9, "max_new_tokens": 128})
    page = logged_in_page(chromium, live_server, curator)
    page.goto(f"{live_server.url}/p/{project.slug}/browse/?q=2")
    page.click("#generate-for-filter")
    page.wait_for_selector("#generation-panel form")
    assert page.input_value("input[name=top_p]") == "0.95" and page.input_value("select[name=mode]") == "filter"
    page.select_option("select[name=teacher]", label="b-tuned")
    page.wait_for_function("() => document.querySelector('input[name=top_p]').value === '0.9'")
    assert page.input_value("input[name=max_new_tokens]") == "128"
    assert page.input_value("input[name=browse]") == "q=2"  # the filter survives the teacher change
    page.screenshot(path=str(screenshot_dir / "edge-generation-form.png"), full_page=True)


def test_contamination_is_checked_before_a_freeze_and_excluded_in_one_action(chromium, live_server, tmp_path,
                                                                             screenshot_dir):
    project = ProjectFactory()
    curator = UserFactory()
    MembershipFactory(project=project, user=curator, role="curator")
    EvaluationRun.objects.create(project=project, tasks=[str(task_folder(tmp_path))], status="succeeded")
    for i in range(4):
        curate(project, [f"Clean answer {i}."], prompt_text=f"Clean question {i}?")
    curate(project, ["Nine."], prompt_text=f"Riddle: {BENCH_QUESTION}?")
    page = logged_in_page(chromium, live_server, curator)
    page.on("dialog", lambda dialog: dialog.accept())
    page.goto(f"{live_server.url}/p/{project.slug}/")
    page.click("button:has-text('Check approved items for contamination first')")
    page.wait_for_selector("#precheck mark")
    assert "seventeen sheep" in page.locator("#precheck mark").inner_text()
    page.screenshot(path=str(screenshot_dir / "edge-precheck.png"), full_page=True)

    version = dataset_version_freeze(project=project, heldout_fraction=0)  # frozen anyway: the version page shows it
    page.goto(f"{live_server.url}/p/{project.slug}/versions/{version.number}/")
    assert "1 contaminated training row" in page.locator("#contamination").inner_text()
    page.screenshot(path=str(screenshot_dir / "edge-version-contaminated.png"), full_page=True)
    page.click("button:has-text('Exclude 1 row and freeze a new version')")
    page.wait_for_url(f"{live_server.url}/p/{project.slug}/versions/2/")
    assert "No training row overlaps" in page.locator("#contamination").inner_text()
    assert page.locator("#rows tbody tr").count() == 4
