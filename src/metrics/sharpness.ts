/**
 * Sharpness measures that maximise (or average) the loss over a neighbourhood of theta:
 *   - epsilonSharpness: Dinh et al. 2017 Definition 2 (l2 ball) and Keskar et al. 2017 Metric 2.1
 *     (full-space box and random-subspace box);
 *   - adaptiveSharpness: Kwon et al. 2021 (ASAM) / Andriushchenko et al. 2023, worst and average
 *     case, perturbations scaled elementwise by |theta| (+ eta);
 *   - samSharpness / mSharpness: Foret et al. 2021 (SAM's ascent step and m-sharpness);
 *   - volumeFlatness (re-exported from ./volume.ts): Dinh et al. 2017 Definition 1.
 * All maximisations use the Auto-PGD engine of ./ascent.ts. Generic over the vector space:
 * vectors stay in `objective.space`, random vectors are drawn on the host from `new Rng(seed)` and
 * uploaded, so a seed gives the same perturbations on every device.
 */
import { InputError } from "../errors.ts";
import type { Objective, VectorSpace } from "../objective.ts";
import { Rng } from "../random.ts";
import {
  type AscentResult,
  type BallNorm,
  absPlus,
  checkCount,
  checkPositive,
  diagonalMap,
  projectedAscent,
  randomOrthonormalColumns,
  subspaceMap,
} from "./ascent.ts";
import { type MetricCost, type Progress, withCost } from "./cost.ts";

export { volumeFlatness, type VolumeFlatnessOptions, type VolumeFlatnessResult } from "./volume.ts";

/** Which ε-sharpness: "dinh" (Dinh et al. 2017 Definition 2, l2 ball), "keskar" (Keskar et al. 2017 Metric 2.1, full-space box) or "keskar-subspace" (Metric 2.1 on a random p-dimensional subspace). */
export type EpsilonSharpnessKind = "dinh" | "keskar" | "keskar-subspace";

/** Options of epsilonSharpness. */
export interface EpsilonSharpnessOptions {
  /** The radius ε (> 0): of the l2 ball (dinh) or the relative box size (keskar). */
  epsilon: number;
  /** Which definition to compute. */
  kind: EpsilonSharpnessKind;
  /** keskar-subspace: p, the subspace dimension (default 1000, capped at n). */
  subspaceDim?: number;
  /** Default 3. */
  restarts?: number;
  /** Ascent steps per restart (default 20). */
  steps?: number;
  /** Seed of the random starts and of the keskar-subspace basis (default 0). */
  seed?: number;
  /** lambda_max of the Hessian at theta, if known: enables the second-order estimate (dinh only). */
  topEigenvalue?: number;
  /** Progress callback. */
  onProgress?: Progress;
}

/** An ε-sharpness (Dinh et al. 2017 Definition 2, or Keskar et al. 2017 Metric 2.1), with the ascent's record. */
export interface EpsilonSharpnessResult {
  /** The definition computed. */
  kind: EpsilonSharpnessKind;
  /** The radius ε used. */
  epsilon: number;
  /** dinh: (max L - L(theta)) / (1 + L(theta)); keskar, keskar-subspace: 100 times that. */
  value: number;
  /** The largest loss L(theta + delta) found in the set. */
  maxLoss: number;
  /** L(theta). */
  baseLoss: number;
  /** Ascent steps over all restarts. */
  iterations: number;
  /** Restart that found maxLoss (-1: none beat delta = 0). */
  bestRestart: number;
  /** dinh with topEigenvalue: lambda_max epsilon² / (2 (1 + L(theta))), Dinh et al. section 2; else null. */
  secondOrderEstimate: number | null;
  /** keskar-subspace: p; otherwise null. */
  subspaceDim: number | null;
  /** Passes and wall time of the computation. */
  cost: MetricCost;
}

