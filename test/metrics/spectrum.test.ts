/**
 * Eigensolvers over the SymmetricOperator seam: the host tridiagonal and Jacobi solvers, Lanczos
 * (LA / SA / LM, early stop, true residuals, restarts after breakdown) and deflated power
 * iteration, on dense matrices with known spectra (negative, clustered and repeated eigenvalues)
 * and on exact Hessians of tiny ReLU nets, whole and restricted to one layer; seeding, option
 * checks and disposal of every temporary vector.
 */
import { describe, expect, it } from "vitest";
import { InputError } from "../../src/errors.ts";
import { denseOperator, hessianOperator, layerMask, restrictedOperator, type SymmetricOperator } from "../../src/metrics/operator.ts";
import { lanczosEigenpairs, powerIteration } from "../../src/metrics/spectrum.ts";
import { symmetricEigen, tridiagonalEigen } from "../../src/metrics/tridiagonal.ts";
import { Rng } from "../../src/random.ts";
import { dot, makeCase } from "../support/numeric.ts";
import { counting, denseFromOperator, knownSpectrum } from "../support/operators.ts";

const rel = (a: number, b: number) => Math.abs(a - b) / Math.max(Math.abs(a), Math.abs(b), 1e-300);

// 200 x 200: a dominant negative eigenvalue, a top cluster (9.6, 9.5, 9.45), a close pair at the bottom, a bulk in [-2, 4].
const SPECTRUM = (() => {
  const e = [12, 10, 9.6, 9.5, 9.45, -15, -6, -5.9];
  const rng = new Rng(99);
  while (e.length < 200) e.push(-2 + 6 * rng.uniform());
  return e;
})();
const A = knownSpectrum(SPECTRUM);


describe("host eigensolvers", () => {
  it("tridiagonal QL agrees with Jacobi, eigenvectors orthonormal, end components match", () => {
    for (const m of [1, 2, 5, 40]) {
      const rng = new Rng(m);
      const alpha = rng.normals(m);
      const beta = rng.normals(m - 1);
      if (m > 3) beta[2] = 0; // a split
      const dense = new Float64Array(m * m);
      for (let i = 0; i < m; i++) {
        dense[i * m + i] = alpha[i];
        if (i + 1 < m) dense[i * m + i + 1] = dense[(i + 1) * m + i] = beta[i];
      }
      const t = tridiagonalEigen(alpha, beta);
      const ends = tridiagonalEigen(alpha, beta, { vectors: false });
      const j = symmetricEigen(dense, m);
      const v = t.vectors!;
      for (let i = 0; i < m; i++) {
        expect(Math.abs(t.values[i] - j.values[i])).toBeLessThan(1e-12);
        expect(ends.values[i]).toBe(t.values[i]);
        expect(ends.first[i]).toBeCloseTo(v[i], 14);
        expect(ends.last[i]).toBeCloseTo(v[(m - 1) * m + i], 14);
        for (let r = 0; r < m; r++) {
          let av = 0;
          for (let c = 0; c < m; c++) av += dense[r * m + c] * v[c * m + i];
          expect(Math.abs(av - t.values[i] * v[r * m + i])).toBeLessThan(1e-12);
        }
        for (let i2 = 0; i2 < m; i2++) {
          let g = 0;
          for (let r = 0; r < m; r++) g += v[r * m + i] * v[r * m + i2];
          expect(Math.abs(g - (i === i2 ? 1 : 0))).toBeLessThan(1e-12);
        }
      }
      if (m > 1) expect(t.values[m - 1]).toBeGreaterThan(t.values[0]);
    }
  });

  it("Jacobi recovers a known spectrum", () => {
    const eig = [3, -2, 0.5, 0.5, 1e-3, -7];
    const { a, n } = knownSpectrum(eig, 8);
    const got = symmetricEigen(a, n).values;
    const want = [...eig].sort((x, y) => x - y);
    want.forEach((w, i) => expect(Math.abs(got[i] - w)).toBeLessThan(1e-13));
    expect(() => symmetricEigen(a, n + 1)).toThrow(InputError);
  });
});

