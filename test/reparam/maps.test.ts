/**
 * The reparametrizations themselves (Dinh et al. 2017, section 5.1, Figure 5, Appendix A): round
 * trips, Jacobian products and second-order terms against central differences, the Appendix A psi,
 * identity outside the ball, and clear errors for choices that are not invertible or not smooth.
 */
import { describe, expect, it } from "vitest";
import { InputError } from "../../src/errors.ts";
import { mlpSpec } from "../../src/model.ts";
import { initParameters } from "../../src/init.ts";
import { Rng } from "../../src/random.ts";
import { CoordinatewisePowerFamily, PowerScalar, RadialPowerFamily, powerFamily } from "../../src/reparam/powerFamily.ts";
import { RadialTransformation, radialPsi, radialPsiPrime } from "../../src/reparam/radial.ts";
import { WeightNormalization } from "../../src/reparam/weightNorm.ts";
import { axpy, checkReparametrization, norm } from "./support.ts";

describe("weight normalization", () => {
  const spec = mlpSpec([3, 4, 2], { bias: [true, false] });
  const theta = initParameters(spec, 4);

  it("has the documented layout and round-trips", () => {
    const wn = new WeightNormalization(spec);
    expect(wn.dimEta).toBe(wn.dimTheta + 4 + 2);
    expect(wn.layers.map((l) => [l.directionOffset, l.scaleOffset, l.biasOffset])).toEqual([[0, 12, 16], [20, 28, -1]]);
    const eta = wn.inverse(theta);
    expect(Array.from(eta.subarray(0, 12))).toEqual(Array.from(theta.subarray(0, 12)));
    checkReparametrization(wn, wn.scaleDirections(eta, 1.7), 1, 1e-5, 1e-6, false);
  });

  it("passes the checks with a given direction norm and with a layer left out", () => {
    const wn = new WeightNormalization(spec, { layers: [1] });
    expect(wn.dimEta).toBe(wn.dimTheta + 2);
    const eta = wn.inverse(theta, 0.3);
    for (const L of wn.layers.filter((l) => l.normalized)) {
      for (let o = 0; o < L.rows; o++) expect(norm(eta.subarray(L.directionOffset + o * L.columns, L.directionOffset + (o + 1) * L.columns))).toBeCloseTo(0.3, 14);
    }
    checkReparametrization(wn, eta, 2, 1e-5, 1e-6, false);
  });

  it("T'_alpha changes eta but not theta", () => {
    const wn = new WeightNormalization(spec);
    const eta = wn.inverse(theta);
    for (const alpha of [1e-3, 0.5, 40]) {
      const scaled = wn.scaleDirections(eta, alpha);
      const t = wn.phi(scaled);
      t.forEach((x, i) => expect(Math.abs(x - theta[i])).toBeLessThanOrEqual(1e-14 * Math.max(1, Math.abs(theta[i]))));
    }
    const mask = wn.directionMask();
    expect(mask.reduce((a, b) => a + b, 0)).toBe(12 + 8);
  });

  it("refuses zero rows, a bad alpha and a bad layer clearly", () => {
    const wn = new WeightNormalization(spec);
    const eta = wn.inverse(theta);
    eta.fill(0, 3, 6); // layer 0, unit 1: v rows of 3 from offset 0
    expect(() => wn.phi(eta)).toThrow(/layer 0, unit 1 has v = 0/);
    const zeroRow = Float64Array.from(theta);
    zeroRow.fill(0, 16, 20); // layer 1, unit 0: theta has W_0 (12), b_0 (4), then W_1 rows of 4
    expect(() => wn.inverse(zeroRow)).toThrow(/layer 1, unit 0 has a zero weight row/);
    expect(() => wn.scaleDirections(wn.inverse(theta), -1)).toThrow(/alpha > 0/);
    expect(() => new WeightNormalization(spec, { layers: [2] })).toThrow(InputError);
    expect(() => wn.jvp(wn.inverse(theta), new Float64Array(3))).toThrow(/v \(an eta-space vector\) has 3 entries, expected 30/);
  });
});

