#!/usr/bin/env bash
# One command from a fresh Debian machine to the whole test suite passing. The tests start
# their own mosquitto, influxd and chromium on free loopback ports and stop them.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh --test
.venv/bin/ruff check src tests bench
# pytest exits 5 when it collects no test: that is a failure here, as any non-zero exit is.
# Two workers (HEATWATCH_TEST_WORKERS): most tests wait on mosquitto, influxd or chromium, so two
# processes, each with its own session services, keep both cores busy; --dist loadfile keeps a file's
# module-scoped fixtures on one worker.
exec .venv/bin/pytest -q -n "${HEATWATCH_TEST_WORKERS:-2}" --dist loadfile "$@"
