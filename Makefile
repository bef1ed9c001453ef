# Two commands set everything up:  `make run` (the app)  and  `make test` (the test suite).
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run distill test test-fast test-bundle bundle setup clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/slm-studio

distill: $(STAMP)
	$(VENV)/bin/slm-studio distill --preset quick

test: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q

test-fast: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q -m "not slow"

test-bundle: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q --bundle tests/test_packaging.py

bundle: $(STAMP)
	$(VENV)/bin/pyinstaller packaging/slm-studio.spec --noconfirm --distpath build/bundle/dist \
		--workpath build/bundle/work

clean:
	rm -rf $(VENV) .pytest_cache
