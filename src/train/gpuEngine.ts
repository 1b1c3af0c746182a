/** The WebGPU training engine: GpuObjective minibatches and GpuOptimizer on one GpuContext. */
import { InputError } from "../errors.ts";
import type { GpuContext } from "../gpu/context.ts";
import { GpuConvObjective } from "../gpu/convObjective.ts";
import { GpuObjective } from "../gpu/objective.ts";
import { type GpuVector, GpuVectorSpace } from "../gpu/vectors.ts";
import { isMlp } from "../model.ts";
import type { TrainingEngine } from "./engines.ts";
import { GpuOptimizer } from "./gpuOptimizers.ts";

/** Training on `ctx`: the data uploaded once per objective, parameters and optimizer state kept on the GPU. */
export function gpuEngine(ctx: GpuContext): TrainingEngine<GpuVector> {
  return {
    name: "gpu",
    describe: () => ctx.describe(),
    // MLPs: GpuObjective; nets with convolutions: GpuConvObjective (same options and minibatches).
    minibatchObjective: (spec, data, loss, batchSize) =>
      isMlp(spec)
        ? GpuObjective.create(ctx, spec, data, loss, { minibatchRows: batchSize })
        : GpuConvObjective.create(ctx, spec, data, loss, { minibatchRows: batchSize }),
    objective: (spec, data, loss) => (isMlp(spec) ? GpuObjective.create(ctx, spec, data, loss) : GpuConvObjective.create(ctx, spec, data, loss)),
    optimizer: (space, config) => {
      if (!(space instanceof GpuVectorSpace)) throw new InputError("the GPU optimizer needs the vector space of a GpuObjective");
      return GpuOptimizer.create(space, config);
    },
  };
}
