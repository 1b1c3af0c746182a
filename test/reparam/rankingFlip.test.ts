/**
 * The Appendix A demonstration (Dinh et al. 2017, section 5.1): a radial transformation reverses
 * the flatness ranking (top Hessian eigenvalue) of two minima, by the requested margin, whether it
 * sharpens the flatter one or flattens the sharper one, and leaves the other minimum untouched.
 */
import { describe, expect, it } from "vitest";
import { radialRankingFlip, teacherMinima } from "../../src/reparam/rankingFlip.ts";

describe("radialRankingFlip", () => {
  for (const centreOn of ["flatter", "sharper"] as const) {
    it(`reverses the ranking with the ball centred on the ${centreOn} minimum`, async () => {
      const r = await radialRankingFlip(undefined, { centreOn, margin: 4 });
      const [a, b] = r.minima;
      expect(a.gradientNorm).toBeLessThan(1e-6);
      expect(b.gradientNorm).toBeLessThan(1e-6);
      expect(r.flipped).toBe(true);
      expect(r.flatterInTheta).toBe(0);
      expect(r.flatterInEta).toBe(1);
      const c = r.minima[r.radial.centreIndex], o = r.minima[1 - r.radial.centreIndex];
      expect(c.insideBall).toBe(true);
      expect(o.insideBall).toBe(false);
      // Inside the inner ball J = (r-hat/rho) I: the eta-Hessian is exactly scaled.
      expect(c.topEigenvalueEta / (c.topEigenvalueTheta * r.radial.jacobianScale ** 2)).toBeCloseTo(1, 9);
      // Outside the ball nothing changes.
      expect(o.topEigenvalueEta / o.topEigenvalueTheta).toBeCloseTo(1, 9);
      // The reversed ranking holds by the margin.
      expect(a.topEigenvalueEta / b.topEigenvalueEta).toBeCloseTo(4, 6);
      expect(c.lossEta).toBeCloseTo(c.loss, 20);
    });
  }

  it("accepts a caller's problem and refuses bad options", async () => {
    const p = teacherMinima();
    const swapped = { ...p, minima: [p.minima[1], p.minima[0]] as [Float64Array, Float64Array] };
    const r = await radialRankingFlip(swapped, { margin: 2 });
    expect(r.flatterInTheta).toBe(1);
    expect(r.flipped).toBe(true);
    await expect(radialRankingFlip(p, { margin: 1 })).rejects.toThrow(/margin must be a finite number > 1/);
    await expect(radialRankingFlip(p, { deltaFraction: 1 })).rejects.toThrow(/deltaFraction/);
    await expect(radialRankingFlip({ ...p, minima: [p.minima[0], p.minima[0]] })).rejects.toThrow(/coincide/);
  });
});
