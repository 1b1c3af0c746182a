/**
 * Input reparametrizations (Dinh et al. 2017, section 5.2, Appendix C): standardization, PCA and
 * ZCA whitening fitted in float64 (whitened covariance = I, A A^{-1} = I, rank-deficient data kept
 * invertible); the folded model gives the same outputs on the transformed data to 1e-9 (first-layer
 * bias present or not) and input-gradient norms that follow the chain rule and differ from the
 * original ones; the asinh map on the host (round trip, outputs, gradient norms against central
 * differences, refusal to fold); per-sample input Jacobians against differences; the demos.
 */
import { describe, expect, it } from "vitest";
import { InputError } from "../../src/errors.ts";
import { hostForward } from "../../src/metrics/normBased.ts";
import { inputGradientNorms } from "../../src/metrics/sensitivity.ts";
import { Rng } from "../../src/random.ts";
import {
  applyInputMap,
  fitAffineInputMap,
  fitAsinhInputMap,
  foldInputMap,
  foldOutputMap,
  invertInputMap,
  transformDataset,
  transformedInputGradientNorms,
  transformedOutputs,
} from "../../src/reparam/input.ts";
import { inputGradientRankingFlip, standardizationMseRankingChange } from "../../src/reparam/inputDemos.ts";
import { inputJacobians } from "../../src/reparam/inputJacobian.ts";
import { assertClose, makeCase } from "../support/numeric.ts";

const KINDS = ["standardize", "pca", "zca"] as const;

/** Correlated, anisotropic, off-centre data [n, d]. */
function correlated(n: number, d: number, seed: number): Float64Array {
  const rng = new Rng(seed);
  const mix = rng.normals(d * d);
  const x = new Float64Array(n * d);
  for (let s = 0; s < n; s++) {
    const z = rng.normals(d).map((v, i) => v * 3 ** (i - 1));
    for (let i = 0; i < d; i++) {
      let acc = 1.5 + i;
      for (let j = 0; j < d; j++) acc += mix[i * d + j] * z[j];
      x[s * d + i] = acc;
    }
  }
  return x;
}

function covariance(x: Float64Array, d: number): Float64Array {
  const n = x.length / d;
  const mean = new Float64Array(d);
  for (let s = 0; s < n; s++) for (let j = 0; j < d; j++) mean[j] += x[s * d + j] / n;
  const c = new Float64Array(d * d);
  for (let s = 0; s < n; s++) for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) c[i * d + j] += ((x[s * d + i] - mean[i]) * (x[s * d + j] - mean[j])) / n;
  return c;
}

function matmul(a: Float64Array, b: Float64Array, d: number): Float64Array {
  const c = new Float64Array(d * d);
  for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) for (let k = 0; k < d; k++) c[i * d + j] += a[i * d + k] * b[k * d + j];
  return c;
}

const identity = (d: number) => Float64Array.from({ length: d * d }, (_, i) => (i % (d + 1) === 0 ? 1 : 0));

