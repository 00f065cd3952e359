# pyctrd developer entry points. Run as root on Debian 12.
#   make run    set up the machine and run the daemon in the foreground
#   make test   lint, type-check (mypy, configured in pyproject.toml) and run the test suite
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv

# `make deb` (and the test that builds and installs the package) needs these (defined
# before APT_PACKAGES, a := variable expanded where it stands).
DEB_BUILD_PACKAGES := debhelper dh-virtualenv lintian fakeroot dpkg-dev \
	python3-venv python3-dev

# Debian packages the daemon, the test suite and the README's examples need
# (systemd for busctl, libglib2.0-bin for gdbus; uidmap, passt and slirp4netns
# for a user's own rootless daemon). python3-venv and python3-dev
# are added by `deps` only when $(PYTHON) lacks venv/ensurepip or Python.h
# (dbus-python, needed by python-dbusmock, builds from source).
# python3-pip/-setuptools/-wheel: `make install` builds and installs offline
# with Debian's python3 (tests/test_install.py runs it).
APT_PACKAGES := dbus runc crun conmon busybox-static polkitd systemd gettext locales \
	libdbus-1-dev libglib2.0-dev libglib2.0-dev-bin libglib2.0-bin pkg-config gcc tar \
	zstd iproute2 iptables uidmap passt slirp4netns \
	skopeo umoci python3-pip python3-setuptools python3-wheel netavark aardvark-dns \
	docker-registry apache2-utils openssl \
	cockpit-ws cockpit-bridge chromium chromium-driver \
	$(DEB_BUILD_PACKAGES)

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

# Reinstall only when pyproject.toml changed since the last install. Editable as a
# plain path entry (compat): setuptools' default finder hook costs every pyctr
# and pyctrd start ~8 ms of imports (pathlib, urllib) before main() runs.
$(VENV)/.installed: pyproject.toml | deps $(VENV)/bin/python
	$(VENV)/bin/pip install -q -e '.[test]' --config-settings editable_mode=compat
	touch $@

# make run [ARGS="pyctrd flags"]
run: deps venv
	scripts/run-daemon $(ARGS)

test: deps venv
	$(VENV)/bin/ruff check pyctrd tests
	$(VENV)/bin/mypy pyctrd
	$(VENV)/bin/pytest -q

lint: venv
	$(VENV)/bin/ruff check pyctrd tests scripts/make-busybox-rootfs packaging/python-package
	@if command -v shellcheck >/dev/null; then \
		shellcheck .ci/run scripts/system-bus scripts/run-daemon; \
	else \
		echo "lint: shellcheck not installed, shell scripts not checked"; \
	fi

# make bench [SMOKE=1] [WITH_PODMAN=1]: the benchmarks of bench/README.md, each
# appending its table to bench/RESULTS.md. SMOKE=1: small counts, nothing written
# (about a minute). WITH_PODMAN=1: apt-get install podman for its columns.
BENCH_OUT := $(if $(SMOKE),,--output bench/RESULTS.md)
BENCH_PODMAN := $(if $(WITH_PODMAN),--with-podman)

.PHONY: bench
bench: venv
	$(VENV)/bin/python bench/lifecycle.py $(if $(SMOKE),-n 3 --no-crun-unshare,-n 30) \
		$(BENCH_PODMAN) $(BENCH_OUT)
	$(VENV)/bin/python bench/events.py $(if $(SMOKE),-n 3,-n 30) $(BENCH_OUT)
	$(VENV)/bin/python bench/throughput.py $(if $(SMOKE),-l 10 -c 5) $(BENCH_OUT)
	$(VENV)/bin/python bench/scale.py $(if $(SMOKE),--counts 100 --podman-max 0) \
		$(BENCH_PODMAN) $(BENCH_OUT)
	$(VENV)/bin/python bench/import.py $(if $(SMOKE),-n 1 --mb 10 --files 500) $(BENCH_OUT)
	$(VENV)/bin/python bench/exec.py $(if $(SMOKE),-n 3,-n 50) $(BENCH_PODMAN) $(BENCH_OUT)
	$(VENV)/bin/python bench/storm.py $(if $(SMOKE),-n 20,-n 500) $(BENCH_OUT)
	$(VENV)/bin/python bench/listing.py $(if $(SMOKE),--counts 100,--counts 1000,10000,100000) \
		$(BENCH_OUT)
	$(VENV)/bin/python bench/cli.py $(if $(SMOKE),-n 2,-n 30) $(BENCH_OUT)
	$(VENV)/bin/python bench/network.py $(if $(SMOKE),-n 2,-n 20) $(BENCH_PODMAN) $(BENCH_OUT)
	$(VENV)/bin/python bench/rootless.py $(if $(SMOKE),-n 2,-n 30) $(BENCH_PODMAN) $(BENCH_OUT)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

