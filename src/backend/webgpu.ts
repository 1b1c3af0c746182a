/** The "webgpu" backend: the WGSL engine (src/gpu/) on one GpuContext. */
import type { GpuContext } from "../gpu/context.ts";
import { GpuObjective } from "../gpu/objective.ts";
import { type GpuVector, GpuVectorSpace } from "../gpu/vectors.ts";
import { GpuBatchLoss } from "../landscape/gpuBatchLoss.ts";
import { gpuEngine } from "../train/gpuEngine.ts";
import type { Backend } from "./types.ts";

/**
 * A backend on `ctx`. With `owned`, close() destroys the context; otherwise the caller keeps it
 * (a page or a test suite that shares one context among several backends).
 */
export function webgpuBackend(ctx: GpuContext, owned: boolean): Backend<GpuVector> {
  const training = gpuEngine(ctx);
  return {
    ...training,
    name: "webgpu",
    describe: () => ctx.describe() + (ctx.isSoftware ? " (software WebGPU)" : ""),
    isSoftware: ctx.isSoftware,
    precision: "f32",
    gpu: ctx,
    objective: (spec, data, loss, options = {}) => GpuObjective.create(ctx, spec, data, loss, options),
    batchLoss: (spec, data, loss, options = {}) => GpuBatchLoss.create(ctx, spec, data, loss, options),
    vectorSpace: (dim) => GpuVectorSpace.create(ctx, dim),
    close: () => (owned ? ctx.close() : Promise.resolve()),
  };
}
