#!/usr/bin/env bash
# Recompiles contracts/src/*.sol into contracts/build/*.json with the solc version pinned in
# contracts/package.json. Needs Node.js and npm (the npm registry), not needed by cargo build.
set -euo pipefail
cd "$(dirname "$0")/../contracts"
npm ci --no-audit --no-fund
node compile.js
