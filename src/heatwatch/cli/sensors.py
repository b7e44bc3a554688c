"""``heatwatch sensors import FILE`` / ``export FILE [--town T]`` / ``list [--town T] [--all]`` /
``mqtt-user SENSOR --passwd FILE``.

The file type (CSV or GeoJSON) comes from the extension. Import is all-or-nothing: one bad
row and nothing is written, with the row number and the reason on stderr.

``mqtt-user`` creates (or resets) a registered sensor's broker account in a mosquitto password
file: user name ``<town>/<sensor id>``, which ``deploy/mosquitto.acl`` turns into the only topics
the sensor may publish (``heat/<town>/<sensor>``, ``senml/<town>/<sensor>``). The town comes from the
registry, so an account can only ever publish under the sensor's own town.
"""

from __future__ import annotations

import argparse
import secrets
import sys
from pathlib import Path

from ..core.errors import ConfigError, RegistryError
from ..core.registry import Registry
from ..core.settings import IngestSettings
from ..ingest.decoders.profiles import load_profiles
from ..stack.mqttauth import set_password

# Non-LoRaWAN sensors name their payload format as profile (see data/sensors/README.md).
_FORMAT_PROFILES = frozenset({"native", "json", "senml"})


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="sensors_command", required=True, metavar="{import,export,list,mqtt-user}")
    p = sub.add_parser("import", help="insert or update sensors from a CSV or GeoJSON file")
    p.add_argument("file", type=Path, help="a .csv, .geojson or .json file")
    p = sub.add_parser("export", help="write the registry to a CSV or GeoJSON file")
    p.add_argument("file", type=Path, help="a .csv, .geojson or .json file")
    p.add_argument("--town", default=None, help="only this town's sensors")
    p = sub.add_parser("list", help="print the registry")
    p.add_argument("--town", default=None, help="only this town's sensors")
    p.add_argument("--all", action="store_true", help="include retired sensors")
    p = sub.add_parser("mqtt-user", help="create or reset a registered sensor's account in a mosquitto password file")
    p.add_argument("sensor", help="a registered, active sensor id")
    p.add_argument("--passwd", type=Path, required=True, help="the mosquitto password file (created if missing)")
    p.add_argument("--password", default=None, help="the password to set (default: a random one, printed once)")


def _unknown_profiles(registry: Registry, settings: IngestSettings) -> list[str]:
    """Sensors naming a device profile that does not exist: their uplinks are dead-lettered ``unknown_profile``."""
    try:
        known = load_profiles(settings.device_profiles_file)
    except ConfigError:
        return []
    return [
        f"{s.id} ({s.device_profile})"
        for s in registry.list(include_retired=False)
        if s.device_profile and s.device_profile not in known and s.device_profile not in _FORMAT_PROFILES
    ]


def mqtt_user(registry: Registry, sensor_id: str, passwd: Path, password: str | None = None) -> tuple[str, str]:
    """Write the account of a registered sensor into ``passwd`` in mosquitto's own hash format; (user name,
    password). Written by Python, not ``mosquitto_passwd -b``, which would show the password to every local user
    in the process list."""
    sensor = registry.get(sensor_id)
    if sensor is None or sensor.retired:
        raise RegistryError(f"no active sensor {sensor_id!r} in the registry: register it first "
                            "(heatwatch sensors import), its town decides the topics it may publish")
    user = f"{sensor.town}/{sensor.id}"
    password = password or secrets.token_urlsafe(18)
    try:
        set_password(passwd, user, password)
    except OSError as exc:
        raise RegistryError(f"cannot write {passwd}: {exc.strerror or exc}") from None
    return user, password


def run(args: argparse.Namespace, settings: IngestSettings) -> int:
    try:
        towns = list(settings.towns)
        with Registry.from_settings(settings) as registry:
            if args.sensors_command == "import":
                n = registry.import_file(args.file)
                print(f"imported {n} sensor(s) from {args.file} into {settings.registry_path}")
                odd = _unknown_profiles(registry, settings)
                if odd:
                    print(f"warning: unknown device profile for {', '.join(odd)}: their uplinks will be dead-lettered "
                          "(unknown_profile) until the profile is added (docs/devices.md)", file=sys.stderr)
            elif args.sensors_command == "export":
                if args.town is not None and args.town not in towns:
                    print(f"heatwatch sensors: unknown town {args.town!r}; configured: {', '.join(towns)}",
                          file=sys.stderr)
                    return 2
                n = registry.export_file(args.file, town=args.town)
                print(f"exported {n} sensor(s) to {args.file}")
            elif args.sensors_command == "mqtt-user":
                user, password = mqtt_user(registry, args.sensor, args.passwd, args.password)
                print(f"user {user}\npassword {password}\nmay publish heat/{user} and senml/{user} "
                      f"(deploy/mosquitto.acl); reload mosquitto (SIGHUP) to apply")
            else:
                for s in registry.list(args.town, include_retired=args.all):
                    placed = s.latitude is not None and s.longitude is not None
                    where = f"{s.latitude:.5f},{s.longitude:.5f}" if placed else "unplaced"
                    flags = " retired" if s.retired else ""
                    print(f"{s.town}\t{s.id}\t{s.site_class.value}\t{where}\t{s.name}{flags}")
    except RegistryError as exc:
        print(f"heatwatch sensors: {exc}", file=sys.stderr)
        return 1
    return 0
