#!/usr/bin/env node
// Abort rate of the exit race (test/deno/repro/exit_race.ts) without and with the project's fix,
// each run in a fresh Deno process:  node scripts/exit-race-rate.mjs [runs per arm, default 100]
// Prints one line per arm and the signatures seen; exits 1 if the fixed arm ever failed.
import { spawnSync } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { denoCommand, denoEnvironment } from "../bin/deno-env.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const [deno, denoLead] = denoCommand();
const runs = Number(process.argv[2] ?? 100);
const env = denoEnvironment();
delete env.DENO_WEBGPU_BACKEND; // the arms differ only in the script's --fix

function arm(label, extra) {
  const signatures = new Map();
  let failed = 0;
  for (let i = 0; i < runs; i++) {
    const r = spawnSync(deno, [...denoLead, "run", "-A", join(root, "test/deno/repro/exit_race.ts"), ...extra], { cwd: root, env, encoding: "utf8" });
    if (r.status === 0) continue;
    failed++;
    const lastLine = (r.stderr.trim().split("\n").at(-1) || "(no message)").slice(0, 100);
    const key = `${r.signal ?? `exit ${r.status}`}: ${lastLine}`;
    signatures.set(key, (signatures.get(key) ?? 0) + 1);
  }
  console.log(`${label}: ${failed} of ${runs} runs aborted`);
  for (const [k, n] of signatures) console.log(`  ${n} x ${k}`);
  return failed;
}

arm("default backends (Vulkan + GL)", []);
const fixedFailures = arm("Vulkan only (the fix)", ["--fix"]);
process.exit(fixedFailures === 0 ? 0 : 1);
