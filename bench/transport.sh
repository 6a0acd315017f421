#!/bin/sh
# Transport benchmark, see transport.py: clone and push of a 127k-object
# repository through the Go client (gitlab-shell and Workhorse flows) and
# gitaly versus plain git on the same machine, and sidechannel throughput
# for a ~512 MiB pack. Extra arguments for transport.py: $TRANSPORT_ARGS.
# Usage: bench/transport.sh <builddir>
set -e
BUILD=$(cd "${1:-build}" && pwd)
# shellcheck disable=SC2086
exec /usr/bin/python3 "$(dirname "$0")/transport.py" "$BUILD" ${TRANSPORT_ARGS:-}
