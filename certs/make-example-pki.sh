#!/usr/bin/env bash
# Example PKI for trying mqttcli's TLS options against a local broker (see certs/README.md).
# Writes ca.*, server.* and client.* next to this script; each is valid for 20 years.
set -euo pipefail
cd "$(dirname "$0")"
days=7300
openssl req -x509 -newkey rsa:2048 -nodes -days "$days" -subj "/CN=mqttcli example CA" \
  -keyout ca.key -out ca.pem 2>/dev/null
issue() { # name subject extensions
  openssl req -newkey rsa:2048 -nodes -subj "$2" -keyout "$1.key" -out "$1.csr" 2>/dev/null
  printf '%s\n' "$3" > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days "$days" \
    -extfile "$1.ext" -out "$1.pem" 2>/dev/null
  rm -f "$1.csr" "$1.ext"
}
issue server "/CN=localhost" "subjectAltName=DNS:localhost,IP:127.0.0.1"
issue client "/CN=mqttcli example client" "extendedKeyUsage=clientAuth"
rm -f ca.srl
echo "wrote $(pwd)/{ca,server,client}.{pem,key}"
