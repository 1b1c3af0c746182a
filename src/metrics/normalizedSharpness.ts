/**
 * Normalized sharpness (Tsuzuku, Sato, Sugiyama, "Normalized flat minima: exploring scale
 * invariant definition of flat minima for neural networks using PAC-Bayesian analysis", ICML 2020,
 * arXiv:1901.04653). Their PAC-Bayes argument puts a Gaussian posterior on each weight matrix
 * whose per-entry variance has the rank-one structure sigma_ij² = alpha_i² beta_j² (one scale per
 * output unit i, one per input unit j); the second-order expected loss increase
 * ½ Σ H_(ij),(ij) sigma_ij² traded against the KL term Σ W_ij² / sigma_ij² and minimized over the
 * scales gives, per layer l with W = W_l [out, in] and h_ij = H_(ij),(ij) (diagonal of the loss
 * Hessian at the weight W_ij):
 *   NS_l = min_{alpha > 0, beta > 0} Σ_ij [ h_ij alpha_i² beta_j² + W_ij² / (alpha_i² beta_j²) ],
 * and NS = Σ_l NS_l. We use this form with unit constants (as metric-anchors.md §5); the paper's
 * constant factors (½, ¼ from the Gaussian KL) only rescale it. Biases are not measured (weight
 * matrices only, as the paper). Also reported, the per-entry form (free sigma_ij, no rank-one
 * structure): min_s [h s + W²/s] = 2|W| sqrt(h), so NS_l^entry = 2 Σ_ij |W_ij| sqrt(h_ij) <= NS_l.
 *
 * Why it is invariant (the property we test, float64): a function-preserving diagonal map gives
 * H(theta') = D^-1 H(theta) D^-1. Rescaling output unit i of layer l (row i of W_l times c) maps
 * h_ij -> h_ij / c², W_ij² -> c² W_ij², which the substitution alpha_i -> c alpha_i undoes term by
 * term; rescaling input unit j (column j divided by c) is undone by beta_j -> beta_j / c; T_alpha
 * (W_l -> alpha_l W_l) by alpha -> alpha_l alpha. So the minimum is invariant under T_alpha and
 * under neuron-wise rescaling of any layer, biases included (they are not in the formula), and so
 * is the per-entry form.
 *
 * The minimization: with a_i = alpha_i², b_j = beta_j², F is convex in (log a, log b) (a sum of
 * exponentials of linear forms), and the exact block updates
 *   a_i = sqrt( Σ_j W_ij²/b_j / Σ_j h_ij b_j ),   b_j = sqrt( Σ_i W_ij²/a_i / Σ_i h_ij a_i )
 * decrease it monotonically (Sinkhorn-like alternating minimization), run until every row is
 * stationary to `tolerance` (relative residual of dF/dlog a_i; the b-update makes columns exact).
 * Degenerate rows/columns are removed first, their infimum being 0: a row or column with every
 * h = 0 (its scale -> inf) or every W = 0 (its scale -> 0).
 *
 * The diagonal: h_ij >= 0 for every weight (f is piecewise linear in one weight, so
 * h = Jᵀ ∇²l J >= 0 for the convex losses). Exact: one HVP per weight, e_qᵀ H e_q (scalars only).
 * Stochastic: Hutchinson diagonal E[z ⊙ Hz] with seeded Rademacher z on the measured weights,
 * accumulated on the device and read back once; estimates are clamped at 0.
 *
 * Convolutions: W_l is the kernel's matrix view [out, in/groups·kh·kw] (rows: output channels,
 * alpha_i one per filter; columns: (input channel, kernel tap), beta_j one per column), per channel
 * group for a grouped convolution, whose block-diagonal full view decouples into the groups' blocks
 * (see weightBlocks in ./relativeFlatness.ts). The invariances carry over: T_alpha scales the
 * kernel, rescaling output channel i scales row i, and rescaling input channel c divides the
 * columns (c, every tap) within c's group, which the betas of those columns absorb.
 */
