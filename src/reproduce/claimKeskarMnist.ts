/**
 * Claim 17 of `flatness reproduce`: Keskar et al. (2017)'s large-batch experiment on real digits,
 * and Dinh et al.'s answer to it, on a small CNN (the shape of Keskar's C1, scaled to this machine)
 * and an MLP (the shape of their F1, scaled).
 *
 * Keskar et al. train each net with Adam from the same start at small batch (256 of 60,000 images,
 * scaled here to the size of the training set so the ratio stays theirs) and large batch (10% of
 * the training set), and measure the sharpness of each minimum by their Metric 2.1: the
 * largest rise of the training loss over the box |delta_i| <= eps (|theta_i| + 1), as
 * 100 (max L - L) / (1 + L), for eps = 1e-3 and 5e-4, maximised by a bounded ascent (they ran 10
 * L-BFGS-B iterations; here projected Auto-PGD, src/metrics/sharpness.ts). Their observation,
 * large batches find sharper minima that generalise worse, is reported as measured, either way.
 *
 * Dinh et al.'s point, the claim checked: T_alpha (Definition 5, Appendix B for biases) maps the
 * flatter minimum to one that is sharper than the other, by Keskar's metric at both radii, while
 * every test output stays the same function (to f32 rounding), so the test accuracy is unchanged.
 * Shrinking the first layer by 1/c and growing the last by c keeps the function (ReLU and max
 * pooling are positively homogeneous) and makes the box, whose "+1" does not shrink with the
 * weights, relatively wide around the shrunk layer.
 */
import type { Dataset } from "../data.ts";
import { splitDataset } from "../datasets.ts";
import { loadImageDataset } from "../io/imageDatasets.ts";
import { parseArchitecture } from "../architecture.ts";
import { epsilonSharpness } from "../metrics/sharpness.ts";
import { type ModelSpec, parameterLayout } from "../model.ts";
import { accuracy } from "../train/evaluate.ts";
import { trainModel } from "../train/trainModel.ts";
import { alphaScale } from "../transforms/alphaScale.ts";
import { BIAS_CONTROL, cached, type Claim, type ReproduceContext, fmt, isControl, isF32, relativeDifference, singleAlphaBiasScale, withObjective, outputTolerance } from "./context.ts";

/** Keskar et al.'s radii of Metric 2.1. */
const EPSILONS = [1e-3, 5e-4];

interface Net {
  name: string;
  spec: ModelSpec;
}

interface Minimum {
  batchSize: number;
  theta: Float64Array;
  trainLoss: number;
}

interface Measured {
  /** Keskar sharpness per radius of EPSILONS. */
  sharpness: number[];
  testAccuracy: number;
  testOutputs: Float64Array;
}

/** Keskar's sharpness of theta at each radius, on the probe digits. */
function sharpnessAt(ctx: ReproduceContext, spec: ModelSpec, probe: Dataset, theta: Float64Array, steps: number, radii: number[]): Promise<number[]> {
  return withObjective(ctx, spec, probe, "ce", [theta], async (f, [t]) => {
    const values: number[] = [];
    for (const epsilon of radii) {
      values.push((await epsilonSharpness(f, t, { kind: "keskar", epsilon, steps, restarts: 1, seed: ctx.seed })).value);
    }
    return values;
  });
}

async function measure(ctx: ReproduceContext, spec: ModelSpec, probe: Dataset, test: Dataset, theta: Float64Array, steps: number): Promise<Measured> {
  const sharpness = await sharpnessAt(ctx, spec, probe, theta, steps, EPSILONS);
  const testOutputs = await withObjective(ctx, spec, test, "ce", [theta], (f, [t]) => f.outputs(t));
  return { sharpness, testAccuracy: accuracy("ce", testOutputs, test.labels!, 10), testOutputs };
}

