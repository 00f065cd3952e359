# pyctrd developer entry points. Run as root on Debian 12.
#   make run    set up the machine and run the daemon in the foreground
#   make test   lint and run the test suite
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv

# Debian packages the daemon, the test suite and the README's examples need
# (systemd for busctl, libglib2.0-bin for gdbus). python3-venv and python3-dev
# are added by `deps` only when $(PYTHON) lacks venv/ensurepip or Python.h
# (dbus-python, needed by python-dbusmock, builds from source).
APT_PACKAGES := dbus runc crun conmon busybox-static polkitd systemd \
	libdbus-1-dev libglib2.0-dev libglib2.0-bin pkg-config gcc tar zstd iproute2 \
	skopeo umoci

HAS_PYTHON_H := import os, sysconfig; \
	raise SystemExit(not os.path.isfile(sysconfig.get_paths()["include"] + "/Python.h"))

.PHONY: deps venv run test lint clean

deps:
	@pkgs="$(APT_PACKAGES)"; \
	$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || pkgs="$$pkgs python3-venv"; \
	$(PYTHON) -c '$(HAS_PYTHON_H)' 2>/dev/null || pkgs="$$pkgs python3-dev"; \
	missing=""; \
	for pkg in $$pkgs; do \
		status=$$(dpkg-query -W -f='$${Status}' "$$pkg" 2>/dev/null || true); \
		[ "$$status" = "install ok installed" ] || missing="$$missing $$pkg"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "deps: installing$$missing"; \
		apt-get update && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $$missing; \
	fi

venv: $(VENV)/.installed

$(VENV)/bin/python: | deps
	$(PYTHON) -m venv $(VENV)

# Reinstall only when pyproject.toml changed since the last install.
$(VENV)/.installed: pyproject.toml | deps $(VENV)/bin/python
	$(VENV)/bin/pip install -q -e '.[test]'
	touch $@

run: deps venv
	scripts/run-daemon

test: deps venv
	$(VENV)/bin/ruff check pyctrd tests
	$(VENV)/bin/pytest -q

lint: venv
	$(VENV)/bin/ruff check pyctrd tests scripts/make-busybox-rootfs
	@if command -v shellcheck >/dev/null; then \
		shellcheck .ci/run scripts/system-bus scripts/run-daemon; \
	else \
		echo "lint: shellcheck not installed, shell scripts not checked"; \
	fi

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
