"""The report and the per-example view in a real browser: select regressions, send them back."""

from __future__ import annotations

import pytest

from curation.models import Flag
from tests.browser.conftest import logged_in_page
from tests.evaluation.helpers import finished_run, make_heldout_version, sft_records

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_curator_reads_the_report_and_sends_regressions_back(chromium, live_server, project, curator,
                                                              screenshot_dir):
    run = finished_run(project, *make_heldout_version(project, sft_records()))
    page = logged_in_page(chromium, live_server, curator)
    page.goto(f"{live_server.url}/evaluation/runs/{run.pk}/")
    assert page.locator("svg.chart rect").count() == 3
    page.screenshot(path=str(screenshot_dir / "evaluation-report.png"), full_page=True)

    page.click("text=Per-example view")
    items = page.locator("article[id^=item-]")
    assert [items.nth(i).get_attribute("id") for i in range(items.count())] == ["item-5", "item-3", "item-4"]
    page.select_option("select[name=sort]", "item")  # htmx swaps the list in place
    page.wait_for_function("() => document.querySelector('article[id^=item-]').id === 'item-3'")  # a function: the CSP forbids eval
    page.check("#item-4 input[type=checkbox]")
    page.check("#item-5 input[type=checkbox]")
    page.click("text=Send selected back to curation")
    page.wait_for_selector("text=2 item(s) went back to the review queue")
    assert page.locator(".badge:has-text('sent back')").count() == 2
    page.screenshot(path=str(screenshot_dir / "evaluation-examples.png"), full_page=True)
    assert Flag.objects.filter(kind="eval-regression").count() == 2
    page.goto(f"{live_server.url}/evaluation/p/{project.slug}/")
    assert page.locator("svg.chart circle").count() == 1 and page.locator("form button.primary").count() == 1
    page.screenshot(path=str(screenshot_dir / "evaluation-runs.png"), full_page=True)
