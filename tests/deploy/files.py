"""What the tests of deploy/ read: the files themselves, and the names settings.py reads from the environment.

The settings' names are taken from portal/settings.py's source (every ``env_*("NAME", ...)`` call), so a
variable a deploy file sets but the settings never read (a typo, a renamed setting) shows up as a failure
instead of being ignored at run time.
"""

from __future__ import annotations

import re
from pathlib import Path

REPO_DIR = Path(__file__).resolve().parents[2]
DEPLOY_DIR = REPO_DIR / "deploy"
BIN_DIR = DEPLOY_DIR / "bin"
TEMPLATE = DEPLOY_DIR / "nginx" / "gatehouse.conf.template"
SYSTEMD_DIR = DEPLOY_DIR / "systemd"
PROCESS_SCRIPTS = ("web", "worker", "beat", "release")

_SETTING_READ = re.compile(r"\benv_(\w+)\(\s*\"([A-Z][A-Z0-9_]*)\"")

# Read by the deploy files themselves (deploy/gunicorn.conf.py, deploy/lib/common.sh, deploy/bin/*) and
# documented in deploy/README.md, not by the Django settings.
DEPLOY_VARIABLES = frozenset(
    {
        "GUNICORN_BIND",
        "GUNICORN_TIMEOUT",
        "GUNICORN_CONTROL_SOCKET",
        "WEB_CONCURRENCY",
        "FORWARDED_ALLOW_IPS",
        "CELERY_CONCURRENCY",
        "CELERY_WORKER_NAME",
        "GATEHOUSE_PYTHON",
        "GATEHOUSE_VAR_DIR",
    }
)


def settings_variables() -> dict[str, str]:
    """Every variable portal/settings.py reads, with the reader (``secret``, ``int``, ``url``...)."""
    source = (REPO_DIR / "portal" / "settings.py").read_text()
    return {name: reader for reader, name in _SETTING_READ.findall(source)}


def secret_variables() -> set[str]:
    """The settings that also accept NAME_FILE (read with env_secret)."""
    return {name for name, reader in settings_variables().items() if reader == "secret"}


def check_variable(name: str) -> str | None:
    """None if ``name`` is a variable something in Gatehouse reads, else why not."""
    if name.endswith("_FILE"):
        base = name.removesuffix("_FILE")
        if base not in secret_variables():
            return f"{name}: settings.py reads no {name} ({base} is not read with env_secret)"
        return None
    if name in DEPLOY_VARIABLES or name in settings_variables():
        return None
    return f"{name}: neither settings.py nor a deploy file reads it"


def template_placeholders() -> set[str]:
    return set(re.findall(r"\$\{([A-Z0-9_]+)\}", TEMPLATE.read_text()))


def render_nginx_variables() -> list[str]:
    """The explicit variable list of deploy/bin/render-nginx (its ``variables=( ... )`` array)."""
    script = (BIN_DIR / "render-nginx").read_text()
    block = re.search(r"variables=\((.*?)\)", script, re.DOTALL)
    assert block, "deploy/bin/render-nginx has no variables=( ... ) list"
    return block.group(1).split()
