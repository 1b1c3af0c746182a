/**
 * What the constructions of ./constructions.ts share: T_alpha on host vectors, the function check,
 * per-layer Hessian block eigenvalues, dense Hessians of tiny nets, and their error type.
 *
 * Blocks. The paper's theta_k is layer k's weight matrix (Definition 3, no biases). Under T_alpha
 * (Appendix B) the weight W_k scales by alpha_k and the bias b_k by the product alpha_1...alpha_k;
 * the curvature arguments below use the weight blocks, whose factor is alpha_k alone: for a unit
 * vector v supported on W_k, v^T H(T_alpha theta) v = v^T H(theta) v / alpha_k^2.
 */
import { FlatnessError, InputError, assertFinite } from "../errors.ts";
import { type ModelSpec, parameterLayout } from "../model.ts";
import { type Objective, withVectors } from "../objective.ts";
import type { Progress } from "../metrics/cost.ts";
import { hessianOperator, restrictedOperator } from "../metrics/operator.ts";
import { lanczosEigenpairs } from "../metrics/spectrum.ts";
import { homogeneousAlphaScaleDiagonal } from "./alphaScale.ts";

/** A construction that ran but could not deliver what was asked (the message says what it reached). */
export class ConstructionError extends FlatnessError {}

/** How far a transform moved the network function: outputs at theta and theta' compared on every sample (compareOutputs). */
export interface FunctionCheck {
  /** max |f(theta') - f(theta)| over every sample and output. */
  maxAbsDifference: number;
  /** max |f(theta)| over every sample and output. */
  maxAbsOutput: number;
  /** maxAbsDifference / maxAbsOutput (0 when both are 0). */
  relativeDifference: number;
  /** Samples compared. */
  samples: number;
}

/** Options every curvature-based construction takes. */
export interface LanczosSettings {
  /** Seed of the Lanczos start vectors (default 0). */
  seed?: number;
  /** Lanczos steps per eigenvalue estimate (default: the spectrum module's, min(n, 42)). */
  lanczosSteps?: number;
  /** Relative residual tolerance of Lanczos (default 1e-6). */
  lanczosTol?: number;
  /** Progress callback. */
  onProgress?: Progress;
}

/** Number of layers, after checking that T_alpha has a degree of freedom (K >= 2) and the activation. */
export function requireDeepHomogeneous(spec: ModelSpec, what: string): number {
  const K = spec.layers.length;
  // homogeneousAlphaScaleDiagonal refuses a non-homogeneous activation with a clear message.
  homogeneousAlphaScaleDiagonal(spec, new Array(K).fill(1));
  if (K < 2) {
    throw new InputError(`${what} needs at least one hidden layer: with one Linear layer T_alpha has only alpha = 1 (the product of the alphas must be 1)`);
  }
  return K;
}

export function checkHostTheta(spec: ModelSpec, theta: Float64Array): void {
  const n = parameterLayout(spec).dim;
  if (theta.length !== n) throw new InputError(`theta has ${theta.length} entries, the model has ${n} parameters`);
  assertFinite("theta", theta);
}

export function checkLayerIndex(spec: ModelSpec, k: number, what: string): void {
  const K = spec.layers.length;
  if (!Number.isInteger(k) || k < 0 || k >= K) throw new InputError(`${what}: layer ${k} does not exist (the model has layers 0..${K - 1})`);
}

export function checkPositiveNumber(name: string, x: number): void {
  if (typeof x !== "number" || !Number.isFinite(x) || !(x > 0)) throw new InputError(`${name} must be a positive finite number, got ${x}`);
}

/** T_alpha(theta) on the host (alphas checked: K of them, positive, finite, product 1). */
export function applyAlphas(spec: ModelSpec, theta: Float64Array, alphas: number[]): Float64Array {
  const d = homogeneousAlphaScaleDiagonal(spec, alphas);
  return theta.map((t, i) => t * d[i]);
}

/** Alphas from their logarithms, shifted so that they sum to exactly 0 up to rounding (product 1). */
export function alphasFromLogs(logs: number[]): number[] {
  const mean = logs.reduce((s, x) => s + x, 0) / logs.length;
  return logs.map((x) => Math.exp(x - mean));
}

/** alpha_k = a for layer k and a^{-1/(K-1)} for the K-1 others: the product is 1 (Theorem 4's spread). */
export function concentratedAlphas(K: number, k: number, a: number): number[] {
  const logA = Math.log(a);
  return Array.from({ length: K }, (_, j) => (j === k ? a : Math.exp(-logA / (K - 1))));
}

/** The 0/1 mask of layer k's weight tensor (a linear matrix or a conv kernel, not its bias) in the flat layout. */
export function weightMask(spec: ModelSpec, k: number): Float64Array {
  const layout = parameterLayout(spec);
  const mask = new Float64Array(layout.dim);
  const v = layout.views.find((t) => t.layer === k && t.role === "weight")!;
  mask.fill(1, v.offset, v.offset + v.size);
  return mask;
}

