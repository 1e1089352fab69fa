"""Helpers shared by the review tests: items with candidates, and posting a review like the page does."""

from __future__ import annotations

from django.urls import reverse

from curation.models import Prompt
from tests.factories import CompletionFactory, PromptFactory


def make_item(project, *, candidates: int = 2, text: str | None = None, **completion_fields) -> Prompt:
    prompt = PromptFactory(project=project, **({"text": text} if text else {}))
    for _ in range(candidates):
        CompletionFactory(prompt=prompt, **completion_fields)
    return prompt


def make_items(project, n: int, **kwargs) -> list[Prompt]:
    return [make_item(project, **kwargs) for _ in range(n)]


def post_review(client, prompt: Prompt, *, decision: str = "approve", version: int = 0, chosen=None, ranking=(),
                edited_text: str = "", comment: str = "", htmx: bool = True):
    if chosen is None and decision == "approve":
        chosen = prompt.completions.order_by("id").first().pk
    data = {
        "decision": decision, "version": version, "chosen": chosen or "", "ranking": ",".join(map(str, ranking)),
        "edited_text": edited_text, "comment": comment, "seconds_spent": "4.5",
    }
    headers = {"HTTP_HX_REQUEST": "true"} if htmx else {}
    return client.post(reverse("curation:review_submit", args=[prompt.project.slug, prompt.pk]), data, **headers)
