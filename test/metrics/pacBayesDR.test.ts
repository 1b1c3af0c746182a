/**
 * The Dziugaite & Roy (2017) PAC-Bayes bound (src/metrics/pacBayesDR.ts): the kl inverse against
 * closed forms and independently computed values, and the bound on a trained net on an easy
 * separable problem: above the empirical errors, non-vacuous, deterministic for a seed.
 */
import { describe, expect, it } from "vitest";
import { gaussianMixture } from "../../src/datasets.ts";
import { initParameters } from "../../src/init.ts";
import { mlpSpec } from "../../src/model.ts";
import { ReferenceObjective } from "../../src/reference/engine.ts";
import { trainModel } from "../../src/train/trainModel.ts";
import { binaryKl, klInverseUpper, pacBayesBoundDR } from "../../src/metrics/pacBayesDR.ts";

describe("kl inverse", () => {
  it("closed form at q = 0, known values, kl(q || p*) = c, below Pinsker", () => {
    for (const c of [1e-3, 0.1, 1, 5]) expect(klInverseUpper(0, c)).toBeCloseTo(1 - Math.exp(-c), 14);
    // Values from an independent float64 bisection (Python).
    expect(klInverseUpper(0.1, 0.1)).toBeCloseTo(0.2823791394556453, 12);
    expect(klInverseUpper(0.02, 0.05)).toBeCloseTo(0.09857216773672921, 12);
    expect(klInverseUpper(0.5, 0.2)).toBeCloseTo(0.7870888163810812, 12);
    for (const [q, c] of [[0.1, 0.1], [0.3, 0.01], [0.02, 0.5]]) {
      const p = klInverseUpper(q, c);
      expect(binaryKl(q, p)).toBeCloseTo(c, 10);
      expect(p).toBeLessThanOrEqual(q + Math.sqrt(c / 2));
      expect(p).toBeGreaterThan(q);
    }
    expect(klInverseUpper(0.3, 0)).toBeCloseTo(0.3, 12);
    expect(klInverseUpper(0.9, 10)).toBeCloseTo(1, 12);
    expect(klInverseUpper(0, 1e3)).toBeCloseTo(1, 14);
    expect(binaryKl(0.2, 0.2)).toBe(0);
    expect(() => klInverseUpper(1.5, 0.1)).toThrow(/q must be/);
  });
});

describe("Dziugaite-Roy PAC-Bayes bound", () => {
  const spec = mlpSpec([2, 8, 2]);
  const ds = gaussianMixture({ samples: 400, classes: 2, separation: 6, seed: 5 });
  const trained = trainModel({ spec, data: ds.data, loss: "ce", optimizer: "adam", lr: 0.01, batchSize: 400, epochs: 300, seed: 1, backend: "cpu" });
  const objective = new ReferenceObjective(spec, ds.data, "ce");

  it("on a trained net on separable data: >= the empirical errors, non-vacuous, the prior at init helps", async () => {
    const t = await trained;
    expect(t.finalTrainAccuracy).toBe(1);
    const zero = await pacBayesBoundDR(objective, t.theta, { data: ds.data, seed: 1 });
    const init = await pacBayesBoundDR(objective, t.theta, { data: ds.data, seed: 1, priorMean: initParameters(spec, 1) });
    for (const r of [zero, init]) {
      expect(r.bound).toBeGreaterThanOrEqual(r.empiricalErrorQUpper);
      expect(r.empiricalErrorQUpper).toBeGreaterThanOrEqual(r.empiricalErrorQ);
      expect(r.empiricalErrorQ).toBeGreaterThanOrEqual(r.empiricalError);
      expect(r.bound).toBeLessThan(0.5); // non-vacuous (measured 0.32 with a zero prior, 0.15 at init)
      expect(r.pinskerBound).toBeGreaterThanOrEqual(r.bound);
      expect(binaryKl(r.empiricalErrorQUpper, r.bound)).toBeCloseTo(r.klBudget, 8);
      expect(r.lambda).toBeCloseTo(0.1 * Math.exp(-r.gridIndex / 100), 14);
      expect(r.trace.at(-1)!).toBeLessThan(r.trace[0]);
      expect(r.cost.gradients).toBe(300);
      expect(r.cost.forwards).toBeGreaterThanOrEqual(1000);
    }
    expect(init.kl).toBeLessThan(zero.kl);
    expect(init.bound).toBeLessThan(zero.bound);
  });

  it("deterministic for a seed; checks its inputs", async () => {
    const t = await trained;
    const o = { data: ds.data, seed: 3, steps: 20, samples: 50 };
    const a = await pacBayesBoundDR(objective, t.theta, o);
    const b = await pacBayesBoundDR(objective, t.theta, o);
    expect(b.bound).toBe(a.bound);
    expect(Array.from(b.std)).toEqual(Array.from(a.std));
    const c = await pacBayesBoundDR(objective, t.theta, { ...o, seed: 4 });
    expect(Array.from(c.std)).not.toEqual(Array.from(a.std));
    await expect(pacBayesBoundDR(objective, t.theta, { ...o, delta: 0 })).rejects.toThrow(/delta/);
    await expect(pacBayesBoundDR(objective, t.theta, { ...o, priorMean: [1, 2] })).rejects.toThrow(/priorMean/);
    const mse = new ReferenceObjective(mlpSpec([2, 3, 1]), { ...ds.data, labels: undefined, targets: new Float64Array(400) } as never, "mse");
    await expect(pacBayesBoundDR(mse, new Float64Array(13), o)).rejects.toThrow(/classification/);
  });
});
