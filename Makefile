# Two commands do all the set-up: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 7860
export FLASK_APP := wsgi

.PHONY: run test install dev ingest lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed  ## create the virtualenv and install everything

run: install  ## migrate, index docs/ and serve on $PORT (default 7860) with gunicorn
	$(BIN)/flask db upgrade
	$(BIN)/flask ingest
	PORT=$(PORT) $(BIN)/gunicorn -c gunicorn.conf.py wsgi:app

test: install  ## the whole suite (SQLite; set TEST_DATABASE_URL for PostgreSQL)
	$(BIN)/python -m pytest

ingest: install  ## index docs/ (incremental)
	$(BIN)/flask ingest

clean:  ## remove the virtualenv and local data
	rm -rf $(VENV) instance dist .pytest_cache
