/**
 * ReparametrizedObjective (L ∘ Phi in eta, Dinh et al. 2017, section 5.1) over the float64
 * reference engine on tiny ReLU nets: gradient and HVP against central differences of its own
 * loss and gradient for every reparametrization; hvpBlock = hvp; one inner gradient per eta; at a
 * critical point the eta-Hessian is J^T H J and the second-order term vanishes linearly in g;
 * T'_alpha scales the weight-norm Hessian block in v by 1/alpha^2 (Lanczos, float64); the radial
 * transformation changes nothing outside its ball.
 */
import { describe, expect, it } from "vitest";
import { hessianOperator, restrictedOperator } from "../../src/metrics/operator.ts";
import { lanczosEigenpairs } from "../../src/metrics/spectrum.ts";
import { Rng } from "../../src/random.ts";
import { ReparametrizedObjective } from "../../src/reparam/objective.ts";
import { powerFamily } from "../../src/reparam/powerFamily.ts";
import { RadialTransformation } from "../../src/reparam/radial.ts";
import { teacherMinima } from "../../src/reparam/rankingFlip.ts";
import type { Reparametrization } from "../../src/reparam/reparametrization.ts";
import { WeightNormalization } from "../../src/reparam/weightNorm.ts";
import { assertClose, dot, makeCase } from "../support/numeric.ts";
import { axpy, norm } from "./support.ts";

async function gradientOf(f: ReparametrizedObjective<Float64Array>, eta: Float64Array) {
  const g = new Float64Array(eta.length);
  await f.gradient(eta, g);
  return g;
}

/** Gradient against central differences of the loss, HVP against central differences of the gradient. */
async function checkObjective(f: ReparametrizedObjective<Float64Array>, eta: Float64Array, seed: number) {
  const h = 1e-5;
  const fd = new Float64Array(eta.length);
  for (let j = 0; j < eta.length; j++) {
    const e = new Float64Array(eta.length);
    e[j] = h;
    fd[j] = ((await f.loss(axpy(1, e, eta))) - (await f.loss(axpy(-1, e, eta)))) / (2 * h);
  }
  assertClose(`${f.reparametrization.name}: gradient vs differences of the loss`, await gradientOf(f, eta), fd, 1e-6, 1e-9);
  const v = new Rng(seed).normals(eta.length);
  const hv = new Float64Array(eta.length);
  await f.hvp(eta, v, hv);
  const plus = await gradientOf(f, axpy(h, v, eta));
  const minus = await gradientOf(f, axpy(-h, v, eta));
  assertClose(`${f.reparametrization.name}: hvp vs differences of the gradient`, hv, plus.map((p, i) => (p - minus[i]) / (2 * h)), 1e-6, 1e-9);
}

/** The reparametrizations under test, built around a model's theta (eta = a point not at a kink of Phi). */
function reparametrizations(theta: Float64Array, spec: ReturnType<typeof makeCase>["spec"], seed: number): { r: Reparametrization; eta: Float64Array }[] {
  const rng = new Rng(seed);
  const offset = rng.normals(theta.length, 0.3);
  const centre = axpy(1, offset, theta);
  const dist = norm(offset);
  const wn = new WeightNormalization(spec);
  const radial = new RadialTransformation({ centre, delta: 2 * dist, rHat: 0.5 * dist, rho: 0.3 * dist });
  const out: { r: Reparametrization; eta: Float64Array }[] = [
    { r: wn, eta: wn.scaleDirections(wn.inverse(theta), 1.6) },
    { r: radial, eta: radial.inverse(theta) },
    ...(["radial", "coordinatewise"] as const).map((mode) => {
      const r = powerFamily({ centre, a: 0.6, b: 0.3, mode });
      return { r, eta: r.inverse(theta) };
    }),
  ];
  return out;
}

