/**
 * Demonstrations of Dinh et al. 2017, section 5.2 and Appendix C, returning their numbers for the
 * `reproduce` command:
 *   - inputGradientRankingFlip: two ReLU nets, each with exactly the same predictions before and
 *     after whitening (the map is folded into the first layer), whose ranking by mean input-gradient
 *     norm (inputGradientNorms, src/metrics/sensitivity.ts) reverses under whitening. Data: Gaussian
 *     with covariance U diag(25, 0.04) U^T (U a 30° rotation). Net A reads the high-variance axis
 *     e1, net B the low-variance axis e2 (through the same small ReLU profile g): A(x) =
 *     g(e1·x / 5), B(x) = g(0.5 e2·x / 0.2). In x, B's gradient is ~12.5x A's; whitening multiplies
 *     gradients along e1 by ~5 and along e2 by ~0.2, so in u, A's is ~2x B's.
 *   - standardizationMseRankingChange: Appendix C. Targets with two outputs on very different scales
 *     (std ~10 and ~0.1, a teacher ReLU net's outputs); model A is off by 1 on the large output,
 *     model B by 0.5 on the small one. The mean squared error (the engine's "mse" loss) ranks B
 *     better in raw units and A better once the represented quantity is standardized (the map
 *     folded into both nets' last layer and applied to the targets).
 */
import type { Dataset } from "../data.ts";
import { initParameters } from "../init.ts";
import { mlpSpec, parameterLayout } from "../model.ts";
import { inputGradientNorms } from "../metrics/sensitivity.ts";
import { hostForward } from "../metrics/normBased.ts";
import { Rng } from "../random.ts";
import { ReferenceObjective } from "../reference/engine.ts";
import { type AffineInputKind, applyInputMap, fitAffineInputMap, foldInputMap, foldOutputMap, transformDataset } from "./input.ts";

export interface InputGradientRankingFlipResult {
  kind: AffineInputKind;
  samples: number;
  /** Mean ||df/dx||_F over the data, models A and B. */
  original: { a: number; b: number };
  /** Mean ||d f_xi/du||_F over the transformed data (folded models). */
  transformed: { a: number; b: number };
  /** max |f_fold(u) - f(x)| over the data (float64), models A and B: the predictions are the same. */
  maxOutputChange: { a: number; b: number };
  lessSensitiveOriginal: "a" | "b";
  lessSensitiveTransformed: "a" | "b";
  flipped: boolean;
}

export async function inputGradientRankingFlip(options: { kind?: AffineInputKind; samples?: number; seed?: number } = {}): Promise<InputGradientRankingFlipResult> {
  const kind = options.kind ?? "zca";
  const n = options.samples ?? 256;
  const rng = new Rng(options.seed ?? 3);
  const angle = Math.PI / 6;
  const e1 = [Math.cos(angle), Math.sin(angle)], e2 = [-Math.sin(angle), Math.cos(angle)];
  const sd = [5, 0.2];
  const x = new Float32Array(n * 2);
  for (let s = 0; s < n; s++) {
    const c1 = sd[0] * rng.normal(), c2 = sd[1] * rng.normal();
    x[2 * s] = c1 * e1[0] + c2 * e2[0];
    x[2 * s + 1] = c1 * e1[1] + c2 * e2[1];
  }
  const data: Dataset = { n, features: 2, x };
  const spec = mlpSpec([2, 3, 1]);
  const layout = parameterLayout(spec);
  // g(t) = 0.1 + sum_j c2_j relu(c1_j t + b_j): the same scalar profile for both nets.
  const c1 = [1, -1, 0.7], b1 = [0.2, 0.3, -0.1], c2 = [1, 0.8, -0.6];
  const model = (axis: number[], gain: number) => {
    const theta = new Float64Array(layout.dim);
    const { weightOffset: w0, biasOffset: bo0 } = layout.layers[0];
    const { weightOffset: w1, biasOffset: bo1 } = layout.layers[1];
    for (let j = 0; j < 3; j++) {
      theta[w0 + 2 * j] = c1[j] * gain * axis[0];
      theta[w0 + 2 * j + 1] = c1[j] * gain * axis[1];
      theta[bo0 + j] = b1[j];
      theta[w1 + j] = c2[j];
    }
    theta[bo1] = 0.1;
    return theta;
  };
  const thetaA = model(e1, 1 / sd[0]);
  const thetaB = model(e2, 0.5 / sd[1]);
  const map = fitAffineInputMap(x, 2, kind);
  const u = transformDataset(map, data);
  const uExact = applyInputMap(map, x);
  const before = [], after = [], change = [];
  for (const theta of [thetaA, thetaB]) {
    const folded = foldInputMap(spec, theta, map);
    before.push((await inputGradientNorms(spec, theta, data)).mean);
    after.push((await inputGradientNorms(folded.spec, folded.theta, u)).mean);
    const f = hostForward(spec, theta, x).z[1], g = hostForward(folded.spec, folded.theta, uExact).z[1];
    change.push(f.reduce((m, v, i) => Math.max(m, Math.abs(v - g[i])), 0));
  }
  const lessOriginal = before[0] <= before[1] ? "a" : "b";
  const lessTransformed = after[0] <= after[1] ? "a" : "b";
  return {
    kind,
    samples: n,
    original: { a: before[0], b: before[1] },
    transformed: { a: after[0], b: after[1] },
    maxOutputChange: { a: change[0], b: change[1] },
    lessSensitiveOriginal: lessOriginal,
    lessSensitiveTransformed: lessTransformed,
    flipped: lessOriginal !== lessTransformed,
  };
}

