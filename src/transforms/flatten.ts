/**
 * Flatter observationally equivalent parameters: what T_alpha can and cannot do (Dinh et al. 2017,
 * sections 4.1 and 4.2).
 *
 * What cannot be made small. Under T_alpha the product of the alphas is 1, so shrinking one block's
 * curvature grows another's: with lambda_k the top eigenvalue of layer k's weight block of H(theta)
 * and H' = H(T_alpha theta), a unit vector on W_k gives lambda_max(H') >= lambda_k / alpha_k^2, hence
 *   lambda_max(H') >= max_k lambda_k / alpha_k^2 >= (prod_k lambda_k / alpha_k^2)^{1/K} = (prod_k lambda_k)^{1/K} =: G
 * for every alpha (all lambda_k > 0). G, the geometric mean of the block top eigenvalues, is
 * invariant under T_alpha: no alpha-scaling of theta has a top eigenvalue below it. (Neuron-wise
 * rescaling has more freedom and is not covered by this bound.) Theorem 4 shows the other side is
 * unbounded: see ./sharpen.ts.
 *
 * measure "top-eigenvalue" (default) implements the honest version: the balanced alphas
 *   alpha_k = sqrt(lambda_k / G)   (product 1)
 * give every weight block the same top eigenvalue G, the smallest possible value of
 * max_k lambda_max(H'_kk); the full lambda_max(H') also has cross-layer and bias terms, so it is
 * measured (Lanczos) and compared with theta itself (alphas all 1), and `refineIterations` more
 * Lanczos evaluations run a pattern search on log alpha (moves alpha_i up and alpha_j down by
 * e^{±step}, halving the step when no move helps). The result is the best alphas evaluated: a local
 * minimiser of the measured top eigenvalue, never worse than theta itself, and never below G.
 * `maxTopEigenvalue` m is refused up front when m < G (provably impossible; the Lanczos estimates
 * of lambda_k are lower bounds, so the refusal is sound) and reported as a ConstructionError when
 * the search ends above m.
 *
 * measure "volume": Definition 1's volume ε-flatness can be made as large as asked (section 4.1,
 * Theorem 2). T_alpha is linear with |det| = exp(sum_k w_k log alpha_k), w_k = n_k + sum_{j>=k} |b_j|
 * (weights of k scale by alpha_k, the bias of j by alpha_1...alpha_j). It maps the star-shaped
 * ε-sublevel region around theta (what volumeFlatness in src/metrics/volume.ts estimates) into the
 * one around theta', so that region's volume grows by at least exp(logVolumeGain). With
 * w_a > w_b, alpha_a = e^t, alpha_b = e^-t and t = logVolumeGain / (w_a - w_b) gives exactly the gain
 * asked; when every w_k is equal the determinant is 1 for every alpha and we refuse (the sublevel set
 * is still infinite by Theorem 2's union of disjoint T_alpha copies, which no single point shows).
 *
 * Both measures use T_alpha alone, so convolutional nets are handled the same way (a conv layer's
 * weight block is its whole kernel).
 */
import { InputError } from "../errors.ts";
import { type ModelSpec, parameterLayout } from "../model.ts";
import { type Objective, withVectors } from "../objective.ts";
import { type MetricCost, withCost } from "../metrics/cost.ts";
import {
  alphasFromLogs,
  applyAlphas,
  checkHostTheta,
  checkPositiveNumber,
  ConstructionError,
  type FunctionCheck,
  functionCheck,
  type LanczosSettings,
  requireDeepHomogeneous,
  topEigenvalue,
  weightBlockTopEigenvalues,
} from "./constructionSupport.ts";

/** What flatten improves: the Hessian's top eigenvalue (Dinh et al. 2017 section 4.2) or the volume ε-flatness (Definition 1, section 4.1). */
export type FlattenMeasure = "top-eigenvalue" | "volume";

/** Options of flatten. */
export interface FlattenOptions extends LanczosSettings {
  /** Default "top-eigenvalue". */
  measure?: FlattenMeasure;
  /** top-eigenvalue: the top eigenvalue at the result must be <= m (else ConstructionError). */
  maxTopEigenvalue?: number;
  /** top-eigenvalue: Lanczos evaluations of the pattern search after balancing (default 0). */
  refineIterations?: number;
  /** volume: log of the factor by which the star-shaped ε-sublevel region's volume must grow (> 0). */
  logVolumeGain?: number;
}

