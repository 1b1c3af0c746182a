/**
 * Runs the GPU suite (test/gpu/cases.ts) under Deno's WebGPU (Mesa lavapipe without a GPU).
 * Fails, never skips, when WebGPU is missing: GpuContext.create throws WebGPUUnavailableError.
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
