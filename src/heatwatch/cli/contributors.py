"""``heatwatch contributors mqtt-sync --passwd FILE [--hup-pid PID | --hup-pid-file FILE | --reload-command CMD]
[--watch SECONDS]``.

Residents who register a sensor (``POST /v1/contribute``) get an MQTT account ``<town>/<sensor>``; the api keeps
its password hashed in the contributors store (``$HEATWATCH_DATA_DIR/contributors.sqlite``) and never touches the
broker. This command writes those accounts into mosquitto's password file — every active one, withdrawn ones
removed, every other account of the file left alone — and, when the file changed, makes the broker re-read it
(SIGHUP to its PID, or a command such as ``systemctl reload mosquitto``). ``--watch`` repeats it every few seconds
until stopped (a sidecar next to the broker); without it, it runs once (a systemd timer, cron). ``heatwatch up``
does the same by itself for its embedded broker. docs/citizens.md.
"""

from __future__ import annotations

import argparse
import shlex
import signal
import subprocess
import sys
import threading
from pathlib import Path

from ..core.contributors import ContributorStore
from ..core.logging import get_logger
from ..core.settings import CoreSettings
from ..stack.mqttauth import SyncResult, reload_broker, sync_contributors

log = get_logger("heatwatch.contributors")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="contributors_command", required=True, metavar="{mqtt-sync}")
    p = sub.add_parser("mqtt-sync", help="write the contributors' MQTT accounts into mosquitto's password file")
    p.add_argument("--passwd", type=Path, required=True, help="the broker's password file (password_file)")
    how = p.add_mutually_exclusive_group()
    how.add_argument("--hup-pid", type=int, default=None, help="mosquitto's PID: SIGHUP it when the file changed")
    how.add_argument("--hup-pid-file", type=Path, default=None,
                     help="a file holding mosquitto's PID (its pid_file): SIGHUP it when the file changed")
    how.add_argument("--reload-command", default=None,
                     help="run this (no shell) when the file changed, e.g. 'systemctl reload mosquitto' or "
                          "'docker compose kill -s HUP mosquitto'")
    p.add_argument("--watch", type=float, default=None, metavar="SECONDS",
                   help="repeat every SECONDS until SIGTERM/SIGINT (default: once)")


def _reload(args: argparse.Namespace) -> str | None:
    """Make the broker re-read its files as asked; what was done (None: nothing asked)."""
    if args.hup_pid is not None or args.hup_pid_file is not None:
        pid = args.hup_pid if args.hup_pid is not None else int(args.hup_pid_file.read_text().split()[0])
        reload_broker(pid)
        return f"SIGHUP sent to {pid}"
    if args.reload_command:
        subprocess.run(shlex.split(args.reload_command), check=True, timeout=60)
        return f"ran {args.reload_command!r}"
    return None


def sync_once(store: ContributorStore, args: argparse.Namespace) -> SyncResult:
    result = sync_contributors(store, args.passwd)
    reloaded = _reload(args) if result.changed else None
    if result.changed or args.watch is None:
        log.info("contributors.mqtt_sync", passwd=str(args.passwd), active=result.active, added=len(result.added),
                 updated=len(result.updated), removed=len(result.removed), reloaded=reloaded)
    if result.changed and reloaded is None and args.watch is None:
        print("the password file changed: make mosquitto re-read it (SIGHUP, systemctl reload mosquitto)",
              file=sys.stderr)
    return result


def run(args: argparse.Namespace, settings: CoreSettings) -> int:
    store = ContributorStore.for_data_dir(settings.data_dir)
    if args.watch is None:
        try:
            r = sync_once(store, args)
        except (OSError, ValueError, subprocess.SubprocessError) as exc:
            print(f"heatwatch contributors mqtt-sync: {exc}", file=sys.stderr)
            return 1
        print(f"{r.active} active contributor account(s); added {len(r.added)}, updated {len(r.updated)}, "
              f"removed {len(r.removed)}")
        return 0
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.is_set():
        try:
            sync_once(store, args)
        except (OSError, ValueError, subprocess.SubprocessError) as exc:  # retried at the next round
            log.error("contributors.mqtt_sync_failed", error=str(exc))
        stop.wait(max(args.watch, 0.5))
    return 0
