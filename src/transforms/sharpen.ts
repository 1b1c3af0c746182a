/**
 * Sharper observationally equivalent parameters (Dinh et al. 2017, section 4.2).
 *
 * sharpen (Theorem 4, "sharpest direction"). H' = H(T_alpha theta) = D^-1 H D^-1 with D the
 * diagonal of T_alpha (./alphaScale.ts). For a unit vector v supported on layer k's weights,
 *   lambda_max(H') >= v^T H' v = v^T H v / alpha_k^2,
 * so with lambda_k the top eigenvalue of layer k's weight block (Lanczos on the block-restricted
 * operator) and v its eigenvector, lambda_max(H') >= lambda_k / alpha_k^2. We pick the layer with
 * the largest lambda_k (> 0 needed: a block can be ~0, e.g. all its units dead), set
 *   alpha_k = sqrt(lambda_k / (M s))  (s >= 1 a safety factor; alpha_k < 1: the layer shrinks),
 * spread 1/alpha_k over the other layers (alpha_j = alpha_k^{-1/(K-1)}, product 1), and verify with
 * Lanczos on the Hessian at the new parameters, whose Ritz value is a lower bound on lambda_max; if
 * it falls short (Lanczos or f32 error in lambda_k) s grows and we try again.
 *
 * sharpenCount (Theorem 5, "many directions"). Choose one layer k* to compensate,
 * alpha_j = 1/beta for j != k* and alpha_{k*} = beta^{K-1}. Write H' = F H F with F = D^-1 (the paper's
 * D_alpha; D the diagonal of T_alpha). Every f_i is >= beta except on a set S: the weights of k*
 * (n_{k*} entries) and, with biases, the biases of layers k*..K-1 (Appendix B: b_j scales by
 * alpha_1...alpha_j, which is >= 1 from k* on; the output bias never changes). Let
 * lambda_1 >= ... >= lambda_m > 0 be top eigenvalues of H(theta), U their eigenvectors, and
 * Y = U ∩ {y : y_S = 0}, of dimension >= m - |S|. For y in Y and x = F^-1 y:
 *   x^T H' x = y^T H y >= lambda_m |y|^2   and   |x|^2 = sum_{i not in S} y_i^2 / f_i^2 <= |y|^2 / beta^2,
 * so by Courant-Fischer lambda_{m-|S|}(H') >= beta^2 lambda_m. This is the paper's bound (which uses
 * the multiplicative Horn inequalities at a minimum) without needing H to be positive semi-definite.
 * With m = r the number of positive eigenvalues (the rank at a minimum) and
 * beta^2 = M s / lambda_r, at least r - |S| eigenvalues of H' exceed M; bias-free, |S| = min_k n_k
 * as in Theorem 5, and k* is chosen to make |S| smallest. The spectrum comes from a dense Hessian on
 * tiny nets (n HVPs, all eigenvalues), or, given `rank`, from Lanczos' top-`rank` Ritz values, which
 * are lower bounds on the true ones, so the guarantee stays sound. The count above M is verified on
 * the new parameters the same way (dense spectrum, or Lanczos with k = the guaranteed count).
 *
 * Both use T_alpha alone, so they apply unchanged to convolutional nets (a conv layer's block is its
 * whole kernel, n_k = out·in/groups·kh·kw).
 */
import { InputError } from "../errors.ts";
import { parameterLayout } from "../model.ts";
import { type Objective, withVectors } from "../objective.ts";
import { type MetricCost, withCost } from "../metrics/cost.ts";
import { hessianOperator } from "../metrics/operator.ts";
import { lanczosEigenpairs } from "../metrics/spectrum.ts";
import { symmetricEigen } from "../metrics/tridiagonal.ts";
import {
  applyAlphas,
  checkHostTheta,
  checkLayerIndex,
  checkPositiveNumber,
  concentratedAlphas,
  ConstructionError,
  denseHessian,
  type FunctionCheck,
  functionCheck,
  type LanczosSettings,
  requireDeepHomogeneous,
  subProgress,
  topEigenvalue,
  weightBlockTopEigenvalues,
} from "./constructionSupport.ts";

