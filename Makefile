# Two commands on a fresh machine with Python 3.11+: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8000

.PHONY: run test lint venv migrate demo clean

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

venv: $(VENV)/.installed

## make run: migrate, load demo data, then web + Celery worker + beat until Ctrl-C.
run: venv
	DEBUG=true $(PY) manage.py migrate --noinput
	DEBUG=true $(PY) manage.py seed_demo
	DEBUG=true $(PY) manage.py seed_demo_verification
	DEBUG=true $(PY) manage.py seed_demo_access
	DEBUG=true PUBLIC_BASE_URL=http://127.0.0.1:$(PORT) PYTHONUNBUFFERED=1 $(VENV)/bin/honcho -f Procfile.dev start -p $(PORT)

## make test: ruff, mypy, then the whole pytest suite.
test: lint
	$(VENV)/bin/pytest $(PYTEST_ARGS)

## make lint: ruff (lint and format) and mypy with django-stubs on the apps.
lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy accounts audit validation access config

clean:
	rm -rf var/ .venv/