/**
 * ε-sharpness, maximised by projected Auto-PGD with restarts (first restart from delta = 0 plus a
 * random start of 1e-3 of the radius, the others uniformly random in the set).
 *
 * - "dinh": Dinh et al. 2017, Definition 2: max_{||delta||_2 <= ε} (L(theta + delta) - L(theta)) / (1 + L(theta)).
 *   Runs entirely in the objective's space.
 * - "keskar": Keskar et al. 2017, Metric 2.1 in full space (A = I_n): the box
 *   |delta_i| <= ε (|theta_i| + 1), value 100 (max L - L(theta)) / (1 + L(theta)). The box's
 *   sign-and-clip steps read the perturbation and gradient back to the host once per step.
 * - "keskar-subspace": Metric 2.1 on a random subspace: A in R^{n x p} is a seeded Gaussian matrix
 *   whose columns are orthonormalised (classical Gram-Schmidt, twice), so A^+ = A^T; the box is
 *   |z_i| <= ε (|(A^T theta)_i| + 1) for z in R^p, delta = A z, and the gradient in z is A^T grad L.
 *   Memory: p vectors of n floats in the objective's space; z lives on the host.
 *
 * The first-order term makes the value O(ε ||grad||) away from critical points; at a minimum it
 * tends to the second-order estimate as ε -> 0. Neither variant is invariant under T_alpha (the
 * paper's section 4.3): that is the point of the measure's critique.
 */
export async function epsilonSharpness<V>(objective: Objective<V>, theta: V, options: EpsilonSharpnessOptions): Promise<EpsilonSharpnessResult> {
  const { epsilon, kind } = options;
  checkPositive("epsilon", epsilon);
  const restarts = options.restarts ?? 3;
  const steps = options.steps ?? 20;
  const seed = options.seed ?? 0;
  checkCount("restarts", restarts);
  checkCount("steps", steps);
  const space = objective.space;
  const n = space.dim;
  const ascent = {
    radius: epsilon,
    steps,
    restarts,
    seed,
    startScale: 1e-3,
    onProgress: options.onProgress,
    label: `${kind} sharpness`,
  };
  let p: number | null = null;
  const { result, cost } = await withCost(objective, async (): Promise<AscentResult> => {
    if (kind === "dinh") {
      return await projectedAscent(objective, theta, diagonalMap(space, null), { ...ascent, norm: "l2" });
    }
    if (kind === "keskar") {
      const c = await absPlus(space, theta, 1);
      try {
        return await projectedAscent(objective, theta, diagonalMap(space, c), { ...ascent, norm: "linf" });
      } finally {
        space.dispose(c);
      }
    }
    if (kind === "keskar-subspace") {
      const requested = options.subspaceDim ?? 1000;
      checkCount("subspaceDim", requested);
      p = Math.min(requested, n);
      const columns = await keskarSubspaceBasis(space, p, seed);
      let map;
      try {
        // Keskar's box bounds eps (|(A^+ theta)_j| + 1) with A^+ = A^T (orthonormal columns).
        const c = Float64Array.from(await Promise.all(columns.map((a) => space.dot(a, theta))), (t) => Math.abs(t) + 1);
        map = subspaceMap(space, columns, c);
      } catch (e) {
        for (const a of columns) space.dispose(a);
        throw e;
      }
      try {
        return await projectedAscent(objective, theta, map, { ...ascent, norm: "linf" });
      } finally {
        map.dispose();
      }
    }
    throw new InputError(`unknown epsilon-sharpness kind '${kind}': use dinh, keskar or keskar-subspace`);
  });
  const rise = (result.maxLoss - result.baseLoss) / (1 + result.baseLoss);
  let secondOrderEstimate: number | null = null;
  if (kind === "dinh" && options.topEigenvalue !== undefined) {
    secondOrderEstimate = (options.topEigenvalue * epsilon * epsilon) / (2 * (1 + result.baseLoss));
  }
  return {
    kind,
    epsilon,
    value: kind === "dinh" ? rise : 100 * rise,
    maxLoss: result.maxLoss,
    baseLoss: result.baseLoss,
    iterations: result.iterations,
    bestRestart: result.bestRestart,
    secondOrderEstimate,
    subspaceDim: p,
    cost,
  };
}

/**
 * The orthonormal basis A (p vectors of the objective's space) that epsilonSharpness uses for
 * kind "keskar-subspace" with this seed: seeded Gaussian columns orthonormalised by classical
 * Gram-Schmidt applied twice. Drawn from a stream derived from `seed`, separate from the restarts'
 * random starts. The caller disposes the columns.
 */
export function keskarSubspaceBasis<V>(space: VectorSpace<V>, p: number, seed: number): Promise<V[]> {
  return randomOrthonormalColumns(space, p, (seed ^ 0x5bd1e995) >>> 0);
}