/** Options of sharpen. */
export interface SharpenOptions extends LanczosSettings {
  /** M: the Hessian's top eigenvalue at the new parameters must be >= M. */
  minTopEigenvalue: number;
  /** Layer whose weights shrink (default: the one whose weight block has the largest top eigenvalue). */
  layer?: number;
  /** s >= 1 in alpha_k = sqrt(lambda_k / (M s)) (default 1.25). */
  safety?: number;
  /** Tries, s growing after a shortfall (default 6). */
  maxAttempts?: number;
}

/** An observationally equivalent T_alpha(theta) with a sharp Hessian (Dinh et al. 2017 Theorem 4). */
export interface SharpenResult {
  /** T_alpha(theta): same outputs, top Hessian eigenvalue >= target. */
  theta: Float64Array;
  /** The alphas of T_alpha, one per layer (product 1). */
  alphas: number[];
  /** The layer whose weights were shrunk (alpha < 1), or -1 when theta already met the target. */
  layer: number;
  /** The target M asked for. */
  target: number;
  /** lambda_k: top eigenvalue of every layer's weight block of H(theta). */
  blockTopEigenvalues: number[];
  /** lambda_max(H(theta)) (Lanczos). */
  originalTopEigenvalue: number;
  /** lambda_max(H(theta')) (Lanczos Ritz value: a lower bound up to rounding). */
  topEigenvalue: number;
  /** lambda_layer / alpha_layer^2: the bound the argument guarantees. */
  predictedLowerBound: number;
  /** Tries used (0 when theta already met the target). */
  attempts: number;
  /** L(theta). */
  baseLoss: number;
  /** L at the new parameters (equal to baseLoss up to rounding). */
  loss: number;
  /** How far the network function moved (it should not). */
  functionCheck: FunctionCheck;
  /** Passes and wall time of the construction. */
  cost: MetricCost;
}

