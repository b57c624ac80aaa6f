#!/usr/bin/env bash
# demo.sh BIN_DIR - what exists so far, run end to end on embedded defaults.
set -euo pipefail
bin=${1:-build/plain/bin}
echo "idprov demo: nothing to show yet (programs in $bin)"
