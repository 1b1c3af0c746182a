/** The "webgpu" backend: the WGSL engine (src/gpu/) on one GpuContext. */
import type { GpuContext } from "../gpu/context.ts";
import { GpuConvObjective } from "../gpu/convObjective.ts";
import { GpuObjective } from "../gpu/objective.ts";
import { type GpuVector, GpuVectorSpace } from "../gpu/vectors.ts";
import { SequentialBatchLoss } from "../landscape/batchLoss.ts";
import { GpuBatchLoss } from "../landscape/gpuBatchLoss.ts";
import { isMlp } from "../model.ts";
import { gpuEngine } from "../train/gpuEngine.ts";
import type { Backend } from "./types.ts";

/** SequentialBatchLoss over an objective it owns: dispose() releases the objective's GPU buffers too. */
class OwningBatchLoss<V> extends SequentialBatchLoss<V> {
  override dispose(): void {
    this.objective.dispose();
  }
}

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
    // MLPs: GpuObjective (gemm.wgsl only); nets with convolutions: GpuConvObjective.
    objective: (spec, data, loss, options = {}) =>
      isMlp(spec) ? GpuObjective.create(ctx, spec, data, loss, options) : GpuConvObjective.create(ctx, spec, data, loss, options),
    // GpuBatchLoss batches MLPs only; a conv net's losses run one objective pass per point.
    batchLoss: async (spec, data, loss, options = {}) =>
      isMlp(spec) ? await GpuBatchLoss.create(ctx, spec, data, loss, options) : new OwningBatchLoss(await GpuConvObjective.create(ctx, spec, data, loss)),
    vectorSpace: (dim) => GpuVectorSpace.create(ctx, dim),
    close: () => (owned ? ctx.close() : Promise.resolve()),
  };
}
