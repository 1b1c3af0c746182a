/**
 * Dinh et al. 2017's transforms and the metric suite on convolutional nets, in float64 on the
 * reference engine (tiny CNNs, <= ~100 parameters: conv, max and average pooling, groups, stride,
 * padding, conv -> conv, conv -> linear, a conv output layer):
 *  - T_alpha (weights of layer k by alpha_k, biases by prod_{j<=k} alpha_j): outputs unchanged,
 *    grad L(T theta) = D^-1 grad L(theta), H(T theta) v = D^-1 H(theta) D^-1 v (HVPs);
 *  - neuron-wise rescaling of conv output channels through max / average pooling, into a next
 *    convolution (grouped) or a linear layer after flatten;
 *  - weight normalization per output channel, filter-normalized directions, the T_alpha orbit;
 *  - the constructions (sharpen, sharpenCount, flatten, the epsilon construction);
 *  - every metric of the suite (finite, or a clear refusal), the norm-based ones cross-checked on a
 *    1x1 convolution against the MLP it equals, and their invariances;
 *  - input reparametrizations: the input Jacobian against finite differences, refusals naming the feature.
 * Each identity has a negative control (a wrong variant that must change the outputs).
 */
import { describe, expect, it } from "vitest";
import { parseArchitecture } from "../src/architecture.ts";
import { audit } from "../src/audit/audit.ts";
import type { Backend } from "../src/backend/types.ts";
import { cpuBackend } from "../src/backend/mod.ts";
import {
  isConv,
  mlpSpec,
  outputWidth,
  parameterLayout,
  requireMlp,
} from "../src/model.ts";
import { SequentialBatchLoss } from "../src/landscape/batchLoss.ts";
import { alphaOrbit, alphaOrbitPoint, filterNormalize, randomDirection } from "../src/landscape/directions.ts";
import { computeLandscape } from "../src/landscape/landscape.ts";
import { fisherRaoNorm, pathNorm } from "../src/metrics/normBased.ts";
import { normalizedSharpness } from "../src/metrics/normalizedSharpness.ts";
import { relativeFlatness } from "../src/metrics/relativeFlatness.ts";
import { inputGradientNorms } from "../src/metrics/sensitivity.ts";
import { ALL_METRICS, measureMetrics, METRICS } from "../src/metrics/suite.ts";
import { Rng } from "../src/random.ts";
import { ReferenceObjective } from "../src/reference/engine.ts";
import { fitAffineInputMap, foldInputMap, foldOutputMap, transformedOutputs } from "../src/reparam/input.ts";
import { inputJacobians } from "../src/reparam/inputJacobian.ts";
import { WeightNormalization } from "../src/reparam/weightNorm.ts";
import { alphaScale, alphaScaleDiagonal } from "../src/transforms/alphaScale.ts";
import { epsilonSharpnessConstruction, flatten, sharpen, sharpenCount } from "../src/transforms/constructions.ts";
import { neuronScale, neuronScaleDiagonal, randomNeuronFactors } from "../src/transforms/neuronScale.ts";
import { type CnnCase, makeCnnCase } from "./support/cnn.ts";
import { assertClose } from "./support/numeric.ts";


/** Tiny CNNs covering every layer kind; parameter counts in the comments. */
const CASES: { name: string; arch: string; input: number[] }[] = [
  // 10 + 18 = 28
  { name: "conv, max pool, linear", arch: "conv(2,2),relu,maxpool(2),flatten,linear(2)", input: [1, 5, 5] },
  // 20 + 18 = 38
  { name: "stride 2 padding 1, avg pool stride 1, linear", arch: "conv(2,3,stride=2,padding=1),relu,avgpool(2,stride=1),flatten,linear(2)", input: [1, 5, 5] },
  // 20 + 18 + 18 = 56
  { name: "grouped conv -> grouped conv stride 2 -> linear", arch: "conv(4,2,groups=2),relu,conv(2,2,groups=2,stride=2),relu,flatten,linear(2)", input: [2, 5, 5] },
  // 20 + 18 + 9 = 47
  { name: "conv padding 1, max pool, grouped conv, linear(3)", arch: "conv(4,2,padding=1),relu,maxpool(2),conv(2,2,groups=2),relu,flatten,linear(3)", input: [1, 4, 4] },
  // 10 + 9 = 19
  { name: "conv output layer after max pool", arch: "conv(2,2),relu,maxpool(2),conv(1,2)", input: [1, 6, 6] },
  // 10 + 18 = 28
  { name: "leaky ReLU, avg pool padding, bias-free linear", arch: "conv(2,2),leaky_relu(0.1),avgpool(3,stride=2,padding=1,count_include_pad=false),flatten,linear(2,bias=false)", input: [1, 5, 5] },
];


