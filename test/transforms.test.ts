/**
 * Function-preserving transforms and the constructions of Dinh et al. 2017, on the float64
 * reference: neuron-wise rescaling keeps every output and maps the Hessian to D^-1 H D^-1 (checked
 * through HVPs); sharpen reaches top eigenvalues 1 .. 1e6 (checked against dense spectra);
 * sharpenCount's r - |S| count (Theorem 5) on a tiny deep net's dense Hessian; the eps-construction
 * reaches the constant-function loss inside the ball (and in a random subspace, in the limit);
 * flatten balances to the T_alpha-invariant bound and is the same point for every member of a
 * T_alpha orbit; and clear errors for bad input.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { InputError } from "../src/errors.ts";
import { type Activation, type ModelSpec, mlpSpec, parameterLayout } from "../src/model.ts";
import { Rng } from "../src/random.ts";
import { ReferenceObjective } from "../src/reference/engine.ts";
import { epsilonSharpness } from "../src/metrics/sharpness.ts";
import { symmetricEigen } from "../src/metrics/tridiagonal.ts";
import { alphaScale, homogeneousAlphaScale, homogeneousAlphaScaleDiagonal } from "../src/transforms/alphaScale.ts";
import {
  ConstructionError,
  epsilonSharpnessConstruction,
  flatten,
  logVolumeFactor,
  sharpen,
  sharpenCount,
} from "../src/transforms/constructions.ts";
import { assertHomogeneous, neuronScale, neuronScaleDiagonal, randomNeuronFactors } from "../src/transforms/neuronScale.ts";
import { compareOutputs } from "../src/transforms/constructionSupport.ts";
import { assertClose, makeCase, type TestCase } from "./support/numeric.ts";

/** Descending eigenvalues of the reference Hessian at theta. */
async function spectrumOf(reference: ReferenceObjective, theta: Float64Array): Promise<number[]> {
  const n = theta.length;
  return Array.from(symmetricEigen(await reference.denseHessian(theta), n).values).sort((a, b) => b - a);
}

/**
 * A minimum: mse with the net's own outputs (rounded to f32) as targets, so L(theta) ~ 0, the
 * gradient ~ 0 and the Hessian ~ Gauss-Newton (positive semi-definite): the paper's setting.
 */
async function teacherCase(widths: number[], seed: number, bias = true): Promise<TestCase> {
  const c = makeCase({ widths, batch: 30, loss: "mse", bias, seed });
  const data = { ...c.data, targets: Float32Array.from(await c.reference.outputs(c.theta)) };
  return { ...c, data, reference: new ReferenceObjective(c.spec, data, "mse") };
}

const relMax = (a: Float64Array, b: Float64Array) => {
  let d = 0;
  let s = 0;
  for (let i = 0; i < a.length; i++) {
    d = Math.max(d, Math.abs(a[i] - b[i]));
    s = Math.max(s, Math.abs(a[i]));
  }
  return d / s;
};

const variants: { name: string; bias: boolean; activation: Activation }[] = [
  { name: "relu, biases", bias: true, activation: { kind: "relu" } },
  { name: "relu, bias-free", bias: false, activation: { kind: "relu" } },
  { name: "leaky relu 0.2, biases", bias: true, activation: { kind: "leaky_relu", slope: 0.2 } },
];