/** A flatter observationally equivalent T_alpha(theta), and the bound on how flat T_alpha can make it (see the module comment). */
export interface FlattenResult {
  /** The measure improved. */
  measure: FlattenMeasure;
  /** T_alpha(theta): the same function. */
  theta: Float64Array;
  /** The alphas of T_alpha, one per layer (product 1). */
  alphas: number[];
  /** lambda_k of every layer's weight block at theta (top-eigenvalue measure; null for volume). */
  blockTopEigenvalues: number[] | null;
  /** G = (prod_k lambda_k)^{1/K}: no T_alpha(theta) has a smaller top eigenvalue (null unless every lambda_k > 0). */
  lowerBound: number | null;
  /** The balanced alphas alpha_k = sqrt(lambda_k / G) (over the blocks with lambda_k > 0) and the top eigenvalue there; null when not evaluated. */
  balancedAlphas: number[] | null;
  /** Top eigenvalue at the balanced alphas; null when not evaluated. */
  balancedTopEigenvalue: number | null;
  /** Top Hessian eigenvalue at theta itself (Lanczos). */
  originalTopEigenvalue: number;
  /** At the returned parameters: min over the evaluated candidates (theta itself included). */
  topEigenvalue: number;
  /** Lanczos evaluations of candidate alphas (top-eigenvalue measure). */
  evaluations: number;
  /** log |det T_alpha| = sum_k w_k log alpha_k: the star-shaped region's volume grows by at least e^this. */
  logVolumeGain: number;
  /** L(theta). */
  baseLoss: number;
  /** L at the new parameters (equal to baseLoss up to rounding). */
  loss: number;
  /** How far the network function moved (it should not). */
  functionCheck: FunctionCheck;
  /** Passes and wall time of the construction. */
  cost: MetricCost;
}

/** w_k = n_k + sum_{j >= k} |b_j|: log |det T_alpha| = sum_k w_k log alpha_k. */
export function volumeWeights(spec: ModelSpec): number[] {
  const layout = parameterLayout(spec);
  // n_k and |b_k| from the layout: a conv layer's n_k is its whole kernel, |b_k| its output channels.
  const viewSize = (k: number, role: "weight" | "bias") => layout.views.find((v) => v.layer === k && v.role === role)?.size ?? 0;
  const bias = spec.layers.map((_, k) => viewSize(k, "bias"));
  return spec.layers.map((_, k) => viewSize(k, "weight") + bias.slice(k).reduce((s, b) => s + b, 0));
}

/** log |det T_alpha| for these alphas. */
export function logVolumeFactor(spec: ModelSpec, alphas: number[]): number {
  return volumeWeights(spec).reduce((s, w, k) => s + w * Math.log(alphas[k]), 0);
}