/** Options of adaptiveSharpness. */
export interface AdaptiveSharpnessOptions {
  /** The radius rho of u (> 0; delta = c ⊙ u). */
  rho: number;
  /** The norm of the ball of u: "l2" or "linf". */
  norm: BallNorm;
  /** Worst case (max over the ball) or average case (expectation over random u). */
  kind: "worst" | "average";
  /** Average case: Monte-Carlo samples (default 100). */
  samples?: number;
  /** Worst case: ascent steps per restart (default 20) and restarts (default 1). */
  steps?: number;
  /** Worst case: Auto-PGD restarts (default 1). */
  restarts?: number;
  /** c = |theta| + eta elementwise (default 0: exactly invariant under T_alpha and neuron-wise rescaling). */
  eta?: number;
  /** Seed of the random starts or samples (default 0). */
  seed?: number;
  /** Progress callback. */
  onProgress?: Progress;
}

/** Adaptive sharpness (Kwon et al. 2021, ASAM; Andriushchenko et al. 2023), worst or average case. */
export interface AdaptiveSharpnessResult {
  /** Worst or average case, as asked. */
  kind: "worst" | "average";
  /** The norm of the ball of u. */
  norm: BallNorm;
  /** The radius rho. */
  rho: number;
  /** worst: max L(theta + c⊙u) - L(theta); average: E_u L(theta + c⊙u) - L(theta). Not divided by 1 + L. */
  value: number;
  /** L(theta). */
  baseLoss: number;
  /** worst: the max loss found; average: the sample mean of the perturbed loss. */
  perturbedLoss: number;
  /** average: standard error of the mean over samples; worst: null. */
  stderr: number | null;
  /** worst: ascent steps over all restarts; average: samples. */
  iterations: number;
  /** Passes and wall time of the computation. */
  cost: MetricCost;
}

/**
 * Adaptive sharpness (Kwon et al. 2021, ASAM, elementwise T_w = |w| + eta; Andriushchenko et al.
 * 2023, "A modern look at the relationship between sharpness and generalization", adaptive worst-
 * and average-case sharpness): perturbations delta = c ⊙ u with c = |theta| + eta and ||u||_p <= rho.
 *
 * - worst: max_{||u||_p <= rho} L(theta + c⊙u) - L(theta), by Auto-PGD in u (ascent.ts), the first
 *   restart from a random point at 1e-3 of the radius.
 * - average: E_u L(theta + c⊙u) - L(theta) over `samples` draws. Conventions: l2: u ~ N(0, rho²/n I),
 *   so E||u||_2² = rho² (Andriushchenko et al.'s code draws N(0, rho² I) per coordinate: their rho
 *   is our rho / sqrt(n)); linf: u uniform in [-rho, rho]^n (as theirs).
 * Unlike their code, (i) the loss is the full-dataset loss of `objective` (use mSharpness for a
 * per-batch average), (ii) biases are scaled like weights (c = |b| + eta), which is what makes the
 * measure exactly invariant under T_alpha (Dinh et al. Definition 5, biases included) and under
 * neuron-wise rescaling of ReLU nets when eta = 0: theta -> D theta maps c -> D c and delta -> D delta
 * with the same u, and L(D(theta + delta)) = L(theta + delta). Seeded u is drawn on the host.
 */
