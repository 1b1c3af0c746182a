/**
 * Opens a GpuContext (which restricts Deno's WebGPU to Vulkan on Linux unless DENO_WEBGPU_BACKEND is
 * set, src/gpu/denoBackend.ts) and prints the OpenGL libraries (libglvnd) this process then has
 * loaded, as JSON: test/teardown.test.ts runs it with and without a backend chosen beforehand.
 * Needs -A: Deno reads /proc/self/maps only with all permissions.
 */
import { GpuContext } from "../../../src/gpu/context.ts";

const ctx = await GpuContext.create();
const paths = Deno.readTextFileSync("/proc/self/maps").split("\n").map((line) => line.split(/\s+/)[5] ?? "");
const gl = [...new Set(paths.filter((p) => /lib(EGL|GLdispatch|GLX|glapi)[._]/.test(p)))];
await ctx.close();
console.log(JSON.stringify({ backend: Deno.env.get("DENO_WEBGPU_BACKEND") ?? null, gl }));