describe("neuron-wise rescaling", () => {
  for (const v of variants) {
    it(`keeps every output and maps H to D^-1 H D^-1 through HVPs (${v.name}, every hidden layer)`, async () => {
      const c = makeCase({ widths: [4, 6, 5, 3], batch: 25, loss: "ce", bias: v.bias, activation: v.activation, seed: 4 });
      const f0 = await c.reference.outputs(c.theta);
      const n = c.theta.length;
      const rng = new Rng(17);
      for (const k of [0, 1]) {
        const factors = randomNeuronFactors(c.spec.layers[k].outFeatures, 5 + k, 20);
        const d = neuronScaleDiagonal(c.spec, k, factors);
        const theta2 = neuronScale(c.spec, c.theta, k, factors);
        expect(relMax(f0, await c.reference.outputs(theta2))).toBeLessThan(1e-13);
        expect(await c.reference.loss(theta2)).toBeCloseTo(await c.reference.loss(c.theta), 12);
        // H(D theta) v = D^-1 H(theta) D^-1 v for random v; grad L(D theta) = D^-1 grad L(theta).
        for (let trial = 0; trial < 2; trial++) {
          const vec = rng.normals(n);
          const got = new Float64Array(n);
          await c.reference.hvp(theta2, vec, got);
          const inner = new Float64Array(n);
          await c.reference.hvp(c.theta, vec.map((x, i) => x / d[i]), inner);
          assertClose(`H(D theta) v, layer ${k}`, got, inner.map((x, i) => x / d[i]), 1e-10, 1e-12);
        }
        const g2 = new Float64Array(n);
        const g = new Float64Array(n);
        await c.reference.gradient(theta2, g2);
        await c.reference.gradient(c.theta, g);
        assertClose(`grad L(D theta), layer ${k}`, g2, g.map((x, i) => x / d[i]), 1e-10, 1e-13);
      }
    });
  }

  it("touches exactly row j and bias j of layer k and column j of layer k+1", () => {
    const spec = mlpSpec([2, 3, 2]);
    const layout = parameterLayout(spec);
    const d = neuronScaleDiagonal(spec, 0, [2, 3, 5]);
    // W_0 [3, 2] rows, b_0, W_1 [2, 3] columns, b_1 untouched.
    expect(Array.from(d.subarray(0, 6))).toEqual([2, 2, 3, 3, 5, 5]);
    expect(Array.from(d.subarray(layout.layers[0].biasOffset, layout.layers[0].biasOffset + 3))).toEqual([2, 3, 5]);
    expect(Array.from(d.subarray(layout.layers[1].weightOffset, layout.layers[1].weightOffset + 6))).toEqual([1 / 2, 1 / 3, 1 / 5, 1 / 2, 1 / 3, 1 / 5]);
    expect(Array.from(d.subarray(layout.layers[1].biasOffset))).toEqual([1, 1]);
  });

  it("the homogeneous T_alpha wrapper equals alphaScale and keeps the function", async () => {
    const c = makeCase({ widths: [3, 5, 4, 2], batch: 20, loss: "mse", seed: 8 });
    const alphas = [4, 1 / 8, 2];
    const theta2 = homogeneousAlphaScale(c.spec, c.theta, alphas);
    expect(Array.from(theta2)).toEqual(Array.from(alphaScale(c.spec, c.theta, alphas)));
    expect(relMax(await c.reference.outputs(c.theta), await c.reference.outputs(theta2))).toBeLessThan(1e-13);
  });

  it("refuses bad input with one clear InputError", () => {
    const spec = mlpSpec([3, 4, 2]);
    const theta = new Float64Array(parameterLayout(spec).dim).fill(0.5);
    const tanh = { ...spec, activation: { kind: "tanh" } } as unknown as ModelSpec;
    const cases: [() => unknown, RegExp][] = [
      [() => assertHomogeneous(tanh), /positively homogeneous.*'tanh'/],
      [() => neuronScale(tanh, theta, 0, [1, 1, 1, 1]), /'tanh'/],
      [() => homogeneousAlphaScale(tanh, theta, [2, 0.5]), /T_alpha needs a positively homogeneous.*'tanh'/],
      [() => homogeneousAlphaScaleDiagonal(spec, [2, 2]), /multiply to 1/],
      [() => neuronScale(spec, theta, 0, [1, 2, 3]), /needs 4 factors \(one per unit\), got 3/],
      [() => neuronScale(spec, theta, 0, [1, 0, 1, 1]), /c_1 of layer 0 must be positive and finite, got 0/],
      [() => neuronScale(spec, theta, 0, [1, -2, 1, 1]), /must be positive/],
      [() => neuronScale(spec, theta, 0, [1, NaN, 1, 1]), /got NaN/],
      [() => neuronScale(spec, theta, 0, [1, Infinity, 1, 1]), /got Infinity/],
      [() => neuronScale(spec, theta, 1, [1, 1]), /layer 1 is the linear output layer, which has no hidden units/],
      [() => neuronScale(spec, theta, 2, [1, 1]), /layer 2 does not exist/],
      [() => neuronScale(mlpSpec([3, 2]), new Float64Array(8), 0, [1, 1]), /no hidden layer/],
      [() => neuronScale(spec, theta.subarray(1), 0, [1, 1, 1, 1]), /theta has 25 entries, the model has 26/],
      [() => randomNeuronFactors(3, 1, 1), /spread must be a finite number > 1/],
    ];
    for (const [f, message] of cases) {
      expect(f).toThrow(InputError);
      expect(f).toThrow(message);
    }
  });
});