export interface StandardizationMseResult {
  samples: number;
  /** Standard deviations of the two target columns. */
  targetStd: [number, number];
  /** Mean squared error (the engine's "mse" loss) in raw units, models A and B. */
  raw: { a: number; b: number };
  /** Mean squared error after standardizing outputs and targets. */
  standardized: { a: number; b: number };
  betterRaw: "a" | "b";
  betterStandardized: "a" | "b";
  changed: boolean;
}

export async function standardizationMseRankingChange(options: { samples?: number; seed?: number } = {}): Promise<StandardizationMseResult> {
  const n = options.samples ?? 256;
  const rng = new Rng(options.seed ?? 7);
  const spec = mlpSpec([3, 4, 2]);
  const layout = parameterLayout(spec);
  const teacher = initParameters(spec, 17);
  const { weightOffset: w, biasOffset: b } = layout.layers[1];
  // Put the two outputs on scales ~10 and ~0.1.
  for (const [r, gain] of [[0, 10], [1, 0.1]]) {
    for (let i = 0; i < 4; i++) teacher[w + r * 4 + i] *= gain;
    teacher[b + r] *= gain;
  }
  const x = Float32Array.from({ length: n * 3 }, () => rng.normal());
  const targets = Float32Array.from(hostForward(spec, teacher, x).z[1]);
  const data: Dataset = { n, features: 3, x, targets };
  const modelA = Float64Array.from(teacher);
  modelA[b] += 1; // off by 1 on the large-scale output
  const modelB = Float64Array.from(teacher);
  modelB[b + 1] += 0.5; // off by 0.5 on the small-scale output
  const map = fitAffineInputMap(targets, 2, "standardize");
  const stdData: Dataset = { ...data, targets: Float32Array.from(applyInputMap(map, targets)) };
  const raw = [], standardized = [];
  for (const theta of [modelA, modelB]) {
    raw.push(await new ReferenceObjective(spec, data, "mse").loss(theta));
    const folded = foldOutputMap(spec, theta, map);
    standardized.push(await new ReferenceObjective(folded.spec, stdData, "mse").loss(folded.theta));
  }
  const betterRaw = raw[0] <= raw[1] ? "a" : "b";
  const betterStandardized = standardized[0] <= standardized[1] ? "a" : "b";
  return {
    samples: n,
    targetStd: [Math.sqrt(map.variances[0]), Math.sqrt(map.variances[1])],
    raw: { a: raw[0], b: raw[1] },
    standardized: { a: standardized[0], b: standardized[1] },
    betterRaw,
    betterStandardized,
    changed: betterRaw !== betterStandardized,
  };
}