/** ||W_k||_2 (Frobenius; a convolution's whole kernel) of every layer. */
export function weightNorms(spec: ModelSpec, theta: Float64Array): number[] {
  const layout = parameterLayout(spec);
  return spec.layers.map((_, k) => {
    const v = layout.views.find((t) => t.layer === k && t.role === "weight")!;
    let s = 0;
    for (let i = v.offset; i < v.offset + v.size; i++) s += theta[i] * theta[i];
    return Math.sqrt(s);
  });
}

/**
 * max_i |after_i - before_i| and max_i |before_i|. A NaN difference stays NaN (it must not read as
 * 0, nor be overwritten by a later finite one).
 */
export function compareOutputs(before: ArrayLike<number>, after: ArrayLike<number>): { maxAbsDifference: number; maxAbsOutput: number } {
  let maxAbsDifference = 0;
  let maxAbsOutput = 0;
  for (let i = 0; i < before.length; i++) {
    const d = Math.abs(after[i] - before[i]);
    if (!Number.isNaN(maxAbsDifference) && !(d <= maxAbsDifference)) maxAbsDifference = d;
    maxAbsOutput = Math.max(maxAbsOutput, Math.abs(before[i]));
  }
  return { maxAbsDifference, maxAbsOutput };
}

/** The function check: outputs at `after` against those at `before`, over the objective's data. */
export async function functionCheck<V>(objective: Objective<V>, before: V, after: V): Promise<FunctionCheck> {
  const { maxAbsDifference, maxAbsOutput } = compareOutputs(await objective.outputs(before), await objective.outputs(after));
  const relativeDifference = maxAbsOutput > 0 ? maxAbsDifference / maxAbsOutput : maxAbsDifference === 0 ? 0 : Infinity;
  return { maxAbsDifference, maxAbsOutput, relativeDifference, samples: objective.sampleCount };
}

/** The largest eigenvalue of H(theta) (Lanczos, a Ritz value: a lower bound on lambda_max up to rounding). */
export async function topEigenvalue<V>(objective: Objective<V>, theta: V, o: LanczosSettings, mask?: V): Promise<number> {
  const h = hessianOperator(objective, theta);
  const op = mask === undefined ? h : restrictedOperator(h, mask);
  const r = await lanczosEigenpairs(op, { k: 1, which: "LA", seed: o.seed ?? 0, maxSteps: o.lanczosSteps, tol: o.lanczosTol ?? 1e-6 });
  return r.eigenvalues[0];
}

/** Top eigenvalue of every layer's weight block of H(theta) (Lanczos on the restricted operator). */
export async function weightBlockTopEigenvalues<V>(objective: Objective<V>, theta: V, o: LanczosSettings, progress?: (k: number) => void): Promise<number[]> {
  const spec = objective.spec;
  const out: number[] = [];
  for (let k = 0; k < spec.layers.length; k++) {
    progress?.(k);
    out.push(await withVectors(objective, [weightMask(spec, k)], ([mask]) => topEigenvalue(objective, theta, o, mask)));
  }
  return out;
}

/**
 * The dense Hessian (row-major [n, n], symmetrised) by n HVPs against the unit vectors, in blocks
 * of `block` directions sharing one data pass. Tiny nets only: n² memory and n HVPs.
 */
export async function denseHessian<V>(objective: Objective<V>, theta: V, onProgress?: Progress, block = 16): Promise<Float64Array> {
  const s = objective.space;
  const n = s.dim;
  const h = new Float64Array(n * n);
  for (let start = 0; start < n; start += block) {
    const count = Math.min(block, n - start);
    const vs: V[] = [];
    const outs: V[] = [];
    try {
      for (let j = 0; j < count; j++) {
        const e = new Float64Array(n);
        e[start + j] = 1;
        vs.push(s.fromArray(e));
        outs.push(s.zeros());
      }
      await objective.hvpBlock(theta, vs, outs);
      for (let j = 0; j < count; j++) h.set(await s.toArray(outs[j]), (start + j) * n);
    } finally {
      for (const v of [...vs, ...outs]) s.dispose(v);
    }
    onProgress?.((start + count) / n, `dense Hessian: ${start + count}/${n} columns`);
  }
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      const m = 0.5 * (h[i * n + j] + h[j * n + i]);
      h[i * n + j] = m;
      h[j * n + i] = m;
    }
  }
  return h;
}

/** Maps a sub-range [from, to] of the overall progress onto the caller's callback. */
export function subProgress(onProgress: Progress | undefined, from: number, to: number): Progress | undefined {
  if (!onProgress) return undefined;
  return (f, message) => onProgress(from + (to - from) * Math.min(1, Math.max(0, f)), message);
}
