# The two commands of the quick start (README.md): `make demo` and `make test`.
.PHONY: setup demo test bench stop

setup:
	@bash deploy/local/setup.sh

demo: setup
	@.venv/bin/python load/demo.py

test: setup
	@.venv/bin/python -m pytest

bench: setup
	@.venv/bin/python load/bench_pipeline.py

stop:
	@python3 deploy/local/kafka.py stop; python3 deploy/local/alertmanager.py stop; python3 deploy/local/kube.py stop || true
