/**
 * Claims 18-22 of `flatness reproduce` (src/reproduce/claimsPaper.ts) on the float64 reference,
 * quick setting: each passes with the numbers its verdict rests on, and each of its negative
 * controls makes it FAIL for the reason the control names (the measurement that moves).
 */
import { describe, expect, it } from "vitest";
import { type Backend, cpuBackend } from "../src/backend/mod.ts";
import type { Claim, ClaimOutcome, ReproduceContext } from "../src/reproduce/context.ts";
import { inputLipschitz, logLogSlope, powerFamilyFlip, theorem4Frobenius, theorem4Spectral, weightNormSharpness } from "../src/reproduce/claimsPaper.ts";
import { CLAIMS } from "../src/reproduce/run.ts";

const ctx: ReproduceContext = { backend: cpuBackend() as Backend, seed: 0, quick: true, progress: () => {} };

// deno-lint-ignore no-explicit-any
type Details = any;

function run(claim: Claim, control?: string): Promise<ClaimOutcome> {
  return claim.run({ ...ctx, control });
}

describe("claims 18-22: statements of the paper, each with negative controls", () => {
  it("are claims 18-22 at the end of CLAIMS, each with at least one negative control", () => {
    expect(CLAIMS.slice(17, 22)).toEqual([theorem4Frobenius, weightNormSharpness, powerFamilyFlip, inputLipschitz, theorem4Spectral]);
    for (const c of [theorem4Frobenius, weightNormSharpness, powerFamilyFlip, inputLipschitz, theorem4Spectral]) {
      expect(c.controls!.length).toBeGreaterThan(0);
    }
  });

  it("refuse a control id they do not have", async () => {
    await expect(run(theorem4Frobenius, "no-such-control")).rejects.toThrow(/no negative control 'no-such-control'/);
  });

  it("logLogSlope: the slope of a power law", () => {
    expect(logLogSlope([0.1, 0.03, 0.01], [1e2, 1 / 0.03 ** 2, 1e4])).toBeCloseTo(-2, 12);
  });

  it("claims 18 and 22: ||H||_F and lambda_max grow as alpha^-2, above the proof's bound d/alpha^2, outputs kept", async () => {
    const r = await run(theorem4Frobenius);
    const d: Details = r.details;
    expect(r.pass, r.measured).toBe(true);
    expect(Math.abs(d.slopeFrobenius + 2)).toBeLessThan(0.01);
    const spectral = await run(theorem4Spectral);
    expect(spectral.pass, spectral.measured).toBe(true);
    expect(Math.abs((spectral.details as Details).slopeTopEigenvalue + 2)).toBeLessThan(0.01);
    for (const row of d.rows) {
      expect(row.frobenius).toBeGreaterThanOrEqual(row.bound);
      expect(row.frobenius).toBeGreaterThanOrEqual(row.topEigenvalue); // ||H||_F >= ||H||_2
      expect(row.relativeOutputDifference).toBeLessThan(1e-12);
    }
  });

  it("claims 18 and 22 controls: unscaled biases change the function; a frozen Hessian has slope 0", async () => {
    for (const claim of [theorem4Frobenius, theorem4Spectral]) {
      const bias = await run(claim, "bias-unscaled");
      expect(bias.pass).toBe(false);
      expect(Math.max(...(bias.details as Details).rows.map((x: Details) => x.relativeOutputDifference))).toBeGreaterThan(0.1);
    }
    const frozen = await run(theorem4Frobenius, "frozen-hessian");
    expect(frozen.pass).toBe(false);
    expect(Math.abs((frozen.details as Details).slopeFrobenius)).toBeLessThan(1e-6);
    const frozenSpectral = await run(theorem4Spectral, "frozen-hessian");
    expect(frozenSpectral.pass).toBe(false);
    expect(Math.abs((frozenSpectral.details as Details).slopeTopEigenvalue)).toBeLessThan(1e-6);
  });

  it("claim 19: weight normalization: infinite volume, low and high epsilon-sharpness in v, function kept", async () => {
    const r = await run(weightNormSharpness);
    const d: Details = r.details;
    expect(r.pass, r.measured).toBe(true);
    for (const x of d.volume) expect(x.worstLossIncrease).toBeLessThan(d.epsilonLoss);
    // second order: the value falls as alpha^-2 (1e4 from alpha 1 to 100)
    expect(d.full[0].value / d.full[2].value).toBeGreaterThan(5e3);
    expect(d.subspace[0].value / d.subspace[2].value).toBeGreaterThan(5e3);
    expect(Math.max(d.high.value, d.high.explicit)).toBeGreaterThan(d.bound);
  });

  it("claim 19 controls: scaling s too changes the function; measured in theta nothing moves", async () => {
    const s = await run(weightNormSharpness, "scale-s-too");
    expect(s.pass).toBe(false);
    expect(Math.max(...(s.details as Details).volume.map((x: Details) => x.worstLossIncrease))).toBeGreaterThan(0.01);
    const t = await run(weightNormSharpness, "theta-space");
    const d: Details = t.details;
    expect(t.pass).toBe(false);
    expect(d.full[2].value).toBeCloseTo(d.full[0].value, 6);
    expect(d.volume[3].logVolumeLowerBound).toBeCloseTo(d.volume[0].logVolumeLowerBound, 9);
    expect(d.high.value).toBeLessThan(d.bound);
  });

  it("claim 20: both power-family maps reverse the ranking of the two minima, the function kept", async () => {
    const r = await run(powerFamilyFlip);
    const d: Details = r.details;
    expect(r.pass, r.measured).toBe(true);
    expect(d.ratioTheta).toBeGreaterThan(1.5);
    for (const m of d.maps) {
      expect(m.flatterEta).not.toBe(d.flatterInTheta);
      expect(m.ratioEta).toBeGreaterThan(2);
      expect(m.relativeOutputDifference).toBeLessThan(1e-12);
    }
  });

  it("claim 20 controls: without J the ranking stays; eta = theta moves the function", async () => {
    const h = await run(powerFamilyFlip, "theta-hessian");
    expect(h.pass).toBe(false);
    for (const m of (h.details as Details).maps) expect(m.flatterEta).toBe((h.details as Details).flatterInTheta);
    const e = await run(powerFamilyFlip, "eta-not-mapped");
    expect(e.pass).toBe(false);
    expect(Math.max(...(e.details as Details).maps.map((m: Details) => m.relativeOutputDifference))).toBeGreaterThan(0.1);
  });

  it("claim 21: gaussianization multiplies the Lipschitz constant >= 10x, predictions kept", async () => {
    const r = await run(inputLipschitz);
    const d: Details = r.details;
    expect(r.pass, r.measured).toBe(true);
    expect(d.lipschitz.fXiLower).toBeGreaterThan(10 * d.lipschitz.fUpper);
    expect(d.lipschitz.fLower).toBeLessThanOrEqual(d.lipschitz.fUpper);
    expect(d.inputGradientNorm.ratio).toBeGreaterThan(2);
    expect(d.predictionChange).toBeLessThan(1e-12);
    expect(Math.abs(d.excessKurtosis.u)).toBeLessThan(0.5); // u is Gaussian
    expect(d.excessKurtosis.x).toBeGreaterThan(5); // x is heavy-tailed
  });

  it("claim 21 controls: f(u) changes the predictions; without d xi/du the gradients do not move", async () => {
    const n = await run(inputLipschitz, "not-composed");
    expect(n.pass).toBe(false);
    expect((n.details as Details).predictionChange).toBeGreaterThan(0.1);
    const c = await run(inputLipschitz, "no-chain-rule");
    expect(c.pass).toBe(false);
    expect((c.details as Details).inputGradientNorm.ratio).toBeCloseTo(1, 6);
    expect((c.details as Details).lipschitz.ratio).toBeLessThan(1);
  });
});
