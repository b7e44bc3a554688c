#!/bin/sh
# A self-signed development certificate for mosquitto's TLS listener (deploy/mosquitto.conf, port 8883).
#
#   deploy/gen-dev-cert.sh [DIR] [HOST...]
#
# Writes into DIR (default deploy/certs): ca.pem + ca.key (a private CA, valid 2 years), fullchain.pem +
# privkey.pem (the broker's certificate, valid 1 year, for localhost, 127.0.0.1, ::1, the compose service name
# "mosquitto" and every HOST given). Clients trust it with HEATWATCH_MQTT_CA_FILE=DIR/ca.pem
# (mosquitto_pub --cafile DIR/ca.pem). Existing files are kept: delete DIR to make new ones.
# For production use a certificate from a real CA (e.g. Let's Encrypt) with the same two file names.
set -eu
dir=${1:-$(dirname "$0")/certs}
[ $# -gt 0 ] && shift
command -v openssl >/dev/null || { echo "gen-dev-cert: openssl is not installed" >&2; exit 1; }
mkdir -p "$dir"
umask 077
if [ -s "$dir/fullchain.pem" ] && [ -s "$dir/privkey.pem" ]; then
    echo "gen-dev-cert: $dir already holds a certificate; delete it to make a new one"
    exit 0
fi
san="DNS:localhost,DNS:mosquitto,IP:127.0.0.1,IP:::1"
for host in "$@"; do
    case $host in
        *[!0-9.]*) case $host in *:*) san="$san,IP:$host" ;; *) san="$san,DNS:$host" ;; esac ;;
        *) san="$san,IP:$host" ;;
    esac
done
openssl req -x509 -newkey rsa:3072 -sha256 -days 730 -nodes -subj "/CN=heatwatch development CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -keyout "$dir/ca.key" -out "$dir/ca.pem" 2>/dev/null
openssl req -newkey rsa:3072 -sha256 -nodes -subj "/CN=${1:-localhost}" \
    -keyout "$dir/privkey.pem" -out "$dir/server.csr" 2>/dev/null
ext=$(mktemp)
printf 'subjectAltName=%s\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n' \
    "$san" > "$ext"
openssl x509 -req -sha256 -days 365 -in "$dir/server.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" \
    -CAcreateserial -extfile "$ext" -out "$dir/server.pem" 2>/dev/null
rm -f "$ext" "$dir/server.csr" "$dir/ca.srl"
cat "$dir/server.pem" "$dir/ca.pem" > "$dir/fullchain.pem"
rm -f "$dir/server.pem"
# The broker (user mosquitto, uid 1883 in the eclipse-mosquitto image) must read the key: group-readable,
# and chown it to that user where the broker runs (see deploy/README.md); the CA key stays private.
chmod 644 "$dir/ca.pem" "$dir/fullchain.pem"
chmod 640 "$dir/privkey.pem"
chmod 600 "$dir/ca.key"
echo "gen-dev-cert: wrote $dir/fullchain.pem and privkey.pem (SAN $san); clients trust $dir/ca.pem"
