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


@register.filter
def last_user(messages: list[dict]) -> str:
    """The last user turn of a row's prompt, for one-line listings."""
    return next((m.get("content", "") for m in reversed(messages or []) if m.get("role") == "user"), "")


@register.filter
def rate(value) -> str:
    """A learning rate or another small float as people write it: 6.82e-7, 2e-5, 0.003."""
    if value in (None, ""):
        return "–"
    try:
        value = float(value)
    except (TypeError, ValueError):
        return str(value)
    if value == 0:
        return "0"
    if 1e-3 <= abs(value) < 1e4:
        return f"{value:.3g}"
    mantissa, exponent = f"{value:.2e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"


@register.filter
def count_short(value) -> str:
    """A parameter or token count: 134.5M, 1.2B, 63,713 below ten thousand."""
    if value in (None, ""):
        return "–"
    try:
        value = float(value)
    except (TypeError, ValueError):
        return str(value)
    for threshold, unit, suffix in ((1e12, 1e12, "T"), (1e9, 1e9, "B"), (1e6, 1e6, "M"), (1e4, 1e3, "k")):
        if abs(value) >= threshold:
            return f"{value / unit:.1f}{suffix}".replace(".0" + suffix, suffix)
    return f"{value:,.0f}"


@register.simple_tag(takes_context=True)
def project_role(context, project) -> str | None:
    """The viewer's role in the project, for the project tabs on pages whose view did not put one in."""
    if context.get("role"):
        return context["role"]
    from curation.selectors.access import user_role

    return user_role(context["request"].user, project)


@register.filter
def reltime(value) -> SafeString:
    """A <time> that static/js/app.js keeps current ("started 3 minutes ago" stays true while the page is open)."""
    if not value:
        return "–"
    from django.contrib.humanize.templatetags.humanize import naturaltime
    from django.utils.html import format_html

    return format_html('<time class="rel" datetime="{}" title="{}">{}</time>', value.isoformat(),
                       value.strftime("%Y-%m-%d %H:%M:%S %Z"), naturaltime(value))


@register.filter
def flag_badges(flags, skip: str = "") -> list[dict]:
    """Flags grouped by kind, one badge each ("truncated ×2" for two truncated candidates, never "truncated
    truncated"); ``skip`` names kinds shown otherwise, comma-separated."""
    skipped = set(filter(None, skip.split(",")))
    grouped: dict[str, dict] = {}
    for flag in flags or []:
        if flag.kind in skipped:
            continue
        badge = grouped.setdefault(flag.kind, {"kind": flag.kind, "count": 0, "details": []})
        badge["count"] += 1
        if flag.detail and flag.detail not in badge["details"]:
            badge["details"].append(flag.detail)
    for badge in grouped.values():
        badge["detail"] = "; ".join(badge["details"])
    return list(grouped.values())