# --------------------------------------------------------------------------
# make install / make uninstall [DESTDIR=/tmp/stage] [PREFIX=/usr/local|/usr]
#
# The Python package goes where $(INSTALL_PYTHON) looks for PREFIX's packages,
# and its scripts to $(PREFIX)/bin (packaging/python-package; no network, no
# dependencies: install dbus-fast>=5.2,<5.3 and pyxdg for that interpreter).
# Files whose directory the system fixes, whatever PREFIX: the bus policy
# (dbus-daemon reads /usr/share/dbus-1/system.d and /etc/dbus-1/system.d), the
# polkit actions (polkitd reads /usr/share/polkit-1/actions) and the config
# (the daemon reads /etc/pyctrd/pyctrd.toml). Everything else follows PREFIX:
# dbus-daemon, systemd and systemd-tmpfiles search both /usr and /usr/local
# (share/dbus-1/system-services, share/dbus-1/services for session buses,
# lib/systemd/{system,user}, lib/tmpfiles.d).
PREFIX ?= /usr/local
DESTDIR ?=
INSTALL_PYTHON ?= /usr/bin/python3
BINDIR := $(PREFIX)/bin
DOCDIR := $(PREFIX)/share/doc/pyctrd
DBUS_POLICY_DIR := /usr/share/dbus-1/system.d
DBUS_SERVICE_DIR := $(PREFIX)/share/dbus-1/system-services
DBUS_SESSION_SERVICE_DIR := $(PREFIX)/share/dbus-1/services
DBUS_INTERFACE_DIR := $(PREFIX)/share/dbus-1/interfaces
POLKIT_ACTION_DIR := /usr/share/polkit-1/actions
SYSTEMD_SYSTEM_DIR := $(PREFIX)/lib/systemd/system
SYSTEMD_USER_DIR := $(PREFIX)/lib/systemd/user
TMPFILES_DIR := $(PREFIX)/lib/tmpfiles.d
CONFIG_DIR := /etc/pyctrd
# Cockpit finds pages in $XDG_DATA_DIRS/cockpit (/usr/local/share and /usr/share).
COCKPIT_DIR := $(PREFIX)/share/cockpit/pyctrd
COCKPIT_FILES := manifest.json index.html pyctrd.js pyctrd.css
INTERFACES := org.pyctrd1.Manager.xml org.pyctrd1.Container.xml org.pyctrd1.Image.xml \
	org.pyctrd1.ExecSession.xml org.pyctrd1.Job.xml org.pyctrd1.Network.xml \
	org.pyctrd1.Volume.xml
VARLINK_DIR := /usr/share/varlink
VARLINK_INTERFACES := io.pyctrd.Container.varlink io.pyctrd.Image.varlink \
	io.pyctrd.Events.varlink io.pyctrd.Job.varlink io.pyctrd.Network.varlink \
	io.pyctrd.Volume.varlink
# pyctr's man page (generated from its parser) and bash completion; bash-completion
# and man search both /usr and /usr/local.
MAN1_DIR := $(PREFIX)/share/man/man1
MAN8_DIR := $(PREFIX)/share/man/man8
# polkit looks the policy's strings up in the pyctrd gettext domain (po/*.po).
LOCALE_DIR := $(PREFIX)/share/locale
LINGUAS := $(shell cat po/LINGUAS)
BASH_COMPLETION_DIR := $(PREFIX)/share/bash-completion/completions
SUBST := sed -e 's|@bindir@|$(BINDIR)|g' -e 's|@docdir@|$(DOCDIR)|g'

