"""Small, strict readers of environment variables for settings.py.

Every reader raises ImproperlyConfigured naming the variable when its value is
unusable, so that a process with a bad configuration refuses to start instead of
failing on the first request. A variable ``NAME_FILE`` (the path of a file holding
the value, as Docker and systemd secrets provide) is honoured by ``env_secret``.
"""

from __future__ import annotations

import os
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str | None = None) -> str:
    value = os.environ.get(name)
    if value is None:
        if default is None:
            raise ImproperlyConfigured(f"{name} must be set")
        return default
    return value


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    lowered = raw.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {raw!r}")


def env_int(name: str, default: int, *, minimum: int | None = None, maximum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None:
        value = default
    else:
        try:
            value = int(raw)
        except ValueError:
            raise ImproperlyConfigured(f"{name} must be an integer, not {raw!r}") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, not {value}")
    if maximum is not None and value > maximum:
        raise ImproperlyConfigured(f"{name} must be at most {maximum}, not {value}")
    return value


def env_float(name: str, default: float, *, minimum: float, maximum: float) -> float:
    """A finite number within [minimum, maximum] (e.g. a sampling rate from 0 to 1)."""
    raw = os.environ.get(name)
    if raw is None:
        value = default
    else:
        try:
            value = float(raw)
        except ValueError:
            raise ImproperlyConfigured(f"{name} must be a number, not {raw!r}") from None
    # NaN fails both comparisons, so it is refused too.
    if not minimum <= value <= maximum:
        raise ImproperlyConfigured(f"{name} must be from {minimum} to {maximum}, not {raw!r}")
    return value


def env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = os.environ.get(name, default)
    if value not in choices:
        raise ImproperlyConfigured(f"{name} must be one of {', '.join(choices)}, not {value!r}")
    return value


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def env_secret(name: str, default: str | None = None) -> str:
    """The value of NAME, or the contents of the file named by NAME_FILE."""
    file_name = os.environ.get(f"{name}_FILE")
    if file_name:
        try:
            return Path(file_name).read_text().strip()
        except OSError as error:
            raise ImproperlyConfigured(f"{name}_FILE points at an unreadable file: {error}") from None
    return env_str(name, default)


def env_url(name: str, default: str | None, schemes: tuple[str, ...]) -> str:
    """A URL with one of ``schemes``; like a secret, it may come from NAME_FILE (URLs carry passwords)."""
    value = env_secret(name, default)
    scheme = value.split("://", 1)[0] if "://" in value else ""
    if scheme not in schemes:
        raise ImproperlyConfigured(
            f"{name} must be a URL starting with one of {', '.join(schemes)}: {value!r}"
        )
    return value


def env_int_set(name: str, default: str, *, minimum: int, maximum: int) -> tuple[int, ...]:
    """Comma-separated distinct integers within bounds, largest first; empty means none."""
    raw = os.environ.get(name, default)
    values = []
    for item in raw.split(","):
        item = item.strip()
        if not item and not raw.strip():
            continue
        try:
            value = int(item)
        except ValueError:
            raise ImproperlyConfigured(f"{name} must be comma-separated integers, not {raw!r}") from None
        if not minimum <= value <= maximum:
            raise ImproperlyConfigured(f"{name}: each value must be {minimum} to {maximum}, not {value}")
        if value in values:
            raise ImproperlyConfigured(f"{name} lists {value} twice")
        values.append(value)
    return tuple(sorted(values, reverse=True))
