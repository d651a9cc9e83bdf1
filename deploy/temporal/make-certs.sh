#!/bin/sh
# Make a private CA and the certificates for mTLS between Tidebox and Temporal (docs/security.md):
#
#   deploy/temporal/make-certs.sh <dir> [server-name ...]
#
# writes <dir>/ca.crt, server.crt/.key (for the Temporal frontend: every server-name, plus localhost
# and 127.0.0.1, as subject alternative names) and client.crt/.key (for the Tidebox api and worker,
# and for the `temporal` CLI). Keys are P-256 and readable by their owner only; the CA's key is kept
# in <dir>/ca.key to sign more clients later. Existing files are never overwritten.
# Needs openssl 1.1.1 or later. For a real deployment, prefer your organisation's CA or cert-manager.
set -eu
dir=${1:?usage: make-certs.sh <dir> [server-name ...]}
shift
[ $# -gt 0 ] || set -- temporal
days=${CERT_DAYS:-825}
if [ -e "$dir/ca.crt" ]; then echo "make-certs: $dir/ca.crt exists; not overwriting" >&2; exit 1; fi
mkdir -p "$dir"
umask 077

san="DNS:localhost,IP:127.0.0.1"
for name in "$@"; do san="$san,DNS:$name"; done

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

key "$dir/ca.key"
openssl req -x509 -new -key "$dir/ca.key" -days "$days" -subj "/CN=Tidebox Temporal CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
  -out "$dir/ca.crt"

# issue <name> <subject CN> <extendedKeyUsage> <subjectAltName>
issue() {
  key "$dir/$1.key"
  openssl req -new -key "$dir/$1.key" -subj "/CN=$2" -out "$dir/$1.csr"
  printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=%s\nsubjectAltName=%s\n' "$3" "$4" > "$dir/$1.ext"
  openssl x509 -req -in "$dir/$1.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial -days "$days" \
    -extfile "$dir/$1.ext" -out "$dir/$1.crt" 2>/dev/null
  rm -f "$dir/$1.csr" "$dir/$1.ext"
}
# The server certificate also authenticates Temporal's own services to each other (internode mTLS).
issue server "$1" serverAuth,clientAuth "$san"
issue client tidebox clientAuth "DNS:tidebox"
rm -f "$dir/ca.srl"
# The certificates are public; the Temporal images run as their own users and must read them.
chmod 644 "$dir/ca.crt" "$dir/server.crt" "$dir/client.crt"
echo "make-certs: wrote $dir/{ca,server,client}.crt and keys (server names: $*)"
