"""``heatwatch db init``: an InfluxDB set up for heatwatch with least privilege (production; ``heatwatch up``
does the same for its embedded influxd).

As the InfluxDB admin named by ``HEATWATCH_INFLUX_USER`` / ``HEATWATCH_INFLUX_PASSWORD(_FILE)``, it creates both
databases and their retention policies (``HEATWATCH_RAW_RETENTION``) and one user per service with only its
grants (``heatwatch.stack.influxusers``: ingest WRITE on readings; analytics READ readings, ALL aggregates; api
READ both). On a server with authentication on and no user yet, it first creates that admin. Idempotent: run
it again after changing a password or the raw retention. Exit status: 0 done, 1 InfluxDB refused or did not
answer, 2 bad arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

from ..core.errors import InfluxAuthError, InfluxError
from ..core.influx import InfluxClient
from ..core.settings import CoreSettings, read_secret_file
from ..stack.influxusers import ROLES, ServiceUser, ensure_admin, provision


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True)
    p = sub.add_parser("init", help="databases, retention policies and one user per service (as the admin)")
    for role in ROLES:
        p.add_argument(f"--{role}-user", default=f"heatwatch_{role}", help=f"the {role} service's user name")
        p.add_argument(f"--{role}-password-file", type=Path, required=True,
                       help=f"file holding the {role} service's password (the same file the service reads)")
    p.add_argument("--wait", type=float, default=0, metavar="S",
                   help="wait up to S seconds for InfluxDB to answer (a container starting next to it)")


async def _init(settings: CoreSettings, users: list[ServiceUser], wait_s: float) -> None:
    if settings.influx_user is None or settings.influx_password is None:
        raise ValueError("HEATWATCH_INFLUX_USER and HEATWATCH_INFLUX_PASSWORD(_FILE) must name the InfluxDB admin")
    admin, password = settings.influx_user, settings.influx_password.get_secret_value()
    deadline = time.monotonic() + wait_s
    while True:
        try:
            async with InfluxClient(settings.influx_base_url, settings.influx_db) as probe:
                await probe.ping()
            break
        except InfluxError:
            if time.monotonic() >= deadline:
                raise
            await asyncio.sleep(1)
    await ensure_admin(settings.influx_base_url, admin, password)
    async with InfluxClient.from_settings(settings) as client:
        await provision(client, users, settings.raw_retention)


def run(args: argparse.Namespace, settings: CoreSettings) -> int:
    users = []
    for role in ROLES:
        path = getattr(args, f"{role}_password_file")
        users.append(ServiceUser(role, getattr(args, f"{role}_user"),
                                 read_secret_file(f"--{role}-password-file", str(path))))
    try:
        asyncio.run(_init(settings, users, args.wait))
    except ValueError as exc:
        print(f"heatwatch db init: {exc}", file=sys.stderr)
        return 2
    except (InfluxAuthError, PermissionError):
        print("heatwatch db init: InfluxDB refused the admin's credentials (HEATWATCH_INFLUX_USER / _PASSWORD)",
              file=sys.stderr)
        return 1
    except InfluxError as exc:
        print(f"heatwatch db init: InfluxDB did not answer: {type(exc).__name__}", file=sys.stderr)
        return 1
    raw, agg = settings.influx_db, settings.influx_agg_database
    print(f"heatwatch db init: databases {raw} (retention {settings.raw_retention}) and {agg}; users "
          + ", ".join(f"{u.name} ({u.role})" for u in users))
    return 0
