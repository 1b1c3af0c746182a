/**
 * Claim 15 of `flatness reproduce`: Keskar et al.'s experiment and Dinh et al.'s answer to it.
 * Two ReLU nets are trained from the same start on the same Gaussian mixture, one with small and
 * one with large batches (SGD with momentum, same epochs and learning rate); their top Hessian
 * eigenvalue, epsilon-sharpness (Definition 2) and test accuracy are reported as measured (Keskar's
 * observation, the flatter one generalizes better, need not hold here: it is reported either way).
 * Then T_alpha (sharpen, Theorem 4) makes the flatter of the two the sharper one, by both measures,
 * with its test predictions, hence its test accuracy, unchanged. The flip is the claim checked.
 */
import { gaussianMixture, splitDataset } from "../datasets.ts";
import { hessianOperator } from "../metrics/operator.ts";
import { epsilonSharpness } from "../metrics/sharpness.ts";
import { lanczosEigenpairs } from "../metrics/spectrum.ts";
import { mlpSpec } from "../model.ts";
import { type Objective, withVectors } from "../objective.ts";
import { accuracy } from "../train/evaluate.ts";
import { trainModel } from "../train/trainModel.ts";
import { sharpen } from "../transforms/sharpen.ts";
import { BIAS_CONTROL, cached, type Claim, claimAlphaScale, fmt, relativeDifference, type ReproduceContext, withObjective, isF32, outputTolerance } from "./context.ts";

interface Measured {
  topEigenvalue: number;
  epsilonSharpness: number;
  testAccuracy: number;
  testOutputs: Float64Array;
}

/**
 * Claim 15's trained pair (also used by claims 13 and 14): two ReLU nets trained from the same start
 * on the same Gaussian mixture with small and large batches. Deterministic per backend, seed and
 * setting, so it is trained once and cached (claims 13 and 14 and the negative controls reuse it).
 */
export function keskarMinima(ctx: ReproduceContext) {
  return cached(ctx, "keskar-minima", async () => {
    const mixture = gaussianMixture({ samples: ctx.quick ? 600 : 2000, classes: 3, dims: 8, separation: 2.5, noise: 1, seed: ctx.seed + 151 });
    const split = splitDataset(mixture.data, 0.3, ctx.seed + 152);
    const spec = mlpSpec([8, 32, 32, 3]);
    const epochs = ctx.quick ? 8 : 20;
    const runs = [
      { name: "small batch", batchSize: 16 },
      { name: "large batch", batchSize: split.train.n },
    ];
    const trained: { name: string; batchSize: number; theta: Float64Array; trainLoss: number }[] = [];
    for (const r of runs) {
      ctx.progress(`training with batch ${r.batchSize} for ${epochs} epochs`);
      const t = await trainModel({
        spec,
        data: split.train,
        test: split.test,
        loss: "ce",
        optimizer: "sgd",
        lr: 0.05,
        momentum: 0.9,
        batchSize: r.batchSize,
        epochs,
        seed: ctx.seed + 153,
        backend: ctx.backend,
      });
      trained.push({ ...r, theta: t.theta, trainLoss: t.finalTrainLoss });
    }
    return { mixture, split, spec, epochs, trained };
  });
}

/** Test samples whose predicted class differs between two output sets, ignoring samples whose top two logits are within `tol` (a tie at f32 rounding). */
function changedPredictions(before: Float64Array, after: Float64Array, classes: number, tol: number): { changed: number; ties: number } {
  let changed = 0, ties = 0;
  for (let s = 0; s < before.length / classes; s++) {
    const row = (o: Float64Array) => Array.from(o.subarray(s * classes, (s + 1) * classes));
    const b = row(before), a = row(after);
    const top = b.indexOf(Math.max(...b));
    const second = Math.max(...b.filter((_, i) => i !== top));
    if (b[top] - second <= tol * Math.max(1, Math.abs(b[top]))) {
      ties++;
      continue;
    }
    if (a.indexOf(Math.max(...a)) !== top) changed++;
  }
  return { changed, ties };
}

