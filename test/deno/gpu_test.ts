/**
 * Runs the GPU suite (test/gpu/cases.ts) under Deno's WebGPU (Mesa lavapipe without a GPU).
 * Fails, never skips, when WebGPU is missing: GpuContext.create throws WebGPUUnavailableError.
 * The last test is the teardown every run goes through: the shared context is closed and no
 * context may be left alive (a case that forgot its own fails here, not at exit).
 */
import { GpuContext } from "../../src/gpu/context.ts";
import { engineCases, errorCases, tiledKernelCases } from "../gpu/cases.ts";
import { metricCases } from "../gpu/metricCases.ts";
import { trainCases } from "../gpu/trainCases.ts";
import { landscapeCases } from "../gpu/landscapeCases.ts";

const ctx = await GpuContext.create();
console.log(`adapter: ${ctx.describe()}`);

for (const c of [...engineCases, ...tiledKernelCases, ...metricCases, ...trainCases, ...landscapeCases, ...errorCases]) {
  Deno.test({ name: c.name, sanitizeResources: false, sanitizeOps: false, fn: () => c.run(ctx) });
}

Deno.test({
  name: "Deno's WebGPU opened Vulkan only: no libglvnd (libEGL, libGLdispatch) in this process (docs/deno-exit-abort.md)",
  ignore: Deno.build.os !== "linux",
  fn() {
    const loaded = Deno.readTextFileSync("/proc/self/maps").split("\n").map((l) => l.split(/\s+/)[5] ?? "");
    const gl = [...new Set(loaded.filter((path) => /lib(EGL|GLdispatch|GLX|glapi)[._]/.test(path)))];
    if (gl.length > 0) throw new Error(`wgpu's GL backend was loaded (${gl.join(", ")}): its exit-time destructor corrupts the heap`);
    if (!ctx.describe()) throw new Error("no adapter description");
  },
});

Deno.test({
  name: "teardown: the shared context closes and no GPU context is left alive",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const { inUse } = ctx.pool.counters;
    await ctx.close();
    if (inUse !== 0) throw new Error(`${inUse} pooled GPU buffers were still in use at the end of the suite`);
    if (GpuContext.liveCount !== 0) throw new Error(`${GpuContext.liveCount} GPU contexts were never destroyed`);
  },
});
