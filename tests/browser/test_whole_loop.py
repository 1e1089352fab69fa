"""The loop a new user walks, in a real browser with a real worker: log in, review with keys, freeze, open the
version page, diff two versions, download an export, train a tiny student, evaluate it from its run page against
the teacher, read the report and the cost page. Screenshots go to test-artifacts/screenshots/."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from curation.models import DatasetVersion, Teacher
from curation.templatetags.curation_tags import rate
from evaluation.models import EvaluationRun
from tests.browser.conftest import logged_in_page
from tests.browser.test_review_keyboard import current_item, press_and_wait_next
from tests.factories import CompletionFactory, MembershipFactory, ProjectFactory, PromptFactory, UserFactory
from tests.tiny import save_tiny_model
from training.models import TrainingRun

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

QUESTIONS = [
    ("What is the capital of France?", "Paris is the capital of France.", "Lyon, probably."),
    ("Name a primary colour.", "Red is a primary colour.", "Green, or maybe purple."),
    ("What is 2 + 2?", "2 + 2 is 4.", "It is 5."),
    ("Which planet is the largest?", "Jupiter is the largest planet.", "The Moon."),
    ("What do bees make?", "Bees make honey.", "Bees make milk."),
    ("How many legs has a spider?", "A spider has eight legs.", "Six legs."),
]


@pytest.fixture(scope="module")
def tiny_teacher_dir(tmp_path_factory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("loop-teacher"), layers=4, hidden=64)


def make_loop_project(teacher_dir: Path):
    project = ProjectFactory(name="Loop demo", system_prompt="You are a concise assistant.",
                             guidelines="Prefer the **correct** answer.")
    curator = UserFactory()
    MembershipFactory(project=project, user=curator, role="curator")
    Teacher.objects.create(project=project, name="tiny-teacher", kind=Teacher.Kind.LOCAL, model_path=str(teacher_dir),
                           terms_of_use="Test model: outputs free to use.")
    for question, good, bad in QUESTIONS:
        prompt = PromptFactory(project=project, text=question, messages=[{"role": "user", "content": question}])
        CompletionFactory(prompt=prompt, text=bad, source="tiny-teacher")
        CompletionFactory(prompt=prompt, text=good, source="tiny-teacher")
    return project, curator


def test_the_whole_loop(chromium, live_server, celery_worker, tiny_teacher_dir, screenshot_dir):
    project, curator = make_loop_project(tiny_teacher_dir)
    page = logged_in_page(chromium, live_server, curator)
    page.on("dialog", lambda dialog: dialog.accept())  # hx-confirm and the Revert confirmation
    base = live_server.url
    shot = lambda name: page.screenshot(path=str(screenshot_dir / f"loop-{name}.png"), full_page=True)  # noqa: E731

    # Review with keys: B (the correct answer) is the best, approve.
    page.goto(f"{base}/p/{project.slug}/queue/")
    assert "You are a concise assistant." in page.locator(".export-system").inner_text()  # the export's system prompt
    shot("01-review")
    for _ in QUESTIONS:
        assert current_item(page)
        page.keyboard.press("j")
        page.keyboard.press("b")
        press_and_wait_next(page, "a")
    page.wait_for_selector("text=Nothing left for you")

    # Freeze v1 from the dashboard.
    page.goto(f"{base}/p/{project.slug}/")
    page.fill("input[name=heldout_fraction]", "0.34")
    page.click("button:has-text('Freeze a version')")
    page.wait_for_selector("text=Froze v1")
    shot("02-dashboard-frozen")

    # Browse: reject one item in bulk; the table shows the new status without a reload.
    page.goto(f"{base}/p/{project.slug}/browse/")
    page.fill("input[name=q]", "spider")
    page.keyboard.press("Enter")
    page.wait_for_function("() => document.querySelectorAll('table.browse tbody tr').length === 1")
    page.select_option("select[name=action]", "reject")
    page.click("button:has-text('Review the count')")
    page.click("button:has-text('Yes, reject 1 item')")
    page.wait_for_selector("table.browse .badge.status-rejected")
    shot("03-browse-after-bulk")

    # Freeze v2 and open its page: rows, split, downloads, card, decontamination, diff against v1.
    page.goto(f"{base}/p/{project.slug}/")
    page.fill("input[name=heldout_fraction]", "0.34")
    page.click("button:has-text('Freeze a version')")
    page.wait_for_selector("text=Froze v2")
    page.click("#versions a:has-text('v2')")
    page.wait_for_url(f"{base}/p/{project.slug}/versions/2/")
    v2 = DatasetVersion.objects.get(project=project, number=2)
    assert page.locator("#rows tbody tr").count() == v2.row_count == 5
    assert "Test model: outputs free to use." in page.locator("#card").inner_text()
    page.fill("#rows-card input[name=q]", "Jupiter")
    page.wait_for_function("() => document.querySelectorAll('#rows tbody tr').length === 1")
    page.select_option("#diff-card select[name=against]", "1")
    page.click("button:has-text('Show the diff')")
    page.wait_for_selector("#diff .removed")
    assert "−1 removed" in page.locator("#diff").inner_text() and "spider" in page.locator("#diff").inner_text()
    shot("04-version-page")
    with page.expect_download() as download:
        page.click("#downloads a:has-text('sft · train')")
    lines = Path(download.value.path()).read_text().splitlines()
    assert len(lines) == v2.train_count and json.loads(lines[0])["messages"][0]["role"] == "system"

    # Train a tiny student: the form shows only the chosen method's fields.
    page.click("a:has-text('Train a student on v2')")
    page.wait_for_selector("#launch form")
    page.wait_for_load_state()  # the form is in the DOM before app.js has hidden the other methods' fields
    assert not page.locator("label:has(input[name=kd_alpha])").is_visible()
    assert not page.locator("label:has(input[name=lora_r])").is_visible()
    page.select_option("select[name=method]", "kd")
    assert page.locator("label:has(input[name=kd_alpha])").is_visible()
    page.select_option("select[name=method]", "sft")
    shot("05-train-form")
    for name, value in {"name": "tiny-sft", "keep_layers": "2", "max_steps": "6", "learning_rate": "0.003",
                        "per_device_batch_size": "2", "logging_steps": "1", "save_steps": "10"}.items():
        page.fill(f"#launch [name={name}]", value)
    page.click("button:has-text('Start training')")
    page.wait_for_url(f"{base}/training/runs/*/")
    page.wait_for_selector("#live .badge:has-text('Succeeded')", timeout=240_000)
    run = TrainingRun.objects.get(name="tiny-sft")
    assert run.status == "succeeded", run.error
    stats, lr = page.locator(".train-stats").inner_text(), run.metrics["learning_rate"]
    assert rate(lr) in stats and str(lr) not in stats  # 2.86e-4, not 0.000286474508437579
    shot("06-training-run")

    # Evaluate from the run page: student vs teacher on the held-out split; the page reloads with the report.
    page.click("button:has-text('Evaluate against the teacher')")
    page.wait_for_url(f"{base}/evaluation/runs/*/")
    evaluation = EvaluationRun.objects.latest("id")
    assert evaluation.dataset_version_id == v2.pk and len(evaluation.models_spec) == 2
    page.wait_for_selector("h2:has-text('Scores')", timeout=300_000)
    evaluation.refresh_from_db()
    assert evaluation.status == "succeeded", evaluation.error
    shot("07-evaluation-report")

    # The cost page now knows both models' measured speed.
    page.goto(f"{base}/p/{project.slug}/cost/")
    assert page.locator("#cost-inference tbody tr").count() == 2
    assert "tiny-sft" in page.locator("#cost-training").inner_text()
    shot("08-cost")

    # The version page lists the run and the evaluation that used it.
    page.goto(f"{base}/p/{project.slug}/versions/2/")
    lineage = page.locator("#lineage").inner_text()
    assert "tiny-sft" in lineage and "evaluation" in lineage
    shot("09-version-lineage")
