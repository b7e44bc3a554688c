#!/usr/bin/env bash
# One command from a fresh Debian machine to the whole test suite passing. The tests start
# their own mosquitto, influxd and chromium on free loopback ports and stop them.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh --test
.venv/bin/ruff check src tests bench
# pytest exits 5 when it collects no test: that is a failure here, as any non-zero exit is.
exec .venv/bin/pytest -q "$@"