describe("affine input maps", () => {
  const d = 4;
  const x = correlated(300, d, 2);

  it("whiten (covariance I) or standardize (unit variances), with A A^{-1} = I", () => {
    for (const kind of KINDS) {
      const map = fitAffineInputMap(x, d, kind);
      assertClose(`${kind}: A A^-1`, matmul(map.matrix, map.inverseMatrix, d), identity(d), 1e-12, 1e-12);
      const c = covariance(applyInputMap(map, x), d);
      // With the regulariser, each direction's variance is var / (var + eps), not exactly 1.
      if (kind === "standardize") for (let i = 0; i < d; i++) expect(c[i * d + i]).toBeCloseTo(map.variances[i] / (map.variances[i] + map.epsilon), 12);
      else if (kind === "pca") {
        const expected = identity(d).map((v, i) => (v === 0 ? 0 : map.variances[i / (d + 1)] / (map.variances[i / (d + 1)] + map.epsilon)));
        assertClose(`${kind}: covariance diag(var / (var + eps))`, c, expected, 1e-11, 1e-11);
      } else assertClose(`${kind}: whitened covariance`, c, identity(d), 1e-4, 1e-4);
      const tight = fitAffineInputMap(x, d, kind, { epsilon: 1e-15 });
      const ct = covariance(applyInputMap(tight, x), d);
      if (kind === "standardize") for (let i = 0; i < d; i++) expect(ct[i * d + i]).toBeCloseTo(1, 12);
      else assertClose(`${kind}: whitened covariance (tiny eps)`, ct, identity(d), 1e-9, 1e-9);
      assertClose(`${kind}: round trip`, invertInputMap(map, applyInputMap(map, x)), x, 1e-12, 1e-12);
    }
    const zca = fitAffineInputMap(x, d, "zca");
    for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) expect(zca.matrix[i * d + j]).toBeCloseTo(zca.matrix[j * d + i], 12);
    const pca = fitAffineInputMap(x, d, "pca");
    expect(pca.variances[0]).toBeGreaterThanOrEqual(pca.variances[d - 1]);
  });

  it("stay finite and invertible on rank-deficient data; refuse constant data and bad options", () => {
    const deficient = Float64Array.from({ length: 40 }, (_, i) => (i % 2 === 0 ? i : 2 * (i - 1)));
    for (const kind of KINDS) {
      const map = fitAffineInputMap(deficient, 2, kind);
      map.matrix.forEach((v) => expect(Number.isFinite(v)).toBe(true));
      assertClose(`${kind}: A A^-1 (rank 1)`, matmul(map.matrix, map.inverseMatrix, 2), identity(2), 1e-6, 1e-6);
    }
    expect(() => fitAffineInputMap(new Float64Array(6).fill(2), 3, "zca")).toThrow(/every feature is constant/);
    expect(() => fitAffineInputMap(x, d, "zca", { epsilon: 0 })).toThrow(/epsilon must be positive/);
    expect(() => fitAffineInputMap(x, 7, "pca")).toThrow(/not a positive multiple of 7/);
    expect(() => fitAffineInputMap(x, d, "whiten" as "zca")).toThrow(InputError);
  });
});

describe("folding into the model", () => {
  for (const bias of [true, false]) {
    it(`same outputs on the transformed data and chain-rule input gradients (first-layer bias ${bias})`, async () => {
      const c = makeCase({ widths: [3, 5, 2], batch: 40, loss: "ce", bias, kinkMargin: 1e-3, seed: 4 });
      const x = Float64Array.from(c.data.x);
      const before = await inputGradientNorms(c.spec, c.theta, c.data);
      for (const kind of KINDS) {
        const map = fitAffineInputMap(x, 3, kind);
        const folded = foldInputMap(c.spec, c.theta, map);
        expect(folded.spec.layers[0].bias).toBe(true);
        const u = applyInputMap(map, x);
        assertClose(`${kind}: folded outputs`, hostForward(folded.spec, folded.theta, u).z[1], hostForward(c.spec, c.theta, x).z[1], 1e-9, 1e-12);
        assertClose(`${kind}: host f(xi(u))`, transformedOutputs(c.spec, c.theta, map, u), hostForward(c.spec, c.theta, x).z[1], 1e-9, 1e-12);
        const data = transformDataset(map, c.data);
        const after = await inputGradientNorms(folded.spec, folded.theta, data);
        const chained = transformedInputGradientNorms(c.spec, c.theta, map, data.x);
        assertClose(`${kind}: inputGradientNorms(folded) = chain rule`, after.perSample, chained.perSample, 1e-9);
        expect(Math.abs(after.mean / before.mean - 1)).toBeGreaterThan(0.05);
      }
    });
  }

  it("folds an output map into the last layer: outputs A (f - mu)", () => {
    const c = makeCase({ widths: [3, 4, 2], batch: 10, loss: "mse", bias: false, seed: 2 });
    const f = hostForward(c.spec, c.theta, c.data.x).z[1];
    const map = fitAffineInputMap(f, 2, "zca");
    const folded = foldOutputMap(c.spec, c.theta, map);
    assertClose("folded output map", hostForward(folded.spec, folded.theta, c.data.x).z[1], applyInputMap(map, f), 1e-9, 1e-12);
  });

  it("input Jacobians match central differences", () => {
    const c = makeCase({ widths: [3, 4, 3, 2], batch: 6, loss: "ce", kinkMargin: 1e-2, seed: 6 });
    const x = Float64Array.from(c.data.x);
    const jac = inputJacobians(c.spec, c.theta, x);
    const h = 1e-6;
    for (let j = 0; j < 3; j++) {
      const xp = Float64Array.from(x), xm = Float64Array.from(x);
      for (let s = 0; s < 6; s++) {
        xp[s * 3 + j] += h;
        xm[s * 3 + j] -= h;
      }
      const fp = hostForward(c.spec, c.theta, xp).z[2], fm = hostForward(c.spec, c.theta, xm).z[2];
      for (let s = 0; s < 6; s++) for (let r = 0; r < 2; r++) expect(jac.jacobians[(s * 2 + r) * 3 + j]).toBeCloseTo((fp[s * 2 + r] - fm[s * 2 + r]) / (2 * h), 7);
    }
  });
});