.PHONY: install install-python install-data uninstall deb

# install-python puts the package in $(INSTALL_PYTHON)'s site-packages; the
# Debian package (make deb) ships it in a private venv and uses install-data.
install: install-python install-data

install-python:
	$(INSTALL_PYTHON) packaging/python-package install "$(DESTDIR)" "$(PREFIX)" .

install-data:
	install -D -m 0644 dbus/org.pyctrd1.conf "$(DESTDIR)$(DBUS_POLICY_DIR)/org.pyctrd1.conf"
	install -d "$(DESTDIR)$(DBUS_SERVICE_DIR)" "$(DESTDIR)$(DBUS_SESSION_SERVICE_DIR)" \
		"$(DESTDIR)$(SYSTEMD_SYSTEM_DIR)" "$(DESTDIR)$(SYSTEMD_USER_DIR)"
	$(SUBST) dbus/org.pyctrd1.service.in > "$(DESTDIR)$(DBUS_SERVICE_DIR)/org.pyctrd1.service"
	$(SUBST) dbus/org.pyctrd1.session.service.in \
		> "$(DESTDIR)$(DBUS_SESSION_SERVICE_DIR)/org.pyctrd1.service"
	$(SUBST) packaging/pyctrd.service.in > "$(DESTDIR)$(SYSTEMD_SYSTEM_DIR)/pyctrd.service"
	$(SUBST) packaging/pyctrd-user.service.in > "$(DESTDIR)$(SYSTEMD_USER_DIR)/pyctrd.service"
	chmod 0644 "$(DESTDIR)$(DBUS_SERVICE_DIR)/org.pyctrd1.service" \
		"$(DESTDIR)$(DBUS_SESSION_SERVICE_DIR)/org.pyctrd1.service" \
		"$(DESTDIR)$(SYSTEMD_SYSTEM_DIR)/pyctrd.service" \
		"$(DESTDIR)$(SYSTEMD_USER_DIR)/pyctrd.service"
	install -d "$(DESTDIR)$(DBUS_INTERFACE_DIR)"
	install -m 0644 $(addprefix dbus/,$(INTERFACES)) "$(DESTDIR)$(DBUS_INTERFACE_DIR)/"
	@# Varlink definitions (also in the Python package): beside others' where that dir exists.
	if [ -d "$(DESTDIR)$(VARLINK_DIR)" ]; then \
		install -m 0644 $(addprefix varlink/,$(VARLINK_INTERFACES)) "$(DESTDIR)$(VARLINK_DIR)/"; fi
	install -D -m 0644 policy/org.pyctrd1.policy "$(DESTDIR)$(POLKIT_ACTION_DIR)/org.pyctrd1.policy"
	for lang in $(LINGUAS); do \
		install -d "$(DESTDIR)$(LOCALE_DIR)/$$lang/LC_MESSAGES" && \
		msgfmt -o "$(DESTDIR)$(LOCALE_DIR)/$$lang/LC_MESSAGES/pyctrd.mo" "po/$$lang.po" || exit 1; \
	done
	install -D -m 0644 policy/50-pyctrd.rules.example "$(DESTDIR)$(DOCDIR)/50-pyctrd.rules.example"
	install -m 0644 README.md "$(DESTDIR)$(DOCDIR)/README.md"
	install -D -m 0644 packaging/pyctrd.conf "$(DESTDIR)$(TMPFILES_DIR)/pyctrd.conf"
	install -d "$(DESTDIR)$(MAN1_DIR)"
	$(INSTALL_PYTHON) scripts/make-manpage "$(DESTDIR)$(MAN1_DIR)/pyctr.1"
	install -D -m 0644 packaging/pyctrd.8 "$(DESTDIR)$(MAN8_DIR)/pyctrd.8"
	chmod 0644 "$(DESTDIR)$(MAN1_DIR)/pyctr.1"
	install -D -m 0644 completion/pyctr.bash "$(DESTDIR)$(BASH_COMPLETION_DIR)/pyctr"
	install -d "$(DESTDIR)$(COCKPIT_DIR)"
	install -m 0644 $(addprefix cockpit/,$(COCKPIT_FILES)) "$(DESTDIR)$(COCKPIT_DIR)/"
	@# An admin's edited config is never overwritten.
	@if [ -e "$(DESTDIR)$(CONFIG_DIR)/pyctrd.toml" ]; then \
		echo "install: keeping the existing $(DESTDIR)$(CONFIG_DIR)/pyctrd.toml"; \
	else \
		install -D -m 0644 etc/pyctrd.toml "$(DESTDIR)$(CONFIG_DIR)/pyctrd.toml"; \
	fi