function maxAbs(v: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < v.length; i++) m = Math.max(m, Math.abs(v[i]));
  return m;
}

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

async function outputsAt(c: CnnCase, theta: Float64Array): Promise<Float64Array> {
  return await c.reference.outputs(theta);
}

async function gradientAt(c: CnnCase, theta: Float64Array): Promise<Float64Array> {
  const g = new Float64Array(theta.length);
  await c.reference.gradient(theta, g);
  return g;
}

async function hvpAt(c: CnnCase, theta: Float64Array, v: Float64Array): Promise<Float64Array> {
  const out = new Float64Array(theta.length);
  await c.reference.hvp(theta, v, out);
  return out;
}

/** The alphas 2, 1/2, ... with product 1 for K layers. */
function someAlphas(K: number): number[] {
  const head = Array.from({ length: K - 1 }, (_, k) => [2.5, 0.3, 1.7][k % 3]);
  return [...head, 1 / head.reduce((s, a) => s * a, 1)];
}

/** Checks the three identities of a function-preserving diagonal map theta' = d ⊙ theta. */
async function checkDiagonalSymmetry(c: CnnCase, d: Float64Array, seed: number): Promise<void> {
  const t2 = c.theta.map((t, i) => t * d[i]);
  const f = await outputsAt(c, c.theta);
  const f2 = await outputsAt(c, t2);
  expect(maxDiff(f, f2)).toBeLessThan(1e-11 * Math.max(1, maxAbs(f)));
  // grad L(D theta) = D^-1 grad L(theta)
  const g = await gradientAt(c, c.theta);
  const g2 = await gradientAt(c, t2);
  assertClose("gradient", g2, g.map((x, i) => x / d[i]), 1e-9, 1e-12 * maxAbs(g2));
  // H(D theta) v = D^-1 H(theta) D^-1 v
  const v = new Rng(seed).normals(c.theta.length);
  const hv2 = await hvpAt(c, t2, v);
  const hv = await hvpAt(c, c.theta, v.map((x, i) => x / d[i]));
  assertClose("HVP", hv2, hv.map((x, i) => x / d[i]), 1e-8, 1e-11 * maxAbs(hv2));
}

describe("T_alpha on CNNs (Dinh et al. 2017 Definition 5, biases as Appendix B)", () => {
  for (const [idx, cs] of CASES.entries()) {
    it(`${cs.name}: outputs, gradient = D^-1 g, H(T theta) = D^-1 H D^-1`, async () => {
      const c = makeCnnCase(cs.arch, cs.input, "mse", 11 + idx);
      const K = c.spec.layers.length;
      const alphas = someAlphas(K);
      const d = alphaScaleDiagonal(c.spec, alphas);
      // The diagonal: a whole kernel by alpha_k, a bias by the running product.
      const layout = parameterLayout(c.spec);
      let running = 1;
      for (let k = 0; k < K; k++) {
        running *= alphas[k];
        for (const v of layout.views.filter((view) => view.layer === k)) {
          const want = v.role === "weight" ? alphas[k] : running;
          for (let i = v.offset; i < v.offset + v.size; i++) expect(d[i]).toBeCloseTo(want, 14);
        }
      }
      expect(Array.from(alphaScale(c.spec, c.theta, alphas))).toEqual(Array.from(c.theta, (t, i) => t * d[i]));
      await checkDiagonalSymmetry(c, d, 5 + idx);

      // Negative control: biases scaled by alpha_k alone (not the running product) change the function.
      const wrong = Float64Array.from(d);
      for (const v of layout.views) if (v.role === "bias") wrong.fill(alphas[v.layer], v.offset, v.offset + v.size);
      const hasLaterBias = layout.views.some((v) => v.role === "bias" && v.layer > 0);
      if (hasLaterBias) {
        const f = await outputsAt(c, c.theta);
        const f2 = await outputsAt(c, c.theta.map((t, i) => t * wrong[i]));
        expect(maxDiff(f, f2)).toBeGreaterThan(1e-3 * maxAbs(f));
      }
    });
  }
});

