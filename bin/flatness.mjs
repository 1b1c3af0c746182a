#!/usr/bin/env node
// Starts the command line under Deno (WebGPU through navigator.gpu), using the Deno binary that
// the npm `deno` package installs, so `npx flatness` needs nothing beyond `npm install`.
import { spawn } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { denoCommand, denoEnvironment } from "./deno-env.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const deno = denoCommand();
if (!deno) {
  console.error("flatness: the npm package `deno` is missing: run `npm install` (or `npm run setup`) first");
  process.exit(2);
}
const [command, lead] = deno;
const child = spawn(
  command,
  [...lead, "run", "--quiet", "--allow-read", "--allow-write", "--allow-env", "--allow-sys", join(root, "src/cli/main.ts"), ...process.argv.slice(2)],
  { stdio: "inherit", env: denoEnvironment() },
);
// Ctrl-C or a kill reaches the command itself, which releases its GPU device and exits 130 or 143
// (src/cli/main.ts); this process waits for it instead of dying first and orphaning it.
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"]) process.on(signal, () => child.kill(signal));
const SIGNAL_NUMBERS = { SIGINT: 2, SIGTERM: 15, SIGHUP: 1, SIGABRT: 6, SIGSEGV: 11, SIGKILL: 9 };
child.on("exit", (code, signal) => process.exit(code ?? 128 + (SIGNAL_NUMBERS[signal] ?? 0)));
