/**
 * Per-sample input Jacobians df/dx of a rectified net, float64 on the host (Dinh et al. 2017,
 * section 5.2): J(x) = W_{K-1} D_{K-2} W_{K-2} ... D_0 W_0, D_k = diag(phi'(z_k(x))), phi'(0) =
 * slope as the engines (a convolutional net's J also runs through its convolutions and poolings, by
 * backward passes: one per output). Used to push input gradients through a preprocessing xi that cannot be
 * folded into the first layer (the chain rule d f(xi(u))/du = J(xi(u)) d xi/du).
 */
import { InputError } from "../errors.ts";
import { inputWidth, type ModelSpec, outputWidth } from "../model.ts";
import { hostBackToInput, hostForward } from "../metrics/normBased.ts";

export interface InputJacobians {
  n: number;
  outputs: number;
  features: number;
  /** f(x), row-major [n, C]. */
  values: Float64Array;
  /** df/dx per sample, row-major [n, C, d]. */
  jacobians: Float64Array;
}

export function inputJacobians(spec: ModelSpec, theta: ArrayLike<number>, x: ArrayLike<number>): InputJacobians {
  const d = inputWidth(spec);
  if (x.length % d !== 0) throw new InputError(`input Jacobians: x has ${x.length} values, not a multiple of the ${d} input features`);
  const fw = hostForward(spec, theta, x);
  const C = outputWidth(spec);
  const K = spec.layers.length;
  const jacobians = new Float64Array(fw.n * C * d);
  // Row r of every sample's Jacobian: one batched backward pass of the covector e_r.
  const cov = new Float64Array(fw.n * C);
  for (let r = 0; r < C; r++) {
    cov.fill(0);
    for (let s = 0; s < fw.n; s++) cov[s * C + r] = 1;
    const g = hostBackToInput(spec, theta, fw, cov);
    for (let s = 0; s < fw.n; s++) jacobians.set(g.subarray(s * d, (s + 1) * d), (s * C + r) * d);
  }
  return { n: fw.n, outputs: C, features: d, values: fw.z[K - 1], jacobians };
}

/** Per-sample Frobenius norms of [C, d] blocks, with their mean and max. */
export function frobeniusNorms(jacobians: Float64Array, n: number, blockSize: number): { perSample: Float64Array; mean: number; max: number } {
  const perSample = new Float64Array(n);
  for (let s = 0; s < n; s++) {
    let sq = 0;
    for (let i = 0; i < blockSize; i++) sq += jacobians[s * blockSize + i] ** 2;
    perSample[s] = Math.sqrt(sq);
  }
  const mean = perSample.reduce((a, b) => a + b, 0) / n;
  const max = perSample.reduce((a, b) => Math.max(a, b), 0);
  return { perSample, mean, max };
}