describe("neuron-wise rescaling of conv output channels", () => {
  for (const [idx, cs] of CASES.entries()) {
    it(`${cs.name}: every hidden layer's channels rescaled keep the function`, async () => {
      const c = makeCnnCase(cs.arch, cs.input, "mse", 31 + idx);
      const K = c.spec.layers.length;
      for (let k = 0; k + 1 < K; k++) {
        const l = c.spec.layers[k];
        const units = isConv(l) ? l.outChannels : l.outFeatures;
        const factors = randomNeuronFactors(units, 7 + k, 8);
        const d = neuronScaleDiagonal(c.spec, k, factors);
        await checkDiagonalSymmetry(c, d, 17 + k);
        expect(Array.from(neuronScale(c.spec, c.theta, k, factors))).toEqual(Array.from(c.theta, (t, i) => t * d[i]));

        // Negative control 1: the channel scaled without compensating the next layer.
        const layout = parameterLayout(c.spec);
        const next = layout.views.find((v) => v.layer === k + 1 && v.role === "weight")!;
        const uncompensated = Float64Array.from(d);
        uncompensated.fill(1, next.offset, next.offset + next.size);
        const f = await outputsAt(c, c.theta);
        expect(maxDiff(f, await outputsAt(c, c.theta.map((t, i) => t * uncompensated[i])))).toBeGreaterThan(1e-3 * maxAbs(f));
      }
    });
  }

  it("conv -> grouped conv: only the output channels of the channel's group are compensated", async () => {
    const cs = CASES[2]; // conv(4) -> conv(2, groups=2): channels 0,1 feed output 0; 2,3 feed output 1
    const c = makeCnnCase(cs.arch, cs.input, "mse", 77);
    const factors = [3, 1, 1, 1];
    const d = neuronScaleDiagonal(c.spec, 0, factors);
    const w2 = parameterLayout(c.spec).layers[1].weightOffset;
    // W2 [2, 2, 2, 2]: channel 0 is (o = 0, c' = 0); (o = 1, c' = 0) is channel 2 and stays.
    for (let t = 0; t < 4; t++) {
      expect(d[w2 + (0 * 2 + 0) * 4 + t]).toBeCloseTo(1 / 3, 15);
      expect(d[w2 + (1 * 2 + 0) * 4 + t]).toBe(1);
    }
    // Negative control: compensating c' = 0 in every group (ignoring the groups) changes the function.
    const wrong = Float64Array.from(d);
    for (let t = 0; t < 4; t++) wrong[w2 + (1 * 2 + 0) * 4 + t] = 1 / 3;
    const f = await outputsAt(c, c.theta);
    expect(maxDiff(f, await outputsAt(c, c.theta.map((x, i) => x * wrong[i])))).toBeGreaterThan(1e-3 * maxAbs(f));
  });

  it("conv -> pooled map -> linear: the columns of the POOLED channel map are compensated", async () => {
    const cs = CASES[0]; // conv(2) on 5x5 -> 2x4x4 -> maxpool 2 -> 2x2x2 -> linear(2)
    const c = makeCnnCase(cs.arch, cs.input, "mse", 78);
    const d = neuronScaleDiagonal(c.spec, 0, [1, 4]);
    const w2 = parameterLayout(c.spec).layers[1].weightOffset;
    for (let o = 0; o < 2; o++) {
      for (let col = 0; col < 8; col++) expect(d[w2 + o * 8 + col]).toBe(col >= 4 ? 0.25 : 1);
    }
    // Negative control: a block of the unpooled size (4x4 = 16 > 8 columns would overflow; use 2 columns per channel).
    const wrong = Float64Array.from(d);
    for (let o = 0; o < 2; o++) for (let col = 0; col < 8; col++) wrong[w2 + o * 8 + col] = col === 1 || col === 2 ? 0.25 : 1;
    const f = await outputsAt(c, c.theta);
    expect(maxDiff(f, await outputsAt(c, c.theta.map((x, i) => x * wrong[i])))).toBeGreaterThan(1e-3 * maxAbs(f));
  });

  it("refuses the output layer and a wrong factor count", () => {
    const c = makeCnnCase(CASES[4].arch, CASES[4].input, "mse", 79);
    expect(() => neuronScaleDiagonal(c.spec, 1, [2])).toThrow(/output layer/);
    expect(() => neuronScaleDiagonal(c.spec, 0, [2])).toThrow(/needs 2 factors/);
  });
});

