/**
 * Training engines: where the objectives and the optimizer live. The float64 CPU engine is here,
 * the WebGPU engine in gpuEngine.ts; both are part of a backend (src/backend/), which is how
 * callers get them.
 */
import type { Dataset } from "../data.ts";
import type { LossKind, ModelSpec } from "../model.ts";
import type { Objective, VectorSpace } from "../objective.ts";
import { ReferenceObjective } from "../reference/engine.ts";
import { HostOptimizer, type Optimizer, type OptimizerConfig } from "./optimizers.ts";
import type { MinibatchObjective } from "./trainer.ts";

/** What training needs from an engine: a minibatch objective, an evaluation objective and an optimizer, on one vector space type. */
export interface TrainingEngine<V> {
  /** The backend's name ("webgpu", "cpu"), or the caller's for an engine of their own. */
  readonly name: string;
  /** A line for logs (the adapter on the GPU). */
  describe(): string;
  /** An objective over the training data that takes minibatches of up to `batchSize` samples. */
  minibatchObjective(spec: ModelSpec, data: Dataset, loss: LossKind, batchSize: number): Promise<MinibatchObjective<V>>;
  /** An objective over held-out data (its outputs are evaluated). */
  objective(spec: ModelSpec, data: Dataset, loss: LossKind): Promise<Objective<V>>;
  /** An optimizer whose state lives in `space` (the training objective's). */
  optimizer(space: VectorSpace<V>, config: OptimizerConfig): Promise<Optimizer<V>>;
}

/** The float64 reference engine on the CPU: the oracle of the GPU training in the tests. */
export function cpuEngine(): TrainingEngine<Float64Array> {
  return {
    name: "cpu",
    describe: () => "float64 CPU reference",
    minibatchObjective: (spec, data, loss) => Promise.resolve(new ReferenceObjective(spec, data, loss)),
    objective: (spec, data, loss) => Promise.resolve(new ReferenceObjective(spec, data, loss)),
    optimizer: (space, config) => Promise.resolve(new HostOptimizer(space.dim, config)),
  };
}
