#!/usr/bin/env node
// Starts the command line under Deno (WebGPU through navigator.gpu), using the Deno binary that
// the npm `deno` package installs, so `npx flatness` needs nothing beyond `npm install`.
import { spawn } from "node:child_process";
import { constants } from "node:os";
import { dirname, join, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { denoCommand, denoEnvironment } from "./deno-env.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
// In this repository the TypeScript itself runs (edits take effect at once); an installed package
// runs its bundle, dist/lib/cli.js, as Deno does not strip types under node_modules.
const installed = root.split(sep).includes("node_modules");
const entry = installed ? join(root, "dist/lib/cli.js") : join(root, "src/cli/main.ts");
const deno = denoCommand();
if (!deno) {
  console.error("flatness: the npm package `deno` is missing: run `npm install` (or `npm run setup`) first");
  process.exit(2);
}
const [command, lead] = deno;
const child = spawn(
  command,
  [...lead, "run", "--quiet", "--allow-read", "--allow-write", "--allow-env", "--allow-sys", entry, ...process.argv.slice(2)],
  { stdio: "inherit", env: denoEnvironment() },
);
// Ctrl-C or a kill reaches the command itself, which releases its GPU device and exits 130 or 143
// (src/cli/main.ts); this process waits for it instead of dying first and orphaning it.
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"]) process.on(signal, () => child.kill(signal));
child.on("error", (e) => {
  console.error(`flatness: could not start Deno (${command}): ${e.message}; run \`npm install\` again`);
  process.exit(2);
});
// A command killed by a signal exits as a shell reports it: 128 + the signal's number.
child.on("exit", (code, signal) => process.exit(code ?? 128 + (constants.signals[signal] ?? 0)));