import { InputError } from "../errors.ts";
import { type ParameterLayout, parameterLayout, selectLayers } from "../model.ts";
import type { Objective } from "../objective.ts";
import { Rng } from "../random.ts";
import { type MetricCost, withCost } from "./cost.ts";
import { quadraticForms, weightBlocks } from "./relativeFlatness.ts";

/** Entries of layer k's weight tensor. */
function weightSize(layout: ParameterLayout, k: number): number {
  return layout.views.find((v) => v.layer === k && v.role === "weight")!.size;
}

/** Options of normalizedSharpness. */
export interface NormalizedSharpnessOptions {
  /** Layers to measure (0-based Linear index); default all. */
  layers?: number[];
  /** true: exact diagonal; false: Hutchinson; default exact when the measured weights number <= exactLimit. */
  exact?: boolean;
  /** Largest count of measured weights for which the diagonal is exact when `exact` is not given (default 1024). */
  exactLimit?: number;
  /** Hutchinson samples (default 256). */
  samples?: number;
  /** HVP directions per hvpBlock call (default 16). */
  blockSize?: number;
  /** Seed of the Hutchinson probes (default 0). */
  seed?: number;
  /** Relative stationarity residual at which the alternating minimization stops (default 1e-10). */
  tolerance?: number;
  /** Iteration cap of the alternating minimization per layer (default 20000). */
  maxIterations?: number;
}

/** Normalized sharpness NS_l of one layer (Tsuzuku et al. 2020). */
export interface LayerNormalizedSharpness {
  /** 0-based Linear layer index l. */
  layer: number;
  /** NS_l, the rank-one (row x column) minimum. */
  value: number;
  /** 2 Σ |W_ij| sqrt(h_ij). */
  perEntry: number;
  /** h_ij, row-major [out, in] (a convolution: the kernel's layout [out, in/groups, kh, kw]); clamped at 0. */
  diagonal: Float64Array;
  /** Minimizing alpha_i² and beta_j² (Infinity / 0 for removed degenerate rows and columns). */
  rowScale: Float64Array;
  /** Minimizing beta_j², one per input unit (column of W_l; a convolution: per group, its (input channel, tap) columns). */
  columnScale: Float64Array;
  /** Alternating-minimization sweeps run. */
  iterations: number;
  /** Whether every row reached the stationarity tolerance. */
  converged: boolean;
}

/** Normalized sharpness (Tsuzuku, Sato, Sugiyama, ICML 2020) of the measured layers, with unit constants (metric-anchors.md section 5). */
export interface NormalizedSharpnessResult {
  /** Per measured layer, in the order asked. */
  layers: LayerNormalizedSharpness[];
  /** NS = sum of NS_l over the measured layers. */
  total: number;
  /** Sum of the per-entry forms 2 Σ |W_ij| sqrt(h_ij). */
  totalPerEntry: number;
  /** Whether the Hessian diagonal was exact (one HVP per weight) or a Hutchinson estimate. */
  exact: boolean;
  /** Passes and wall time of the computation. */
  cost: MetricCost;
}

