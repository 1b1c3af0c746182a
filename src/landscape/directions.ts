/**
 * Directions for loss-landscape slices L(theta + a d1 + b d2):
 *
 *   random   seeded Gaussian, N(0, 1) per entry (Goodfellow et al.'s random directions).
 *   filter   a random direction filter-normalized as Li et al. 2018 (loss-landscape's
 *            normalize_direction(..., "filter")): for every filter (a convolution's output
 *            channel, its [in/groups, kh, kw] slice W_k[i, :, :, :]; for a linear layer row i of
 *            W_k, the FC analogue) d_i <- d_i ||theta_i|| / ||d_i||, so a step a moves
 *            each unit by a times its own scale and slices of nets of different scales compare.
 *            Biases: "ignore" (the default, loss-landscape's --xignore biasbn) zeroes their
 *            direction; "include" normalizes each bias entry as its own filter,
 *            d_i <- d_i |theta_i| / |d_i| (marcellodebernardi/loss-landscapes' choice).
 *   eigen    the top Hessian eigenvectors (Lanczos with keepVectors, src/metrics/spectrum.ts),
 *            unit norm: the sharpest directions, with L(theta + a v) ~ L + a g.v + lambda a^2 / 2.
 *   alpha    the tangent of the T_alpha orbit (Dinh et al. 2017, Definition 5): scale layer `up`
 *            by e^t and layer `down` by e^-t, D(t) = diag(e^{t c}) with c = +1 on W_up, -1 on
 *            W_down, and on each bias b_k the sum of the log-rates of the layers up to k
 *            (Appendix B: b_k scales with prod_{j<=k} alpha_j). The function, hence the loss, is
 *            constant along the orbit t -> D(t) theta; its tangent at t = 0 is d = c ⊙ theta, a
 *            direction of zero slope (g.d = 0) along which the straight line theta + a d bends away
 *            only at second order. The orbit itself is theta + (e^t - 1) u+ + (e^-t - 1) u- with
 *            u+ / u- theta restricted to c = +1 / -1, so orbit points go through the same batched
 *            evaluation as straight slices.
 */
import { InputError } from "../errors.ts";
import { type ModelSpec, parameterLayout } from "../model.ts";
import type { Objective } from "../objective.ts";
import { hessianOperator } from "../metrics/operator.ts";
import { lanczosEigenpairs } from "../metrics/spectrum.ts";
import { Rng } from "../random.ts";
import { assertHomogeneous } from "../transforms/neuronScale.ts";

/** How landscape directions are chosen: "random" Gaussian, "filter" normalized (Li et al. 2018), "eigen" top Hessian eigenvectors, "alpha" the tangent of a T_alpha orbit (Dinh et al. 2017 Definition 5). */
export type DirectionKind = "random" | "filter" | "eigen" | "alpha";
/** Every direction kind. */
export const DIRECTION_KINDS: readonly DirectionKind[] = ["random", "filter", "eigen", "alpha"];

/** What the direction gives the biases (random and filter directions). */
export type BiasPolicy = "ignore" | "include";

function checkTheta(spec: ModelSpec, theta: ArrayLike<number>, what = "theta"): number {
  const n = parameterLayout(spec).dim;
  if (theta.length !== n) throw new InputError(`${what} has ${theta.length} entries, the model has ${n} parameters`);
  return n;
}

/** A seeded Gaussian direction, N(0, 1) per entry; bias entries zero unless `bias` is "include". */
export function randomDirection(spec: ModelSpec, seed: number, bias: BiasPolicy = "ignore"): Float64Array {
  const layout = parameterLayout(spec);
  const d = new Rng(seed).normals(layout.dim);
  if (bias === "ignore") for (const v of layout.views) if (v.role === "bias") d.fill(0, v.offset, v.offset + v.size);
  return d;
}

/**
 * Li et al.'s filter normalization of `direction` (a new vector): each weight row rescaled to the
 * norm of theta's row; bias entries zeroed ("ignore") or rescaled to |theta_i| ("include"). A row
 * whose direction or theta is zero becomes zero.
 */
export function filterNormalize(spec: ModelSpec, theta: ArrayLike<number>, direction: ArrayLike<number>, bias: BiasPolicy = "ignore"): Float64Array {
  checkTheta(spec, theta);
  checkTheta(spec, direction, "direction");
  const layout = parameterLayout(spec);
  const out = Float64Array.from(direction);
  const rescale = (start: number, length: number) => {
    let dn = 0;
    let tn = 0;
    for (let i = start; i < start + length; i++) {
      dn += out[i] * out[i];
      tn += theta[i] * theta[i];
    }
    const f = dn > 0 ? Math.sqrt(tn / dn) : 0;
    for (let i = start; i < start + length; i++) out[i] *= f;
  };
  for (const v of layout.views) {
    if (v.role === "weight") {
      // Rows of a linear W [out, in]; a convolution's filters W[o, :, :, :] (in/groups·kh·kw each).
      const rows = v.shape[0];
      const cols = v.size / rows;
      for (let r = 0; r < rows; r++) rescale(v.offset + r * cols, cols);
    } else if (bias === "ignore") {
      out.fill(0, v.offset, v.offset + v.size);
    } else {
      for (let i = 0; i < v.size; i++) rescale(v.offset + i, 1);
    }
  }
  return out;
}

