# The two commands of the quick start (README.md): `make demo` and `make test`; `make unit` is the fast loop.
.PHONY: setup demo test unit imports bench stop

setup:
	@bash deploy/local/setup.sh

demo: setup
	@.venv/bin/python load/demo.py

test: setup
	@.venv/bin/python -m pytest

# The unit suite alone: no Kafka, Kubernetes, Alertmanager or helm (run `make setup` once first).
unit:
	@.venv/bin/python -m pytest tests/unit -n 2

# The import contracts alone (plain `lint-imports` from the root does the same; the test also seeds violations).
imports:
	@.venv/bin/lint-imports --no-cache

bench: setup
	@.venv/bin/python load/bench_pipeline.py

stop:
	@python3 deploy/local/kafka.py stop; python3 deploy/local/alertmanager.py stop; python3 deploy/local/kube.py stop || true
