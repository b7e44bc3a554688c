#!/bin/sh
# The secrets a deployment from this repository needs, made once with random values (docker-compose.yml reads
# them; for systemd, copy them to /etc/heatwatch/secrets/):
#
#   deploy/init-secrets.sh [DIR]        # DIR defaults to deploy/
#
#   DIR/secrets/influx_admin_password                InfluxDB admin (used only by `heatwatch db init`)
#   DIR/secrets/influx_{ingest,analytics,api}_password   one InfluxDB user per service
#   DIR/secrets/mqtt_{ingest,analytics,api,replay}_password  one broker account per service
#   DIR/secrets/admin_token                          the api's admin bearer token (64 hex characters)
#   DIR/secrets/grafana_admin_password               Grafana's admin (compose's optional monitoring profile)
#   DIR/passwd                                       mosquitto's password file for those broker accounts
#   DIR/certs/                                       a development TLS certificate, when none is there
#                                                    (deploy/gen-dev-cert.sh; replace it with a real one)
#
# Existing secrets are kept (run it again safely); delete a file to make a new value, then run it again and
# restart what uses it. Files are created 0600 in a 0700 folder. Needs python3 (hashes in mosquitto's format,
# so no password ever appears on a command line) and openssl.
set -eu
here=$(dirname "$0")
dir=${1:-$here}
umask 077
mkdir -p "$dir/secrets"
chmod 700 "$dir/secrets"
new() {  # new NAME BYTES: a random secret, kept if it exists
    [ -s "$dir/secrets/$1" ] || python3 -c "import secrets,sys; sys.stdout.write(secrets.token_$3($2))" > "$dir/secrets/$1"
}
new influx_admin_password 24 urlsafe
for role in ingest analytics api; do new "influx_${role}_password" 24 urlsafe; done
for role in ingest analytics api replay; do new "mqtt_${role}_password" 24 urlsafe; done
new admin_token 32 hex
new grafana_admin_password 24 urlsafe
# mosquitto's password file ($7$: PBKDF2-SHA512, 101 iterations, as mosquitto_passwd 2.0 writes it). Sensor
# accounts added later with `heatwatch sensors mqtt-user` are kept.
python3 - "$dir" <<'PY'
import base64, hashlib, os, secrets, sys
d = sys.argv[1]
path = os.path.join(d, "passwd")
ours = ("ingest", "analytics", "api", "replay")
lines = []
if os.path.exists(path):
    lines = [ln for ln in open(path, encoding="utf-8").read().splitlines() if ln and ln.split(":", 1)[0] not in ours]
for user in ours:
    password = open(os.path.join(d, "secrets", f"mqtt_{user}_password"), encoding="utf-8").read()
    salt = secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, 101, 64)
    lines.append(f"{user}:$7$101${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}")
fd = os.open(path + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
with os.fdopen(fd, "w", encoding="utf-8") as out:
    out.write("\n".join(lines) + "\n")
os.replace(path + ".tmp", path)
PY
[ -s "$dir/certs/fullchain.pem" ] || "$here/gen-dev-cert.sh" "$dir/certs"
# Compose mounts these files with their owner and mode as they are here: the heatwatch containers run as uid
# 10001 (Dockerfile), mosquitto as uid 1883 (eclipse-mosquitto image). Each may read only its own.
if [ "$(id -u)" = 0 ]; then
    chown -R 10001:10001 "$dir/secrets"
    chown 1883:1883 "$dir/passwd" "$dir/certs/privkey.pem"
    chmod 755 "$dir/certs"
    echo "init-secrets: secrets in $dir/secrets/ (uid 10001), broker accounts in $dir/passwd and the key in"
    echo "  $dir/certs/ (uid 1883)"
else
    echo "init-secrets: secrets in $dir/secrets/, broker accounts in $dir/passwd, certificate in $dir/certs/"
    echo "  for docker compose, as root: chown -R 10001:10001 $dir/secrets; chown 1883:1883 $dir/passwd"
    echo "  $dir/certs/privkey.pem; chmod 755 $dir/certs"
fi
