/**
 * Which native graphics API Deno's WebGPU (wgpu) may open: on Linux, Vulkan only.
 *
 * Why: by default wgpu enumerates every backend it was built with, and on Linux that includes its
 * OpenGL ES backend, which loads libglvnd (libEGL, libGLdispatch) and gives each thread that asks
 * for an adapter libGLdispatch thread state. At process exit glibc runs libGLdispatch's destructor
 * on the main thread while runtime threads may still be ending and freeing that same thread state:
 * a double free that aborts the process after all its work is done ("corrupted size vs. prev_size
 * in fastbins", "double free or corruption"; seen in 1 of 12 runs of the Deno GPU suite, core dump
 * in docs/deno-exit-abort.md, reproduction in test/deno/repro/exit_race.ts). This toolkit needs
 * compute only, which Vulkan gives (Mesa lavapipe without a GPU), so the GL backend is never
 * loaded. A user who sets DENO_WEBGPU_BACKEND keeps their choice.
 *
 * wgpu reads the variable when Deno creates its WebGPU instance, at the first requestAdapter(), so
 * this must run before that. The command line and `npm test` also set it in the environment of the
 * Deno process they start (bin/deno-env.mjs); this covers Deno scripts that import the library.
 */

/** The variable wgpu's instance reads in Deno (a comma list: vulkan, gl, metal, dx12). */
export const DENO_BACKEND_VARIABLE = "DENO_WEBGPU_BACKEND";

interface DenoLike {
  build: { os: string };
  env: { get(key: string): string | undefined; set(key: string, value: string): void };
  permissions?: { querySync?(d: { name: "env"; variable: string }): { state: string } };
}

/**
 * Restricts Deno's WebGPU to Vulkan on Linux unless the user chose a backend. Returns the backend
 * list in force, or null outside Deno/Linux or where env access is not granted (nothing changed).
 */
export function preferVulkanOnLinux(): string | null {
  const deno = (globalThis as { Deno?: DenoLike }).Deno;
  if (!deno || deno.build.os !== "linux") return null;
  // Without --allow-env, asking would prompt or throw: leave the process as it is.
  const state = deno.permissions?.querySync?.({ name: "env", variable: DENO_BACKEND_VARIABLE }).state;
  if (state !== "granted") return null;
  const chosen = deno.env.get(DENO_BACKEND_VARIABLE);
  if (chosen) return chosen;
  deno.env.set(DENO_BACKEND_VARIABLE, "vulkan");
  return "vulkan";
}
