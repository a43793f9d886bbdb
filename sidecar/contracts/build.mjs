#!/usr/bin/env node
// Compiles sidecar/contracts/src/**/*.sol with the solc pinned in the repo's package.json
// and writes one artifact per contract to sidecar/contracts/out/<Name>.json.
//
//   node sidecar/contracts/build.mjs          write out/*.json
//   node sidecar/contracts/build.mjs --check  exit 1 if out/ differs from a fresh compile
//   node sidecar/contracts/build.mjs --as-solc --version | --standard-json
//       behave as a native `solc` for tools that expect one (Slither, through
//       crytic-compile: no native solc is on any registry here), compiling with this
//       file's settings so they analyse the bytecode that is committed
import { createRequire } from "node:module";
import { readFileSync, writeFileSync, readdirSync, mkdirSync, existsSync, unlinkSync } from "node:fs";
import { dirname, join, relative, sep } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const repoRoot = join(here, "..", "..");
const srcDir = join(here, "src");
const outDir = join(here, "out");
const require = createRequire(join(repoRoot, "package.json"));
const solc = require("solc");

const OPTIMIZER = { enabled: true, runs: 200 };
const EVM_VERSION = "prague";

function listSources(dir) {
  const files = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) files.push(...listSources(path));
    else if (entry.name.endsWith(".sol")) files.push(path);
  }
  return files.sort();
}

// Source names are relative to this directory ("src/ContractDatabase.sol"), never absolute,
// so artifacts do not depend on where the repository is checked out.
function sourceName(path) {
  return relative(here, path).split(sep).join("/");
}

function compile() {
  const sources = {};
  for (const path of listSources(srcDir)) {
    sources[sourceName(path)] = { content: readFileSync(path, "utf8") };
  }
  const input = {
    language: "Solidity",
    sources,
    settings: {
      optimizer: OPTIMIZER,
      evmVersion: EVM_VERSION,
      metadata: { bytecodeHash: "none" },
      outputSelection: {
        "*": {
          "": ["ast"],
          "*": [
            "abi",
            "evm.bytecode.object",
            "evm.deployedBytecode.object",
            "evm.deployedBytecode.immutableReferences",
            "devdoc",
            "userdoc",
          ],
        },
      },
    },
  };
  const findImports = (path) => {
    const full = join(here, path);
    return existsSync(full) ? { contents: readFileSync(full, "utf8") } : { error: `not found: ${path}` };
  };
  const output = JSON.parse(solc.compile(JSON.stringify(input), { import: findImports }));
  const diagnostics = output.errors ?? [];
  const errors = diagnostics.filter((d) => d.severity === "error");
  for (const d of diagnostics.filter((d) => d.severity !== "error")) {
    process.stderr.write(d.formattedMessage ?? d.message);
  }
  if (errors.length > 0) {
    for (const d of errors) process.stderr.write(d.formattedMessage ?? d.message);
    console.error(`build.mjs: ${errors.length} compiler error(s)`);
    process.exit(1);
  }
  return output;
}

// Recursively sorted keys, so devdoc/userdoc serialise the same way every time.
function sortKeys(value) {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value && typeof value === "object") {
    return Object.fromEntries(
      Object.keys(value)
        .sort()
        .map((k) => [k, sortKeys(value[k])]),
    );
  }
  return value;
}

function hex(object) {
  return "0x" + (object ?? "");
}

