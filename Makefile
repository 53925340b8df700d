# Gatehouse developer and CI entry points. Everything a fresh machine needs is installed from here.
#
# Lock files: requirements/*.in are compiled with pip-tools from a throwaway venv, e.g.
#   python3 -m venv /tmp/pip-tools && /tmp/pip-tools/bin/pip install pip-tools
#   PIPC="/tmp/pip-tools/bin/pip-compile --generate-hashes --no-emit-index-url --no-emit-find-links \
#         --allow-unsafe --strip-extras"
#   $PIPC -o requirements/base.txt requirements/base.in
#   $PIPC -o requirements/dev.txt requirements/dev.in   # dev.in is constrained by base.txt

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := test

PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: venv services chromium wrk nginx lint test smoke demo bench bench-downloads clean

venv: $(STAMP)

$(STAMP): requirements/dev.txt
	[ -x $(VENV)/bin/python ] || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --require-hashes -r requirements/dev.txt
	touch $@

services:
	@if ! pg_isready -q -h 127.0.0.1 -p 5432; then \
		echo "Starting PostgreSQL"; \
		$(SUDO) pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql) main start; \
	fi
	@if ! redis-cli -h 127.0.0.1 ping >/dev/null 2>&1; then \
		echo "Starting Redis"; \
		$(SUDO) mkdir -p /var/lib/redis /var/log/redis; \
		$(SUDO) redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
			--dir /var/lib/redis --logfile /var/log/redis/ci.log; \
	fi
	@for i in $$(seq 1 30); do \
		if pg_isready -q -h 127.0.0.1 -p 5432 && [ "$$(redis-cli -h 127.0.0.1 ping 2>/dev/null)" = PONG ]; then \
			exit 0; \
		fi; \
		sleep 1; \
	done; \
	echo "ERROR: PostgreSQL or Redis did not answer on 127.0.0.1 within 30 s" >&2; \
	pg_isready -h 127.0.0.1 -p 5432 >&2 || true; \
	redis-cli -h 127.0.0.1 ping >&2 || true; \
	exit 1

chromium:
	@if [ ! -x /usr/bin/chromium ]; then \
		$(SUDO) apt-get update; \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; \
	fi

wrk:
	@if ! command -v wrk >/dev/null; then \
		$(SUDO) apt-get update; \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y wrk; \
	fi

# Debian's nginx, for the smoke's reverse proxy (the smoke runs its own nginx with its own configuration).
# The package would start a system nginx on port 80: a policy-rc.d that says no is put in place for the
# installation when there is none, and on a systemd host the unit is disabled and stopped afterwards.
nginx:
	@if ! command -v nginx >/dev/null && [ ! -x /usr/sbin/nginx ]; then \
		blocker=/usr/sbin/policy-rc.d; added=; \
		if [ ! -e $$blocker ]; then \
			printf '#!/bin/sh\nexit 101\n' | $(SUDO) tee $$blocker >/dev/null; \
			$(SUDO) chmod 755 $$blocker; added=1; \
		fi; \
		status=0; \
		$(SUDO) apt-get update && \
			$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y nginx || status=$$?; \
		if [ -n "$$added" ]; then $(SUDO) rm -f $$blocker; fi; \
		if [ $$status -ne 0 ]; then exit $$status; fi; \
		if [ -d /run/systemd/system ]; then $(SUDO) systemctl disable --now nginx.service || true; fi; \
	fi

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: venv services chromium nginx
	$(MAKE) lint
	$(VENV)/bin/python -m pytest
	$(MAKE) smoke

# The deploy/ files for real: nginx, gunicorn, two Celery workers and beat on loopback, a journey through nginx.
smoke: venv services nginx
	$(VENV)/bin/python -m tests.smoke

demo: venv
	$(VENV)/bin/python -m portal.demo

bench: venv services  # tier opening with 10,000 watchers, in a throwaway database; then download URLs
	$(VENV)/bin/python bench/tier_opening.py
	$(MAKE) bench-downloads

bench-downloads: venv services wrk  # download-URL issuance under wrk next to a bare presigning view
	$(VENV)/bin/python bench/download_urls.py

clean:
	rm -rf var/