describe("weight normalization per output channel (torch weight_norm, dim=0)", () => {
  it("round trip, s = filter norms, T'_alpha keeps theta, J and J^T adjoint", () => {
    const c = makeCnnCase(CASES[3].arch, CASES[3].input, "mse", 41);
    const wn = new WeightNormalization(c.spec);
    const layout = parameterLayout(c.spec);
    const units = c.spec.layers.reduce((s, l) => s + (isConv(l) ? l.outChannels : l.outFeatures), 0);
    expect(wn.dimEta).toBe(layout.dim + units);
    const eta = wn.inverse(c.theta);
    assertClose("phi(inverse(theta))", wn.phi(eta), c.theta, 1e-14, 1e-15);
    // Layer 0: W [4, 1, 2, 2]; s_o = ||W[o, :, :, :]|| over the 4 entries of the filter.
    const L0 = wn.layers[0];
    expect(L0.rows).toBe(4);
    expect(L0.columns).toBe(4);
    for (let o = 0; o < 4; o++) {
      let sq = 0;
      for (let e = 0; e < 4; e++) sq += c.theta[layout.layers[0].weightOffset + o * 4 + e] ** 2;
      expect(eta[L0.scaleOffset + o]).toBeCloseTo(Math.sqrt(sq), 13);
    }
    // Grouped conv layer 1: W [2, 2, 2, 2], 8 entries per filter.
    expect(wn.layers[1].columns).toBe(8);
    assertClose("T'_alpha", wn.phi(wn.scaleDirections(eta, 7)), c.theta, 1e-13, 1e-15);
    // Negative control: scaling the directions of only one kernel row (not the whole filter) moves theta.
    const partial = Float64Array.from(eta);
    partial[L0.directionOffset] *= 7;
    partial[L0.directionOffset + 1] *= 7;
    expect(maxDiff(wn.phi(partial), c.theta)).toBeGreaterThan(1e-3);
    // Jacobian: jvp against central differences, vjp its adjoint.
    const rng = new Rng(3);
    const v = rng.normals(wn.dimEta);
    const u = rng.normals(wn.dimTheta);
    const h = 1e-6;
    const fd = wn.phi(eta.map((x, i) => x + h * v[i])).map((x, i) => (x - wn.phi(eta.map((y, j) => y - h * v[j]))[i]) / (2 * h));
    assertClose("jvp", wn.jvp(eta, v), fd, 1e-6, 1e-8);
    const jv = wn.jvp(eta, v);
    const jtu = wn.vjp(eta, u);
    const lhs = jv.reduce((s, x, i) => s + x * u[i], 0);
    const rhs = jtu.reduce((s, x, i) => s + x * v[i], 0);
    expect(Math.abs(lhs - rhs)).toBeLessThan(1e-12 * Math.max(1, Math.abs(lhs)));
  });
});