describe("Lanczos on a dense matrix with a known spectrum", () => {
  it("LA top-3 (within a cluster): values, true residuals, vectors, early stop", async () => {
    const op = denseOperator(A.a, A.n);
    const r = await lanczosEigenpairs(op, { k: 3, which: "LA", keepVectors: true });
    expect(r.method).toBe("lanczos");
    [12, 10, 9.6].forEach((w, i) => expect(rel(r.eigenvalues[i], w)).toBeLessThan(1e-4));
    expect(r.converged).toEqual([true, true, true]);
    r.residuals.forEach((res, i) => expect(res).toBeLessThanOrEqual(1e-5 * Math.abs(r.eigenvalues[i])));
    // In float64 the Ritz estimates |beta_m s_mi| equal the true residuals.
    r.ritzResiduals.forEach((e, i) => expect(Math.abs(e - r.residuals[i])).toBeLessThan(1e-3 * r.residuals[i] + 1e-12));
    // Early stop: far fewer steps than the dimension; one product per step plus k for the residuals.
    expect(r.steps).toBeLessThan(60);
    expect(r.matvecs).toBe(r.steps + 3);
    // The returned vectors are unit eigenvectors: |<y, q_true>| ~ 1.
    [0, 1, 2].forEach((i) => {
      const y = r.vectors![i];
      expect(dot(y, y)).toBeCloseTo(1, 12);
      expect(Math.abs(dot(y, A.q[i]))).toBeGreaterThan(1 - 1e-6);
    });
  });

  it("full reorthogonalization: no ghost copies long after convergence, orthonormal Ritz vectors", async () => {
    for (const which of ["LA", "SA"] as const) {
      const r = await lanczosEigenpairs(denseOperator(A.a, A.n), { k: 3, which, maxSteps: 150, tol: 1e-300, keepVectors: true });
      expect(r.steps).toBe(150);
      const want = which === "LA" ? [12, 10, 9.6] : [-15, -6, -5.9];
      want.forEach((w, i) => expect(rel(r.eigenvalues[i], w)).toBeLessThan(1e-10));
      r.residuals.forEach((res) => expect(res).toBeLessThan(1e-8));
      // tol 1e-300 is out of reach; a pair counts as converged only if its residual reached working
      // precision (10 eps ||A||), so the flags may go either way here: the residuals above are the check.
      const y = r.vectors!;
      for (let i = 0; i < 3; i++) for (let j = 0; j < 3; j++) expect(Math.abs(dot(y[i], y[j]) - (i === j ? 1 : 0))).toBeLessThan(1e-10);
    }
  });

  it("SA finds the smallest eigenvalues; LM picks the dominant negative one", async () => {
    const sa = await lanczosEigenpairs(denseOperator(A.a, A.n), { k: 2, which: "SA" });
    expect(rel(sa.eigenvalues[0], -15)).toBeLessThan(1e-4);
    expect(rel(sa.eigenvalues[1], -6)).toBeLessThan(1e-4);
    expect(sa.converged).toEqual([true, true]);
    const lm = await lanczosEigenpairs(denseOperator(A.a, A.n), { k: 2, which: "LM" });
    expect(rel(lm.eigenvalues[0], -15)).toBeLessThan(1e-4);
    expect(rel(lm.eigenvalues[1], 12)).toBeLessThan(1e-4);
    const la = await lanczosEigenpairs(denseOperator(A.a, A.n), { k: 1 });
    expect(rel(la.eigenvalues[0], 12)).toBeLessThan(1e-4);
  });

  it("an unconverged pair is reported as such (bulk eigenvalue, few steps)", async () => {
    const r = await lanczosEigenpairs(denseOperator(A.a, A.n), { k: 1, which: "SA", maxSteps: 4 });
    expect(r.steps).toBe(4);
    expect(r.converged).toEqual([false]);
    expect(r.residuals[0]).toBeGreaterThan(1e-3);
  });

  it("repeated eigenvalues: restarts after breakdown find every copy", async () => {
    const eig = [...Array(10).fill(3), ...Array(10).fill(1), ...Array(10).fill(-2)];
    const { a, n } = knownSpectrum(eig, 4);
    const la = await lanczosEigenpairs(denseOperator(a, n), { k: 2 });
    la.eigenvalues.forEach((x) => expect(Math.abs(x - 3)).toBeLessThan(1e-10));
    expect(la.converged).toEqual([true, true]);
    // Three blocks of 3 steps: the third no longer changes the top two.
    expect(la.steps).toBe(9);
    const sa = await lanczosEigenpairs(denseOperator(a, n), { k: 3, which: "SA" });
    sa.eigenvalues.forEach((x) => expect(Math.abs(x + 2)).toBeLessThan(1e-10));
    expect(sa.steps).toBe(12);
  });

  it("power iteration agrees with Lanczos LM", async () => {
    const p = await powerIteration(denseOperator(A.a, A.n), { k: 2, keepVectors: true });
    expect(p.method).toBe("power");
    expect(rel(p.eigenvalues[0], -15)).toBeLessThan(1e-4);
    expect(rel(p.eigenvalues[1], 12)).toBeLessThan(1e-4);
    expect(p.converged).toEqual([true, true]);
    p.iterations.forEach((it) => expect(it).toBeLessThan(100));
    expect(p.matvecs).toBe(p.iterations[0] + p.iterations[1]);
    expect(Math.abs(dot(p.vectors![0], A.q[5]))).toBeGreaterThan(1 - 1e-4);
    expect(Math.abs(dot(p.vectors![1], A.q[0]))).toBeGreaterThan(1 - 1e-4);
    // Without enough iterations it says so.
    const short = await powerIteration(denseOperator(A.a, A.n), { k: 1, maxIter: 5 });
    expect(short.converged).toEqual([false]);
    expect(short.iterations).toEqual([5]);
  });
});

