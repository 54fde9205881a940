# Shortcuts over scripts/: each target sets up what it needs first.
.PHONY: setup run test test-kernel bench

setup:
	./scripts/setup.sh

run:
	./scripts/start.sh

test:
	./scripts/test.sh

test-kernel:
	./scripts/test-kernel.sh

bench: setup
	@set -e; for script in bench/*.py; do \
		[ -e "$$script" ] || { echo "bench: no scripts in bench/"; break; }; \
		echo "== $$script"; .venv/bin/python "$$script"; \
	done
