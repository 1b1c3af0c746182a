/** The "cpu" backend: the float64 reference engine (src/reference/engine.ts), no device. */
import { HostVectorSpace } from "../hostVectorSpace.ts";
import { SequentialBatchLoss } from "../landscape/batchLoss.ts";
import { ReferenceObjective } from "../reference/engine.ts";
import { cpuEngine } from "../train/engines.ts";
import type { Backend } from "./types.ts";

/** The float64 reference backend: plain CPU loops, vectors are Float64Array, no device to close. */
export function cpuBackend(): Backend<Float64Array> {
  const training = cpuEngine();
  return {
    ...training,
    name: "cpu",
    describe: () => "float64 CPU reference",
    isSoftware: true,
    precision: "f64",
    gpu: null,
    objective: (spec, data, loss) => Promise.resolve(new ReferenceObjective(spec, data, loss)),
    batchLoss: (spec, data, loss) => Promise.resolve(new SequentialBatchLoss(new ReferenceObjective(spec, data, loss))),
    vectorSpace: (dim) => Promise.resolve(new HostVectorSpace(dim)),
    close: () => Promise.resolve(),
  };
}
