// The environment of every Deno process this package starts (the command line, `npm test`):
//  - XDG_RUNTIME_DIR: Deno's WebGPU (wgpu) prints an error line without one;
//  - DENO_NO_UPDATE_CHECK: no network lookups;
//  - DENO_WEBGPU_BACKEND=vulkan on Linux: wgpu's OpenGL backend loads libglvnd, whose destructor
//    races with ending threads at process exit and corrupts the heap (see src/gpu/denoBackend.ts).
//    A value the user set is kept.
import { existsSync, mkdtempSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";

/**
 * @param {Record<string, string | undefined>} [base] the environment to start from (default: this process's)
 * @returns {Record<string, string | undefined>}
 */
export function denoEnvironment(base = process.env) {
  const env = { ...base, DENO_NO_UPDATE_CHECK: "1" };
  env.XDG_RUNTIME_DIR ??= mkdtempSync(join(tmpdir(), "flatness-xdg-"));
  if (process.platform === "linux") env.DENO_WEBGPU_BACKEND ||= "vulkan";
  return env;
}

/**
 * [command, leading args] that start Deno: the binary the npm `deno` package installed, started
 * directly so that signals (Ctrl-C) and exit statuses reach it and come back unchanged (its
 * bin.cjs wrapper would die on a signal and leave Deno running); the wrapper only when the binary
 * is not there yet (it installs it). Null when the package is missing.
 * @returns {[string, string[]] | null}
 */
export function denoCommand() {
  const require = createRequire(import.meta.url);
  let dir;
  try {
    dir = dirname(require.resolve("deno/package.json"));
  } catch {
    return null;
  }
  const exe = join(dir, process.platform === "win32" ? "deno.exe" : "deno");
  return existsSync(exe) ? [exe, []] : [process.execPath, [join(dir, "bin.cjs")]];
}