describe("Lanczos on exact Hessians of tiny ReLU nets", () => {
  for (const loss of ["ce", "mse"] as const) {
    it(`${loss}: LA, SA, LM and power iteration match the dense Hessian's spectrum`, async () => {
      const c = makeCase({ widths: [3, 5, 4], batch: 16, loss, seed: 3 });
      const op = hessianOperator(c.reference, c.theta);
      expect(op.dim).toBeLessThanOrEqual(60);
      const h = await denseFromOperator(op);
      const ev = Array.from(symmetricEigen(h, op.dim).values);
      const desc = [...ev].reverse();
      const byMag = [...ev].sort((x, y) => Math.abs(y) - Math.abs(x));
      const la = await lanczosEigenpairs(op, { k: 3 });
      const sa = await lanczosEigenpairs(op, { k: 2, which: "SA" });
      const lm = await lanczosEigenpairs(op, { k: 2, which: "LM" });
      for (const [r, want] of [[la, desc], [sa, ev], [lm, byMag]] as const) {
        r.eigenvalues.forEach((x, i) => expect(rel(x, want[i])).toBeLessThan(1e-4));
        expect(r.converged.every(Boolean)).toBe(true);
      }
      expect(ev[0]).toBeLessThan(-0.1); // the SA check is about a real negative eigenvalue
      const p = await powerIteration(op, { k: 1, seed: 2 });
      expect(rel(p.eigenvalues[0], byMag[0])).toBeLessThan(1e-4);
    });
  }

  it("restricted to one layer: the top eigenvalue of the principal block", async () => {
    const c = makeCase({ widths: [3, 5, 4], batch: 16, loss: "ce", seed: 3 });
    const op = hessianOperator(c.reference, c.theta);
    const h = await denseFromOperator(op);
    const n = op.dim;
    for (const layer of ["0", "1"]) {
      const mask = layerMask(c.spec, [layer]);
      const idx = Array.from(mask.keys()).filter((i) => mask[i] === 1);
      const b = idx.length;
      const block = new Float64Array(b * b);
      idx.forEach((i, r) => idx.forEach((j, s) => (block[r * b + s] = h[i * n + j])));
      const top = symmetricEigen(block, b).values[b - 1];
      const r = await lanczosEigenpairs(restrictedOperator(op, c.reference.space.fromArray(mask)), { k: 1 });
      expect(rel(r.eigenvalues[0], top)).toBeLessThan(1e-4);
      // Not the whole Hessian's (the test would pass vacuously otherwise).
      expect(rel(symmetricEigen(h, n).values[n - 1], top)).toBeGreaterThan(1e-3);
    }
  });
});

