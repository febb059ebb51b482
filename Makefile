# pose_kp_ros: every target sets up what it needs (scripts/setup_env.sh, idempotent) first.
#   make demo    the main job (README, first command): the driller, then all eight LM-O objects
#   make test    all tests: lint, unit (no ROS), integration (real DDS, colcon) (README, second command)
# DDS traffic stays on this machine and in a domain of its own unless you say otherwise.

SHELL := /bin/bash
VENV ?= $(CURDIR)/.venv
PY := $(VENV)/bin/python
export POSE_KP_VENV := $(VENV)
export ROS_AUTOMATIC_DISCOVERY_RANGE ?= LOCALHOST
export ROS_DOMAIN_ID ?= $(shell shuf -i 30-99 -n 1)
export ROS_LOG_DIR ?= $(CURDIR)/log/ros
export PYTHONDONTWRITEBYTECODE := 1
PYTEST_ARGS ?=

.PHONY: setup demo test test-unit test-integration lint bench accuracy reliability clean

setup:
	@bash scripts/setup_env.sh

demo: setup
	@echo "[demo] ROS_DOMAIN_ID=$$ROS_DOMAIN_ID ROS_AUTOMATIC_DISCOVERY_RANGE=$$ROS_AUTOMATIC_DISCOVERY_RANGE"
	@$(PY) -m pose_kp_ros.tools.cli demo $(DEMO_ARGS)
	@$(PY) -m pose_kp_ros.tools.cli demo --object all --pipeline-config models/lmo_all/pipeline.yaml $(DEMO_ARGS)

test: setup
	@echo "[test] ROS_DOMAIN_ID=$$ROS_DOMAIN_ID ROS_AUTOMATIC_DISCOVERY_RANGE=$$ROS_AUTOMATIC_DISCOVERY_RANGE"
	@$(PY) -m pytest test $(PYTEST_ARGS); rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "[test] pytest collected no tests: failing" >&2; fi; exit $$rc

test-unit: setup
	@$(PY) -m pytest test -m 'not integration' $(PYTEST_ARGS)

test-integration: setup
	@$(PY) -m pytest test -m integration $(PYTEST_ARGS)

lint: setup
	@$(VENV)/bin/ruff check .

bench: setup
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

# every accuracy row of docs/performance.md re-measured (pose-kp eval-lmo), then the page rewritten
accuracy: setup
	@$(PY) benchmarks/performance_report.py --evaluate

# fuzz + fault tests + soak -> docs/reliability.md; RELIABILITY_ARGS="--soak-duration 120"
reliability: setup
	@$(PY) benchmarks/reliability_report.py $(RELIABILITY_ARGS)

clean:
	rm -rf build install log .pytest_cache