/** Theorem 4: an observationally equivalent T_alpha(theta) whose Hessian has top eigenvalue >= M. */
export async function sharpen<V>(objective: Objective<V>, theta: Float64Array, options: SharpenOptions): Promise<SharpenResult> {
  const spec = objective.spec;
  const K = requireDeepHomogeneous(spec, "sharpen");
  checkHostTheta(spec, theta);
  const M = options.minTopEigenvalue;
  checkPositiveNumber("sharpen: minTopEigenvalue", M);
  const safety0 = options.safety ?? 1.25;
  if (!(safety0 >= 1) || !Number.isFinite(safety0)) throw new InputError(`sharpen: safety must be a finite number >= 1, got ${safety0}`);
  const maxAttempts = options.maxAttempts ?? 6;
  if (!Number.isInteger(maxAttempts) || maxAttempts < 1) throw new InputError(`sharpen: maxAttempts must be a positive integer, got ${maxAttempts}`);
  if (options.layer !== undefined) checkLayerIndex(spec, options.layer, "sharpen");
  const progress = options.onProgress;

  const { result, cost } = await withCost(objective, () =>
    withVectors(objective, [theta], async ([t]) => {
      const blockTops = await weightBlockTopEigenvalues(objective, t, options, (k) =>
        progress?.((0.5 * k) / K, `sharpen: top eigenvalue of layer ${k}'s weight block`));
      progress?.(0.5, "sharpen: top eigenvalue of the Hessian");
      const originalTop = await topEigenvalue(objective, t, options);
      const baseLoss = await objective.loss(t);
      const finish = async (theta2: Float64Array, alphas: number[], layer: number, top: number, predicted: number, attempts: number) => {
        const check = await withVectors(objective, [theta2], async ([t2]) => ({
          fc: await functionCheck(objective, t, t2),
          loss: await objective.loss(t2),
        }));
        progress?.(1, `sharpen: top eigenvalue ${top} >= ${M}`);
        return {
          theta: theta2, alphas, layer, target: M, blockTopEigenvalues: blockTops, originalTopEigenvalue: originalTop,
          topEigenvalue: top, predictedLowerBound: predicted, attempts, baseLoss, loss: check.loss, functionCheck: check.fc,
        };
      };
      if (originalTop >= M && options.layer === undefined) {
        return finish(Float64Array.from(theta), new Array(K).fill(1), -1, originalTop, originalTop, 0);
      }
      const layer = options.layer ?? blockTops.indexOf(Math.max(...blockTops));
      const lambda = blockTops[layer];
      // No relative floor: T_alpha moves the blocks' relative sizes arbitrarily; a dead block is exactly 0.
      if (!(lambda > 0)) {
        const list = blockTops.map((x) => x.toExponential(3)).join(", ");
        throw new ConstructionError(
          options.layer !== undefined
            ? `sharpen: layer ${layer}'s weight block has no positive curvature (top eigenvalue ${lambda.toExponential(3)}; all blocks: ${list}); pick another layer`
            : `sharpen: no layer's weight block has positive curvature (top eigenvalues ${list}): T_alpha only rescales these blocks, so it cannot make this Hessian sharp (dead units or a zero Hessian?)`,
        );
      }
      let safety = safety0;
      let achieved = NaN;
      for (let attempt = 1; attempt <= maxAttempts; attempt++) {
        const a = Math.min(1, Math.sqrt(lambda / (M * safety)));
        const alphas = concentratedAlphas(K, layer, a);
        const theta2 = applyAlphas(spec, theta, alphas);
        progress?.(0.6 + (0.4 * (attempt - 1)) / maxAttempts, `sharpen: attempt ${attempt}, alpha_${layer} = ${a.toExponential(3)}`);
        achieved = await withVectors(objective, [theta2], ([t2]) => topEigenvalue(objective, t2, options));
        if (achieved >= M) return finish(theta2, alphas, layer, achieved, lambda / (a * a), attempt);
        safety *= Math.max(4, (2 * M) / Math.max(achieved, 1e-300));
      }
      throw new ConstructionError(
        `sharpen: after ${maxAttempts} attempts the top eigenvalue is ${achieved} < ${M} (layer ${layer}, block top eigenvalue ${lambda}); ` +
          `the Hessian may be too inaccurate at this scale (f32): try --cpu or a smaller target`,
      );
    }));
  return { ...result, cost };
}

/** Options of sharpenCount. */
export interface SharpenCountOptions extends LanczosSettings {
  /** M: eigenvalues of H(theta') above M are counted. */
  threshold: number;
  /**
   * Use the top `rank` eigenvalues of H(theta) from Lanczos as lambda_1..lambda_m (m = rank) instead of
   * the dense spectrum; needed when the model has more than maxDenseDim parameters.
   */
  rank?: number;
  /** Dense spectrum: eigenvalues above rankTolerance * max|lambda| count toward r (default 1e-8). */
  rankTolerance?: number;
  /** beta^2 lambda_r = safety M (default 2). */
  safety?: number;
  /** Largest parameter count for the dense spectrum (default 400). */
  maxDenseDim?: number;
  /** Tries, safety x4 after a shortfall (default 4). */
  maxAttempts?: number;
}