// { fileName: content } for every artifact a fresh compile produces.
function artifacts(output) {
  const files = {};
  const immutableNames = immutableVariableNames(output.sources);
  for (const [source, { ast }] of Object.entries(output.sources)) {
    for (const node of ast.nodes) {
      if (node.nodeType !== "ContractDefinition" || node.contractKind === "library") continue;
      const name = node.name;
      const compiled = output.contracts[source][name];
      // Abstract contracts and interfaces get an ABI-only artifact (bytecode "0x") for bindings.
      const deployable = node.contractKind === "contract" && !node.abstract;
      if (files[`${name}.json`]) {
        console.error(`build.mjs: two contracts named ${name}; artifact names must be unique`);
        process.exit(1);
      }
      const artifact = {
        contractName: name,
        sourceName: source,
        compiler: {
          version: solc.version(),
          optimizer: { enabled: OPTIMIZER.enabled, runs: OPTIMIZER.runs },
          evmVersion: EVM_VERSION,
        },
        abi: compiled.abi,
        bytecode: deployable ? hex(compiled.evm.bytecode.object) : "0x",
        deployedBytecode: deployable ? hex(compiled.evm.deployedBytecode.object) : "0x",
        // Where the runtime code holds immutables (e.g. the database address of a
        // logic contract), by variable name: with these the sidecar and the operator
        // compute the exact runtime code, and so its hash, without a chain.
        immutableReferences: deployable
          ? namedImmutableReferences(compiled.evm.deployedBytecode.immutableReferences, immutableNames)
          : {},
        devdoc: sortKeys(compiled.devdoc),
        userdoc: sortKeys(compiled.userdoc),
      };
      files[`${name}.json`] = JSON.stringify(artifact, null, 2) + "\n";
    }
  }
  return files;
}

// AST id -> "Contract.variable" for every immutable state variable.
function immutableVariableNames(sources) {
  const names = {};
  const visit = (node, contract) => {
    if (!node || typeof node !== "object") return;
    if (node.nodeType === "ContractDefinition") contract = node.name;
    if (node.nodeType === "VariableDeclaration" && node.mutability === "immutable") {
      names[node.id] = `${contract}.${node.name}`;
    }
    for (const child of Object.values(node)) {
      if (Array.isArray(child)) child.forEach((c) => visit(c, contract));
      else if (child && typeof child === "object") visit(child, contract);
    }
  };
  for (const { ast } of Object.values(sources)) visit(ast, undefined);
  return names;
}

function namedImmutableReferences(references, names) {
  const named = {};
  for (const [id, ranges] of Object.entries(references ?? {})) {
    named[names[id] ?? `ast${id}`] = ranges.map(({ start, length }) => ({ start, length }));
  }
  return sortKeys(named);
}

function existingArtifacts() {
  if (!existsSync(outDir)) return [];
  return readdirSync(outDir).filter((f) => f.endsWith(".json")).sort();
}

// `solc --version` / `solc --standard-json` (input on stdin) for crytic-compile: the
// caller's sources, with this build's optimizer and EVM version.
if (process.argv.includes("--as-solc")) {
  if (process.argv.includes("--version")) {
    console.log(`solc, the solidity compiler commandline interface\nVersion: ${solc.version()}`);
  } else {
    const input = JSON.parse(readFileSync(0, "utf8"));
    input.settings = { ...input.settings, optimizer: OPTIMIZER, evmVersion: EVM_VERSION };
    const findImports = (path) =>
      existsSync(path) ? { contents: readFileSync(path, "utf8") } : { error: `not found: ${path}` };
    // Exit only once the pipe took all of it (an early exit truncates large outputs).
    process.stdout.write(solc.compile(JSON.stringify(input), { import: findImports }), () => process.exit(0));
  }
  if (process.argv.includes("--version")) process.exit(0);
} else {


const check = process.argv.includes("--check");
const fresh = artifacts(compile());
const names = Object.keys(fresh).sort();

if (check) {
  const stale = [];
  for (const name of names) {
    const path = join(outDir, name);
    if (!existsSync(path)) stale.push(`${name} (missing)`);
    else if (readFileSync(path, "utf8") !== fresh[name]) stale.push(`${name} (differs)`);
  }
  for (const name of existingArtifacts()) {
    if (!(name in fresh)) stale.push(`${name} (no such contract)`);
  }
  if (stale.length > 0) {
    console.error("build.mjs --check: contract artifacts in sidecar/contracts/out are stale:");
    for (const s of stale) console.error(`  ${s}`);
    console.error("run `node sidecar/contracts/build.mjs` and commit the result");
    process.exit(1);
  }
  console.log(`build.mjs --check: ${names.length} artifacts up to date`);
} else {
  mkdirSync(outDir, { recursive: true });
  for (const name of existingArtifacts()) {
    if (!(name in fresh)) unlinkSync(join(outDir, name));
  }
  for (const name of names) writeFileSync(join(outDir, name), fresh[name]);
  console.log(`build.mjs: wrote ${names.length} artifacts to ${relative(process.cwd(), outDir) || "."}`);
}
}
