# Two commands do all the set-up: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 7860
export FLASK_APP := wsgi

.PHONY: run test test-fast lint format install ingest clean space image

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed  ## create the virtualenv and install everything

# gunicorn's master migrates the database before forking; in embedded mode each worker's
# start-up brings the index of docs/ up to date (once, under a file lock) while health says
# "starting". With QDRANT_URL set nothing is indexed at start: run `flask ingest` on purpose.
run: install  ## migrate, index docs/ and serve on $PORT (default 7860) with gunicorn
	PORT=$(PORT) $(BIN)/gunicorn -c gunicorn.conf.py wsgi:app

test: install  ## the whole suite (SQLite; set TEST_DATABASE_URL for PostgreSQL)
	$(BIN)/python -m pytest

# tests/e2e starts real gunicorn processes and a browser; the rest takes a fraction of the time.
test-fast: install  ## unit and integration tests, no end-to-end (tests/e2e, or marked e2e)
	$(BIN)/python -m pytest tests/unit tests/integration -m "not e2e"

# ruff (lint and format) and mypy, configured in pyproject.toml; CI runs this first.
lint: install  ## ruff check, ruff format --check, mypy; fails on any finding
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: install  ## apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

ingest: install  ## index docs/ (incremental)
	$(BIN)/flask ingest

# The folder pushed to the Hugging Face Space: its README and Dockerfile, and the service's files
# (real copies, no links). DOCS=path bundles another book. Pushing is by hand: see
# docs/deployment/hugging-face-spaces.md.
space: install  ## assemble the Space under dist/space/ and lint its Dockerfile with hadolint
	$(BIN)/python scripts/assemble_space.py --out dist/space $(if $(DOCS),--docs $(DOCS))
	$(BIN)/hadolint dist/space/Dockerfile

# The Space's image, built locally from dist/space/ with docker or podman (the first whose engine
# answers `info`). BASE_IMAGE=... builds on a mirror of the slim Python image; IMAGE=name:tag;
# ENGINE=podman picks one. Run it: docs/deployment/hugging-face-spaces.md.
image: space  ## build the Space image from dist/space/ with docker or podman
	$(BIN)/python scripts/build_image.py --context dist/space $(if $(IMAGE),--tag $(IMAGE)) \
		$(if $(BASE_IMAGE),--base-image $(BASE_IMAGE)) $(if $(ENGINE),--engine $(ENGINE))

clean:  ## remove the virtualenv and local data
	rm -rf $(VENV) instance dist .pytest_cache
