# ganad-plugin: the two commands of the README, and their helpers.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
MODEL ?= ganomaly
CATEGORY ?= weave
DEMO_DIR ?= results/demo

.PHONY: demo test venv sample-data benchmark clean

# The environment: created once, re-installed when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@

venv: $(VENV)/.installed

# Train the default model on one sample_data category, export to OpenVINO, run the edge inferencer.
demo: venv
	$(PY) -m ganad_plugin.demo --model $(MODEL) --category $(CATEGORY) --out $(DEMO_DIR)

test: venv
	$(PY) -m pytest -q -rs --durations=25 -n 2 --dist loadfile --no-loadscope-reorder

# Rebuild sample_data/ from its generator (deterministic: no diff expected).
sample-data: venv
	$(PY) -m ganad_plugin.sample_data --out sample_data

clean:
	rm -rf results .pytest_cache
