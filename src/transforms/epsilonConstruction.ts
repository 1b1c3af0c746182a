/**
 * High ε-sharpness by T_alpha (Dinh et al. 2017, section 4.3; thesis chapter 3, section 3.4.3).
 *
 * Full space. Pick a layer k and alpha_k = ε / (s ||W_k||) (s >= 1, `shrink`), the other layers
 * alpha_j = alpha_k^{-1/(K-1)} (product 1). At theta' = T_alpha(theta) the perturbation
 * delta = -W'_k (on layer k's weights, 0 elsewhere) has ||delta|| = ||W'_k|| = ε / s <= ε, and at
 * theta' + delta layer k's weights are 0: z_k = b'_k for every input, so the net outputs a constant.
 * Which constant: zeroing W_k commutes with T_alpha (both act per tensor), so
 * theta' + delta = T_alpha(theta with W_k = 0) and L(theta' + delta) = L(theta with W_k = 0) =: L_k, the
 * loss of the constant function g(b_k, layers after k) (bias-free: the zero function; k = K-1: the
 * output bias). Hence Definition 2's ε-sharpness at theta' is at least
 *   bound = (L_k - L(theta)) / (1 + L(theta)),
 * whatever ε. By default k maximises L_k (all K candidates are evaluated).
 *
 * Random subspace (the thesis' argument, made exact). Let A (n x p, orthonormal columns) span a
 * random subspace: the same seeded basis `epsilonSharpness` uses for "keskar-subspace"
 * (keskarSubspaceBasis). Restricted to rows R = layer k's weights and bias, A_R (|R| x p) has full
 * row rank almost surely when p >= |R|, so z0 = -A_R^T (A_R A_R^T)^-1 [W_k; 0] (the least-norm
 * solution) moves W_k to 0 and leaves b_k: (A z0)_R = [-W_k; 0]. We take alpha_k = ε / (s ||z0||) and
 * z = alpha_k z0, so ||z|| = ε / s <= ε; then ||A z|| = ||z|| <= ε, z is also inside Keskar's box
 * |z_i| <= ε (|(A^T theta')_i| + 1), and ||z0|| >= ||W_k|| makes alpha_k at most the full-space one.
 * In theta coordinates theta' + A z = T_alpha(theta + D^-1 A z) has layer k's weights exactly 0 and
 * b_k unchanged; every other tensor j moves by (alpha_k / d_j) (A z0)_j, where d_j -> infinity
 * relative to alpha_k as alpha_k -> 0 (weights: alpha_k / alpha_j = alpha_k^{K/(K-1)}; biases after k:
 * alpha_k^{j/(K-1)}; biases before k: smaller still). So L(theta' + A z) -> L_k as s -> infinity:
 * the random-subspace ε-sharpness at theta' tends to at least the same bound. What is reported is
 * the loss actually reached at theta' + A z (`subspace.reachedValue`), which the tests check
 * converges to the bound as s grows. When p < |R| the block cannot be zeroed inside the subspace
 * and we refuse (the thesis' p = 1 argument only removes one component of W_k).
 *
 * Convolutional nets: a conv layer with its kernel zeroed outputs its bias on every pixel whatever
 * the input, so the net is again constant and the same argument holds (W_k is the whole kernel).
 */
import { InputError } from "../errors.ts";
import { parameterLayout } from "../model.ts";
import { type Objective, withVectors } from "../objective.ts";
import { type MetricCost, type Progress, withCost } from "../metrics/cost.ts";
import { keskarSubspaceBasis } from "../metrics/sharpness.ts";
import {
  applyAlphas,
  checkHostTheta,
  checkLayerIndex,
  checkPositiveNumber,
  concentratedAlphas,
  ConstructionError,
  type FunctionCheck,
  functionCheck,
  requireDeepHomogeneous,
  weightNorms,
} from "./constructionSupport.ts";

