/**
 * Input reparametrizations (Dinh et al. 2017, section 5.2 and Appendix C). A preprocessing
 * u = xi^{-1}(x) gives the same predictor on the new input as f_xi = f ∘ xi, with
 *   d f_xi / du (u) = d f / dx (xi(u)) · d xi / du (u)                       (section 5.2)
 * so input-gradient norms, and any Euclidean metric on the representation (Appendix C), change
 * while the predictions do not.
 *
 * Affine maps u = A (x - mu), fitted on data in float64 (covariance with 1/n):
 *   standardize:  A = diag(1 / sqrt(var_i + eps))
 *   pca:          A = (Lambda + eps)^(-1/2) U^T     (rows: principal axes, largest variance first)
 *   zca:          A = U (Lambda + eps)^(-1/2) U^T
 * with Sigma = U Lambda U^T (src/metrics/tridiagonal.ts symmetricEigen), every component kept, and
 * eps = epsilon * (trace Sigma / d) (default epsilon 1e-10) so A stays invertible on rank-deficient
 * data. Folding into the first layer: x = A^{-1} u + mu, so
 *   z_1 = W_1 x + b_1 = (W_1 A^{-1}) u + (b_1 + W_1 mu)
 * i.e. W_1' = W_1 A^{-1}, b_1' = b_1 + W_1 mu (a bias is added to a bias-free first layer). The same
 * map applied to a net's OUTPUT (y' = A (y - mu), for a metric on the represented quantity, as in
 * Appendix C) folds into the last layer: W_K' = A W_K, b_K' = A (b_K - mu).
 * Convolutional nets: A^{-1} is not a convolution in general, so the input map folds only into a
 * linear first layer (refused otherwise) and the output map only into a linear output layer (a
 * CNN ending in flatten, linear: supported); f_xi and its input gradients (transformedOutputs,
 * transformedInputGradientNorms) work for every net.
 *
 * An invertible elementwise nonlinear map, u = asinh(x / s) (x = s sinh u, d x/du = s cosh u), has
 * no such folding: a plain MLP applies a linear map before its first nonlinearity, and x = s sinh(u)
 * is not one. f_xi is supported on the host only: outputs and input-gradient norms by the chain rule
 * with the diagonal Jacobian diag(s cosh u) (transformedOutputs, transformedInputGradientNorms).
 */
import type { Dataset } from "../data.ts";
import { InputError, assertFinite } from "../errors.ts";
import { isConv, type Model, type ModelSpec, parameterLayout, requireMlp, validateSpec } from "../model.ts";
import { hostForward } from "../metrics/normBased.ts";
import { symmetricEigen } from "../metrics/tridiagonal.ts";
import { frobeniusNorms, inputJacobians } from "./inputJacobian.ts";

/** The fitted affine input maps u = A (x - mu): per-feature standardization, PCA whitening, ZCA whitening. */
export type AffineInputKind = "standardize" | "pca" | "zca";

/** An affine input reparametrization u = A (x - mu) (Dinh et al. 2017 section 5.2 and Appendix C), foldable into the first layer. */
export interface AffineInputMap {
  /** Which fit produced A. */
  kind: AffineInputKind;
  /** Input width d. */
  features: number;
  /** mu, [d]. */
  mean: Float64Array;
  /** A, row-major [d, d]: u = A (x - mu). */
  matrix: Float64Array;
  /** A^{-1}, row-major [d, d]. */
  inverseMatrix: Float64Array;
  /** Variances (standardize) or covariance eigenvalues in the order of A's rows (pca) / ascending (zca). */
  variances: Float64Array;
  /** The absolute regulariser added to every variance. */
  epsilon: number;
}

/** The elementwise input reparametrization u = asinh(x / s) (Dinh et al. 2017 section 5.2): invertible, but not foldable into an MLP. */
export interface ElementwiseInputMap {
  /** The map's kind. */
  kind: "asinh";
  /** Input width d. */
  features: number;
  /** s per feature: u = asinh(x / s). */
  scale: Float64Array;
}

/** An input reparametrization x = xi(u) (Dinh et al. 2017 section 5.2): it changes input gradients, not predictions. */
export type InputMap = AffineInputMap | ElementwiseInputMap;

