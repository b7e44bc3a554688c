#!/usr/bin/env bash
# One command from a fresh Debian machine to a running heatwatch fed by simulated sensors.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh
exec .venv/bin/heatwatch up --demo "$@"
