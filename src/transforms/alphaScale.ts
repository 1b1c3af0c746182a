/**
 * The alpha-scale transformation T_alpha (Dinh et al. 2017, Definition 5 and its K-layer form):
 * theta_k -> alpha_k theta_k with prod_k alpha_k = 1. By non-negative homogeneity of (leaky) ReLU,
 * phi(alpha z) = alpha phi(z) for alpha > 0, so the network function is unchanged when each bias is
 * scaled by the product of the alphas up to its layer (Appendix B): b_k -> (prod_{j<=k} alpha_j) b_k.
 * Convolutions are linear maps of their input, so the same holds for them (each kernel scales by
 * alpha_k); pooling after the activation commutes with a positive scale (max and average pooling
 * are positively homogeneous).
 * The map is linear and diagonal, T_alpha(theta) = D_alpha theta, so
 *   grad L(T_alpha theta) = D_alpha^{-1} grad L(theta),   H(T_alpha theta) = D_alpha^{-1} H(theta) D_alpha^{-1}.
 */
import { InputError, assertFinite } from "../errors.ts";
import { type ModelSpec, parameterLayout } from "../model.ts";
import { assertHomogeneous } from "./neuronScale.ts";

/** The diagonal of D_alpha in the flat layout. */
export function alphaScaleDiagonal(spec: ModelSpec, alphas: number[], tolerance = 1e-9): Float64Array {
  const K = spec.layers.length;
  if (alphas.length !== K) throw new InputError(`T_alpha needs ${K} alphas (one per layer), got ${alphas.length}`);
  alphas.forEach((a, k) => {
    if (!(a > 0) || !Number.isFinite(a)) throw new InputError(`alpha_${k + 1} must be positive and finite, got ${a}`);
  });
  const logProduct = alphas.reduce((s, a) => s + Math.log(a), 0);
  if (Math.abs(logProduct) > tolerance * K) {
    throw new InputError(`the alphas must multiply to 1 (T_alpha keeps the function only then), their product is ${Math.exp(logProduct)}`);
  }
  const layout = parameterLayout(spec);
  const d = new Float64Array(layout.dim);
  const cumulative: number[] = [];
  alphas.reduce((p, a, k) => (cumulative[k] = p * a), 1);
  // Weights (linear rows or conv kernels) of layer k scale by alpha_k, its bias by prod_{j<=k} alpha_j.
  for (const v of layout.views) {
    d.fill(v.role === "weight" ? alphas[v.layer] : cumulative[v.layer], v.offset, v.offset + v.size);
  }
  return d;
}

/** T_alpha(theta) = D_alpha theta (Dinh et al. 2017 Definition 5, K layers, biases scaled as Appendix B): the same function; the alphas must be positive with product 1. */
export function alphaScale(spec: ModelSpec, theta: Float64Array, alphas: number[]): Float64Array {
  const d = alphaScaleDiagonal(spec, alphas);
  return theta.map((t, i) => t * d[i]);
}

/**
 * alphaScaleDiagonal for a model, after refusing (InputError naming the activation) one whose
 * activation is not positively homogeneous, for which T_alpha would change the function.
 */
export function homogeneousAlphaScaleDiagonal(spec: ModelSpec, alphas: number[]): Float64Array {
  assertHomogeneous(spec, "T_alpha");
  return alphaScaleDiagonal(spec, alphas);
}

/** T_alpha(theta) for a model: alphaScale with the activation and theta checked (length, finite). */
export function homogeneousAlphaScale(spec: ModelSpec, theta: Float64Array, alphas: number[]): Float64Array {
  const d = homogeneousAlphaScaleDiagonal(spec, alphas);
  if (theta.length !== d.length) throw new InputError(`theta has ${theta.length} entries, the model has ${d.length} parameters`);
  assertFinite("theta", theta);
  return theta.map((t, i) => t * d[i]);
}