describe("landscape directions on CNNs", () => {
  it("filter normalization: every conv filter and linear row gets theta's norm (Li et al. 2018)", () => {
    const c = makeCnnCase(CASES[3].arch, CASES[3].input, "mse", 51);
    const layout = parameterLayout(c.spec);
    const d = filterNormalize(c.spec, c.theta, randomDirection(c.spec, 9, "include"), "ignore");
    const norm = (v: ArrayLike<number>, from: number, len: number) => Math.sqrt(Array.from({ length: len }, (_, i) => v[from + i] ** 2).reduce((a, b) => a + b, 0));
    for (const v of layout.views) {
      if (v.role === "bias") {
        for (let i = v.offset; i < v.offset + v.size; i++) expect(d[i]).toBe(0);
        continue;
      }
      const per = v.size / v.shape[0]; // in/groups·kh·kw for a conv, in for a linear layer
      for (let o = 0; o < v.shape[0]; o++) expect(norm(d, v.offset + o * per, per)).toBeCloseTo(norm(c.theta, v.offset + o * per, per), 12);
      if (v.shape.length === 4 && v.shape[1] > 1) {
        // Negative control: the per-(filter, input channel) slices are not normalized one by one.
        const slice = v.shape[2] * v.shape[3];
        const ratios = Array.from({ length: v.shape[1] }, (_, cIn) => norm(d, v.offset + cIn * slice, slice) / norm(c.theta, v.offset + cIn * slice, slice));
        expect(Math.max(...ratios) - Math.min(...ratios)).toBeGreaterThan(1e-3);
      }
    }
  });

  it("the T_alpha orbit of a CNN keeps the loss, and its tangent has zero slope", async () => {
    const c = makeCnnCase(CASES[2].arch, CASES[2].input, "mse", 52);
    const orbit = alphaOrbit(c.spec, c.theta, 0, 2);
    const t2 = alphaOrbitPoint(orbit, c.theta, 0.7);
    assertClose("orbit = T_alpha", t2, alphaScale(c.spec, c.theta, [Math.exp(0.7), 1, Math.exp(-0.7)]), 1e-14, 1e-15);
    const l0 = await c.reference.loss(c.theta);
    expect(Math.abs((await c.reference.loss(t2)) - l0)).toBeLessThan(1e-12 * Math.max(1, l0));
    const g = await gradientAt(c, c.theta);
    const slope = g.reduce((s, x, i) => s + x * orbit.tangent[i], 0);
    expect(Math.abs(slope)).toBeLessThan(1e-12 * Math.max(1, maxAbs(g)));
  });
});

describe("loss landscapes of a CNN (cpu evaluator)", () => {
  it("filter-normalized 2-D slice and the T_alpha orbit slice", async () => {
    const c = makeCnnCase(CASES[1].arch, CASES[1].input, "ce", 53, 6);
    const axis = { from: -1, to: 1, steps: 3 };
    const filter = await computeLandscape(new SequentialBatchLoss(c.reference), c.spec, c.theta, { directions: "filter", dims: 2, axes: [axis, axis] });
    expect(filter.values.every(Number.isFinite)).toBe(true);
    expect(filter.center).toBeCloseTo(await c.reference.loss(c.theta), 12);
    const orbit = await computeLandscape(new SequentialBatchLoss(c.reference), c.spec, c.theta, { directions: "alpha", dims: 1, axes: [{ from: -1, to: 1, steps: 5 }] });
    expect(orbit.orbit!.orbitMaxDeviation!).toBeLessThan(1e-12);
    // Negative control: the straight line along the orbit's tangent does leave the level set.
    expect(orbit.orbit!.lineMaxDeviation).toBeGreaterThan(1e-6);
  });
});