/** The rank-one minimization for one layer: h and w2 = W² row-major [out, in]. */
export function minimizeRankOneSharpness(
  h: Float64Array,
  w2: Float64Array,
  out: number,
  inF: number,
  tolerance = 1e-10,
  maxIterations = 20000,
): { value: number; a: Float64Array; b: Float64Array; iterations: number; converged: boolean } {
  const rowOn = new Array<boolean>(out).fill(true);
  const colOn = new Array<boolean>(inF).fill(true);
  const a = new Float64Array(out).fill(1);
  const b = new Float64Array(inF).fill(1);
  // Remove degenerate rows / columns until none is left (each removal keeps the infimum).
  for (let changed = true; changed;) {
    changed = false;
    for (let i = 0; i < out; i++) {
      if (!rowOn[i]) continue;
      let hs = 0;
      let ws = 0;
      for (let j = 0; j < inF; j++) if (colOn[j]) (hs += h[i * inF + j]), (ws += w2[i * inF + j]);
      if (hs === 0 || ws === 0) (rowOn[i] = false), (a[i] = hs === 0 ? Infinity : 0), (changed = true);
    }
    for (let j = 0; j < inF; j++) {
      if (!colOn[j]) continue;
      let hs = 0;
      let ws = 0;
      for (let i = 0; i < out; i++) if (rowOn[i]) (hs += h[i * inF + j]), (ws += w2[i * inF + j]);
      if (hs === 0 || ws === 0) (colOn[j] = false), (b[j] = hs === 0 ? Infinity : 0), (changed = true);
    }
  }
  const objective = () => {
    let f = 0;
    for (let i = 0; i < out; i++) {
      if (!rowOn[i]) continue;
      for (let j = 0; j < inF; j++) if (colOn[j]) f += h[i * inF + j] * a[i] * b[j] + w2[i * inF + j] / (a[i] * b[j]);
    }
    return f;
  };
  let value = objective();
  let iterations = 0;
  let converged = value === 0;
  while (!converged && iterations < maxIterations) {
    iterations++;
    for (let i = 0; i < out; i++) {
      if (!rowOn[i]) continue;
      let num = 0;
      let den = 0;
      for (let j = 0; j < inF; j++) if (colOn[j]) (num += w2[i * inF + j] / b[j]), (den += h[i * inF + j] * b[j]);
      a[i] = Math.sqrt(num / den);
    }
    for (let j = 0; j < inF; j++) {
      if (!colOn[j]) continue;
      let num = 0;
      let den = 0;
      for (let i = 0; i < out; i++) if (rowOn[i]) (num += w2[i * inF + j] / a[i]), (den += h[i * inF + j] * a[i]);
      b[j] = Math.sqrt(num / den);
    }
    // Keep the free direction (a t, b / t) centred: geometric mean of the active a equal to 1.
    let logSum = 0;
    let count = 0;
    for (let i = 0; i < out; i++) if (rowOn[i]) (logSum += Math.log(a[i])), count++;
    const t = Math.exp(logSum / Math.max(count, 1));
    for (let i = 0; i < out; i++) if (rowOn[i]) a[i] /= t;
    for (let j = 0; j < inF; j++) if (colOn[j]) b[j] *= t;
    value = objective();
    // The b-update leaves every column stationary; stop when every row is too:
    // |dF/dlog a_i| = |Σ_j h a_i b_j - W²/(a_i b_j)| <= tolerance · Σ_j (h a_i b_j + W²/(a_i b_j)).
    let worst = 0;
    for (let i = 0; i < out; i++) {
      if (!rowOn[i]) continue;
      let up = 0;
      let down = 0;
      for (let j = 0; j < inF; j++) if (colOn[j]) (up += h[i * inF + j] * a[i] * b[j]), (down += w2[i * inF + j] / (a[i] * b[j]));
      worst = Math.max(worst, Math.abs(up - down) / (up + down));
    }
    converged = worst <= tolerance;
  }
  return { value, a, b, iterations, converged };
}

/** Exact or Hutchinson diagonal of the Hessian over the measured weights; returns per-layer [out, in] arrays. */
async function weightDiagonal<V>(
  objective: Objective<V>,
  theta: V,
  selected: number[],
  exact: boolean,
  samples: number,
  blockSize: number,
  seed: number,
): Promise<Float64Array[]> {
  const spec = objective.spec;
  const layout = parameterLayout(spec);
  const offsets = selected.map((k) => layout.layers[k].weightOffset);
  const sizes = selected.map((k) => weightSize(layout, k));
  const total = sizes.reduce((s, v) => s + v, 0);
  const positions = new Int32Array(total);
  let q = 0;
  selected.forEach((_, idx) => {
    for (let e = 0; e < sizes[idx]; e++) positions[q++] = offsets[idx] + e;
  });
  let diag: Float64Array;
  if (exact) {
    diag = await quadraticForms(objective, theta, total, (p, into) => {
      into[positions[p]] = 1;
    }, blockSize);
  } else {
    const space = objective.space;
    const rng = new Rng(seed);
    const acc = space.zeros();
    const host = new Float64Array(space.dim);
    try {
      for (let start = 0; start < samples; start += blockSize) {
        const m = Math.min(blockSize, samples - start);
        const vs: V[] = [];
        const outs: V[] = [];
        try {
          for (let j = 0; j < m; j++) {
            for (let p = 0; p < total; p++) host[positions[p]] = rng.sign();
            vs.push(space.fromArray(host));
            outs.push(space.zeros());
          }
          await objective.hvpBlock(theta, vs, outs);
          for (let j = 0; j < m; j++) {
            space.multiply(vs[j], outs[j]);
            space.axpy(1 / samples, outs[j], acc);
          }
        } finally {
          for (const v of vs) space.dispose(v);
          for (const o of outs) space.dispose(o);
        }
      }
      const full = await space.toArray(acc);
      diag = Float64Array.from(positions, (p) => full[p]);
    } finally {
      space.dispose(acc);
    }
  }
  const perLayer: Float64Array[] = [];
  let start = 0;
  for (const size of sizes) {
    perLayer.push(diag.slice(start, start + size).map((v) => Math.max(v, 0)));
    start += size;
  }
  return perLayer;
}

