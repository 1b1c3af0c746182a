/**
 * The Gauss-Newton operator of the float64 reference: u^T G v = (J u)^T H_L (J v) with J from
 * central differences of the outputs (mse: H_L = 2/(N C) I), positive semi-definite where the
 * Hessian is not, equal to the Hessian where the residuals vanish, and usable by Lanczos.
 */
import { describe, expect, it } from "vitest";
import { gaussNewtonOperator, hessianOperator } from "../../src/metrics/operator.ts";
import { lanczosEigenpairs } from "../../src/metrics/spectrum.ts";
import { symmetricEigen } from "../../src/metrics/tridiagonal.ts";
import { Rng } from "../../src/random.ts";
import { ReferenceObjective } from "../../src/reference/engine.ts";
import { dot, makeCase } from "../support/numeric.ts";

async function dense(apply: (v: Float64Array, out: Float64Array) => Promise<void>, n: number): Promise<Float64Array> {
  const m = new Float64Array(n * n);
  const e = new Float64Array(n);
  const col = new Float64Array(n);
  for (let j = 0; j < n; j++) {
    e.fill(0);
    e[j] = 1;
    await apply(e, col);
    for (let i = 0; i < n; i++) m[i * n + j] = col[i];
  }
  return m;
}

describe("Gauss-Newton operator", () => {
  it("u^T G v equals (J u)^T H_L (J v) with J by central differences (mse)", async () => {
    const c = makeCase({ widths: [3, 5, 2], batch: 9, loss: "mse", seed: 4, kinkMargin: 1e-3 });
    const rng = new Rng(2);
    const u = rng.normals(c.theta.length);
    const v = rng.normals(c.theta.length);
    const gv = new Float64Array(c.theta.length);
    await c.reference.gaussNewtonProduct(c.theta, v, gv);
    const jvp = async (d: Float64Array) => {
      const h = 1e-6;
      const plus = await c.reference.outputs(c.theta.map((t, i) => t + h * d[i]));
      const minus = await c.reference.outputs(c.theta.map((t, i) => t - h * d[i]));
      return plus.map((p, i) => (p - minus[i]) / (2 * h));
    };
    const ju = await jvp(u);
    const jv = await jvp(v);
    const expected = (2 / ju.length) * dot(ju, jv);
    expect(Math.abs(dot(u, gv) - expected)).toBeLessThan(1e-6 * Math.abs(expected) + 1e-9);
  });

  it("is positive semi-definite where the Hessian is indefinite (ce), and Lanczos runs on it", async () => {
    const c = makeCase({ widths: [3, 6, 3], batch: 20, loss: "ce", seed: 8, kinkMargin: 1e-3 });
    const n = c.theta.length;
    const g = await dense((v, out) => c.reference.gaussNewtonProduct(c.theta, v, out), n);
    const h = await dense((v, out) => c.reference.hvp(c.theta, v, out), n);
    const gEig = symmetricEigen(g, n).values;
    const hEig = symmetricEigen(h, n).values;
    expect(hEig[0]).toBeLessThan(-1e-4);
    expect(gEig[0]).toBeGreaterThan(-1e-10 * gEig[n - 1]);
    const top = await lanczosEigenpairs(gaussNewtonOperator(c.reference, c.theta), { k: 1, seed: 1 });
    expect(Math.abs(top.eigenvalues[0] - gEig[n - 1])).toBeLessThan(1e-8 * gEig[n - 1]);
    const hTop = await lanczosEigenpairs(hessianOperator(c.reference, c.theta), { k: 1, seed: 1 });
    expect(Math.abs(hTop.eigenvalues[0] - gEig[n - 1])).toBeGreaterThan(1e-6);
  });

  it("equals the Hessian where the residuals vanish (mse on the model's own outputs)", async () => {
    const c = makeCase({ widths: [2, 4, 2], batch: 12, loss: "mse", seed: 6, kinkMargin: 1e-3 });
    const targets = Float32Array.from(await c.reference.outputs(c.theta));
    const exact = new ReferenceObjective(c.spec, { ...c.data, targets, x: c.data.x }, "mse");
    // f32 targets leave residuals of ~1e-8: the difference is that small, not zero.
    const n = c.theta.length;
    const g = await dense((v, out) => exact.gaussNewtonProduct(c.theta, v, out), n);
    const h = await dense((v, out) => exact.hvp(c.theta, v, out), n);
    let worst = 0;
    let scale = 0;
    for (let i = 0; i < n * n; i++) {
      worst = Math.max(worst, Math.abs(g[i] - h[i]));
      scale = Math.max(scale, Math.abs(h[i]));
    }
    expect(worst).toBeLessThan(1e-6 * scale);
  });
});
