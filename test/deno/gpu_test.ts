/**
 * Runs the GPU suite (test/gpu/cases.ts) under Deno's WebGPU (Mesa lavapipe without a GPU).
 * Fails, never skips, when WebGPU is missing: GpuContext.create throws WebGPUUnavailableError.
 * The last test is the teardown every run goes through: the shared context is closed and no
 * context may be left alive (a case that forgot its own fails here, not at exit).
 */
import { GpuContext } from "../../src/gpu/context.ts";
import { BufferUsage, MapMode, ShaderStage } from "../../src/gpu/usage.ts";
import { engineCases, errorCases, tiledKernelCases } from "../gpu/cases.ts";
import { metricCases } from "../gpu/metricCases.ts";
import { trainCases } from "../gpu/trainCases.ts";
import { landscapeCases } from "../gpu/landscapeCases.ts";

const ctx = await GpuContext.create();
console.log(`adapter: ${ctx.describe()}`);

for (const c of [...engineCases, ...tiledKernelCases, ...metricCases, ...trainCases, ...landscapeCases, ...errorCases]) {
  Deno.test({
    name: c.name,
    sanitizeResources: false,
    sanitizeOps: false,
    async fn() {
      const before = ctx.pool.counters.inUse;
      await c.run(ctx);
      // Every case releases what it took from the shared context's pool: a leak fails the case that made it.
      const leaked = ctx.pool.counters.inUse - before;
      if (leaked !== 0) throw new Error(`${leaked} pooled GPU buffers taken by this case were never released`);
    },
  });
}

Deno.test("the spec-fixed flag numbers (src/gpu/usage.ts) equal the runtime's GPUBufferUsage, GPUMapMode and GPUShaderStage", () => {
  for (const [ours, runtime] of [[BufferUsage, GPUBufferUsage], [MapMode, GPUMapMode], [ShaderStage, GPUShaderStage]] as const) {
    for (const [name, value] of Object.entries(ours)) {
      const actual = (runtime as unknown as Record<string, number>)[name];
      if (actual !== value) throw new Error(`${name}: ${value} here, ${actual} in this runtime`);
    }
  }
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