/** An observationally equivalent T_alpha(theta) with many Hessian eigenvalues above a threshold (Dinh et al. 2017 Theorem 5). */
export interface SharpenCountResult {
  /** T_alpha(theta): the same function, at least guaranteedCount Hessian eigenvalues above the threshold. */
  theta: Float64Array;
  /** The alphas of T_alpha: 1/beta on every layer but the compensating one, beta^{K-1} there. */
  alphas: number[];
  /** beta, with beta² lambda_r = safety · threshold. */
  beta: number;
  /** The threshold M. */
  threshold: number;
  /** k*: the layer with alpha = beta^{K-1}. */
  compensatingLayer: number;
  /** |S|: coordinates whose factor stays below beta (weights of k*, biases of k*..K-1). */
  unamplified: number;
  /** r: positive eigenvalues of H(theta) used (dense: above the rank tolerance; lanczos: `rank`). */
  rank: number;
  /** lambda_r, the smallest of them. */
  smallestCountedEigenvalue: number;
  /** r - |S|: eigenvalues of H(theta') guaranteed above the threshold. */
  guaranteedCount: number;
  /** Eigenvalues of H(theta') found above the threshold (dense: all; lanczos: among the top guaranteedCount). */
  countAbove: number;
  /** Eigenvalues of H(theta) above the threshold, counted the same way (for contrast). */
  originalCountAbove: number;
  /** How the spectrum was obtained: dense Hessian (all eigenvalues) or Lanczos (top `rank`). */
  method: "dense" | "lanczos";
  /** Tries used. */
  attempts: number;
  /** L(theta). */
  baseLoss: number;
  /** L at the new parameters (equal to baseLoss up to rounding). */
  loss: number;
  /** How far the network function moved (it should not). */
  functionCheck: FunctionCheck;
  /** Passes and wall time of the construction. */
  cost: MetricCost;
}

/** Descending eigenvalues of H(theta): the dense spectrum, or the top k Ritz values. */
async function spectrum<V>(objective: Objective<V>, t: V, method: "dense" | "lanczos", k: number, o: LanczosSettings, from: number, to: number): Promise<number[]> {
  if (method === "dense") {
    const n = objective.space.dim;
    const h = await denseHessian(objective, t, subProgress(o.onProgress, from, to));
    return Array.from(symmetricEigen(h, n).values).sort((a, b) => b - a);
  }
  const r = await lanczosEigenpairs(hessianOperator(objective, t), {
    k,
    which: "LA",
    seed: o.seed ?? 0,
    maxSteps: o.lanczosSteps === undefined ? undefined : Math.max(k, o.lanczosSteps),
    tol: o.lanczosTol ?? 1e-6,
    onProgress: subProgress(o.onProgress, from, to),
  });
  return r.eigenvalues;
}

