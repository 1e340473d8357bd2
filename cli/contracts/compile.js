// Compiles contracts/src/*.sol with the pinned solc (package.json) and writes, per contract,
// build/<Name>.json = { contract, solc, evmVersion, runtime, storageLayout }.
// The Rust crate reads only these committed files, so `cargo build` needs no Node.
// Run: (cd contracts && npm ci && npm run build)   or   scripts/build-contracts.sh
"use strict";
const fs = require("fs");
const path = require("path");
const solc = require("solc");

const EVM_VERSION = "shanghai"; // oldest fork the workloads target; no MCOPY/TSTORE needed
const srcDir = path.join(__dirname, "src");
const outDir = path.join(__dirname, "build");

const sources = {};
for (const file of fs.readdirSync(srcDir).filter((f) => f.endsWith(".sol")).sort()) {
  sources[file] = { content: fs.readFileSync(path.join(srcDir, file), "utf8") };
}

const input = {
  language: "Solidity",
  sources,
  settings: {
    evmVersion: EVM_VERSION,
    optimizer: { enabled: true, runs: 200 },
    metadata: { bytecodeHash: "none" },
    outputSelection: { "*": { "*": ["evm.deployedBytecode.object", "storageLayout"] } },
  },
};

function findImports(importPath) {
  const candidate = path.join(__dirname, "node_modules", importPath);
  if (fs.existsSync(candidate)) return { contents: fs.readFileSync(candidate, "utf8") };
  return { error: `import not found: ${importPath}` };
}

const output = JSON.parse(solc.compile(JSON.stringify(input), { import: findImports }));
const errors = (output.errors || []).filter((e) => e.severity === "error");
for (const e of output.errors || []) console.error(e.formattedMessage);
if (errors.length > 0) process.exit(1);

fs.mkdirSync(outDir, { recursive: true });
for (const file of Object.keys(sources)) {
  for (const [name, artifact] of Object.entries(output.contracts[file])) {
    const out = {
      contract: name,
      solc: solc.version(),
      evmVersion: EVM_VERSION,
      runtime: "0x" + artifact.evm.deployedBytecode.object,
      storageLayout: artifact.storageLayout.storage.map((s) => ({
        label: s.label,
        slot: Number(s.slot),
        offset: s.offset,
      })),
    };
    fs.writeFileSync(path.join(outDir, `${name}.json`), JSON.stringify(out, null, 2) + "\n");
    console.log(`wrote build/${name}.json (${artifact.evm.deployedBytecode.object.length / 2} bytes of runtime code)`);
  }
}
