"""Markdown for model and user text: markdown-it-py renders, nh3 sanitizes.

markdown-it runs with raw HTML off, so a ``<script>`` in a completion comes out as text; nh3 then removes
anything that could still run (event-handler attributes, ``javascript:`` URLs) in case a renderer option or
plugin ever lets HTML through. Defence in depth: neither step is trusted alone.
"""

from __future__ import annotations

from functools import lru_cache

import nh3
from django.utils.safestring import SafeString, mark_safe
from markdown_it import MarkdownIt

# Images are off: an image in teacher text would load a remote URL in every reviewer's browser (a tracking
# pixel). ``![alt](url)`` comes out as "!" and a plain link, which loads nothing until clicked.
_md = (MarkdownIt("commonmark", {"html": False, "linkify": False, "breaks": True})
       .enable(["table", "strikethrough"]).disable("image"))

ALLOWED_TAGS = {
    "p", "br", "hr", "strong", "em", "del", "s", "code", "pre", "blockquote", "ul", "ol", "li",
    "h1", "h2", "h3", "h4", "h5", "h6", "a", "table", "thead", "tbody", "tr", "th", "td",
}
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "th": {"style"}, "td": {"style"}, "ol": {"start"}}
URL_SCHEMES = {"http", "https", "mailto"}


def sanitize_html(html: str) -> str:
    return nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=URL_SCHEMES,
        link_rel="noopener noreferrer nofollow",
        filter_style_properties={"text-align"},
    )


@lru_cache(maxsize=8192)
def render_markdown(text: str) -> SafeString:
    """Sanitized HTML for ``text``. Cached: the same guidelines and prompts are rendered on every page load."""
    return mark_safe(sanitize_html(_md.render(text or "")))  # noqa: S308 - sanitized by nh3 just above
