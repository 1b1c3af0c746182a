#!/usr/bin/env node
// `npm test`: every test, each runtime. Fails (never skips) when WebGPU is missing.
//  1. Deno: the GPU suite (test/gpu/cases.ts) on Deno's WebGPU (lavapipe without a GPU).
//  2. vitest under Node: float64 reference, file formats, build staleness, the command line (which
//     runs under Deno), and the GPU suite again in headless Chromium (SwiftShader) via puppeteer.
import { spawnSync } from "node:child_process";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { denoCommand, denoEnvironment } from "../bin/deno-env.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const require = createRequire(import.meta.url);
const env = denoEnvironment();

function run(label, cmd, args) {
  console.log(`\n=== ${label} ===`);
  const r = spawnSync(cmd, args, { stdio: "inherit", cwd: root, env });
  // A crash after the last test (a signal, e.g. SIGABRT) fails the run like a failed test.
  if (r.signal) console.log(`${label}: killed by ${r.signal}`);
  return r.status === 0;
}

const [deno, denoLead] = denoCommand() ?? [null, []];
if (!deno) {
  console.error("npm test: the npm package `deno` is missing: run `npm run setup` first");
  process.exit(1);
}
const vitest = join(dirname(require.resolve("vitest/package.json")), "vitest.mjs");
const results = [
  ["Deno GPU suite", run("Deno: GPU suite (WebGPU)", deno, [...denoLead, "test", "--allow-read", "--allow-env", "--allow-write", "--allow-sys", "test/deno/"])],
  ["vitest", run("vitest: reference, formats, CLI, Chromium GPU suite", process.execPath, [vitest, "run"])],
];
const failed = results.filter(([, ok]) => !ok).map(([name]) => name);
console.log(`\n${failed.length === 0 ? "all test runs passed" : `FAILED: ${failed.join(", ")}`}`);
process.exit(failed.length === 0 ? 0 : 1);