/** Options of epsilonSharpnessConstruction. */
export interface EpsilonConstructionOptions {
  /** Radius ε of Definition 2's ball. */
  epsilon: number;
  /** Layer whose weights go to zero (default: the one whose zeroing costs most, max L_k). */
  layer?: number;
  /** Also build the random-subspace version in a p-dimensional subspace (p >= |W_k| + |b_k|). */
  subspaceDim?: number;
  /** Seed of the subspace basis (as epsilonSharpness "keskar-subspace"; default 0). */
  seed?: number;
  /** s >= 1: alpha_k is divided by s, so the zeroing perturbation has norm ε / s (default 1). */
  shrink?: number;
  /** Progress callback. */
  onProgress?: Progress;
}

/** The random-subspace version of the construction (Keskar et al. 2017 Metric 2.1 on a random subspace). */
export interface EpsilonSubspaceResult {
  /** Subspace dimension p. */
  dim: number;
  /** Seed of the subspace basis (keskarSubspaceBasis). */
  seed: number;
  /** z: coordinates in the subspace basis, ||z|| <= ε. */
  coefficients: Float64Array;
  /** A z in the flat layout. */
  perturbation: Float64Array;
  /** ||A z|| (= ||z|| <= ε). */
  perturbationNorm: number;
  /** L(theta' + A z) and (that - L(theta)) / (1 + L(theta)): a lower bound on the random-subspace ε-sharpness. */
  reachedLoss: number;
  /** (reachedLoss - L(theta)) / (1 + L(theta)). */
  reachedValue: number;
}

/** An observationally equivalent T_alpha(theta) whose ε-sharpness (Dinh et al. 2017 Definition 2, section 4.3) is at least `bound`, with the perturbation that shows it. */
export interface EpsilonConstructionResult {
  /** theta' = T_alpha(theta): the same function. */
  theta: Float64Array;
  /** The alphas of T_alpha, one per layer (product 1). */
  alphas: number[];
  /** The layer k whose weights the perturbation zeroes. */
  layer: number;
  /** The radius ε. */
  epsilon: number;
  /** The shrink factor s >= 1 used. */
  shrink: number;
  /** L(theta) = L(theta'). */
  baseLoss: number;
  /** L_k for every layer k: the loss with W_k zeroed (a constant function). */
  layerConstantLosses: number[];
  /** L_layer. */
  constantLoss: number;
  /** (L_layer - L(theta)) / (1 + L(theta)): Definition 2's ε-sharpness at theta' is at least this. */
  bound: number;
  /** delta = -W'_layer on that layer's weights, 0 elsewhere; ||delta|| <= ε. */
  perturbation: Float64Array;
  /** ||delta|| (= ε / s). */
  perturbationNorm: number;
  /** L(theta' + delta), evaluated (equals constantLoss up to rounding). */
  reachedLoss: number;
  /** (reachedLoss - L(theta)) / (1 + L(theta)), Definition 2's ratio at delta. */
  reachedValue: number;
  /** The random-subspace version; null unless subspaceDim was given. */
  subspace: EpsilonSubspaceResult | null;
  /** How far the network function moved (it should not). */
  functionCheck: FunctionCheck;
  /** Passes and wall time of the construction. */
  cost: MetricCost;
}

function norm2(v: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < v.length; i++) s += v[i] * v[i];
  return Math.sqrt(s);
}

/** Solves the SPD system G x = b (Cholesky); throws if G is numerically singular. */
function choleskySolve(g: Float64Array, m: number, b: Float64Array): Float64Array | null {
  const l = new Float64Array(m * m);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j <= i; j++) {
      let s = g[i * m + j];
      for (let q = 0; q < j; q++) s -= l[i * m + q] * l[j * m + q];
      if (i === j) {
        if (!(s > 1e-12 * Math.max(1, g[i * m + i]))) return null;
        l[i * m + i] = Math.sqrt(s);
      } else {
        l[i * m + j] = s / l[j * m + j];
      }
    }
  }
  const y = new Float64Array(m);
  for (let i = 0; i < m; i++) {
    let s = b[i];
    for (let q = 0; q < i; q++) s -= l[i * m + q] * y[q];
    y[i] = s / l[i * m + i];
  }
  const x = new Float64Array(m);
  for (let i = m - 1; i >= 0; i--) {
    let s = y[i];
    for (let q = i + 1; q < m; q++) s -= l[q * m + i] * x[q];
    x[i] = s / l[i * m + i];
  }
  return x;
}

