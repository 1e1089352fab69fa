"""Template helpers of the curation pages."""

from __future__ import annotations

from django import template
from django.utils.safestring import SafeString

from curation.diffing import word_diff_html
from curation.markdown import render_markdown

register = template.Library()


@register.filter
def markdown(text: str) -> SafeString:
    return render_markdown(text or "")


@register.simple_tag
def diff(before: str, after: str) -> SafeString:
    return word_diff_html(before or "", after or "")


@register.filter
def seconds(value: float | None) -> str:
    if value is None:
        return "–"
    value = float(value)
    return f"{value:.0f} s" if value < 120 else f"{value / 60:.1f} min"


@register.filter
def get(mapping: dict, key):
    return mapping.get(key) if mapping else None