export async function adaptiveSharpness<V>(objective: Objective<V>, theta: V, options: AdaptiveSharpnessOptions): Promise<AdaptiveSharpnessResult> {
  const { rho, norm, kind } = options;
  checkPositive("rho", rho);
  if (norm !== "l2" && norm !== "linf") throw new InputError(`adaptive sharpness norm must be l2 or linf, got '${norm}'`);
  const eta = options.eta ?? 0;
  if (!(eta >= 0) || !Number.isFinite(eta)) throw new InputError(`eta must be non-negative and finite, got ${eta}`);
  const seed = options.seed ?? 0;
  const space = objective.space;
  const n = space.dim;
  const c = await absPlus(space, theta, eta);
  try {
    if (kind === "worst") {
      const steps = options.steps ?? 20;
      const restarts = options.restarts ?? 1;
      const { result, cost } = await withCost(objective, () =>
        projectedAscent(objective, theta, diagonalMap(space, c), {
          norm,
          radius: rho,
          steps,
          restarts,
          seed,
          startScale: 1e-3,
          onProgress: options.onProgress,
          label: "adaptive sharpness",
        }));
      return {
        kind,
        norm,
        rho,
        value: result.maxLoss - result.baseLoss,
        baseLoss: result.baseLoss,
        perturbedLoss: result.maxLoss,
        stderr: null,
        iterations: result.iterations,
        cost,
      };
    }
    if (kind === "average") {
      const samples = options.samples ?? 100;
      checkCount("samples", samples);
      const { result, cost } = await withCost(objective, async () => {
        const rng = new Rng(seed);
        const u = space.zeros();
        const point = space.zeros();
        try {
          const baseLoss = await objective.loss(theta);
          let sum = 0;
          let sumSq = 0;
          const scale = rho / Math.sqrt(n);
          for (let s = 0; s < samples; s++) {
            const draw = norm === "l2" ? rng.normals(n, scale) : Float64Array.from({ length: n }, () => rho * (2 * rng.uniform() - 1));
            space.write(u, draw);
            space.multiply(c, u);
            space.copy(theta, point);
            space.axpy(1, u, point);
            const l = await objective.loss(point);
            sum += l;
            sumSq += l * l;
            options.onProgress?.((s + 1) / samples, `average adaptive sharpness: sample ${s + 1}/${samples}`);
          }
          const mean = sum / samples;
          const variance = samples > 1 ? Math.max(0, (sumSq - samples * mean * mean) / (samples - 1)) : NaN;
          return { baseLoss, mean, stderr: Math.sqrt(variance / samples) };
        } finally {
          space.dispose(u);
          space.dispose(point);
        }
      });
      return {
        kind,
        norm,
        rho,
        value: result.mean - result.baseLoss,
        baseLoss: result.baseLoss,
        perturbedLoss: result.mean,
        stderr: result.stderr,
        iterations: samples,
        cost,
      };
    }
    throw new InputError(`adaptive sharpness kind must be worst or average, got '${kind}'`);
  } finally {
    space.dispose(c);
  }
}

/** Options of samSharpness. */
export interface SamSharpnessOptions {
  /** The l2 radius rho of delta (> 0). */
  rho: number;
  /** Ascent steps (default 1: SAM's single step delta = rho grad / ||grad||_2). */
  steps?: number;
  /** Adaptive (ASAM): delta = c ⊙ u, c = |theta| + eta, ||u||_2 <= rho (default false). */
  adaptive?: boolean;
  /** Adaptive only: eta of c = |theta| + eta (default 0). */
  eta?: number;
  /** Progress callback. */
  onProgress?: Progress;
}

/** SAM sharpness (Foret et al. 2021, section 2): the loss rise after SAM's ascent step(s). */
export interface SamSharpnessResult {
  /** max over the points visited (u = 0 included) of L(theta + delta) - L(theta). */
  value: number;
  /** The largest L(theta + delta) visited. */
  maxLoss: number;
  /** L(theta). */
  baseLoss: number;
  /** Ascent steps taken. */
  iterations: number;
  /** Passes and wall time of the computation. */
  cost: MetricCost;
}

/**
 * SAM sharpness of one objective (Foret et al. 2021, section 2): max_{||delta||_2 <= rho} L(theta + delta) - L(theta),
 * estimated from u = 0 exactly (no random start, deterministic) by the Auto-PGD engine with
 * initial step 2 rho, whose first step projects onto the sphere: delta = rho grad / ||grad||_2, SAM's
 * first-order solution (ASAM's rho c² grad / ||c grad||_2 when adaptive). More steps refine it. The
 * reported value includes u = 0, so it is >= 0; at an exact critical point the step is 0.
 */
export async function samSharpness<V>(objective: Objective<V>, theta: V, options: SamSharpnessOptions): Promise<SamSharpnessResult> {
  checkPositive("rho", options.rho);
  const steps = options.steps ?? 1;
  const space = objective.space;
  const c = options.adaptive ? await absPlus(space, theta, options.eta ?? 0) : null;
  try {
    const { result, cost } = await withCost(objective, () =>
      projectedAscent(objective, theta, diagonalMap(space, c), {
        norm: "l2",
        radius: options.rho,
        steps,
        restarts: 1,
        seed: 0,
        startScale: 0,
        onProgress: options.onProgress,
        label: "SAM sharpness",
      }));
    return { value: result.maxLoss - result.baseLoss, maxLoss: result.maxLoss, baseLoss: result.baseLoss, iterations: result.iterations, cost };
  } finally {
    if (c) space.dispose(c);
  }
}