/** Theorem 5: an observationally equivalent T_alpha(theta) with at least r - |S| eigenvalues above M. */
export async function sharpenCount<V>(objective: Objective<V>, theta: Float64Array, options: SharpenCountOptions): Promise<SharpenCountResult> {
  const spec = objective.spec;
  const K = requireDeepHomogeneous(spec, "sharpenCount");
  checkHostTheta(spec, theta);
  const M = options.threshold;
  checkPositiveNumber("sharpenCount: threshold", M);
  const n = objective.space.dim;
  const maxDense = options.maxDenseDim ?? 400;
  const tolRank = options.rankTolerance ?? 1e-8;
  checkPositiveNumber("sharpenCount: rankTolerance", tolRank);
  let safety = options.safety ?? 2;
  if (!(safety >= 1) || !Number.isFinite(safety)) throw new InputError(`sharpenCount: safety must be a finite number >= 1, got ${safety}`);
  const maxAttempts = options.maxAttempts ?? 4;
  if (!Number.isInteger(maxAttempts) || maxAttempts < 1) throw new InputError(`sharpenCount: maxAttempts must be a positive integer, got ${maxAttempts}`);
  let method: "dense" | "lanczos";
  if (options.rank !== undefined) {
    if (!Number.isInteger(options.rank) || options.rank < 1 || options.rank > n) {
      throw new InputError(`sharpenCount: rank must be an integer in [1, ${n}], got ${options.rank}`);
    }
    method = "lanczos";
  } else if (n <= maxDense) {
    method = "dense";
  } else {
    throw new InputError(
      `sharpenCount: the model has ${n} parameters, more than ${maxDense} for a dense Hessian; pass rank (how many top eigenvalues, found by Lanczos, to lift above the threshold)`,
    );
  }
  // |S| for each choice of k*, and the best k*.
  const layout = parameterLayout(spec);
  // Weight and bias entries per layer (a conv layer's whole kernel and its per-channel bias).
  const viewSize = (k: number, role: "weight" | "bias") => layout.views.find((v) => v.layer === k && v.role === role)?.size ?? 0;
  const biasSize = spec.layers.map((_, k) => viewSize(k, "bias"));
  const unamplifiedFor = spec.layers.map((_, k) => viewSize(k, "weight") + biasSize.slice(k).reduce((s, b) => s + b, 0));
  const kStar = unamplifiedFor.indexOf(Math.min(...unamplifiedFor));
  const S = unamplifiedFor[kStar];
  const progress = options.onProgress;

  const { result, cost } = await withCost(objective, () =>
    withVectors(objective, [theta], async ([t]) => {
      progress?.(0, `sharpenCount: spectrum of H(theta) (${method})`);
      const before = await spectrum(objective, t, method, options.rank ?? 0, options, 0, 0.45);
      const maxAbs = before.reduce((m, x) => Math.max(m, Math.abs(x)), 0);
      let r: number;
      let lambdaR: number;
      if (method === "dense") {
        const positive = before.filter((x) => x > tolRank * maxAbs);
        r = positive.length;
        lambdaR = positive[r - 1];
      } else {
        r = options.rank!;
        lambdaR = before[r - 1];
        if (!(lambdaR > 0)) {
          throw new ConstructionError(`sharpenCount: the ${r}-th largest eigenvalue of H(theta) is ${lambdaR}, not positive; pass a smaller rank`);
        }
      }
      const guaranteed = r - S;
      if (guaranteed < 1) {
        throw new ConstructionError(
          `sharpenCount: Theorem 5 guarantees r - |S| = ${r} - ${S} = ${guaranteed} eigenvalues for this net ` +
            `(r = ${r} positive eigenvalues of H(theta); |S| = ${S} coordinates of layer ${kStar} and later biases that T_alpha cannot lift), so there is nothing to construct`,
        );
      }
      const originalCountAbove = before.filter((x) => x > M).length;
      const baseLoss = await objective.loss(t);
      let countAbove = 0;
      for (let attempt = 1; attempt <= maxAttempts; attempt++) {
        const beta = Math.max(1, Math.sqrt((M * safety) / lambdaR));
        const alphas = concentratedAlphas(K, kStar, Math.pow(beta, K - 1));
        const theta2 = applyAlphas(spec, theta, alphas);
        progress?.(0.5, `sharpenCount: attempt ${attempt}, beta = ${beta.toExponential(3)}; spectrum of H(theta')`);
        const out = await withVectors(objective, [theta2], async ([t2]) => {
          const after = await spectrum(objective, t2, method, guaranteed, options, 0.5, 0.95);
          return { after, fc: await functionCheck(objective, t, t2), loss: await objective.loss(t2) };
        });
        countAbove = out.after.filter((x) => x > M).length;
        if (countAbove >= guaranteed) {
          progress?.(1, `sharpenCount: ${countAbove} eigenvalues above ${M} (guaranteed ${guaranteed})`);
          return {
            theta: theta2, alphas, beta, threshold: M, compensatingLayer: kStar, unamplified: S, rank: r,
            smallestCountedEigenvalue: lambdaR, guaranteedCount: guaranteed, countAbove, originalCountAbove, method, attempts: attempt,
            baseLoss, loss: out.loss, functionCheck: out.fc,
          };
        }
        safety *= 4;
      }
      throw new ConstructionError(
        `sharpenCount: after ${maxAttempts} attempts only ${countAbove} eigenvalues exceed ${M}, fewer than the ${guaranteed} guaranteed: ` +
          `the eigenvalues are not accurate enough at this scale (f32?): try --cpu`,
      );
    }));
  return { ...result, cost };
}