describe("sharpen (Theorem 4)", () => {
  const c = makeCase({ widths: [4, 6, 5, 3], batch: 30, loss: "ce", seed: 12 });
  for (const M of [1, 1e2, 1e4, 1e6]) {
    it(`reaches a top eigenvalue >= ${M} with the outputs unchanged (dense spectrum agrees)`, async () => {
      const r = await sharpen(c.reference, c.theta, { minTopEigenvalue: M });
      expect(r.topEigenvalue).toBeGreaterThanOrEqual(M);
      const exact = (await spectrumOf(c.reference, r.theta))[0];
      expect(exact).toBeGreaterThanOrEqual(M);
      expect(Math.abs(exact - r.topEigenvalue)).toBeLessThanOrEqual(1e-5 * exact);
      expect(r.functionCheck.relativeDifference).toBeLessThan(1e-12);
      expect(relMax(await c.reference.outputs(c.theta), await c.reference.outputs(r.theta))).toBeLessThan(1e-12);
      expect(Math.abs(r.alphas.reduce((s, a) => s + Math.log(a), 0))).toBeLessThan(1e-12);
      if (r.layer >= 0) {
        expect(r.alphas[r.layer]).toBeLessThan(1);
        expect(r.topEigenvalue).toBeGreaterThanOrEqual(r.predictedLowerBound * (1 - 1e-6));
      }
    });
  }

  it("refuses a net whose weight blocks have no curvature (every hidden unit dead), and a linear model", async () => {
    const c2 = makeCase({ widths: [3, 4, 2], batch: 10, loss: "mse", seed: 2 });
    const dead = Float64Array.from(c2.theta);
    const b0 = parameterLayout(c2.spec).layers[0].biasOffset;
    dead.fill(-100, b0, b0 + 4);
    await expect(sharpen(c2.reference, dead, { minTopEigenvalue: 10 })).rejects.toThrow(ConstructionError);
    await expect(sharpen(c2.reference, dead, { minTopEigenvalue: 10 })).rejects.toThrow(/no layer's weight block has positive curvature/);
    const lin = makeCase({ widths: [3, 2], batch: 10, loss: "mse", seed: 2 });
    await expect(sharpen(lin.reference, lin.theta, { minTopEigenvalue: 10 })).rejects.toThrow(/at least one hidden layer/);
    await expect(sharpen(c2.reference, c2.theta, { minTopEigenvalue: -1 })).rejects.toThrow(/minTopEigenvalue must be a positive finite number/);
    await expect(sharpen(c2.reference, c2.theta, { minTopEigenvalue: 10, layer: 5 })).rejects.toThrow(/layer 5 does not exist/);
  });
});

describe("sharpenCount (Theorem 5)", () => {
  it("lifts at least r - |S| eigenvalues above M on a tiny deep net (dense Hessian), bias-free and with biases", async () => {
    for (const bias of [false, true]) {
      const c = makeCase({ widths: [3, 4, 4, 4, 2], batch: 24, loss: "mse", bias, seed: 6 });
      const M = 1e3;
      const r = await sharpenCount(c.reference, c.theta, { threshold: M });
      const before = await spectrumOf(c.reference, c.theta);
      const after = await spectrumOf(c.reference, r.theta);
      const countAfter = after.filter((x) => x > M).length;
      // |S|: bias-free it is min_k n_k (Theorem 5); with biases the compensating layer's later biases join it.
      if (!bias) expect(r.unamplified).toBe(Math.min(...c.spec.layers.map((l) => l.inFeatures * l.outFeatures)));
      expect(r.rank).toBe(before.filter((x) => x > 1e-8 * Math.abs(before[0])).length);
      expect(r.guaranteedCount).toBe(r.rank - r.unamplified);
      expect(r.guaranteedCount).toBeGreaterThan(5);
      expect(countAfter).toBe(r.countAbove);
      expect(countAfter).toBeGreaterThanOrEqual(r.guaranteedCount);
      expect(before.filter((x) => x > M).length).toBe(0);
      expect(r.functionCheck.relativeDifference).toBeLessThan(1e-11);
    }
  });

  it("at a minimum (teacher targets, PSD Hessian) the count holds too", async () => {
    const c = await teacherCase([3, 4, 4, 4, 2], 6);
    const r = await sharpenCount(c.reference, c.theta, { threshold: 1e3 });
    const after = await spectrumOf(c.reference, r.theta);
    expect(r.guaranteedCount).toBeGreaterThan(5);
    expect(after.filter((x) => x > 1e3).length).toBeGreaterThanOrEqual(r.guaranteedCount);
    expect(r.functionCheck.relativeDifference).toBeLessThan(1e-11);
  });

  it("with rank (Lanczos mode) the top `rank - |S|` Ritz values exceed M", async () => {
    const c = makeCase({ widths: [3, 4, 4, 4, 2], batch: 24, loss: "mse", bias: false, seed: 6 });
    const r = await sharpenCount(c.reference, c.theta, { threshold: 100, rank: 16 });
    expect(r.method).toBe("lanczos");
    expect(r.guaranteedCount).toBe(16 - 8);
    expect(r.countAbove).toBeGreaterThanOrEqual(r.guaranteedCount);
    expect((await spectrumOf(c.reference, r.theta)).filter((x) => x > 100).length).toBeGreaterThanOrEqual(r.guaranteedCount);
    await expect(sharpenCount(c.reference, c.theta, { threshold: 100, maxDenseDim: 10 })).rejects.toThrow(/more than 10 for a dense Hessian; pass rank/);
    await expect(sharpenCount(c.reference, c.theta, { threshold: 100, rank: 4 })).rejects.toThrow(/guarantees r - \|S\| = 4 - 8 = -4/);
  });
});

describe("epsilon-sharpness construction (section 4.3)", () => {
  let c: TestCase;
  beforeAll(async () => {
    c = await teacherCase([4, 6, 5, 3], 12);
  });

  it("puts a constant function inside the eps-ball: the perturbation reaches the bound, and Auto-PGD finds at least it", async () => {
    const epsilon = 0.05;
    const r = await epsilonSharpnessConstruction(c.reference, c.theta, { epsilon });
    expect(r.functionCheck.relativeDifference).toBeLessThan(1e-12);
    expect(r.perturbationNorm).toBeLessThanOrEqual(epsilon);
    expect(r.baseLoss).toBeLessThan(1e-12);
    expect(r.bound).toBeGreaterThan(0.1);
    expect(r.constantLoss).toBe(Math.max(...r.layerConstantLosses));
    expect(Math.abs(r.reachedLoss - r.constantLoss)).toBeLessThan(1e-12 * (1 + r.constantLoss));
    // The net at theta' + delta outputs one constant row for every sample.
    const f = await c.reference.outputs(r.theta.map((x, i) => x + r.perturbation[i]));
    const C = 3;
    for (let s = 1; s < c.data.n; s++) for (let j = 0; j < C; j++) expect(f[s * C + j]).toBeCloseTo(f[j], 12);
    const measured = await epsilonSharpness(c.reference, r.theta, { epsilon, kind: "dinh", steps: 40, restarts: 2, seed: 1 });
    const before = await epsilonSharpness(c.reference, c.theta, { epsilon, kind: "dinh", steps: 40, restarts: 2, seed: 1 });
    expect(measured.value).toBeGreaterThanOrEqual(r.bound * (1 - 1e-9));
    expect(before.value).toBeLessThan(r.bound / 5);
  });

  it("random subspace: the loss reached inside a p-dimensional subspace tends to the bound as alpha_k -> 0", async () => {
    const epsilon = 0.05;
    const gaps: number[] = [];
    for (const shrink of [1, 10, 100, 1000]) {
      // Layer 1 (30 weights + 5 biases <= p = 40) has a layer after it, so the subspace point only tends to the constant function.
      const r = await epsilonSharpnessConstruction(c.reference, c.theta, { epsilon, subspaceDim: 40, seed: 3, shrink, layer: 1 });
      const sub = r.subspace!;
      expect(sub.perturbationNorm).toBeLessThanOrEqual(epsilon / shrink);
      expect(r.functionCheck.relativeDifference).toBeLessThan(1e-12);
      gaps.push(Math.abs(sub.reachedValue - r.bound));
    }
    for (let i = 1; i < gaps.length; i++) expect(gaps[i]).toBeLessThan(gaps[i - 1]);
    expect(gaps[gaps.length - 1]).toBeLessThan(1e-3 * Math.max(1, gaps[0]));
    // Zeroing the output layer leaves nothing downstream: the subspace point is exactly the constant function.
    const out = await epsilonSharpnessConstruction(c.reference, c.theta, { epsilon, subspaceDim: 40, seed: 3, layer: 2 });
    expect(Math.abs(out.subspace!.reachedValue - out.bound)).toBeLessThan(1e-12 * (1 + out.bound));
  });

  it("refuses bad input", async () => {
    await expect(epsilonSharpnessConstruction(c.reference, c.theta, { epsilon: 0 })).rejects.toThrow(/epsilon must be a positive finite number/);
    await expect(epsilonSharpnessConstruction(c.reference, c.theta, { epsilon: 0.1, subspaceDim: 10, layer: 0 })).rejects.toThrow(/cannot zero layer 0's 30 weights and biases/);
    await expect(epsilonSharpnessConstruction(c.reference, c.theta, { epsilon: 0.1, subspaceDim: 5 })).rejects.toThrow(/below every layer's weight-and-bias count/);
    await expect(epsilonSharpnessConstruction(c.reference, c.theta, { epsilon: 0.1, shrink: 0.5 })).rejects.toThrow(/shrink must be a finite number >= 1/);
  });
});

describe("flatten", () => {
  let c: TestCase;
  beforeAll(async () => {
    c = await teacherCase([4, 6, 5, 3], 12);
  });

  it("balances the weight blocks to the invariant bound G, never sharper than theta, and is the same point for every T_alpha of theta", async () => {
    const r = await flatten(c.reference, c.theta, { refineIterations: 12 });
    expect(r.topEigenvalue).toBeLessThanOrEqual(r.originalTopEigenvalue);
    expect(r.topEigenvalue).toBeGreaterThanOrEqual(r.lowerBound! * (1 - 1e-6));
    expect(r.functionCheck.relativeDifference).toBeLessThan(1e-12);
    const exact = (await spectrumOf(c.reference, r.theta))[0];
    expect(exact).toBeGreaterThanOrEqual(r.lowerBound! * (1 - 1e-9));
    // From a sharpened member of the orbit, balancing lands on the same point: G is invariant and the
    // balanced alphas compose (alpha_sharpen x alpha_back = alpha_direct).
    const sharp = await sharpen(c.reference, c.theta, { minTopEigenvalue: 1e4 });
    const back = await flatten(c.reference, sharp.theta);
    const direct = await flatten(c.reference, c.theta);
    expect(Math.abs(back.lowerBound! - direct.lowerBound!)).toBeLessThan(1e-6 * direct.lowerBound!);
    expect(Math.abs(back.balancedTopEigenvalue! - direct.balancedTopEigenvalue!)).toBeLessThan(1e-6 * direct.balancedTopEigenvalue!);
    direct.balancedAlphas!.forEach((a, k) => expect(Math.abs(sharp.alphas[k] * back.balancedAlphas![k] - a)).toBeLessThan(1e-6 * a));
    expect(back.topEigenvalue).toBeLessThan(sharp.topEigenvalue / 100);
    await expect(flatten(c.reference, c.theta, { maxTopEigenvalue: r.lowerBound! / 2 })).rejects.toThrow(/no T_alpha\(theta\) has top eigenvalue <=/);
  });

  it("volume: grows |det T_alpha| by the factor asked; refuses when every layer has the same weight count", async () => {
    const r = await flatten(c.reference, c.theta, { measure: "volume", logVolumeGain: 5 });
    expect(r.logVolumeGain).toBeCloseTo(5, 9);
    expect(logVolumeFactor(c.spec, r.alphas)).toBeCloseTo(5, 9);
    // log|det| straight from the diagonal of T_alpha.
    const d = homogeneousAlphaScaleDiagonal(c.spec, r.alphas);
    expect(d.reduce((s, x) => s + Math.log(x), 0)).toBeCloseTo(5, 9);
    expect(r.functionCheck.relativeDifference).toBeLessThan(1e-12);
    const square = makeCase({ widths: [3, 3, 3], batch: 10, loss: "mse", bias: false, seed: 3 });
    await expect(flatten(square.reference, square.theta, { measure: "volume", logVolumeGain: 1 })).rejects.toThrow(/\|det T_alpha\| = 1 for every alpha/);
    await expect(flatten(c.reference, c.theta, { measure: "volume" })).rejects.toThrow(/needs logVolumeGain/);
  });
});

describe("compareOutputs", () => {
  it("keeps a NaN difference however many finite ones follow, and measures against the first outputs", () => {
    expect(compareOutputs([1, 2, 3], [1, 2.5, 2])).toEqual({ maxAbsDifference: 1, maxAbsOutput: 3 });
    expect(compareOutputs([1, 2, 3], [NaN, 2, 9]).maxAbsDifference).toBeNaN();
  });
});