/** Normalized sharpness (Tsuzuku et al. 2020) of every requested layer: the rank-one minimum of Σ h_ij alpha_i² beta_j² + W_ij² / (alpha_i² beta_j²) by alternating minimization; invariant under T_alpha (Dinh et al. 2017 Definition 5) and neuron-wise rescaling. See the module comment. */
export async function normalizedSharpness<V>(
  objective: Objective<V>,
  theta: V,
  options: NormalizedSharpnessOptions = {},
): Promise<NormalizedSharpnessResult> {
  const spec = objective.spec;
  const layout = parameterLayout(spec);
  const selected = selectLayers(spec, options.layers, "normalized sharpness");
  const weights = selected.reduce((s, k) => s + weightSize(layout, k), 0);
  const exact = options.exact ?? weights <= (options.exactLimit ?? 1024);
  const samples = options.samples ?? 256;
  if (!exact && !(samples >= 1)) throw new InputError(`normalized sharpness: need at least 1 Hutchinson sample, got ${samples}`);
  const blockSize = Math.max(1, Math.floor(options.blockSize ?? 16));

  const { result, cost } = await withCost(objective, async () => {
    const host = await objective.space.toArray(theta);
    const diagonals = await weightDiagonal(objective, theta, selected, exact, samples, blockSize, options.seed ?? 0);
    const layers: LayerNormalizedSharpness[] = selected.map((k, idx) => {
      const h = diagonals[idx];
      const blocks = weightBlocks(spec, k);
      const base = layout.layers[k].weightOffset;
      const w2 = Float64Array.from({ length: h.length }, (_, e) => host[base + e] ** 2);
      let perEntry = 0;
      for (let e = 0; e < h.length; e++) perEntry += 2 * Math.sqrt(w2[e] * h[e]);
      // One rank-one minimization per block (a grouped convolution's groups decouple).
      const rowScale = new Float64Array(blocks.reduce((s, b) => s + b.rows, 0));
      const columnScale = new Float64Array(blocks.reduce((s, b) => s + b.cols, 0));
      let value = 0, iterations = 0, converged = true;
      blocks.forEach(({ offset, rows, cols }, g) => {
        const from = offset - base;
        const m = minimizeRankOneSharpness(
          h.subarray(from, from + rows * cols),
          w2.subarray(from, from + rows * cols),
          rows,
          cols,
          options.tolerance ?? 1e-10,
          options.maxIterations ?? 20000,
        );
        value += m.value;
        iterations = Math.max(iterations, m.iterations);
        converged &&= m.converged;
        rowScale.set(m.a, g * rows);
        columnScale.set(m.b, g * cols);
      });
      return { layer: k, value, perEntry, diagonal: h, rowScale, columnScale, iterations, converged };
    });
    return {
      layers,
      total: layers.reduce((s, l) => s + l.value, 0),
      totalPerEntry: layers.reduce((s, l) => s + l.perEntry, 0),
      exact,
    };
  });
  return { ...result, cost };
}