/** T_alpha with alphas (1/c, 1, ..., 1, c): the first layer shrunk, the last grown. */
function shrinkFirstLayer(ctx: ReproduceContext, spec: ModelSpec, theta: Float64Array, c: number): Float64Array {
  const alphas = spec.layers.map(() => 1);
  alphas[0] = 1 / c;
  alphas[alphas.length - 1] = c;
  return isControl(ctx, BIAS_CONTROL.id) ? singleAlphaBiasScale(spec, theta, alphas) : alphaScale(spec, theta, alphas);
}

export const keskarMnistExperiment: Claim = {
  id: 17,
  claim: "Keskar et al.'s small- vs large-batch experiment on real MNIST digits (a C1-shaped CNN and an F1-shaped MLP): their sharpness metric and test accuracies as measured; then T_alpha makes each flatter minimum the sharper one with its test accuracy unchanged",
  controls: [BIAS_CONTROL],
  async run(ctx) {
    const digits = await loadImageDataset("mnist", { samples: ctx.quick ? 1500 : 5000, seed: ctx.seed + 171 });
    const split = splitDataset(digits.data, 0.2, ctx.seed + 172);
    const train = split.train;
    // The loss landscape is measured on a fixed subset of the training set (the ascent's cost).
    const probeCount = Math.min(train.n, ctx.quick ? 200 : 256);
    const probe = splitDataset(train, 1 - probeCount / train.n, ctx.seed + 173).train;
    const nets: Net[] = [
      { name: "CNN (C1 shape)", spec: parseArchitecture("conv(4,5),relu,maxpool(2),conv(8,5),relu,maxpool(2),flatten,linear(10)", [1, 28, 28]) },
      { name: "MLP (F1 shape)", spec: parseArchitecture("flatten,linear(128),relu,linear(128),relu,linear(10)", [1, 28, 28]) },
    ];
    // Keskar et al.: 256 of 60,000 training images (0.43%) against 10% of them. The small batch is
    // scaled with the training set so that the ratio of the two stays theirs (about 23).
    const small = Math.max(8, Math.round((256 * train.n) / 60000));
    const large = Math.round(0.1 * train.n);
    const epochs = ctx.quick ? 2 : 3;
    const steps = ctx.quick ? 5 : 8;
    const rows: Record<string, unknown>[] = [];
    const flips: boolean[] = [];
    const moved: number[] = [];
    const sentences: string[] = [];
    const bars: { category: string; value: number }[] = [];
    for (const net of nets) {
      // The trained minima and their measurements are deterministic: cached per backend, seed and
      // setting, so the negative control redoes only the transformation it breaks.
      const { minima, m } = await cached(ctx, `keskar-mnist ${net.name}`, async () => {
        const minima: Minimum[] = [];
        for (const batchSize of [small, large]) {
          ctx.progress(`${net.name}: Adam, batch ${batchSize}, ${epochs} epochs on ${train.n} digits`);
          const t = await trainModel({ spec: net.spec, data: train, loss: "ce", optimizer: "adam", lr: 3e-3, batchSize, epochs, seed: ctx.seed + 174, backend: ctx.backend });
          minima.push({ batchSize, theta: t.theta, trainLoss: t.finalTrainLoss });
        }
        ctx.progress(`${net.name}: Keskar sharpness at eps ${EPSILONS.join(", ")}`);
        const m: Measured[] = [];
        for (const min of minima) m.push(await measure(ctx, net.spec, probe, split.test, min.theta, steps));
        return { minima, m };
      });
      // The flatter minimum by Keskar's metric at the larger radius.
      const flatter = m[0].sharpness[0] <= m[1].sharpness[0] ? 0 : 1;
      const sharper = 1 - flatter;
      let after: Measured | null = null;
      let c = 1;
      // The smallest c = 4^j (j <= 6) that makes the flatter minimum the sharper one at both radii.
      for (c = 4; c <= 4 ** 6; c *= 4) {
        const candidate = shrinkFirstLayer(ctx, net.spec, minima[flatter].theta, c);
        // The larger radius first (one ascent); both radii and the test outputs only once it has flipped.
        if (!ctx.control && c < 4 ** 6) {
          const [first] = await sharpnessAt(ctx, net.spec, probe, candidate, steps, [EPSILONS[0]]);
          if (!(first > m[sharper].sharpness[0])) continue;
        }
        after = await measure(ctx, net.spec, probe, split.test, candidate, steps);
        // The control stops at the first c: its outputs, not its flip, are what it breaks.
        if (after.sharpness.every((s, i) => s > m[sharper].sharpness[i]) || ctx.control) break;
      }
      c = Math.min(c, ctx.control ? 4 : 4 ** 6);
      const a = after!;
      const flipped = a.sharpness.every((s, i) => s > m[sharper].sharpness[i]);
      const outputsMoved = relativeDifference(a.testOutputs, m[flatter].testOutputs);
      // Same predictions within rounding: the outputs are compared below (<= tolerance, relative).
      flips.push(flipped);
      moved.push(outputsMoved);
      const label = (i: number) => (i === 0 ? `batch ${small}` : `batch ${large}`);
      sentences.push(
        `${net.name}: ${label(0)} sharpness ${m[0].sharpness.map((s) => fmt(s)).join("/")}, test accuracy ${fmt(m[0].testAccuracy)}; ` +
          `${label(1)} ${m[1].sharpness.map((s) => fmt(s)).join("/")}, ${fmt(m[1].testAccuracy)}; ` +
          `T_alpha (c = ${c}) of the ${label(flatter)} minimum: ${a.sharpness.map((s) => fmt(s)).join("/")}, test accuracy ${fmt(a.testAccuracy)}`,
      );
      rows.push({
        net: net.name,
        parameters: parameterLayout(net.spec).dim,
        runs: minima.map((min, i) => ({ batchSize: min.batchSize, trainLoss: min.trainLoss, keskarSharpness: m[i].sharpness, testAccuracy: m[i].testAccuracy })),
        largeBatchSharper: m[1].sharpness[0] > m[0].sharpness[0],
        largeBatchGeneralizesWorse: m[1].testAccuracy < m[0].testAccuracy,
        afterTransform: { of: label(flatter), alphas: `first layer 1/${c}, last layer ${c}`, keskarSharpness: a.sharpness, testAccuracy: a.testAccuracy, testOutputsMoved: outputsMoved },
      });
      for (const [i, mm] of [...m, a].entries()) bars.push({ category: `${net.name.split(" ")[0]} ${i < 2 ? label(i) : `${label(flatter)} after T_alpha`}`, value: mm.sharpness[0] });
    }
    const tolerance = outputTolerance(ctx);
    return {
      measured: sentences.join("; "),
      expected: `for each net, after T_alpha the flatter minimum is sharper than the other at both radii, with the same test predictions (test outputs equal within ${isF32(ctx) ? "f32" : "float64"} rounding, <= ${tolerance} relative)`,
      pass: flips.every(Boolean) && moved.every((d) => d <= tolerance),
      details: {
        data: `${digits.description}; ${train.n} train / ${split.test.n} test; sharpness on ${probe.n} training digits`,
        optimizer: "Adam, lr 3e-3, same start per net",
        batchSizes: { small, large, rule: "Keskar et al.: 256 of 60,000 (scaled to this training set) and 10% of the training set" },
        epochs,
        epsilons: EPSILONS,
        ascent: `projected Auto-PGD, ${steps} steps, box |delta_i| <= eps (|theta_i| + 1)`,
        nets: rows,
      },
      plots: [{
        id: "keskar-mnist",
        title: "Keskar sharpness (eps = 1e-3) on MNIST, and the flatter minimum after T_alpha",
        xLabel: "minimum",
        yLabel: "Keskar sharpness",
        kind: "bar",
        yLog: true,
        categories: bars.map((b) => b.category),
        series: [{ name: "sharpness", x: bars.map((_, i) => i), y: bars.map((b) => Math.max(b.value, 1e-12)) }],
        caption: "The bars after T_alpha are the same functions as the flatter minima they come from: same test accuracy.",
      }],
    };
  },
};