describe("the constructions on a CNN (T_alpha only)", () => {
  const c = makeCnnCase(CASES[0].arch, CASES[0].input, "mse", 61);

  it("sharpen reaches the target with the same function", async () => {
    const r = await sharpen(c.reference, c.theta, { minTopEigenvalue: 1e4 });
    expect(r.topEigenvalue).toBeGreaterThanOrEqual(1e4);
    expect(r.functionCheck.relativeDifference).toBeLessThan(1e-10);
  });

  it("sharpenCount lifts the guaranteed count above the threshold", async () => {
    const r = await sharpenCount(c.reference, c.theta, { threshold: 1e3 });
    expect(r.countAbove).toBeGreaterThanOrEqual(r.guaranteedCount);
    // |S|: the kernel of k* plus biases from k* on, counted from the conv layout.
    const sizes = parameterLayout(c.spec).views;
    const w = (k: number) => sizes.find((v) => v.layer === k && v.role === "weight")!.size;
    expect([w(0) + 2 + 2, w(1) + 2]).toContain(r.unamplified);
    expect(r.functionCheck.relativeDifference).toBeLessThan(1e-10);
  });

  it("flatten (top eigenvalue and volume)", async () => {
    const r = await flatten(c.reference, c.theta, { refineIterations: 4 });
    expect(r.topEigenvalue).toBeLessThanOrEqual(r.originalTopEigenvalue);
    expect(r.functionCheck.relativeDifference).toBeLessThan(1e-10);
    const v = await flatten(c.reference, c.theta, { measure: "volume", logVolumeGain: 3 });
    expect(v.logVolumeGain).toBeCloseTo(3, 9);
  });

  it("the epsilon construction zeroes a whole kernel inside the ball", async () => {
    const r = await epsilonSharpnessConstruction(c.reference, c.theta, { epsilon: 1e-2, subspaceDim: 26 });
    expect(r.perturbationNorm).toBeLessThanOrEqual(1e-2);
    expect(r.reachedLoss).toBeCloseTo(r.constantLoss, 10);
    expect(r.functionCheck.relativeDifference).toBeLessThan(1e-10);
    expect(r.subspace!.perturbationNorm).toBeLessThanOrEqual(1e-2);
  });
});

