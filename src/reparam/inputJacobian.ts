/**
 * Per-sample input Jacobians df/dx of a rectified net, float64 on the host (Dinh et al. 2017,
 * section 5.2): J(x) = W_{K-1} D_{K-2} W_{K-2} ... D_0 W_0, D_k = diag(phi'(z_k(x))), phi'(0) =
 * slope as the engines. Used to push input gradients through a preprocessing xi that cannot be
 * folded into the first layer (the chain rule d f(xi(u))/du = J(xi(u)) d xi/du).
 */
import { InputError } from "../errors.ts";
import { type ModelSpec, negativeSlope, outputWidth, parameterLayout } from "../model.ts";
import { hostForward } from "../metrics/normBased.ts";

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
  const d = spec.layers[0].inFeatures;
  if (x.length % d !== 0) throw new InputError(`input Jacobians: x has ${x.length} values, not a multiple of the ${d} input features`);
  const fw = hostForward(spec, theta, x);
  const layout = parameterLayout(spec);
  const slope = negativeSlope(spec.activation);
  const C = outputWidth(spec);
  const K = spec.layers.length;
  const jacobians = new Float64Array(fw.n * C * d);
  for (let s = 0; s < fw.n; s++) {
    // M = d z_k / dx, [out_k, d], starting with W_0.
    let m = new Float64Array(spec.layers[0].outFeatures * d);
    for (let i = 0; i < m.length; i++) m[i] = theta[layout.layers[0].weightOffset + i];
    for (let k = 1; k < K; k++) {
      const l = spec.layers[k];
      const w = layout.layers[k].weightOffset;
      const zPrev = fw.z[k - 1];
      const next = new Float64Array(l.outFeatures * d);
      for (let i = 0; i < l.inFeatures; i++) {
        const gate = zPrev[s * l.inFeatures + i] > 0 ? 1 : slope;
        if (gate === 0) continue;
        for (let o = 0; o < l.outFeatures; o++) {
          const c = gate * theta[w + o * l.inFeatures + i];
          if (c === 0) continue;
          for (let j = 0; j < d; j++) next[o * d + j] += c * m[i * d + j];
        }
      }
      m = next;
    }
    jacobians.set(m, s * C * d);
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