/** Options of mSharpness. */
export interface MSharpnessOptions {
  /** Subset size m (1 <= m <= sampleCount). */
  m: number;
  /** The l2 radius rho of the ascent on each subset (> 0). */
  rho: number;
  /** Ascent steps per subset (default 1, SAM's). */
  steps?: number;
  /** Seed of the permutation that splits the data. */
  seed?: number;
  /** Use ASAM's adaptive ball (c = |theta| + eta) on each subset (default false). */
  adaptive?: boolean;
  /** Adaptive only: eta of c = |theta| + eta (default 0). */
  eta?: number;
  /** Progress callback: fraction of subsets done. */
  onProgress?: Progress;
}

/** m-sharpness (Foret et al. 2021, section 4.1 and appendix C.3): SAM sharpness averaged over disjoint subsets of m samples. */
export interface MSharpnessResult {
  /** Mean over subsets of max_{||delta||_2 <= rho} L_M(theta + delta) - L_M(theta). */
  value: number;
  /** samSharpness of each subset's loss L_M, in subset order. */
  perSubset: number[];
  /** Subsets used: floor(sampleCount / m). */
  subsets: number;
  /** The subset size m. */
  m: number;
  /** sampleCount mod m samples left out (the last, incomplete part of the permutation). */
  droppedSamples: number;
  /** Passes summed over the subsets' objectives; wall time of the whole call (objective construction included). */
  cost: MetricCost;
}

/**
 * m-sharpness (Foret et al. 2021, section 4.1 / appendix C.3): a seeded permutation of the
 * sampleCount samples is cut into floor(N/m) disjoint subsets of size m (the sampleCount mod m
 * left-over samples are dropped and reported); the value is the mean over subsets M of
 * samSharpness of L_M. `makeObjective(indices)` builds the objective of one subset (indices sorted
 * ascending, so m = N hands it 0..N-1 in order); subsets are processed one at a time and this
 * function disposes every objective it obtained (dispose() is called when the objective has one),
 * so at most one subset objective is alive at any time. `theta` is on the host and uploaded into
 * each objective's space.
 */
export async function mSharpness<V>(
  makeObjective: (indices: Int32Array) => Promise<Objective<V>>,
  sampleCount: number,
  theta: Float64Array,
  options: MSharpnessOptions,
): Promise<MSharpnessResult> {
  checkCount("sampleCount", sampleCount);
  const { m } = options;
  if (!Number.isInteger(m) || m < 1 || m > sampleCount) throw new InputError(`m must be an integer in [1, ${sampleCount}], got ${m}`);
  checkPositive("rho", options.rho);
  const rng = new Rng(options.seed ?? 0);
  const perm = Int32Array.from({ length: sampleCount }, (_, i) => i);
  for (let i = sampleCount - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    const t = perm[i];
    perm[i] = perm[j];
    perm[j] = t;
  }
  const subsets = Math.floor(sampleCount / m);
  const perSubset: number[] = [];
  const cost: MetricCost = { hvps: 0, gradients: 0, forwards: 0, wallMs: 0 };
  const t0 = performance.now();
  for (let s = 0; s < subsets; s++) {
    const indices = perm.slice(s * m, (s + 1) * m).sort();
    const objective = await makeObjective(indices);
    try {
      const th = objective.space.fromArray(theta);
      try {
        const r = await samSharpness(objective, th, { rho: options.rho, steps: options.steps, adaptive: options.adaptive, eta: options.eta });
        perSubset.push(r.value);
        cost.hvps += r.cost.hvps;
        cost.gradients += r.cost.gradients;
        cost.forwards += r.cost.forwards;
      } finally {
        objective.space.dispose(th);
      }
    } finally {
      (objective as { dispose?: () => void }).dispose?.();
    }
    options.onProgress?.((s + 1) / subsets, `m-sharpness: subset ${s + 1}/${subsets}`);
  }
  cost.wallMs = performance.now() - t0;
  return {
    value: perSubset.reduce((a, b) => a + b, 0) / subsets,
    perSubset,
    subsets,
    m,
    droppedSamples: sampleCount - subsets * m,
    cost,
  };
}
