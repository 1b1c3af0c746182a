/**
 * Losses in float64, mean over the dataset (PyTorch conventions):
 *   ce:       L = (1/N) sum_s [ logsumexp(z_s) - z_s[y_s] ]            (nn.CrossEntropyLoss)
 *             dL/dz = (softmax(z) - onehot(y)) / N
 *             d²L/dz² · r = (p ⊙ r - p (p·r)) / N,  p = softmax(z)      (the full softmax curvature)
 *   mse:      L = (1/(N C)) sum (z - t)²                                (nn.MSELoss)
 *             dL/dz = 2 (z - t) / (N C),   d²L/dz² · r = 2 r / (N C)
 *   logistic: L = (1/N) sum_s [ softplus(z_s) - y_s z_s ]  (one output; BCEWithLogitsLoss)
 *             dL/dz = (sigmoid(z) - y) / N,  d²L/dz² · r = sigmoid(z)(1 - sigmoid(z)) r / N
 * The WGSL kernels in shaders/loss_*.wgsl compute the same formulas per sample.
 */
import type { Dataset } from "../data.ts";
import type { LossKind } from "../model.ts";

export function softplus(z: number): number {
  return Math.max(z, 0) + Math.log1p(Math.exp(-Math.abs(z)));
}

export function sigmoid(z: number): number {
  return z >= 0 ? 1 / (1 + Math.exp(-z)) : Math.exp(z) / (1 + Math.exp(z));
}

function softmaxRow(z: Float64Array, row: number, c: number, p: Float64Array): number {
  let m = -Infinity;
  for (let j = 0; j < c; j++) m = Math.max(m, z[row * c + j]);
  let s = 0;
  for (let j = 0; j < c; j++) {
    p[j] = Math.exp(z[row * c + j] - m);
    s += p[j];
  }
  for (let j = 0; j < c; j++) p[j] /= s;
  return m + Math.log(s); // logsumexp
}

export function lossValueAndGradient(
  kind: LossKind,
  z: Float64Array,
  data: Dataset,
  c: number,
): { loss: number; delta: Float64Array } {
  const n = data.n;
  const delta = new Float64Array(n * c);
  let total = 0;
  if (kind === "ce") {
    const p = new Float64Array(c);
    for (let s = 0; s < n; s++) {
      const y = data.labels![s];
      total += softmaxRow(z, s, c, p) - z[s * c + y];
      for (let j = 0; j < c; j++) delta[s * c + j] = (p[j] - (j === y ? 1 : 0)) / n;
    }
    return { loss: total / n, delta };
  }
  if (kind === "mse") {
    for (let i = 0; i < n * c; i++) {
      const r = z[i] - data.targets![i];
      total += r * r;
      delta[i] = (2 * r) / (n * c);
    }
    return { loss: total / (n * c), delta };
  }
  for (let s = 0; s < n; s++) {
    const y = data.labels![s];
    total += softplus(z[s]) - y * z[s];
    delta[s] = (sigmoid(z[s]) - y) / n;
  }
  return { loss: total / n, delta };
}

/** d²L/dz² applied to the output tangent rz, both [N, C]. */
export function lossCurvature(kind: LossKind, z: Float64Array, rz: Float64Array, n: number, c: number): Float64Array {
  const out = new Float64Array(n * c);
  if (kind === "ce") {
    const p = new Float64Array(c);
    for (let s = 0; s < n; s++) {
      softmaxRow(z, s, c, p);
      let pr = 0;
      for (let j = 0; j < c; j++) pr += p[j] * rz[s * c + j];
      for (let j = 0; j < c; j++) out[s * c + j] = (p[j] * (rz[s * c + j] - pr)) / n;
    }
  } else if (kind === "mse") {
    for (let i = 0; i < n * c; i++) out[i] = (2 * rz[i]) / (n * c);
  } else {
    for (let s = 0; s < n; s++) {
      const q = sigmoid(z[s]);
      out[s] = (q * (1 - q) * rz[s]) / n;
    }
  }
  return out;
}