describe("seeding, options, disposal", () => {
  it("same seed, same numbers; another seed, another run", async () => {
    const run = (seed: number) => lanczosEigenpairs(denseOperator(A.a, A.n), { k: 2, seed });
    const [a, b, other] = [await run(7), await run(7), await run(8)];
    expect({ ...a, wallMs: 0 }).toEqual({ ...b, wallMs: 0 });
    expect(other.ritzResiduals).not.toEqual(a.ritzResiduals);
    const p = (seed: number) => powerIteration(denseOperator(A.a, A.n), { seed });
    const [p1, p2, p3] = [await p(1), await p(1), await p(2)];
    expect(p1.eigenvalues).toEqual(p2.eigenvalues);
    expect(p3.eigenvalues).not.toEqual(p1.eigenvalues);
  });

  it("bad options throw InputError naming the option", async () => {
    const op = denseOperator(A.a, A.n);
    const bad: [Parameters<typeof lanczosEigenpairs>[1], RegExp][] = [
      [{ k: 0 }, /k/],
      [{ k: 1.5 }, /k/],
      [{ k: 201 }, /k/],
      [{ which: "XX" as "LA" }, /which/],
      [{ tol: -1 }, /tol/],
      [{ tol: NaN }, /tol/],
      [{ maxSteps: 0 }, /maxSteps/],
      [{ k: 5, maxSteps: 3 }, /maxSteps/],
      [{ seed: 0.5 }, /seed/],
    ];
    for (const [o, msg] of bad) {
      await expect(lanczosEigenpairs(op, o)).rejects.toThrow(InputError);
      await expect(lanczosEigenpairs(op, o)).rejects.toThrow(msg);
    }
    await expect(powerIteration(op, { maxIter: 0 })).rejects.toThrow(/maxIter/);
    await expect(powerIteration(op, { k: -1 })).rejects.toThrow(InputError);
    await expect(powerIteration(op, { tol: 0 })).rejects.toThrow(/tol/);
    expect(() => tridiagonalEigen([], [])).toThrow(InputError);
  });

  it("every temporary vector is disposed, on success and on error", async () => {
    const dense = () => denseOperator(A.a, A.n);
    let c = counting(dense());
    await lanczosEigenpairs(c.op, { k: 3 });
    expect(c.live.size).toBe(0);
    expect(c.allocated()).toBeGreaterThan(10);
    c = counting(dense());
    const kept = await lanczosEigenpairs(c.op, { k: 2, keepVectors: true });
    expect(c.live.size).toBe(2);
    kept.vectors!.forEach((v) => c.op.space.dispose(v));
    expect(c.live.size).toBe(0);
    c = counting(dense());
    const pk = await powerIteration(c.op, { k: 2, keepVectors: true });
    expect(c.live.size).toBe(2);
    pk.vectors!.forEach((v) => c.op.space.dispose(v));
    c = counting(dense());
    await powerIteration(c.op, { k: 2 });
    expect(c.live.size).toBe(0);
    // Failures in the recurrence, in the residual products and in power iteration.
    for (const at of [5, 21]) {
      c = counting(dense(), at);
      await expect(lanczosEigenpairs(c.op, { k: 2, maxSteps: 20 })).rejects.toThrow(/injected/);
      expect(c.live.size).toBe(0);
    }
    c = counting(dense(), 60);
    await expect(powerIteration(c.op, { k: 2 })).rejects.toThrow(/injected/);
    expect(c.live.size).toBe(0);
    // Restricted operators allocate their own temporaries through the same space.
    const h = counting(dense());
    const mask = new Float64Array(A.n).fill(1, 0, 50);
    const m = h.op.space.fromArray(mask);
    await lanczosEigenpairs(restrictedOperator(h.op, m), { k: 1 });
    expect(h.live.size).toBe(1);
  });
});
