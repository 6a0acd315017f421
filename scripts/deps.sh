#!/bin/sh
# Installs the Debian packages the build and the tests need, only those that
# are missing, with a single apt-get call.
set -e
PKGS="gcc make pkg-config git libgrpc-dev libprotobuf-c-dev protobuf-c-compiler
protobuf-compiler libprotobuf-dev protobuf-compiler-grpc libgit2-dev zlib1g-dev libssl-dev
libjansson-dev libmicrohttpd-dev libpq-dev libcmocka-dev python3-grpcio
python3-protobuf python3-pytest openssl ca-certificates procps
golang-go golang-github-hashicorp-yamux-dev golang-google-grpc-dev golang-google-protobuf-dev
openssh-server openssh-client gnupg gpgv"
missing=""
for p in $PKGS; do
	dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
	echo "missing packages:$missing (run 'make deps' as root)" >&2
	exit 1
fi
echo "installing:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q || true
apt-get install -y -q $missing
