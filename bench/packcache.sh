#!/bin/sh
# Pack-objects cache benchmark (see bench/packcache.py): 16 identical clones
# with the cache disabled vs enabled (server CPU ratio), and cache-hit
# serving throughput vs cat. Usage: bench/packcache.sh <builddir>
set -e
GITALY_BUILD=$(cd "${1:-build}" && pwd) exec /usr/bin/python3 "$(dirname "$0")/packcache.py"