describe("ReparametrizedObjective", () => {
  const cases = [
    makeCase({ widths: [3, 4, 2], batch: 5, loss: "ce", kinkMargin: 0.05, seed: 3 }),
    makeCase({ widths: [2, 3, 3, 1], batch: 4, loss: "mse", kinkMargin: 0.05, seed: 8, bias: false }),
    makeCase({ widths: [3, 2, 1], batch: 6, loss: "logistic", kinkMargin: 0.05, seed: 5 }),
  ];

  it("gradient and HVP match central differences for every reparametrization", async () => {
    for (const [ci, c] of cases.entries()) {
      for (const { r, eta } of reparametrizations(c.theta, c.spec, ci + 1)) {
        const f = new ReparametrizedObjective(c.reference, r);
        expect(await f.loss(eta)).toBeCloseTo(await c.reference.loss(c.theta), 12);
        await checkObjective(f, eta, 10 * ci + 1);
      }
    }
  });

  it("hvpBlock equals single HVPs; one inner gradient per eta; outputs are the model's", async () => {
    const c = cases[0];
    const { r, eta } = reparametrizations(c.theta, c.spec, 1)[0];
    const inner = makeCase({ widths: [3, 4, 2], batch: 5, loss: "ce", kinkMargin: 0.05, seed: 3 }).reference;
    const f = new ReparametrizedObjective(inner, r);
    const rng = new Rng(4);
    const vs = [0, 1, 2].map(() => rng.normals(r.dimEta));
    const outs = vs.map(() => new Float64Array(r.dimEta));
    await f.hvpBlock(eta, vs, outs);
    for (let j = 0; j < 3; j++) {
      const single = new Float64Array(r.dimEta);
      await f.hvp(eta, vs[j], single);
      assertClose(`block direction ${j}`, outs[j], single, 1e-13);
    }
    await gradientOf(f, eta);
    expect(inner.counters.gradient).toBe(1);
    expect(f.counters).toEqual({ forward: 0, gradient: 1, hvp: 3, blockHvpDirections: 3 });
    await gradientOf(f, axpy(1e-3, vs[0], eta));
    expect(inner.counters.gradient).toBe(2);
    assertClose("outputs", await f.outputs(eta), await c.reference.outputs(c.theta), 1e-12, 1e-14);
    expect(() => new ReparametrizedObjective(inner, new WeightNormalization(cases[1].spec))).toThrow(/maps to \d+ parameters but the objective has \d+/);
  });

  it("at a critical point the eta-Hessian is J^T H J; the second-order term vanishes linearly with g", async () => {
    const { objective, minima } = teacherMinima();
    const star = minima[0];
    const wn = new WeightNormalization(objective.spec);
    const dir = new Rng(2).normals(star.length);
    for (const r of [wn, powerFamily({ centre: axpy(0.4, dir, star), a: 0.7, b: 0.2 })]) {
      const f = new ReparametrizedObjective(objective, r);
      const v = new Rng(3).normals(r.dimEta);
      const at = (t: number) => {
        const theta = axpy(t, dir, star);
        return r === wn ? wn.scaleDirections(wn.inverse(theta), 0.6) : r.inverse!(theta);
      };
      // J^T H J v, assembled by hand from the reference engine.
      const eta = at(0);
      const hJv = new Float64Array(r.dimTheta);
      await objective.hvp(r.phi(eta), r.jvp(eta, v), hJv);
      const full = new Float64Array(r.dimEta);
      await f.hvp(eta, v, full);
      assertClose(`${r.name}: eta-Hessian = J^T H J at the minimum`, full, r.vjp(eta, hJv), 1e-6);
      const sizes = [];
      for (const t of [1e-1, 1e-2, 1e-3, 0]) {
        const terms = await f.hvpTerms(at(t), v);
        const g = await f.thetaGradient(at(t));
        sizes.push({ t, curvature: norm(terms.curvature), pullback: norm(terms.pullback), g: norm(g) });
      }
      // |second-order term| <= C |g|, and |g| ~ t near the minimum.
      for (let i = 0; i + 2 < sizes.length; i++) expect(sizes[i + 1].curvature / sizes[i].curvature).toBeLessThan(0.2);
      expect(sizes[3].curvature / sizes[3].pullback).toBeLessThan(1e-6);
      const ratios = sizes.slice(0, 3).map((s) => s.curvature / s.g);
      expect(Math.max(...ratios) / Math.min(...ratios)).toBeLessThan(3);
    }
  });

  it("T'_alpha scales the weight-norm Hessian block in v by exactly 1/alpha^2 (Lanczos, float64)", async () => {
    const c = cases[0];
    const wn = new WeightNormalization(c.spec);
    const f = new ReparametrizedObjective(c.reference, wn);
    const eta = wn.inverse(c.theta);
    const mask = wn.directionMask();
    const top = async (point: Float64Array) => {
      const op = restrictedOperator(hessianOperator(f, point), mask);
      const r = await lanczosEigenpairs(op, { k: 1, which: "LM", tol: 1e-12, maxSteps: wn.dimEta, seed: 3 });
      return r.eigenvalues[0];
    };
    const base = await top(eta);
    for (const alpha of [0.1, 7]) {
      const scaled = wn.scaleDirections(eta, alpha);
      expect(await f.loss(scaled)).toBeCloseTo(await f.loss(eta), 13);
      const ratio = (await top(scaled)) * alpha ** 2 / base;
      expect(Math.abs(ratio - 1)).toBeLessThan(1e-6);
      // Entry by entry on the v-block.
      const z = new Rng(6).normals(wn.dimEta).map((x, i) => x * mask[i]);
      const a = new Float64Array(wn.dimEta), b = new Float64Array(wn.dimEta);
      await f.hvp(eta, z, a);
      await f.hvp(scaled, z, b);
      assertClose(`v-block at alpha = ${alpha}`, b.map((x, i) => x * mask[i] * alpha ** 2), a.map((x, i) => x * mask[i]), 1e-9);
    }
  });

  it("the radial transformation changes nothing outside its ball", async () => {
    const c = cases[0];
    const offset = new Rng(12).normals(c.theta.length);
    const r = new RadialTransformation({ centre: axpy(1, offset, c.theta), delta: 0.5 * norm(offset), rHat: 0.2, rho: 0.01 });
    const f = new ReparametrizedObjective(c.reference, r);
    const eta = r.inverse(c.theta);
    expect(Array.from(eta)).toEqual(Array.from(c.theta));
    expect(Array.from(r.phi(eta))).toEqual(Array.from(c.theta));
    expect(await f.loss(eta)).toBe(await c.reference.loss(c.theta));
    const g = new Float64Array(c.theta.length);
    await c.reference.gradient(c.theta, g);
    expect(Array.from(await gradientOf(f, eta))).toEqual(Array.from(g));
    const v = new Rng(1).normals(c.theta.length);
    const hv = new Float64Array(v.length), ref = new Float64Array(v.length);
    await f.hvp(eta, v, hv);
    await c.reference.hvp(c.theta, v, ref);
    expect(Array.from(hv)).toEqual(Array.from(ref));
    expect(dot(v, hv)).toBe(dot(v, ref));
  });
});
