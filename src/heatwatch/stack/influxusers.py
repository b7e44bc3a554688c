"""InfluxDB users per service, least privilege: what ``heatwatch up`` sets up on its embedded influxd and
``heatwatch db init`` on a production one.

InfluxDB 1.x grants READ, WRITE or ALL per database, never per measurement or retention policy. heatwatch
therefore keeps raw readings and aggregates in two databases (``HEATWATCH_INFLUX_DB``,
``HEATWATCH_INFLUX_AGG_DB``), and each service gets exactly what it does:

==========  ==========================  ====================================================================
service     raw database                aggregates database
==========  ==========================  ====================================================================
ingest      WRITE                       none: it cannot read anything, nor touch published aggregates
analytics   ALL (for DELETE only)       ALL: writes aggregates, alerts, the last-value store, DELETEs a range
                                        it recomputes
api         READ                        READ
==========  ==========================  ====================================================================

What a grant allows beyond that, in InfluxDB 1.x itself: WRITE includes ``DELETE`` and ``DROP SERIES`` in that
database (so ingest could delete raw readings; it never does), while creating or dropping databases,
retention policies, measurements and users needs the admin, which no service holds.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ..core.errors import InfluxAuthError
from ..core.influx import InfluxClient, ident

Privilege = Literal["READ", "WRITE", "ALL"]
ROLES = ("ingest", "analytics", "api")


def grants(role: str, raw_db: str, agg_db: str) -> dict[str, Privilege]:
    """Database → privilege of a service's user."""
    table: dict[str, dict[str, Privilege]] = {
        "ingest": {raw_db: "WRITE"},
        # WRITE on raw only to DELETE a withdrawn contributor's readings (analytics/erase.py): InfluxDB 1.x has
        # no DELETE-only grant, and analytics never writes readings.
        "analytics": {raw_db: "ALL", agg_db: "ALL"},
        "api": {raw_db: "READ", agg_db: "READ"},
    }
    return table[role]


@dataclass(frozen=True, slots=True)
class ServiceUser:
    role: str
    name: str
    password: str


def new_password() -> str:
    """A random password: 32 URL-safe characters (192 bits)."""
    return secrets.token_urlsafe(24)


def stored_password(path: Path) -> str:
    """The password kept in ``path`` (created 0600 with a new one the first time): what ``up`` reuses."""
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    password = new_password()
    # Created with its final mode, so the secret is never readable by others, not even for an instant.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(password + "\n")
    return password


async def ensure_admin(url: str, name: str, password: str) -> None:
    """The admin of an influxd with authentication on: checked, or created on a fresh server (InfluxDB accepts
    creating the first admin without credentials while it has no user at all)."""
    async with InfluxClient(url, "heatwatch", username=name, password=password) as admin:
        try:
            await admin.query_records("SHOW USERS")
            return
        except InfluxAuthError:
            pass
    async with InfluxClient(url, "heatwatch") as anon:
        await anon.query(f"CREATE USER {ident_user(name)} WITH PASSWORD $pw WITH ALL PRIVILEGES", {"pw": password},
                         epoch=None)


def ident_user(name: str) -> str:
    """A user name as an InfluxQL identifier (the same strict pattern as database names)."""
    return ident(name)


async def provision(admin: InfluxClient, users: list[ServiceUser], raw_retention: str = "INF") -> None:
    """As an InfluxDB admin: both databases and their retention policies, then each service's user with
    exactly its grants (any other grant it held is revoked). Idempotent: passwords are reset to ``users``'."""
    if not await admin.setup(raw_retention):
        raise PermissionError("heatwatch db init needs an InfluxDB admin (HEATWATCH_INFLUX_USER/_PASSWORD)")
    existing = {r["user"] for r in await admin.query_records("SHOW USERS")}
    for u in users:
        who = ident_user(u.name)
        if u.name in existing:
            await admin.query(f"SET PASSWORD FOR {who} = $pw", {"pw": u.password}, epoch=None)
        else:
            await admin.query(f"CREATE USER {who} WITH PASSWORD $pw", {"pw": u.password}, epoch=None)
        wanted = grants(u.role, admin.database, admin.agg_database)
        held = {r["database"]: r["privilege"] for r in await admin.query_records(f"SHOW GRANTS FOR {who}")}
        for db, privilege in held.items():
            if privilege != "NO PRIVILEGES" and wanted.get(db) != _short(privilege):
                await admin.command(f"REVOKE ALL ON {ident(db)} FROM {who}")
        for db, privilege in wanted.items():
            await admin.command(f"GRANT {privilege} ON {ident(db)} TO {who}")


def _short(privilege: str) -> str:
    return "ALL" if privilege == "ALL PRIVILEGES" else privilege