/** Section 4.3: T_alpha(theta) whose ε-ball reaches a constant function; its loss bounds ε-sharpness below. */
export async function epsilonSharpnessConstruction<V>(
  objective: Objective<V>,
  theta: Float64Array,
  options: EpsilonConstructionOptions,
): Promise<EpsilonConstructionResult> {
  const spec = objective.spec;
  const K = requireDeepHomogeneous(spec, "the epsilon-sharpness construction");
  checkHostTheta(spec, theta);
  const { epsilon } = options;
  checkPositiveNumber("epsilon", epsilon);
  const shrink = options.shrink ?? 1;
  if (!(shrink >= 1) || !Number.isFinite(shrink)) throw new InputError(`shrink must be a finite number >= 1, got ${shrink}`);
  if (options.layer !== undefined) checkLayerIndex(spec, options.layer, "the epsilon-sharpness construction");
  const p = options.subspaceDim;
  const n = theta.length;
  if (p !== undefined && (!Number.isInteger(p) || p < 1 || p > n)) throw new InputError(`subspaceDim must be an integer in [1, ${n}], got ${p}`);
  const seed = options.seed ?? 0;
  if (!Number.isInteger(seed)) throw new InputError(`seed must be an integer, got ${seed}`);
  const layout = parameterLayout(spec);
  // Entries of layer k's weight (a linear matrix or a whole conv kernel) and bias.
  const viewSize = (k: number, role: "weight" | "bias") => layout.views.find((v) => v.layer === k && v.role === role)?.size ?? 0;
  const rowsOf = (k: number) => {
    const { weightOffset: w, biasOffset: b } = layout.layers[k];
    const rows = Array.from({ length: viewSize(k, "weight") }, (_, i) => w + i);
    if (b >= 0) for (let i = 0; i < viewSize(k, "bias"); i++) rows.push(b + i);
    return rows;
  };
  const norms = weightNorms(spec, theta);
  const progress = options.onProgress;

  const { result, cost } = await withCost(objective, () =>
    withVectors(objective, [theta], async ([t]) => {
      const baseLoss = await objective.loss(t);
      const layerConstantLosses: number[] = [];
      for (let k = 0; k < K; k++) {
        progress?.((0.4 * k) / K, `epsilon construction: loss with layer ${k}'s weights zeroed`);
        const zeroed = Float64Array.from(theta);
        zeroed.fill(0, layout.layers[k].weightOffset, layout.layers[k].weightOffset + viewSize(k, "weight"));
        layerConstantLosses.push(await withVectors(objective, [zeroed], ([z]) => objective.loss(z)));
      }
      const eligible = (k: number) => norms[k] > 0 && (p === undefined || rowsOf(k).length <= p);
      let layer: number;
      if (options.layer !== undefined) {
        layer = options.layer;
        if (!(norms[layer] > 0)) throw new ConstructionError(`epsilon construction: layer ${layer}'s weights are already 0: the function is constant`);
        if (p !== undefined && rowsOf(layer).length > p) {
          throw new InputError(
            `epsilon construction: the subspace (subspaceDim ${p}) cannot zero layer ${layer}'s ${rowsOf(layer).length} weights and biases; ` +
              `use subspaceDim >= ${rowsOf(layer).length} or a layer with fewer parameters`,
          );
        }
      } else {
        const candidates = [...Array(K).keys()].filter(eligible);
        if (candidates.length === 0) {
          const smallest = Math.min(...spec.layers.map((_, k) => rowsOf(k).length));
          throw new InputError(`epsilon construction: subspaceDim ${p} is below every layer's weight-and-bias count (smallest ${smallest}): the subspace cannot zero a layer`);
        }
        layer = candidates.reduce((best, k) => (layerConstantLosses[k] > layerConstantLosses[best] ? k : best), candidates[0]);
      }
      const constantLoss = layerConstantLosses[layer];
      const bound = (constantLoss - baseLoss) / (1 + baseLoss);
      const margin = 1 - 1e-9; // keeps the norms <= ε after rounding

      // The subspace version fixes alpha through ||z0||; the full-space perturbation is then inside the ball too.
      let alphaK = (margin * epsilon) / (shrink * norms[layer]);
      let subspacePart: { columns: Float64Array[]; z0: Float64Array } | null = null;
      if (p !== undefined) {
        progress?.(0.45, `epsilon construction: random ${p}-dimensional subspace`);
        const columns = await (async () => {
          const cols = await keskarSubspaceBasis(objective.space, p, seed);
          try {
            return await Promise.all(cols.map((c) => objective.space.toArray(c)));
          } finally {
            for (const c of cols) objective.space.dispose(c);
          }
        })();
        const rows = rowsOf(layer);
        const m = rows.length;
        const wCount = viewSize(layer, "weight");
        const target = Float64Array.from(rows, (r, a) => (a < wCount ? -theta[r] : 0)); // W_k -> 0, b_k kept
        // G = A_R A_R^T (m x m), z0 = A_R^T G^-1 target.
        const g = new Float64Array(m * m);
        for (let a = 0; a < m; a++) {
          for (let b = 0; b <= a; b++) {
            let s = 0;
            for (let j = 0; j < p; j++) s += columns[j][rows[a]] * columns[j][rows[b]];
            g[a * m + b] = s;
            g[b * m + a] = s;
          }
        }
        const y = choleskySolve(g, m, target);
        if (!y) throw new ConstructionError(`epsilon construction: the random subspace (seed ${seed}) is degenerate on layer ${layer}; try another seed or a larger subspaceDim`);
        const z0 = Float64Array.from(columns, (c) => rows.reduce((s, r, a) => s + c[r] * y[a], 0));
        const z0Norm = norm2(z0);
        alphaK = (margin * epsilon) / (shrink * z0Norm);
        subspacePart = { columns, z0 };
      }

      const alphas = concentratedAlphas(K, layer, alphaK);
      const theta2 = applyAlphas(spec, theta, alphas);
      const perturbation = new Float64Array(n);
      const w0 = layout.layers[layer].weightOffset;
      const wSize = viewSize(layer, "weight");
      for (let i = w0; i < w0 + wSize; i++) perturbation[i] = -theta2[i];
      const perturbationNorm = norm2(perturbation);
      progress?.(0.6, "epsilon construction: evaluating the perturbed points");
      const moved = theta2.map((x, i) => x + perturbation[i]);
      const out = await withVectors(objective, [theta2, moved], async ([t2, tm]) => ({
        fc: await functionCheck(objective, t, t2),
        reachedLoss: await objective.loss(tm),
      }));
      let subspace: EpsilonSubspaceResult | null = null;
      if (subspacePart) {
        const z = subspacePart.z0.map((x) => alphaK * x);
        const az = new Float64Array(n);
        subspacePart.columns.forEach((c, j) => {
          for (let i = 0; i < n; i++) az[i] += z[j] * c[i];
        });
        const reachedLoss = await withVectors(objective, [theta2.map((x, i) => x + az[i])], ([tz]) => objective.loss(tz));
        subspace = {
          dim: p!,
          seed,
          coefficients: z,
          perturbation: az,
          perturbationNorm: norm2(z),
          reachedLoss,
          reachedValue: (reachedLoss - baseLoss) / (1 + baseLoss),
        };
      }
      progress?.(1, `epsilon construction: bound ${bound}`);
      return {
        theta: theta2, alphas, layer, epsilon, shrink, baseLoss, layerConstantLosses, constantLoss, bound,
        perturbation, perturbationNorm, reachedLoss: out.reachedLoss, reachedValue: (out.reachedLoss - baseLoss) / (1 + baseLoss),
        subspace, functionCheck: out.fc,
      };
    }));
  return { ...result, cost };
}
