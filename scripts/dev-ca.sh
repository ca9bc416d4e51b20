#!/usr/bin/env bash
# Makes a development CA and a hub server certificate for the local hub's TLS listener, so children can
# verify their parent (point them at ca.crt). Development only: the CA key sits next to the certificates.
#
#   scripts/dev-ca.sh <out-dir> [hostname ...]     (default hostnames: localhost, $(hostname), 127.0.0.1)
#
# Then in board.json: "hub": { "tls": { "port": 8883, "certPath": "<out-dir>/hub-chain.crt", "keyPath": "<out-dir>/hub.key" } }
set -euo pipefail

out="${1:?usage: dev-ca.sh <out-dir> [hostname ...]}"
shift
names=("$@")
[ ${#names[@]} -eq 0 ] && names=(localhost "$(hostname)" 127.0.0.1)
# CA lifetime and leaf lifetime in days; a dev CA outliving a board's service life avoids surprise expiry.
ca_days=3650
leaf_days=825

mkdir -p "$out"
umask 077
if [ ! -f "$out/ca.key" ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$out/ca.key" -out "$out/ca.crt" \
    -days "$ca_days" -subj "/CN=outpost dev CA" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
fi
san=""
for n in "${names[@]}"; do
  if [[ "$n" =~ ^[0-9.]+$ ]]; then san+="IP:$n,"; else san+="DNS:$n,"; fi
done
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$out/hub.key" -out "$out/hub.csr" \
  -subj "/CN=${names[0]}" 2>/dev/null
printf 'basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\nsubjectAltName=%s\n' "${san%,}" > "$out/hub.ext"
openssl x509 -req -in "$out/hub.csr" -CA "$out/ca.crt" -CAkey "$out/ca.key" -CAcreateserial -days "$leaf_days" \
  -extfile "$out/hub.ext" -out "$out/hub.crt" 2>/dev/null
cat "$out/hub.crt" "$out/ca.crt" > "$out/hub-chain.crt"
rm -f "$out/hub.csr" "$out/hub.ext"
chmod 644 "$out/ca.crt" "$out/hub.crt" "$out/hub-chain.crt"
echo "CA: $out/ca.crt  server chain: $out/hub-chain.crt  key: $out/hub.key (names: ${names[*]})"
