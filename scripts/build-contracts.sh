#!/usr/bin/env bash
# Recompiles cli/contracts/src/*.sol into cli/contracts/build/*.json with the solc version pinned in
# cli/contracts/package.json. Needs Node.js and npm (the npm registry), not needed by cargo build.
set -euo pipefail
cd "$(dirname "$0")/../cli/contracts"
npm ci --no-audit --no-fund
node compile.js