export const keskarExperiment: Claim = {
  id: 15,
  claim: "Keskar et al.'s small- vs large-batch minima: sharpness and test accuracy as measured; then T_alpha makes the flatter one the sharper one with its test predictions unchanged",
  controls: [BIAS_CONTROL],
  async run(ctx) {
    const { mixture, split, spec, epochs, trained } = await keskarMinima(ctx);
    const epsilon = 1e-2;
    const measure = (f: Objective<unknown>, test: Objective<unknown>, theta: Float64Array): Promise<Measured> =>
      withVectors(f, [theta], async ([t]) => {
        const top = await lanczosEigenpairs(hessianOperator(f, t), { k: 1, seed: ctx.seed, tol: 1e-6 });
        const eps = await epsilonSharpness(f, t, { kind: "dinh", epsilon, seed: ctx.seed });
        const testOutputs = await withVectors(test, [theta], ([tt]) => test.outputs(tt));
        return { topEigenvalue: top.eigenvalues[0], epsilonSharpness: eps.value, testAccuracy: accuracy("ce", testOutputs, split.test.labels!, 3), testOutputs };
      });
    const result = await withObjective(ctx, spec, split.train, "ce", [], (f) =>
      withObjective(ctx, spec, split.test, "ce", [], async (test) => {
        // The two minima's measurements are deterministic: cached for the negative control.
        const m = await cached(ctx, "keskar-measured", async () => [await measure(f, test, trained[0].theta), await measure(f, test, trained[1].theta)]);
        const flatter = m[0].topEigenvalue <= m[1].topEigenvalue ? 0 : 1;
        const sharper = 1 - flatter;
        // Sharpen the flatter minimum past the sharper one's top eigenvalue; push further if its
        // epsilon-sharpness has not overtaken yet (both grow as the chosen layer shrinks).
        let after: Measured | null = null;
        let alphas: number[] = [];
        for (let factor = 4; factor <= 4 ** 4; factor *= 4) {
          const s = await sharpen(f, trained[flatter].theta, { minTopEigenvalue: factor * m[sharper].topEigenvalue, seed: ctx.seed });
          after = await measure(f, test, claimAlphaScale(ctx, spec, trained[flatter].theta, s.alphas));
          alphas = s.alphas;
          if (after.epsilonSharpness > m[sharper].epsilonSharpness || ctx.control) break;
        }
        return { m, flatter, sharper, after: after!, alphas };
      }));
    const { m, flatter, sharper, after } = result;
    const outputsMoved = relativeDifference(after.testOutputs, m[flatter].testOutputs);
    const flipped = after.topEigenvalue > m[sharper].topEigenvalue && after.epsilonSharpness > m[sharper].epsilonSharpness;
    // Same predictions, compared within f32 rounding: the outputs to a relative tolerance, and the
    // predicted class of every test sample whose top two logits are not tied at that tolerance.
    const outputTol = outputTolerance(ctx);
    const predictions = changedPredictions(m[flatter].testOutputs, after.testOutputs, 3, outputTol);
    const accuracyKept = predictions.changed === 0 && Math.abs(after.testAccuracy - m[flatter].testAccuracy) <= predictions.ties / split.test.n;
    const flatGeneralizesBetter = m[flatter].testAccuracy >= m[sharper].testAccuracy;
    const name = (i: number) => trained[i].name;
    return {
      measured: `${name(0)}: lambda_max ${fmt(m[0].topEigenvalue)}, eps-sharpness ${fmt(m[0].epsilonSharpness)}, test accuracy ${fmt(m[0].testAccuracy)}; ` +
        `${name(1)}: ${fmt(m[1].topEigenvalue)}, ${fmt(m[1].epsilonSharpness)}, ${fmt(m[1].testAccuracy)} ` +
        `(flatter = ${name(flatter)}, which ${flatGeneralizesBetter ? "does" : "does not"} generalize at least as well); ` +
        `after T_alpha the ${name(flatter)} model: lambda_max ${fmt(after.topEigenvalue)}, eps-sharpness ${fmt(after.epsilonSharpness)}, test accuracy ${fmt(after.testAccuracy)}; ` +
        `test outputs moved ${fmt(outputsMoved)} relative, ${predictions.changed} predictions changed (${predictions.ties} ties within rounding)`,
      expected: `after T_alpha the flatter model is the sharper one by both measures, with the same test predictions: outputs equal within ${isF32(ctx) ? "f32" : "float64"} rounding (<= ${outputTol} relative) and no predicted class changed outside ties at that rounding, so the same test accuracy`,
      pass: flipped && accuracyKept && outputsMoved <= outputTol,
      details: {
        data: `${mixture.description}; ${split.train.n} train / ${split.test.n} test`,
        model: "[8, 32, 32, 3] ReLU, SGD momentum 0.9, lr 0.05",
        epochs,
        epsilon,
        runs: trained.map((t, i) => ({ name: t.name, batchSize: t.batchSize, trainLoss: t.trainLoss, topEigenvalue: m[i].topEigenvalue, epsilonSharpness: m[i].epsilonSharpness, testAccuracy: m[i].testAccuracy })),
        keskarObservationHolds: flatGeneralizesBetter,
        afterTransform: { of: name(flatter), alphas: result.alphas, topEigenvalue: after.topEigenvalue, epsilonSharpness: after.epsilonSharpness, testAccuracy: after.testAccuracy, testOutputsMoved: outputsMoved, predictionsChanged: predictions.changed, tiesWithinRounding: predictions.ties },
      },
      plots: [{
        id: "keskar",
        title: "Small vs large batch, and the flatter model after T_alpha",
        xLabel: "model",
        yLabel: "top Hessian eigenvalue",
        kind: "bar",
        yLog: true,
        categories: [name(0), name(1), `${name(flatter)} after T_alpha`],
        series: [{ name: "lambda_max", x: [0, 1, 2], y: [m[0].topEigenvalue, m[1].topEigenvalue, after.topEigenvalue] }],
        caption: `Test accuracy: ${fmt(m[0].testAccuracy)}, ${fmt(m[1].testAccuracy)}, ${fmt(after.testAccuracy)} (the last is the same function as the ${name(flatter)} model).`,
      }],
    };
  },
};
