# The README's two commands: `make demo` and `make test`.
# Both install what is missing on a Debian 12 machine (as root), then run.
VENV ?= .venv
PY := $(VENV)/bin/python
DEB_PKGS := mosquitto influxdb chromium systemd victoria-metrics gpsd
STAMP := $(VENV)/.installed

.PHONY: demo test setup deb lint npm vendor-js

deb:
	@missing=""; for p in $(DEB_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi
	@# the packaged services are not used: PulseGate starts its own on free ports
	@-systemctl disable --now mosquitto influxdb victoria-metrics >/dev/null 2>&1 || true

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[all]'
	touch $(STAMP)

setup: deb $(STAMP)

# npm folders with a package-lock.json: the FHIR server the tests start (Medplum's router, Node >= 20.19)
NPM_DIRS := tests/fhir_server vendor/npm
npm:
	@if command -v npm >/dev/null 2>&1; then \
	  for d in $(NPM_DIRS); do npm ci --prefix $$d --no-audit --no-fund --silent || exit 1; done; \
	else echo "npm not found: the FHIR tests will be skipped"; fi

# the chart library the cloud dashboard serves itself (committed; tests/test_dashboard_v2.py checks it is npm's)
UPLOT := vendor/npm/node_modules/uplot
vendor-js: npm
	cp $(UPLOT)/dist/uPlot.iife.min.js $(UPLOT)/dist/uPlot.min.css $(UPLOT)/LICENSE cloud/dashboard/vendor/uplot/

demo: setup
	$(VENV)/bin/pulsegate demo

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

test: setup lint npm
	PULSEGATE_ARTIFACTS=$(CURDIR)/tests/artifacts $(PY) -m pytest -q -p no:cacheprovider
