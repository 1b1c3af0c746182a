#!/usr/bin/env node
// Starts the command line under Deno (WebGPU through navigator.gpu), using the Deno binary that
// the npm `deno` package installs, so `npx flatness` needs nothing beyond `npm install`.
import { spawnSync } from "node:child_process";
import { createRequire } from "node:module";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const require = createRequire(import.meta.url);
let deno;
try {
  deno = join(dirname(require.resolve("deno/package.json")), "bin.cjs");
} catch {
  console.error("flatness: the npm package `deno` is missing: run `npm install` (or `npm run setup`) first");
  process.exit(2);
}
const env = { ...process.env };
// Deno's WebGPU (wgpu) prints an error line without a runtime dir.
env.XDG_RUNTIME_DIR ??= mkdtempSync(join(tmpdir(), "flatness-xdg-"));
env.DENO_NO_UPDATE_CHECK = "1";
const result = spawnSync(
  process.execPath,
  [deno, "run", "--quiet", "--allow-read", "--allow-write", "--allow-env", "--allow-sys", join(root, "src/cli/main.ts"), ...process.argv.slice(2)],
  { stdio: "inherit", env },
);
process.exit(result.status ?? 1);
