/**
 * The seam every algorithm uses: a vector space (where vectors live: float64 arrays on the CPU,
 * f32 buffers on the GPU) and an objective L(theta) over a fixed dataset with its gradient and
 * exact Hessian-vector products. The GPU engine and the float64 CPU reference implement the same
 * interfaces, so metrics, transforms and tests run unchanged on either.
 */
import type { LossKind, ModelSpec } from "./model.ts";

/** Where an objective's vectors live (Float64Array on the CPU, f32 buffers on the GPU) and the BLAS-1 operations on them; vectors are owned by the caller and released with dispose(). */
export interface VectorSpace<V> {
  /** Entries per vector: the parameter count n. */
  readonly dim: number;
  /**
   * Unit roundoff of the vectors' storage (2^-23 for f32 on the GPU, 2^-52 for float64): iterative
   * methods use it so that tolerances meant for float64 do not ask f32 for the impossible.
   */
  readonly epsilon?: number;
  /** A new vector of zeros. The caller owns it and calls dispose(). */
  zeros(): V;
  /** A new vector holding `values` (length dim). The caller owns it and calls dispose(). */
  fromArray(values: ArrayLike<number>): V;
  /** Reads a vector back (asynchronously on the GPU). */
  toArray(v: V): Promise<Float64Array>;
  /** Overwrites a vector with host values. */
  write(v: V, values: ArrayLike<number>): void;
  /** a·b, summed on the vectors' device. */
  dot(a: V, b: V): Promise<number>;
  /** xs[i]·y for every i, equal to dot(xs[i], y) each, in one round trip where the space can. */
  dots(xs: V[], y: V): Promise<number[]>;
  /** y <- y + alpha x */
  axpy(alpha: number, x: V, y: V): void;
  /** x <- alpha x */
  scale(alpha: number, x: V): void;
  /** dst <- src */
  copy(src: V, dst: V): void;
  /** y <- x ⊙ y (elementwise product; x === y squares). */
  multiply(x: V, y: V): void;
  /** y <- alpha x + beta y */
  linearCombination(alpha: number, x: V, beta: number, y: V): void;
  /** Releases a vector (a no-op for host arrays). */
  dispose(v: V): void;
}

/** How many passes an objective has run: metrics report their cost in these units. */
export interface PassCounters {
  /** Loss-only passes over the data (loss, outputs). */
  forward: number;
  /** Gradient passes. */
  gradient: number;
  /** Single Hessian-vector products (hvp, and Gauss-Newton products where offered). */
  hvp: number;
  /** HVP directions computed through hvpBlock (k per call). */
  blockHvpDirections: number;
}

/** The training loss L(theta) over a fixed dataset, with its gradient and exact Hessian-vector products; `V` is the vector type of its space. */
export interface Objective<V> {
  /** The architecture theta parametrizes. */
  readonly spec: ModelSpec;
  /** The loss L is the mean of. */
  readonly lossKind: LossKind;
  /** Samples N in the dataset. */
  readonly sampleCount: number;
  /** The vector space of theta, gradients and HVP directions. */
  readonly space: VectorSpace<V>;
  /** Passes run so far (cost accounting of the metrics). */
  readonly counters: PassCounters;
  /** L(theta), the mean loss over the whole dataset. */
  loss(theta: V): Promise<number>;
  /** Writes grad L(theta) into `out`; returns L(theta). */
  gradient(theta: V, out: V): Promise<number>;
  /** Writes H(theta) v into `out`: the exact Hessian (Pearlmutter's R-operator), not Gauss-Newton. */
  hvp(theta: V, v: V, out: V): Promise<void>;
  /** Writes H vs[j] into outs[j] for every j, sharing one data pass. */
  hvpBlock(theta: V, vs: V[], outs: V[]): Promise<void>;
  /** Network outputs z_K, row-major [N, outputs], as float64 on the host. */
  outputs(theta: V): Promise<Float64Array>;
  /** Releases the device buffers of the objective (not the vectors of its space). */
  dispose(): void;
}

/** Runs `work` with host vectors uploaded into the objective's space, disposing them afterwards. */
export async function withVectors<V, T>(objective: { space: VectorSpace<V> }, hosts: ArrayLike<number>[], work: (vs: V[]) => Promise<T>): Promise<T> {
  const s = objective.space;
  const vs: V[] = [];
  try {
    for (const h of hosts) vs.push(s.fromArray(h));
    return await work(vs);
  } finally {
    for (const v of vs) s.dispose(v);
  }
}

export function zeroCounters(): PassCounters {
  return { forward: 0, gradient: 0, hvp: 0, blockHvpDirections: 0 };
}