function checkMatrix(where: string, x: ArrayLike<number>, features: number): number {
  if (!Number.isInteger(features) || features < 1) throw new InputError(`${where}: features must be a positive integer, got ${features}`);
  if (x.length === 0 || x.length % features !== 0) {
    throw new InputError(`${where}: x has ${x.length} values, not a positive multiple of ${features} features`);
  }
  assertFinite(`${where}: x`, x);
  return x.length / features;
}

/** Fits standardization, PCA or ZCA whitening on x (row-major [n, d]). */
export function fitAffineInputMap(x: ArrayLike<number>, features: number, kind: AffineInputKind, options: { epsilon?: number } = {}): AffineInputMap {
  const where = `${kind} fit`;
  const n = checkMatrix(where, x, features);
  if (!["standardize", "pca", "zca"].includes(kind)) throw new InputError(`input map kind must be standardize, pca or zca, got ${kind}`);
  const rel = options.epsilon ?? 1e-10;
  if (!(Number.isFinite(rel) && rel > 0)) throw new InputError(`${where}: epsilon must be positive (it keeps A invertible), got ${rel}`);
  const d = features;
  const mean = new Float64Array(d);
  for (let s = 0; s < n; s++) for (let j = 0; j < d; j++) mean[j] += x[s * d + j] / n;
  const cov = new Float64Array(d * d);
  for (let s = 0; s < n; s++) {
    for (let i = 0; i < d; i++) {
      const ci = x[s * d + i] - mean[i];
      for (let j = i; j < d; j++) cov[i * d + j] += (ci * (x[s * d + j] - mean[j])) / n;
    }
  }
  for (let i = 0; i < d; i++) for (let j = 0; j < i; j++) cov[i * d + j] = cov[j * d + i];
  let trace = 0;
  for (let i = 0; i < d; i++) trace += cov[i * d + i];
  if (!(trace > 0)) throw new InputError(`${where}: every feature is constant over the ${n} samples; there is no scale to normalise by`);
  const eps = (rel * trace) / d;
  const matrix = new Float64Array(d * d);
  const inverseMatrix = new Float64Array(d * d);
  let variances: Float64Array;
  if (kind === "standardize") {
    variances = Float64Array.from({ length: d }, (_, i) => cov[i * d + i]);
    for (let i = 0; i < d; i++) {
      matrix[i * d + i] = 1 / Math.sqrt(variances[i] + eps);
      inverseMatrix[i * d + i] = Math.sqrt(variances[i] + eps);
    }
  } else {
    const { values, vectors: U } = symmetricEigen(cov, d);
    // Rounding can leave tiny negative eigenvalues on rank-deficient data: clamp at 0 before eps.
    const lam = values.map((v) => Math.max(v, 0) + eps);
    if (kind === "pca") {
      const order = Array.from({ length: d }, (_, r) => d - 1 - r); // largest variance first
      variances = Float64Array.from(order, (c) => values[c]);
      order.forEach((c, r) => {
        for (let j = 0; j < d; j++) {
          matrix[r * d + j] = U[j * d + c] / Math.sqrt(lam[c]);
          inverseMatrix[j * d + r] = U[j * d + c] * Math.sqrt(lam[c]);
        }
      });
    } else {
      variances = Float64Array.from(values);
      for (let i = 0; i < d; i++) {
        for (let j = 0; j < d; j++) {
          let a = 0, b = 0;
          for (let c = 0; c < d; c++) {
            a += (U[i * d + c] * U[j * d + c]) / Math.sqrt(lam[c]);
            b += U[i * d + c] * U[j * d + c] * Math.sqrt(lam[c]);
          }
          matrix[i * d + j] = a;
          inverseMatrix[i * d + j] = b;
        }
      }
    }
  }
  return { kind, features: d, mean, matrix, inverseMatrix, variances, epsilon: eps };
}

/** u = asinh(x / s) with s per feature (default: each feature's standard deviation, 1 where it is 0). */
export function fitAsinhInputMap(x: ArrayLike<number>, features: number, options: { scale?: ArrayLike<number> } = {}): ElementwiseInputMap {
  const n = checkMatrix("asinh map", x, features);
  let scale: Float64Array;
  if (options.scale) {
    if (options.scale.length !== features) throw new InputError(`asinh map: scale has ${options.scale.length} entries, expected ${features}`);
    scale = Float64Array.from(options.scale);
  } else {
    const std = featureStd(x, n, features);
    scale = std.map((s) => (s > 0 ? s : 1));
  }
  scale.forEach((s, i) => {
    if (!(Number.isFinite(s) && s > 0)) throw new InputError(`asinh map: scale[${i}] must be positive and finite, got ${s}`);
  });
  return { kind: "asinh", features, scale };
}