uninstall:
	$(INSTALL_PYTHON) packaging/python-package uninstall "$(DESTDIR)" "$(PREFIX)"
	rm -f "$(DESTDIR)$(DBUS_POLICY_DIR)/org.pyctrd1.conf" \
		"$(DESTDIR)$(DBUS_SERVICE_DIR)/org.pyctrd1.service" \
		"$(DESTDIR)$(DBUS_SESSION_SERVICE_DIR)/org.pyctrd1.service" \
		$(addprefix "$(DESTDIR)$(DBUS_INTERFACE_DIR)/,$(addsuffix ",$(INTERFACES))) \
		"$(DESTDIR)$(POLKIT_ACTION_DIR)/org.pyctrd1.policy" \
		"$(DESTDIR)$(DOCDIR)/50-pyctrd.rules.example" "$(DESTDIR)$(DOCDIR)/README.md" \
		"$(DESTDIR)$(SYSTEMD_SYSTEM_DIR)/pyctrd.service" \
		"$(DESTDIR)$(SYSTEMD_USER_DIR)/pyctrd.service" \
		"$(DESTDIR)$(TMPFILES_DIR)/pyctrd.conf" \
		"$(DESTDIR)$(MAN1_DIR)/pyctr.1" "$(DESTDIR)$(MAN8_DIR)/pyctrd.8" \
		"$(DESTDIR)$(BASH_COMPLETION_DIR)/pyctr"
	rm -f $(addprefix "$(DESTDIR)$(VARLINK_DIR)/,$(addsuffix ",$(VARLINK_INTERFACES)))
	rm -f $(foreach lang,$(LINGUAS),"$(DESTDIR)$(LOCALE_DIR)/$(lang)/LC_MESSAGES/pyctrd.mo")
	rm -f $(addprefix "$(DESTDIR)$(COCKPIT_DIR)/,$(addsuffix ",$(COCKPIT_FILES)))
	-rmdir "$(DESTDIR)$(COCKPIT_DIR)" 2>/dev/null
	-rmdir "$(DESTDIR)$(DOCDIR)" 2>/dev/null
	@# The config goes only if unchanged; an edited one is the admin's.
	@if cmp -s etc/pyctrd.toml "$(DESTDIR)$(CONFIG_DIR)/pyctrd.toml"; then \
		rm -f "$(DESTDIR)$(CONFIG_DIR)/pyctrd.toml"; \
		rmdir "$(DESTDIR)$(CONFIG_DIR)" 2>/dev/null || true; \
	elif [ -e "$(DESTDIR)$(CONFIG_DIR)/pyctrd.toml" ]; then \
		echo "uninstall: keeping $(DESTDIR)$(CONFIG_DIR)/pyctrd.toml (changed since install)"; \
	fi

# --------------------------------------------------------------------------
# make deb: build/deb/pyctrd_<version>_<arch>.deb, built with debhelper and
# dh-virtualenv from a copy of the tracked (and new, not ignored) files, so
# the work tree gets no build products. Install it with
#   apt install ./build/deb/pyctrd_*.deb
DEB_DIR := build/deb

deb: deps
	rm -rf "$(DEB_DIR)"
	mkdir -p "$(DEB_DIR)/pyctrd"
	git ls-files -z --cached --others --exclude-standard | \
		xargs -0 sh -c 'for f; do [ -e "$$f" ] && printf "%s\0" "$$f"; done' - | \
		xargs -0 cp -a --parents -t "$(DEB_DIR)/pyctrd"
	cd "$(DEB_DIR)/pyctrd" && dpkg-buildpackage -us -uc -b
	lintian --fail-on error "$(DEB_DIR)"/pyctrd_*.deb
