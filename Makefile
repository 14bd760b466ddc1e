# peerhub: the two commands are `make run` and `make test` (see README.md).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PEERJS_03 := .vendor/peerjs-0.3.14/peer.js

.PHONY: run test setup test-setup lint check bench autobahn clean

run: setup
	$(BIN)/python manage.py migrate_locked --noinput -v 0
	$(BIN)/python manage.py ensuredefaultkey
	$(BIN)/python -m peerhub.serve

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt client/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.txt
	$(BIN)/pip install -q -e ./client
	touch $@

test-setup: setup $(VENV)/.test-installed node_modules/.installed $(PEERJS_03)

$(VENV)/.test-installed: requirements-test.txt requirements.txt
	$(BIN)/pip install -q -r requirements-test.txt
	touch $@

node_modules/.installed: package.json
	npm install --no-audit --no-fund --loglevel=error
	touch $@

# The classic 0.3.x client cannot be `npm install`ed (it depends on a git repository);
# its published tarball still holds the built dist/peer.js the browser tests load.
$(PEERJS_03):
	mkdir -p .vendor/tmp
	cd .vendor/tmp && npm pack --silent peerjs@0.3.14 >/dev/null && tar xzf peerjs-0.3.14.tgz
	mkdir -p $(dir $@) && cp .vendor/tmp/package/dist/peer.js $@ && rm -rf .vendor/tmp

lint: test-setup
	$(BIN)/ruff check .
	$(BIN)/mypy

test: test-setup lint
	$(BIN)/pytest

bench: test-setup
	$(BIN)/pip install -q -r bench/requirements.txt
	$(BIN)/python -m bench

# Autobahn|Testsuite's fuzzingclient (Python 2.7, its own virtualenv in .vendor/) against
# the websocket front with an echo app; the HTML report goes to var/autobahn/.
autobahn: test-setup
	$(BIN)/python -m bench.autobahn --report-dir var/autobahn

clean:
	rm -rf $(VENV) node_modules .vendor var