function featureStd(x: ArrayLike<number>, n: number, d: number): Float64Array {
  const mean = new Float64Array(d), sq = new Float64Array(d);
  for (let s = 0; s < n; s++) for (let j = 0; j < d; j++) mean[j] += x[s * d + j] / n;
  for (let s = 0; s < n; s++) for (let j = 0; j < d; j++) sq[j] += (x[s * d + j] - mean[j]) ** 2 / n;
  return sq.map(Math.sqrt);
}

/** u = xi^{-1}(x), row-major [n, d] in float64. */
export function applyInputMap(map: InputMap, x: ArrayLike<number>): Float64Array {
  const n = checkMatrix(`${map.kind} map`, x, map.features);
  const d = map.features;
  const u = new Float64Array(n * d);
  for (let s = 0; s < n; s++) {
    for (let i = 0; i < d; i++) {
      if (map.kind === "asinh") {
        u[s * d + i] = Math.asinh(x[s * d + i] / map.scale[i]);
      } else {
        let acc = 0;
        for (let j = 0; j < d; j++) acc += map.matrix[i * d + j] * (x[s * d + j] - map.mean[j]);
        u[s * d + i] = acc;
      }
    }
  }
  return u;
}

/** x = xi(u), row-major [n, d] in float64. */
export function invertInputMap(map: InputMap, u: ArrayLike<number>): Float64Array {
  const n = checkMatrix(`${map.kind} map`, u, map.features);
  const d = map.features;
  const x = new Float64Array(n * d);
  for (let s = 0; s < n; s++) {
    for (let i = 0; i < d; i++) {
      if (map.kind === "asinh") {
        x[s * d + i] = map.scale[i] * Math.sinh(u[s * d + i]);
      } else {
        let acc = map.mean[i];
        for (let j = 0; j < d; j++) acc += map.inverseMatrix[i * d + j] * u[s * d + j];
        x[s * d + i] = acc;
      }
    }
  }
  return x;
}

/** The dataset with x replaced by xi^{-1}(x), rounded to f32 as every Dataset is (labels and targets kept). */
export function transformDataset(map: InputMap, data: Dataset): Dataset {
  return { ...data, x: Float32Array.from(applyInputMap(map, data.x)) };
}

/** The same model with layer k's bias present (zeros where it was absent). */
export function withBias(spec: ModelSpec, theta: Float64Array, k: number): Model {
  if (spec.layers[k].bias) return { spec, theta: Float64Array.from(theta) };
  const next: ModelSpec = { ...spec, layers: spec.layers.map((l, j) => (j === k ? { ...l, bias: true } : l)) };
  const from = parameterLayout(spec), to = parameterLayout(next);
  const out = new Float64Array(to.dim);
  for (const v of from.views) out.set(theta.subarray(v.offset, v.offset + v.size), to.views.find((w) => w.name === v.name)!.offset);
  return { spec: next, theta: out };
}

function checkModel(where: string, spec: ModelSpec, theta: Float64Array): void {
  validateSpec(spec);
  const dim = parameterLayout(spec).dim;
  if (theta.length !== dim) throw new InputError(`${where}: theta has ${theta.length} entries, the model has ${dim} parameters`);
  assertFinite(`${where}: theta`, theta);
}

function affineOnly(where: string, map: InputMap): AffineInputMap {
  if (map.kind === "asinh") {
    throw new InputError(`${where}: the elementwise map asinh cannot fold into an MLP (its first operation is linear); use transformedOutputs / transformedInputGradientNorms on the host`);
  }
  return map;
}