/** A seeded filter-normalized random direction. */
export function filterDirection(spec: ModelSpec, theta: ArrayLike<number>, seed: number, bias: BiasPolicy = "ignore"): Float64Array {
  return filterNormalize(spec, theta, randomDirection(spec, seed, bias), bias);
}

/** The T_alpha orbit through theta that scales layer `up` by e^t and layer `down` by e^-t. */
export interface AlphaOrbit {
  up: number;
  down: number;
  /** c: the log-rate of every parameter, d/dt log D(t) (+1, -1 or 0). */
  rates: Float64Array;
  /** d = c ⊙ theta, the orbit's tangent at t = 0. */
  tangent: Float64Array;
  /** theta where c = +1 (else 0), and where c = -1: D(t) theta = theta + (e^t - 1) plus + (e^-t - 1) minus. */
  plus: Float64Array;
  minus: Float64Array;
}

/**
 * The T_alpha orbit of theta (default: the first layer up, the last down). Needs two layers or more
 * and a positively homogeneous activation (relu, leaky relu), for which T_alpha keeps the function.
 */
export function alphaOrbit(spec: ModelSpec, theta: ArrayLike<number>, up = 0, down = spec.layers.length - 1): AlphaOrbit {
  const K = spec.layers.length;
  assertHomogeneous(spec, "the T_alpha direction");
  if (K < 2) throw new InputError("the T_alpha direction needs at least two layers (one scaled up, another down); this model has one");
  for (const [name, k] of [["up", up], ["down", down]] as const) {
    if (!Number.isInteger(k) || k < 0 || k >= K) throw new InputError(`the T_alpha ${name} layer must be one of 0..${K - 1}, got ${k}`);
  }
  if (up === down) throw new InputError(`the T_alpha direction needs two different layers, got ${up} twice`);
  const n = checkTheta(spec, theta);
  const layout = parameterLayout(spec);
  const rates = new Float64Array(n);
  // Weights of layer k (a linear matrix or a conv kernel) at rate s_k, its bias at s_0 + ... + s_k.
  const rate = (k: number) => (k === up ? 1 : k === down ? -1 : 0);
  for (const v of layout.views) {
    let r = rate(v.layer);
    if (v.role === "bias") for (let j = 0; j < v.layer; j++) r += rate(j);
    rates.fill(r, v.offset, v.offset + v.size);
  }
  const tangent = new Float64Array(n);
  const plus = new Float64Array(n);
  const minus = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    tangent[i] = rates[i] * theta[i];
    if (rates[i] > 0) plus[i] = theta[i];
    else if (rates[i] < 0) minus[i] = theta[i];
  }
  return { up, down, rates, tangent, plus, minus };
}

/** D(t) theta, the orbit's point at t (equal to alphaScale with alpha_up = e^t, alpha_down = e^-t). */
export function alphaOrbitPoint(orbit: AlphaOrbit, theta: ArrayLike<number>, t: number): Float64Array {
  return Float64Array.from(theta, (v, i) => v * Math.exp(t * orbit.rates[i]));
}

export interface EigenDirections {
  /** Unit-norm eigenvectors, largest eigenvalue first. */
  vectors: Float64Array[];
  eigenvalues: number[];
  /** True residuals ||H v - lambda v||. */
  residuals: number[];
  converged: boolean[];
  hvps: number;
}

/** The top `count` Hessian eigenpairs at theta by Lanczos ("LA"), vectors read back to the host. */
export async function eigenDirections<V>(
  objective: Objective<V>,
  theta: Float64Array,
  count: number,
  options: { seed?: number; tol?: number; maxSteps?: number } = {},
): Promise<EigenDirections> {
  const s = objective.space;
  checkTheta(objective.spec, theta);
  if (count > s.dim) throw new InputError(`${count} eigenvector directions need at least ${count} parameters, the model has ${s.dim}`);
  const t = s.fromArray(theta);
  try {
    const op = hessianOperator(objective, t);
    const r = await lanczosEigenpairs(op, { k: count, which: "LA", keepVectors: true, seed: options.seed ?? 0, tol: options.tol, maxSteps: options.maxSteps });
    const vectors: Float64Array[] = [];
    try {
      for (const v of r.vectors ?? []) vectors.push(await s.toArray(v));
    } finally {
      for (const v of r.vectors ?? []) s.dispose(v);
    }
    return { vectors, eigenvalues: r.eigenvalues, residuals: r.residuals, converged: r.converged, hvps: r.matvecs };
  } finally {
    s.dispose(t);
  }
}

/** Euclidean norm. */
export function norm(v: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < v.length; i++) s += v[i] * v[i];
  return Math.sqrt(s);
}
