# Sourced by every deploy/bin/* script: go to the checkout's root and choose the Python interpreter.
#
# The root is found from this file's own location, so the scripts work from any directory, through a
# symlink, and under systemd or a container's init. The interpreter is GATEHOUSE_PYTHON if set (the container
# image sets it), else the checkout's .venv (what `make venv` builds), else python3 from PATH.

cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../.."

if [ -n "${GATEHOUSE_PYTHON:-}" ]; then
    python=$GATEHOUSE_PYTHON
elif [ -x .venv/bin/python ]; then
    python=$PWD/.venv/bin/python
else
    python=python3
fi

# Beat's schedule file and other local state; relative paths are from the checkout's root.
var_dir=${GATEHOUSE_VAR_DIR:-var}