describe("the metric suite on a CNN (cpu backend)", () => {
  it("every metric returns finite values or a clear refusal", async () => {
    const c = makeCnnCase(CASES[1].arch, CASES[1].input, "ce", 71, 6);
    const finiteOrRefused: string[] = [];
    for (const metric of ALL_METRICS) {
      let report: Record<string, unknown>;
      try {
        report = await measureMetrics(c.reference, c.theta, c.theta, c.data, {
          metrics: [metric],
          seed: 1,
          topK: 2,
          traceSamples: 12,
          probeSamples: 8,
          densityRuns: 2,
          densitySteps: 10,
          volumeRays: 8,
          subspaceDim: 10,
          m: 3,
          backend: cpuBackend(),
        });
      } catch (e) {
        // A refusal must say what was refused (none is expected today).
        expect(String(e)).toMatch(/supports fully connected|not supported/);
        finiteOrRefused.push(`${metric}: refused`);
        continue;
      }
      const value = report[METRICS[metric].key];
      expect(value, metric).toBeDefined();
      // Every number in the result is finite (toPlain writes non-finite ones as strings).
      const numbers: number[] = [];
      const strings: string[] = [];
      const walk = (x: unknown, key: string) => {
        if (typeof x === "number") numbers.push(x);
        else if (typeof x === "string" && /^(NaN|-?Infinity)$/.test(x) && !/scale|rowScale|columnScale/i.test(key)) strings.push(`${key}=${x}`);
        else if (Array.isArray(x)) x.forEach((y) => walk(y, key));
        else if (x && typeof x === "object") for (const [k, y] of Object.entries(x)) walk(y, k);
      };
      walk(value, metric);
      expect(numbers.length, metric).toBeGreaterThan(0);
      expect(strings, metric).toEqual([]);
      finiteOrRefused.push(`${metric}: ok`);
    }
    expect(finiteOrRefused.filter((s) => s.endsWith("ok")).length).toBe(ALL_METRICS.length);
  });

  it("a 1x1 convolution on a 1x1 image gives the MLP's norm-based metrics", async () => {
    const conv = makeCnnCase("conv(3,1),relu,flatten,linear(2)", [2, 1, 1], "ce", 72, 6);
    const mlp = mlpSpec([2, 3, 2]);
    expect(parameterLayout(mlp).dim).toBe(conv.theta.length);
    const ref = new ReferenceObjective(mlp, conv.data, "ce");
    const t = conv.theta;
    expect((await pathNorm(conv.spec, t)).value).toBeCloseTo((await pathNorm(mlp, t)).value, 13);
    expect((await fisherRaoNorm(conv.reference, t, conv.data)).squared).toBeCloseTo((await fisherRaoNorm(ref, t, conv.data)).squared, 12);
    expect((await normalizedSharpness(conv.reference, t)).total).toBeCloseTo((await normalizedSharpness(ref, t)).total, 10);
    expect((await relativeFlatness(conv.reference, t)).total).toBeCloseTo((await relativeFlatness(ref, t)).total, 12);
    expect((await inputGradientNorms(conv.spec, t, conv.data)).mean).toBeCloseTo((await inputGradientNorms(mlp, t, conv.data)).mean, 13);
  });

  it("path norm: a sum over the paths of the unrolled conv (no pooling), by brute force", async () => {
    // conv(1, 2) on 1x3x3 -> 1x2x2, flatten, linear(1): paths input cell -> conv output -> output.
    const spec = parseArchitecture("conv(1,2),relu,flatten,linear(1)", [1, 3, 3]);
    const theta = new Rng(4).normals(parameterLayout(spec).dim);
    // theta: W1 [1,1,2,2] (0..3), b1 (4), W2 [1, 4] (5..8), b2 (9)
    let sum = 0;
    for (let y = 0; y < 2; y++) {
      for (let x = 0; x < 2; x++) {
        const out = theta[5 + y * 2 + x] ** 2;
        for (let t = 0; t < 4; t++) sum += theta[t] ** 2 * out; // every tap reads an input cell (no padding)
        sum += theta[4] ** 2 * out; // the bias path through this position
      }
    }
    sum += theta[9] ** 2;
    const r = await pathNorm(spec, theta);
    expect(r.sumOverPaths).toBeCloseTo(sum, 12);
  });

  it("norm-based metrics are invariant under T_alpha and channel rescaling on a CNN; input gradients too", async () => {
    const c = makeCnnCase(CASES[3].arch, CASES[3].input, "ce", 73, 5);
    const K = c.spec.layers.length;
    const alphaTheta = alphaScale(c.spec, c.theta, someAlphas(K));
    const chanTheta = neuronScale(c.spec, c.theta, 0, randomNeuronFactors(4, 3, 5));
    const rel = (a: number, b: number) => Math.abs(a - b) / Math.max(Math.abs(b), 1e-300);
    for (const t2 of [alphaTheta, chanTheta]) {
      expect(rel((await pathNorm(c.spec, t2)).value, (await pathNorm(c.spec, c.theta)).value)).toBeLessThan(1e-12);
      expect(rel((await fisherRaoNorm(c.reference, t2, c.data)).squared, (await fisherRaoNorm(c.reference, c.theta, c.data)).squared)).toBeLessThan(1e-9);
      expect(rel((await normalizedSharpness(c.reference, t2)).total, (await normalizedSharpness(c.reference, c.theta)).total)).toBeLessThan(1e-6);
      // Relative flatness: kappa of the measured layer 0 (its own channels rescaled, or T_alpha).
      expect(rel((await relativeFlatness(c.reference, t2, { layers: [0] })).total, (await relativeFlatness(c.reference, c.theta, { layers: [0] })).total)).toBeLessThan(1e-9);
      expect(rel((await inputGradientNorms(c.spec, t2, c.data)).mean, (await inputGradientNorms(c.spec, c.theta, c.data)).mean)).toBeLessThan(1e-11);
    }
    // Negative control: an unbalanced scaling (one kernel times 2, not a symmetry) moves the path norm.
    const wrong = Float64Array.from(c.theta);
    const w0 = parameterLayout(c.spec).views[0];
    for (let i = w0.offset; i < w0.offset + w0.size; i++) wrong[i] *= 2;
    expect(rel((await pathNorm(c.spec, wrong)).value, (await pathNorm(c.spec, c.theta)).value)).toBeGreaterThan(1e-3);
  });
});

