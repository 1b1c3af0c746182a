/**
 * The float64 reference engine checked three ways: central finite differences, dense Hessians
 * of tiny nets, and algebraic identities (symmetry, linearity, the paper's T_alpha identities).
 */
import { describe, expect, it } from "vitest";
import { LOSS_KINDS, type Activation } from "../src/model.ts";
import { Rng } from "../src/random.ts";
import { alphaScale, alphaScaleDiagonal } from "../src/transforms/alphaScale.ts";
import { assertClose, dot, makeCase } from "./support/numeric.ts";

const activations: Activation[] = [{ kind: "relu" }, { kind: "leaky_relu", slope: 0.1 }];
const h = 1e-5;

async function fdGradient(c: ReturnType<typeof makeCase>, theta: Float64Array) {
  const g = new Float64Array(theta.length);
  for (let i = 0; i < theta.length; i++) {
    const p = Float64Array.from(theta);
    p[i] += h;
    const m = Float64Array.from(theta);
    m[i] -= h;
    g[i] = ((await c.reference.loss(p)) - (await c.reference.loss(m))) / (2 * h);
  }
  return g;
}

describe("reference engine", () => {
  for (const loss of LOSS_KINDS) {
    for (const activation of activations) {
      for (const bias of [true, false]) {
        const name = `${loss} ${activation.kind} bias=${bias}`;
        const widths = loss === "logistic" ? [3, 4, 3, 1] : [3, 4, 3, 2];
        it(`gradient matches central differences (${name})`, async () => {
          const c = makeCase({ widths, batch: 7, loss, bias, activation, kinkMargin: 1e-3 });
          const g = c.reference.space.zeros();
          await c.reference.gradient(c.theta, g);
          assertClose("gradient", g, await fdGradient(c, c.theta), 1e-6, 1e-9);
        });
        it(`HVP matches finite differences of gradients and the dense Hessian is symmetric (${name})`, async () => {
          const c = makeCase({ widths, batch: 7, loss, bias, activation, kinkMargin: 1e-3 });
          const n = c.theta.length;
          expect(n).toBeLessThanOrEqual(60);
          const H = await c.reference.denseHessian(c.theta);
          for (let i = 0; i < n; i++) for (let j = 0; j < i; j++) expect(Math.abs(H[i * n + j] - H[j * n + i])).toBeLessThan(1e-12);
          const v = new Rng(3).normals(n);
          const hv = c.reference.space.zeros();
          await c.reference.hvp(c.theta, v, hv);
          const gp = c.reference.space.zeros();
          const gm = c.reference.space.zeros();
          const tp = c.theta.map((t, i) => t + h * v[i]);
          const tm = c.theta.map((t, i) => t - h * v[i]);
          await c.reference.gradient(tp, gp);
          await c.reference.gradient(tm, gm);
          assertClose("Hv vs FD", hv, gp.map((x, i) => (x - gm[i]) / (2 * h)), 1e-6, 1e-9);
          const dense = new Float64Array(n);
          for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) dense[i] += H[i * n + j] * v[j];
          assertClose("Hv vs dense", hv, dense, 1e-12, 1e-15);
        });
      }
    }
  }

  it("cross-layer terms are present: H differs from the Gauss-Newton matrix", async () => {
    const c = makeCase({ widths: [2, 3, 2], batch: 5, loss: "ce", kinkMargin: 1e-3 });
    // Gauss-Newton is positive semi-definite; the exact Hessian away from a minimum is not.
    const H = await c.reference.denseHessian(c.theta);
    const n = c.theta.length;
    let minDiagonalBlockEig = Infinity;
    // Rayleigh quotients along random directions: a negative one proves H is not PSD (GN always is).
    const rng = new Rng(5);
    for (let t = 0; t < 200; t++) {
      const v = rng.normals(n);
      let q = 0;
      for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) q += v[i] * H[i * n + j] * v[j];
      minDiagonalBlockEig = Math.min(minDiagonalBlockEig, q / dot(v, v));
    }
    expect(minDiagonalBlockEig).toBeLessThan(0);
  });

  it("T_alpha keeps outputs and loss, maps the gradient to D^-1 g and the Hessian to D^-1 H D^-1", async () => {
    for (const loss of LOSS_KINDS) {
      const widths = loss === "logistic" ? [3, 5, 4, 1] : [3, 5, 4, 3];
      const c = makeCase({ widths, batch: 9, loss, kinkMargin: 1e-3 });
      const alphas = [4, 0.125, 2];
      const d = alphaScaleDiagonal(c.spec, alphas);
      const scaled = alphaScale(c.spec, c.theta, alphas);
      assertClose(`${loss} outputs`, await c.reference.outputs(scaled), await c.reference.outputs(c.theta), 1e-12);
      expect(await c.reference.loss(scaled)).toBeCloseTo(await c.reference.loss(c.theta), 12);
      const g0 = c.reference.space.zeros();
      const g1 = c.reference.space.zeros();
      await c.reference.gradient(c.theta, g0);
      await c.reference.gradient(scaled, g1);
      assertClose(`${loss} gradient`, g1, g0.map((x, i) => x / d[i]), 1e-10);
      const v = new Rng(11).normals(c.theta.length);
      const hv1 = c.reference.space.zeros();
      await c.reference.hvp(scaled, v, hv1);
      const hv0 = c.reference.space.zeros();
      await c.reference.hvp(c.theta, v.map((x, i) => x / d[i]), hv0);
      assertClose(`${loss} Hessian`, hv1, hv0.map((x, i) => x / d[i]), 1e-10);
    }
  });

  it("rejects alphas whose product is not 1", () => {
    const c = makeCase({ widths: [2, 3, 2], batch: 2, loss: "ce" });
    expect(() => alphaScale(c.spec, c.theta, [2, 2])).toThrow(/multiply to 1/);
  });
});