/** T_alpha(theta) as flat as T_alpha allows, for the chosen measure (see the header). */
export async function flatten<V>(objective: Objective<V>, theta: Float64Array, options: FlattenOptions = {}): Promise<FlattenResult> {
  const spec = objective.spec;
  const K = requireDeepHomogeneous(spec, "flatten");
  checkHostTheta(spec, theta);
  const measure = options.measure ?? "top-eigenvalue";
  if (measure !== "top-eigenvalue" && measure !== "volume") throw new InputError(`flatten: measure must be top-eigenvalue or volume, got '${measure}'`);
  const m = options.maxTopEigenvalue;
  if (m !== undefined) checkPositiveNumber("flatten: maxTopEigenvalue", m);
  const refine = options.refineIterations ?? 0;
  if (!Number.isInteger(refine) || refine < 0) throw new InputError(`flatten: refineIterations must be a non-negative integer, got ${refine}`);
  if (measure === "volume") {
    if (options.logVolumeGain === undefined) throw new InputError("flatten: measure volume needs logVolumeGain (the log of the volume factor asked, > 0)");
    checkPositiveNumber("flatten: logVolumeGain", options.logVolumeGain);
    if (m !== undefined) throw new InputError("flatten: maxTopEigenvalue goes with measure top-eigenvalue, not volume");
  }
  const progress = options.onProgress;

  const { result, cost } = await withCost(objective, () =>
    withVectors(objective, [theta], async ([t]) => {
      const baseLoss = await objective.loss(t);
      progress?.(0, "flatten: top eigenvalue of the Hessian");
      const originalTop = await topEigenvalue(objective, t, options);
      const evaluate = (logs: number[]) => {
        const alphas = alphasFromLogs(logs);
        const theta2 = applyAlphas(spec, theta, alphas);
        return withVectors(objective, [theta2], ([t2]) => topEigenvalue(objective, t2, options)).then((top) => ({ logs, alphas, theta2, top }));
      };
      const finish = async (best: { alphas: number[]; theta2: Float64Array; top: number }, extra: { blockTops: number[] | null; lowerBound: number | null; evaluations: number; balanced: { alphas: number[]; top: number } | null }) => {
        const out = await withVectors(objective, [best.theta2], async ([t2]) => ({ fc: await functionCheck(objective, t, t2), loss: await objective.loss(t2) }));
        progress?.(1, `flatten: top eigenvalue ${originalTop} -> ${best.top}`);
        return {
          measure, theta: best.theta2, alphas: best.alphas, blockTopEigenvalues: extra.blockTops, lowerBound: extra.lowerBound,
          balancedAlphas: extra.balanced?.alphas ?? null, balancedTopEigenvalue: extra.balanced?.top ?? null,
          originalTopEigenvalue: originalTop, topEigenvalue: best.top, evaluations: extra.evaluations,
          logVolumeGain: logVolumeFactor(spec, best.alphas), baseLoss, loss: out.loss, functionCheck: out.fc,
        };
      };

      if (measure === "volume") {
        const w = volumeWeights(spec);
        const a = w.indexOf(Math.max(...w));
        const b = w.indexOf(Math.min(...w));
        if (w[a] === w[b]) {
          throw new ConstructionError(
            `flatten: every layer has the same weight-and-downstream-bias count (${w[a]}), so |det T_alpha| = 1 for every alpha: ` +
              `T_alpha cannot grow the star-shaped region's volume (Theorem 2's infinite volume comes from the union of T_alpha copies instead)`,
          );
        }
        const tStep = options.logVolumeGain! / (w[a] - w[b]);
        const logs = new Array(K).fill(0);
        logs[a] = tStep;
        logs[b] = -tStep;
        progress?.(0.5, "flatten: top eigenvalue at the new parameters");
        const best = await evaluate(logs);
        return finish(best, { blockTops: null, lowerBound: null, evaluations: 1, balanced: null });
      }

      const blockTops = await weightBlockTopEigenvalues(objective, t, options, (k) =>
        progress?.((0.4 * (k + 1)) / K, `flatten: top eigenvalue of layer ${k}'s weight block`));
      // No relative floor: T_alpha moves the blocks' relative sizes arbitrarily (a zero block, e.g. of dead units, is exactly 0).
      const positive = blockTops.map((x) => x > 0);
      const allPositive = positive.every(Boolean);
      const lowerBound = allPositive ? Math.exp(blockTops.reduce((s, x) => s + Math.log(x), 0) / K) : null;
      if (m !== undefined && lowerBound !== null && m < lowerBound) {
        throw new ConstructionError(
          `flatten: no T_alpha(theta) has top eigenvalue <= ${m}: every one is >= ${lowerBound.toPrecision(6)}, the geometric mean of the ` +
            `layers' weight-block top eigenvalues [${blockTops.map((x) => x.toPrecision(4)).join(", ")}], which T_alpha keeps (the alphas multiply to 1)`,
        );
      }
      type Candidate = { logs: number[]; alphas: number[]; theta2: Float64Array; top: number };
      let best: Candidate = { logs: new Array(K).fill(0), alphas: new Array(K).fill(1), theta2: Float64Array.from(theta), top: originalTop };
      let evaluations = 0;
      let balancedResult: { alphas: number[]; top: number } | null = null;
      const nPositive = positive.filter(Boolean).length;
      if (nPositive >= 2) {
        const meanLog = blockTops.reduce((s, x, k) => s + (positive[k] ? Math.log(x) : 0), 0) / nPositive;
        const balanced = blockTops.map((x, k) => (positive[k] ? 0.5 * (Math.log(x) - meanLog) : 0));
        progress?.(0.5, "flatten: top eigenvalue at the balanced alphas");
        const candidate = await evaluate(balanced);
        evaluations++;
        balancedResult = { alphas: candidate.alphas, top: candidate.top };
        if (candidate.top < best.top) best = candidate;
      }
      // Pattern search on log alpha: alpha_i x e^s, alpha_j x e^-s.
      let step = 0.5;
      const moves: number[][] = [];
      for (let i = 0; i < K; i++) {
        for (let j = 0; j < K; j++) {
          if (i === j) continue;
          const d = new Array(K).fill(0);
          d[i] = 1;
          d[j] = -1;
          moves.push(d);
        }
      }
      let used = 0;
      while (used < refine && step > 1e-4 && !(m !== undefined && best.top <= m)) {
        let improved = false;
        for (const d of moves) {
          if (used >= refine) break;
          used++;
          progress?.(0.5 + (0.5 * used) / refine, `flatten: refinement ${used}/${refine}, top eigenvalue ${best.top.toPrecision(6)}`);
          const candidate = await evaluate(best.logs.map((x, k) => x + step * d[k]));
          evaluations++;
          if (candidate.top < best.top) {
            best = candidate;
            improved = true;
          }
        }
        if (!improved) step /= 2;
      }
      if (m !== undefined && best.top > m) {
        throw new ConstructionError(
          `flatten: the flattest alphas found give top eigenvalue ${best.top.toPrecision(6)} > ${m} after ${evaluations} evaluations ` +
            `(lower bound ${lowerBound === null ? "unknown: a weight block has no positive curvature" : lowerBound.toPrecision(6)}); more refinement iterations may help`,
        );
      }
      return finish(best, { blockTops, lowerBound, evaluations, balanced: balancedResult });
    }));
  return { ...result, cost };
}