describe("the invariance audit on a CNN", () => {
  it("T_alpha, channel rescaling and weight normalization keep the function; input maps are refused by name", async () => {
    const c = makeCnnCase(CASES[3].arch, CASES[3].input, "ce", 91, 8);
    const report = await audit({ spec: c.spec, theta: c.theta, data: c.data, loss: "ce" }, cpuBackend() as Backend, {
      transforms: ["alpha", "neuron", "weight-norm", "radial", "standardize"],
      metrics: ["spectrum", "trace", "fisher-rao", "path-norm", "normalized-sharpness", "input-gradients"],
      seed: 2,
      measure: { topK: 1, traceSamples: 30 },
    });
    const row = (name: string) => report.transforms.find((t) => t.transform === name)!;
    for (const name of ["alpha", "neuron", "weight-norm", "radial"]) {
      expect(row(name).skipped, name).toBeUndefined();
      expect(row(name).functionCheck!.relativeOutputDifference, name).toBeLessThan(1e-9);
    }
    for (const name of ["alpha", "neuron"]) {
      const v = Object.fromEntries(row(name).metrics.map((m) => [m.metric, m.verdict]));
      expect(v.spectrum, name).toBe("moved");
      for (const kept of ["fisher-rao", "path-norm", "normalized-sharpness", "input-gradients"]) expect(v[kept], `${name}: ${kept}`).toBe("invariant");
    }
    expect(row("standardize").skipped).toMatch(/fold input map.*supports fully connected \(linear\) layers only, but layer 0 is a conv2d/);
  });
});

describe("input reparametrizations and refusals on CNNs", () => {
  it("input Jacobians through conv, max pooling and a grouped conv match finite differences", () => {
    const c = makeCnnCase(CASES[3].arch, CASES[3].input, "mse", 81, 2);
    const x = Float64Array.from(c.data.x);
    const jac = inputJacobians(c.spec, c.theta, x);
    const d = jac.features;
    const C = jac.outputs;
    const h = 1e-6;
    const fd = new Float64Array(jac.jacobians.length);
    for (let j = 0; j < d; j++) {
      const plus = Float64Array.from(x);
      const minus = Float64Array.from(x);
      for (let s = 0; s < jac.n; s++) {
        plus[s * d + j] += h;
        minus[s * d + j] -= h;
      }
      const fp = transformedOutputs(c.spec, c.theta, { kind: "asinh", features: d, scale: new Float64Array(d).fill(1) }, plus.map(Math.asinh));
      const fm = transformedOutputs(c.spec, c.theta, { kind: "asinh", features: d, scale: new Float64Array(d).fill(1) }, minus.map(Math.asinh));
      for (let s = 0; s < jac.n; s++) for (let r = 0; r < C; r++) fd[(s * C + r) * d + j] = (fp[s * C + r] - fm[s * C + r]) / (2 * h);
    }
    assertClose("input Jacobian", jac.jacobians, fd, 1e-5, 1e-7);
  });

  it("folding an input map into a conv is refused, naming the feature; an output map folds into a final linear layer", async () => {
    const c = makeCnnCase(CASES[0].arch, CASES[0].input, "mse", 82, 6);
    const map = fitAffineInputMap(c.data.x, c.data.features, "standardize");
    expect(() => foldInputMap(c.spec, c.theta, map)).toThrow(/fold input map.*supports fully connected \(linear\) layers only, but layer 0 is a conv2d/);
    const outputs = await outputsAt(c, c.theta);
    const outMap = fitAffineInputMap(outputs, 2, "zca");
    const folded = foldOutputMap(c.spec, c.theta, outMap);
    const got = await new ReferenceObjective(folded.spec, c.data, "mse").outputs(folded.theta);
    const want = new Float64Array(outputs.length);
    for (let s = 0; s < c.data.n; s++) {
      for (let r = 0; r < 2; r++) {
        for (let j = 0; j < 2; j++) want[s * 2 + r] += outMap.matrix[r * 2 + j] * (outputs[s * 2 + j] - outMap.mean[j]);
      }
    }
    assertClose("folded output map", got, want, 1e-10, 1e-12);
    const convOut = makeCnnCase(CASES[4].arch, CASES[4].input, "mse", 83, 6);
    const outMap2 = fitAffineInputMap(await outputsAt(convOut, convOut.theta), outputWidth(convOut.spec), "standardize");
    expect(() => foldOutputMap(convOut.spec, convOut.theta, outMap2)).toThrow(/output layer is a conv2d/);
  });

  it("requireMlp names the feature and the first conv layer", () => {
    const spec = parseArchitecture(CASES[0].arch, CASES[0].input);
    expect(() => requireMlp(spec, "my feature")).toThrow(/^my feature supports fully connected \(linear\) layers only, but layer 0 is a conv2d$/);
    expect(() => requireMlp(mlpSpec([2, 3, 1]), "my feature")).not.toThrow();
  });
});
