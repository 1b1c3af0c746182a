/**
 * Batched loss evaluation for loss landscapes: the mean loss L(theta_p) at P parameter vectors
 *
 *   theta_p = base + sum_{j < J} c_{p j} u_j          (J <= MAX_BASIS basis vectors u_j)
 *
 * which covers a 1-D or 2-D slice theta + a_p d1 + b_p d2 (J = 1 or 2, c_p = (a_p, b_p)) and points
 * of a T_alpha orbit, D(t) theta = theta + (e^t - 1) u+ + (e^-t - 1) u- (src/landscape/directions.ts).
 * Two implementations share the BatchLoss interface:
 *   - SequentialBatchLoss (this file): forms each theta_p on the host in float64 and calls
 *     objective.loss once per point; over ReferenceObjective it is the float64 CPU twin the GPU
 *     version is tested against, over GpuObjective it is the P-sequential-calls baseline of the
 *     benchmark (src/landscape/bench.ts);
 *   - GpuBatchLoss (./gpuBatchLoss.ts): every point in one pass over the data per block of points.
 */
import { InputError } from "../errors.ts";
import type { LossKind } from "../model.ts";
import type { Objective } from "../objective.ts";

/** Most basis vectors a batch may combine (a plane plus an orbit's two needs 4 at most). */
export const MAX_BASIS = 4;

/** P parameter vectors: base + sum_j coefficients[p * J + j] * basis[j]. */
export interface PerturbationBatch {
  /** The common point, length dim. */
  base: Float64Array;
  /** The J <= MAX_BASIS basis vectors u_j, each length dim. */
  basis: Float64Array[];
  /** Row-major [P, J], J = basis.length. */
  coefficients: Float64Array;
}

/** Mean losses L(theta_p) at many parameter vectors theta_p = base + sum_j c_pj u_j (see the module comment); GPU-batched or sequential. */
export interface BatchLoss {
  /** Parameter count n. */
  readonly dim: number;
  /** Samples N the loss averages over. */
  readonly sampleCount: number;
  /** The loss. */
  readonly lossKind: LossKind;
  /** Parameter vectors evaluated so far (one per point). */
  readonly evaluated: number;
  /** Most points per data pass (batched evaluators, WebGPU). */
  readonly maxBatch?: number;
  /** Samples per chunk of a data pass (batched evaluators). */
  readonly chunkRows?: number;
  /** Data passes run so far (batched evaluators). */
  readonly passes?: number;
  /** L(theta_p) for every point p of the batch, in order. */
  losses(batch: PerturbationBatch): Promise<Float64Array>;
  /** Releases the evaluator's buffers. */
  dispose(): void;
}

/** Number of points in a batch after checking its shapes and values (InputError naming the problem). */
export function checkBatch(batch: PerturbationBatch, dim: number): number {
  const J = batch.basis.length;
  if (J > MAX_BASIS) throw new InputError(`a perturbation batch combines at most ${MAX_BASIS} basis vectors, got ${J}`);
  if (batch.base.length !== dim) throw new InputError(`base has ${batch.base.length} entries, the model has ${dim} parameters`);
  batch.basis.forEach((u, j) => {
    if (u.length !== dim) throw new InputError(`basis vector ${j} has ${u.length} entries, the model has ${dim} parameters`);
  });
  const c = batch.coefficients;
  if (J === 0 ? c.length !== 0 : c.length % J !== 0) {
    throw new InputError(`coefficients have ${c.length} entries, not a multiple of the ${J} basis vectors`);
  }
  for (const [what, values] of [["base", batch.base], ["coefficients", c], ...batch.basis.map((u, j) => [`basis vector ${j}`, u] as const)] as const) {
    for (let i = 0; i < values.length; i++) {
      if (!Number.isFinite(values[i])) throw new InputError(`${what} has a non-finite value (${values[i]}) at index ${i}`);
    }
  }
  return J === 0 ? 1 : c.length / J;
}

/** theta_p of a batch, in float64, written into `out`. */
export function perturbedPoint(batch: PerturbationBatch, p: number, out: Float64Array): Float64Array {
  const J = batch.basis.length;
  out.set(batch.base);
  for (let j = 0; j < J; j++) {
    const c = batch.coefficients[p * J + j];
    if (c === 0) continue;
    const u = batch.basis[j];
    for (let i = 0; i < out.length; i++) out[i] += c * u[i];
  }
  return out;
}

/**
 * One objective.loss call per point. Over ReferenceObjective: the float64 twin of GpuBatchLoss;
 * over GpuObjective: the sequential baseline (one parameter upload and one data pass per point).
 */
export class SequentialBatchLoss<V> implements BatchLoss {
  evaluated = 0;
  constructor(readonly objective: Objective<V>) {}

  get dim(): number {
    return this.objective.space.dim;
  }
  get sampleCount(): number {
    return this.objective.sampleCount;
  }
  get lossKind(): LossKind {
    return this.objective.lossKind;
  }

  async losses(batch: PerturbationBatch): Promise<Float64Array> {
    const P = checkBatch(batch, this.dim);
    const s = this.objective.space;
    const host = new Float64Array(this.dim);
    const theta = s.zeros();
    const out = new Float64Array(P);
    try {
      for (let p = 0; p < P; p++) {
        s.write(theta, perturbedPoint(batch, p, host));
        out[p] = await this.objective.loss(theta);
        this.evaluated++;
      }
    } finally {
      s.dispose(theta);
    }
    return out;
  }

  /** The objective belongs to the caller. */
  dispose(): void {}
}
