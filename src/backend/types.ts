/**
 * The backend seam: what every caller (the command line, the demos, training, the metric suite,
 * reproduce) gets from an engine. A backend owns its device (if any) and builds objectives,
 * batched loss evaluators, optimizers and vector spaces on it; callers never name an engine's
 * classes. Backends are opened in one place, open.ts.
 */
import type { Dataset } from "../data.ts";
import type { GpuContext } from "../gpu/context.ts";
import type { BatchLoss } from "../landscape/batchLoss.ts";
import type { LossKind, ModelSpec } from "../model.ts";
import type { Objective, VectorSpace } from "../objective.ts";
import type { TrainingEngine } from "../train/engines.ts";

/**
 * "webgpu": f32 WGSL kernels on WebGPU; "wasm": f32 WebAssembly SIMD kernels on CPU threads (the
 * fast CPU engine, src/wasm/); "cpu": the float64 reference engine (plain loops).
 */
export type BackendName = "webgpu" | "wasm" | "cpu";
/** Every backend name. */
export const BACKEND_NAMES: readonly BackendName[] = ["webgpu", "wasm", "cpu"];

/** Options of Backend.objective. */
export interface ObjectiveOptions {
  /** Samples per data pass (GPU chunking; default: what fits the device's binding limit). */
  chunkRows?: number;
  /** Most HVP directions per block pass (default 8). */
  maxBlock?: number;
  /** Keep the forward pass and deltas between calls at the same theta (default true; benchmarks turn it off). */
  reuseForwardState?: boolean;
}

/** Options of Backend.batchLoss. */
export interface BatchLossOptions {
  /** Most parameter vectors evaluated per pass over the data (WebGPU; default 64). */
  maxBatch?: number;
}

/** A compute backend: objectives (loss, gradient, exact Hessian-vector products), batched losses, vector spaces, and the training engine, all on one device. `V` is its vector type. */
export interface Backend<V = unknown> extends TrainingEngine<V> {
  /** Which backend this is. */
  readonly name: BackendName;
  /** One line for logs and reports: the adapter, or the float64 reference. */
  describe(): string;
  /** True where the arithmetic runs on CPU cores: the float64 and wasm engines, or WebGPU emulated in software (lavapipe, SwiftShader). */
  readonly isSoftware: boolean;
  /** "f32" or "f64": tolerances of identities checked on this backend follow it. */
  readonly precision: "f32" | "f64";
  /** L(theta) over `data`, its gradient and exact Hessian-vector products, on this backend. */
  objective(spec: ModelSpec, data: Dataset, loss: LossKind, options?: ObjectiveOptions): Promise<Objective<V>>;
  /** Mean losses at many parameter vectors (loss landscapes); one data pass per block of points where the backend can. */
  batchLoss(spec: ModelSpec, data: Dataset, loss: LossKind, options?: BatchLossOptions): Promise<BatchLoss>;
  /** Vectors of `dim` entries in this backend's storage. */
  vectorSpace(dim: number): Promise<VectorSpace<V>>;
  /** The WebGPU context of a "webgpu" backend (for render pipelines and benchmarks); null otherwise. */
  readonly gpu: GpuContext | null;
  /** Releases the device and everything on it (waits for submitted work first). Safe to call twice. */
  close(): Promise<void>;
}