describe("elementwise asinh map (not foldable)", () => {
  const c = makeCase({ widths: [3, 4, 2], batch: 8, loss: "ce", kinkMargin: 1e-2, seed: 9 });
  const x = Float64Array.from(c.data.x);
  const map = fitAsinhInputMap(x, 3, { scale: [0.5, 1, 2] });

  it("round-trips, keeps the outputs, and its gradient norms match central differences in u", async () => {
    const u = applyInputMap(map, x);
    assertClose("round trip", invertInputMap(map, u), x, 1e-12, 1e-14);
    assertClose("outputs f(xi(u))", transformedOutputs(c.spec, c.theta, map, u), hostForward(c.spec, c.theta, x).z[1], 1e-12, 1e-14);
    const norms = transformedInputGradientNorms(c.spec, c.theta, map, u);
    const h = 1e-6;
    const sq = new Float64Array(8);
    for (let j = 0; j < 3; j++) {
      const up = Float64Array.from(u), um = Float64Array.from(u);
      for (let s = 0; s < 8; s++) {
        up[s * 3 + j] += h;
        um[s * 3 + j] -= h;
      }
      const fp = transformedOutputs(c.spec, c.theta, map, up), fm = transformedOutputs(c.spec, c.theta, map, um);
      for (let i = 0; i < 16; i++) sq[i >> 1] += ((fp[i] - fm[i]) / (2 * h)) ** 2;
    }
    assertClose("asinh gradient norms", norms.perSample, sq.map(Math.sqrt), 1e-6);
    const before = await inputGradientNorms(c.spec, c.theta, c.data);
    expect(Math.abs(norms.mean / before.mean - 1)).toBeGreaterThan(0.05);
  });

  it("refuses to fold, and checks its scale", () => {
    expect(() => foldInputMap(c.spec, c.theta, map)).toThrow(/cannot fold into an MLP/);
    expect(() => fitAsinhInputMap(x, 3, { scale: [1, 0, 1] })).toThrow(/scale\[1\] must be positive/);
    expect(fitAsinhInputMap(x, 3).scale.every((s) => s > 0)).toBe(true);
  });
});

describe("demonstrations", () => {
  it("whitening reverses the input-gradient ranking of two models whose predictions it keeps", async () => {
    for (const kind of ["zca", "pca"] as const) {
      const r = await inputGradientRankingFlip({ kind });
      expect(r.flipped).toBe(true);
      expect(r.lessSensitiveOriginal).toBe("a");
      expect(Math.max(r.maxOutputChange.a, r.maxOutputChange.b)).toBeLessThan(1e-12);
    }
  });

  it("standardization changes an MSE ranking (Appendix C)", async () => {
    const r = await standardizationMseRankingChange();
    expect(r.changed).toBe(true);
    expect(r.raw.a).toBeCloseTo(0.5, 6);
    expect(r.raw.b).toBeCloseTo(0.125, 6);
    expect(r.standardized.a).toBeCloseTo(0.5 / r.targetStd[0] ** 2, 6);
    expect(r.standardized.b).toBeCloseTo(0.125 / r.targetStd[1] ** 2, 3);
  });
});
