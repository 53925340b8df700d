import shlex

from django import template
from django.template.defaultfilters import filesizeformat

register = template.Library()


@register.filter
def shell_quote(value) -> str:
    """Quote a value for a POSIX shell script (paths are publisher-chosen)."""
    return shlex.quote(str(value))


@register.filter
def exact_size(size: int) -> str:
    return f"{filesizeformat(size)} ({size:,} bytes)"