/** f ∘ xi as a plain MLP on u: W_1' = W_1 A^{-1}, b_1' = b_1 + W_1 mu. */
export function foldInputMap(spec: ModelSpec, theta: Float64Array, map: InputMap): Model {
  const where = "fold input map";
  checkModel(where, spec, theta);
  const a = affineOnly(where, map);
  // A general A^{-1} (PCA, ZCA, per-pixel standardization) is not a convolution, so W_1 A^{-1} is
  // a conv kernel only for a linear first layer.
  requireMlp(spec, `${where} (W_1' = W_1 A^-1 on the flattened input)`);
  const d = a.features, l = spec.layers[0];
  if (l.inFeatures !== d) throw new InputError(`${where}: the map has ${d} features but the model's first layer takes ${l.inFeatures}`);
  const m = withBias(spec, theta, 0);
  const { weightOffset: w, biasOffset: b } = parameterLayout(m.spec).layers[0];
  const out = Float64Array.from(m.theta);
  for (let o = 0; o < l.outFeatures; o++) {
    let shift = 0;
    for (let i = 0; i < d; i++) shift += m.theta[w + o * d + i] * a.mean[i];
    out[b + o] = m.theta[b + o] + shift;
    for (let j = 0; j < d; j++) {
      let acc = 0;
      for (let i = 0; i < d; i++) acc += m.theta[w + o * d + i] * a.inverseMatrix[i * d + j];
      out[w + o * d + j] = acc;
    }
  }
  return { spec: m.spec, theta: out };
}

/** The model whose outputs are A (f(x) - mu): W_K' = A W_K, b_K' = A (b_K - mu). */
export function foldOutputMap(spec: ModelSpec, theta: Float64Array, map: InputMap): Model {
  const where = "fold output map";
  checkModel(where, spec, theta);
  const a = affineOnly(where, map);
  const K = spec.layers.length, last = spec.layers[K - 1], c = a.features;
  if (isConv(last)) {
    throw new InputError(`${where}: the output layer is a conv2d; A W_K is not a convolution, so the output map folds only into a linear output layer`);
  }
  const l = last;
  if (l.outFeatures !== c) throw new InputError(`${where}: the map has ${c} features but the model has ${l.outFeatures} outputs`);
  const m = withBias(spec, theta, K - 1);
  const { weightOffset: w, biasOffset: b } = parameterLayout(m.spec).layers[K - 1];
  const out = Float64Array.from(m.theta);
  for (let r = 0; r < c; r++) {
    let bias = 0;
    for (let j = 0; j < c; j++) bias += a.matrix[r * c + j] * (m.theta[b + j] - a.mean[j]);
    out[b + r] = bias;
    for (let i = 0; i < l.inFeatures; i++) {
      let acc = 0;
      for (let j = 0; j < c; j++) acc += a.matrix[r * c + j] * m.theta[w + j * l.inFeatures + i];
      out[w + r * l.inFeatures + i] = acc;
    }
  }
  return { spec: m.spec, theta: out };
}

/** f(xi(u)) on the host, row-major [n, C] (any map, foldable or not). */
export function transformedOutputs(spec: ModelSpec, theta: Float64Array, map: InputMap, u: ArrayLike<number>): Float64Array {
  const fw = hostForward(spec, theta, invertInputMap(map, u));
  return fw.z[fw.z.length - 1];
}

/**
 * ||d f(xi(u))/du||_F per sample with its mean and max (the quantity inputGradientNorms reports
 * with of: "output"), by the chain rule J_f(xi(u)) · d xi/du: A^{-1} for an affine map,
 * diag(s cosh u) for asinh.
 */
export function transformedInputGradientNorms(spec: ModelSpec, theta: Float64Array, map: InputMap, u: ArrayLike<number>) {
  const x = invertInputMap(map, u);
  const jac = inputJacobians(spec, theta, x);
  const { n, outputs: C, features: d } = jac;
  const chained = new Float64Array(n * C * d);
  for (let s = 0; s < n; s++) {
    for (let r = 0; r < C; r++) {
      const row = (s * C + r) * d;
      for (let j = 0; j < d; j++) {
        if (map.kind === "asinh") {
          chained[row + j] = jac.jacobians[row + j] * map.scale[j] * Math.cosh(u[s * d + j]);
        } else {
          let acc = 0;
          for (let i = 0; i < d; i++) acc += jac.jacobians[row + i] * map.inverseMatrix[i * d + j];
          chained[row + j] = acc;
        }
      }
    }
  }
  return frobeniusNorms(chained, n, C * d);
}
