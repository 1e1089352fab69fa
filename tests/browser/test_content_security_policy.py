"""The pages work under the Content-Security-Policy, and load nothing from another origin (API docs included)."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from tests.browser.conftest import logged_in_page
from tests.factories import CompletionFactory, MembershipFactory, ProjectFactory, PromptFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def watch(page, origin: str) -> tuple[list[str], list[str]]:
    """Console messages about the policy, and answers that came from another server."""
    violations, foreign = [], []
    page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
    page.on("response", lambda r: foreign.append(r.url)
            if urlsplit(r.url).netloc and urlsplit(r.url).netloc != origin else None)
    return violations, foreign


def test_htmx_pages_and_api_docs_work_under_the_policy(chromium, live_server):
    project = ProjectFactory(guidelines="Be kind. ![pixel](https://tracker.example/p.gif)")
    for i in range(3):
        CompletionFactory(prompt=PromptFactory(project=project, text=f"Q{i}"), text="![x](https://tracker.example/x.png)")
    curator = MembershipFactory(project=project, role="curator").user
    page = logged_in_page(chromium, live_server, curator)
    violations, foreign = watch(page, urlsplit(live_server.url).netloc)

    # Browse: the bulk form is an htmx POST; its confirmation's Cancel is a delegated click (no inline handler).
    page.goto(f"{live_server.url}/p/{project.slug}/browse/")
    page.get_by_role("button", name="Review the count…").click()
    confirm = page.locator("#bulk-result .confirm")
    confirm.wait_for()
    page.get_by_role("button", name="Cancel").click()
    confirm.wait_for(state="detached")

    # The review page runs its keyboard script from a static file; teacher images stay links.
    page.goto(f"{live_server.url}/p/{project.slug}/queue/")
    page.wait_for_selector(".ws[data-ready='1']")
    assert page.locator("img[src*='tracker.example']").count() == 0

    page.goto(f"{live_server.url}/api/docs/")
    page.locator(".swagger-ui .info .title").wait_for()
    assert "Distillery API" in page.locator(".swagger-ui .info .title").inner_text()
    assert violations == []

    # Redoc's sidebar links a logo on its vendor's CDN: the policy blocks it, so nothing leaves the server.
    page.goto(f"{live_server.url}/api/redoc/")
    page.get_by_text("Curate teacher outputs, freeze datasets").first.wait_for()
    assert all("cdn.redoc.ly" in v for v in violations) and foreign == []


def test_the_admin_works_under_the_policy(chromium, live_server):
    project = ProjectFactory()
    admin = UserFactory(is_staff=True, is_superuser=True)
    page = logged_in_page(chromium, live_server, admin)
    violations, foreign = watch(page, urlsplit(live_server.url).netloc)
    for url in ("/admin/", f"/admin/curation/project/{project.pk}/change/", "/admin/curation/serverresource/add/",
                "/admin/curation/prompt/"):
        page.goto(f"{live_server.url}{url}")
        page.locator("#content").wait_for()
    page.goto(f"{live_server.url}/admin/curation/project/add/")
    page.locator("#id_name").press_sequentially("Made in the admin")
    assert page.input_value("#id_slug") == "made-in-the-admin"  # the admin's prepopulate script ran
    assert violations == [] and foreign == []