describe("radial transformation (Appendix A)", () => {
  const centre = Float64Array.of(0.5, -1, 2, 0.25);
  const r = new RadialTransformation({ centre, delta: 2, rHat: 0.8, rho: 0.3 });

  it("psi is continuous, increasing, fixes [delta, inf), and psi' matches its slope", () => {
    let prev = -1;
    for (let x = 0.005; x <= 3; x += 0.01) {
      const y = radialPsi(x, 0.8, 2, 0.3);
      expect(y).toBeGreaterThan(prev);
      prev = y;
      const h = 1e-6;
      if (Math.abs(x - 0.8) > 1e-3 && Math.abs(x - 2) > 1e-3) {
        expect((radialPsi(x + h, 0.8, 2, 0.3) - radialPsi(x - h, 0.8, 2, 0.3)) / (2 * h)).toBeCloseTo(radialPsiPrime(x, 0.8, 2, 0.3), 6);
      }
    }
    expect(radialPsi(0.8, 0.8, 2, 0.3)).toBeCloseTo(0.3, 15);
    expect(radialPsi(2, 0.8, 2, 0.3)).toBeCloseTo(2, 15);
  });

  it("passes the derivative checks inside, in the annulus and outside", () => {
    const rng = new Rng(9);
    for (const radius of [0.1, 0.5, 1.2, 1.9, 3]) {
      const dir = rng.normals(4);
      const eta = axpy(radius / norm(dir), dir, centre);
      checkReparametrization(r, eta, Math.round(radius * 10));
    }
  });

  it("is linear with J = (r-hat/rho) I inside the inner ball and the identity outside the ball", () => {
    const eta = axpy(0.1, Float64Array.of(1, 0, 0, 0), centre);
    const v = Float64Array.of(1, 2, 3, 4);
    r.jvp(eta, v).forEach((x, i) => expect(x).toBeCloseTo((0.8 / 0.3) * v[i], 13));
    expect(Array.from(r.curvature(eta, v, v))).toEqual([0, 0, 0, 0]);
    const outside = axpy(1, Float64Array.of(3, 0, 0, 0), centre);
    expect(Array.from(r.phi(outside))).toEqual(Array.from(outside));
    expect(Array.from(r.inverse(outside))).toEqual(Array.from(outside));
    expect(Array.from(r.jvp(outside, v))).toEqual(Array.from(v));
    expect(r.insideBall(outside)).toBe(false);
    expect(Array.from(r.phi(centre))).toEqual(Array.from(centre));
  });

  it("refuses parameters outside the paper's ranges", () => {
    expect(() => new RadialTransformation({ centre, delta: 0, rHat: 0.5, rho: 0.5 })).toThrow(/delta must be a positive/);
    expect(() => new RadialTransformation({ centre, delta: 1, rHat: 1, rho: 0.5 })).toThrow(/r-hat must lie in \(0, 1\)/);
    expect(() => new RadialTransformation({ centre, delta: 1, rHat: 0.5, rho: -0.1 })).toThrow(/rho must lie in/);
    expect(() => new RadialTransformation({ centre: [], delta: 1, rHat: 0.5, rho: 0.5 })).toThrow(/centre is empty/);
  });
});

describe("Figure 5 family", () => {
  const centre = Float64Array.of(0.3, -0.2, 1.1);
  const grid: [number, number][] = [[0.8, 0.5], [-0.3, 0.2], [2, 1e-3], [0, 0], [0.4, 0]];

  it("the scalar inverse solves h(r) = s to a few ulps over many decades", () => {
    for (const [a, b] of grid) {
      const p = new PowerScalar(a, b);
      for (const s of [-1e6, -3, -1e-3, 0, 1e-12, 1e-3, 0.7, 5, 1e8]) {
        const r = p.inverse(s);
        expect(Math.abs(p.h(r) - s)).toBeLessThanOrEqual(1e-14 * Math.abs(s) + 1e-300);
      }
    }
  });

  it("passes the derivative checks radially and coordinate-wise", () => {
    const rng = new Rng(5);
    for (const [a, b] of grid) {
      for (const mode of ["radial", "coordinatewise"] as const) {
        const map = powerFamily({ centre, a, b, mode });
        for (let t = 0; t < 3; t++) checkReparametrization(map, axpy(1, rng.normals(3, 0.8), centre), 100 * t + 1);
      }
    }
  });

  it("is smooth at the centre when b > 0 (J = b^-a I, no second-order term)", () => {
    const map = new RadialPowerFamily({ centre, a: 0.7, b: 0.4 });
    const v = Float64Array.of(1, -2, 0.5);
    map.jvp(centre, v).forEach((x, i) => expect(x).toBeCloseTo(0.4 ** -0.7 * v[i], 13));
    expect(Array.from(map.curvature(centre, v, v))).toEqual([0, 0, 0]);
    checkReparametrization(map, axpy(1e-4, v, centre), 3, 1e-7);
  });

  it("refuses non-invertible parameters and derivatives where Phi is not differentiable", () => {
    expect(() => powerFamily({ centre, a: -0.5, b: 1 })).toThrow(/a must be finite and > -1\/2/);
    expect(() => powerFamily({ centre, a: -2, b: 1 })).toThrow(/not invertible/);
    expect(() => powerFamily({ centre, a: 1, b: -0.1 })).toThrow(/b must be finite and >= 0/);
    expect(() => powerFamily({ centre, a: 1, b: 1, mode: "spherical" as "radial" })).toThrow(/mode must be/);
    const radial = powerFamily({ centre, a: 0.5, b: 0 });
    expect(Array.from(radial.phi(centre))).toEqual(Array.from(centre));
    expect(() => radial.jvp(centre, Float64Array.of(1, 0, 0))).toThrow(/not differentiable at the centre/);
    const coord = new CoordinatewisePowerFamily({ centre, a: -0.25, b: 0 });
    expect(() => coord.curvature(Float64Array.of(0.3, 1, 1), Float64Array.of(1, 1, 1), Float64Array.of(1, 1, 1))).toThrow(/coordinate 0/);
  });
});
