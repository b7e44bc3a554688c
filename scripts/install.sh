#!/usr/bin/env bash
# Installs everything heatwatch needs on Debian 12/13 as root: mosquitto, influxdb, Node.js/npm
# (dashboard libraries), optionally chromium (browser tests), a virtual environment in .venv
# with heatwatch and its test tools, and the dashboard's front-end libraries from npm.
# Idempotent: a second run installs nothing new.
#   scripts/install.sh            # runtime
#   scripts/install.sh --test     # runtime + chromium for the browser tests, prometheus for the monitoring tests
#   scripts/install.sh --bench    # runtime + wrk and py-spy for the benchmarks
set -euo pipefail
cd "$(dirname "$0")/.."

want_browser=0
want_bench=0
[[ "${1:-}" == "--test" ]] && want_browser=1
[[ "${1:-}" == "--bench" ]] && want_bench=1

pkgs=()
command -v mosquitto >/dev/null || [[ -x /usr/sbin/mosquitto ]] || pkgs+=(mosquitto mosquitto-clients)
command -v influxd >/dev/null || [[ -x /usr/bin/influxd ]] || pkgs+=(influxdb)
command -v npm >/dev/null || pkgs+=(nodejs npm)
python3 -c 'import ensurepip, venv' 2>/dev/null || pkgs+=(python3-venv)
if (( want_browser )); then
  [[ -x /usr/bin/chromium ]] || pkgs+=(chromium)
  # A real Prometheus scrapes the services with deploy/prometheus/prometheus.yml in tests/stack/test_monitoring.py.
  command -v prometheus >/dev/null || pkgs+=(prometheus)
fi
if (( want_bench )); then
  command -v wrk >/dev/null || pkgs+=(wrk)
fi
if (( ${#pkgs[@]} )); then
  echo "heatwatch install: apt packages ${pkgs[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${pkgs[@]}"
fi
# Debian starts packaged services on install where it can; heatwatch runs its own on its own ports.
for svc in mosquitto influxdb prometheus; do
  if command -v systemctl >/dev/null && systemctl is-active --quiet "$svc" 2>/dev/null; then
    systemctl stop "$svc" || true
  fi
done

if [[ ! -x .venv/bin/python ]]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[test]'
if (( want_bench )); then
  .venv/bin/python -m pip install -q -e '.[test,bench]'
fi

if [[ -f frontend/package-lock.json ]]; then
  npm ci --prefix frontend --no-audit --no-fund --loglevel=error
fi
echo "heatwatch install: done ($(.venv/bin/heatwatch --version 2>/dev/null || echo heatwatch))"
