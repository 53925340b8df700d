"""Model cards: Markdown rendered to HTML and sanitised, since publishers write them."""

import markdown as markdown_lib
import nh3
from django.utils.safestring import SafeString, mark_safe


def render_markdown(text: str) -> SafeString:
    html = markdown_lib.markdown(text, extensions=["fenced_code", "tables"], output_format="html")
    return mark_safe(nh3.clean(html))  # noqa: S308 -- nh3 has removed scripts, handlers and unsafe URLs
