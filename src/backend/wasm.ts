/** The "wasm" backend: the WebAssembly SIMD CPU engine (src/wasm/), f32, on the runtime's threads. */
import { type BatchLoss, SequentialBatchLoss } from "../landscape/batchLoss.ts";
import { HostOptimizer } from "../train/optimizers.ts";
import { WasmObjective, WasmVectorSpace } from "../wasm/objective.ts";
import { WasmRuntime, type WasmRuntimeOptions } from "../wasm/runtime.ts";
import type { Backend } from "./types.ts";

/** SequentialBatchLoss over an objective it owns: dispose() releases the objective's memory too. */
class OwningBatchLoss<V> extends SequentialBatchLoss<V> {
  override dispose(): void {
    this.objective.dispose();
  }
}

/**
 * A backend on a new WasmRuntime (memory, kernels, worker threads); close() stops its workers.
 * Vectors are host Float64Array (WasmVectorSpace), so the host optimizers serve training.
 */
export async function wasmBackend(options: WasmRuntimeOptions = {}): Promise<Backend<Float64Array>> {
  const rt = await WasmRuntime.create(options);
  const describe = () => `WebAssembly CPU engine (${rt.describe()})`;
  return {
    name: "wasm",
    describe,
    isSoftware: true,
    precision: "f32",
    gpu: null,
    objective: (spec, data, loss, o = {}) => Promise.resolve(WasmObjective.create(rt, spec, data, loss, o)),
    batchLoss: (spec, data, loss): Promise<BatchLoss> => Promise.resolve(new OwningBatchLoss(WasmObjective.create(rt, spec, data, loss))),
    vectorSpace: (dim) => Promise.resolve(new WasmVectorSpace(dim)),
    minibatchObjective: (spec, data, loss, batchSize) => Promise.resolve(WasmObjective.create(rt, spec, data, loss, { minibatchRows: batchSize })),
    optimizer: (space, config) => Promise.resolve(new HostOptimizer(space.dim, config)),
    close: () => {
      rt.close();
      return Promise.resolve();
    },
  };
}
