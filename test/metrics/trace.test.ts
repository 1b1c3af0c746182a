/**
 * Stochastic trace, diagonal and Frobenius estimates and the SLQ spectral density, against exact
 * values of dense matrices with known spectra and of exact Hessians of tiny ReLU nets (whole and
 * restricted to one layer): estimates within a few of their own standard errors, standard errors
 * matching the closed-form variances, Hutch++'s error falling with more products, Gauss quadrature
 * exactness of SLQ moments, seeding, option checks and disposal.
 */
import { describe, expect, it } from "vitest";
import { InputError } from "../../src/errors.ts";
import { densityMoments, runMoments, spectralDensity } from "../../src/metrics/density.ts";
import { denseOperator, hessianOperator, layerMask, restrictedOperator, type SymmetricOperator } from "../../src/metrics/operator.ts";
import { hessianDiagonal, hutchinsonTrace, hutchPlusPlusTrace, squaredFrobeniusNorm } from "../../src/metrics/trace.ts";
import { symmetricEigen } from "../../src/metrics/tridiagonal.ts";
import { dot, makeCase } from "../support/numeric.ts";
import { counting, denseFromOperator, knownSpectrum } from "../support/operators.ts";

const rel = (a: number, b: number) => Math.abs(a - b) / Math.max(Math.abs(a), Math.abs(b), 1e-300);


const sumSq = (a: Float64Array, n: number, offDiagonalOnly: boolean) => {
  let s = 0;
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) if (!offDiagonalOnly || i !== j) s += a[i * n + j] ** 2;
  return s;
};
const trace = (a: Float64Array, n: number) => Array.from({ length: n }, (_, i) => a[i * n + i]).reduce((x, y) => x + y, 0);

// 120 x 120, spectrum with negatives: trace 120 * mean.
const N = 120;
const EIG = Array.from({ length: N }, (_, i) => 3 * Math.cos(i) + 0.5);
const A = knownSpectrum(EIG).a;
const TRACE = EIG.reduce((x, y) => x + y, 0);


describe("Hutchinson", () => {
  it("within its standard error, which matches the closed-form variance (Rademacher and Gaussian)", async () => {
    const samples = 400;
    const r = await hutchinsonTrace(denseOperator(A, N), { samples });
    expect(r.method).toBe("hutchinson");
    expect(r.samples).toBe(samples);
    expect(r.probeValues.length).toBe(samples);
    expect(r.matvecs).toBe(samples);
    expect(Math.abs(r.estimate - TRACE)).toBeLessThan(4 * r.stderr);
    // Var(z^T A z) = 2 sum_{i != j} A_ij^2 (Rademacher), 2 ||A||_F^2 (Gaussian).
    expect(rel(r.stderr, Math.sqrt((2 * sumSq(A, N, true)) / samples))).toBeLessThan(0.2);
    const g = await hutchinsonTrace(denseOperator(A, N), { samples, distribution: "gaussian", seed: 3 });
    expect(g.distribution).toBe("gaussian");
    expect(Math.abs(g.estimate - TRACE)).toBeLessThan(4 * g.stderr);
    expect(rel(g.stderr, Math.sqrt((2 * sumSq(A, N, false)) / samples))).toBeLessThan(0.2);
  });

  it("block size does not change the probes; the seed does", async () => {
    const run = (seed: number, blockSize: number) => hutchinsonTrace(denseOperator(A, N), { samples: 20, seed, blockSize });
    const a = await run(4, 1);
    expect((await run(4, 8)).probeValues).toEqual(a.probeValues);
    expect((await run(4, 13)).probeValues).toEqual(a.probeValues);
    expect((await run(5, 8)).estimate).not.toBe(a.estimate);
  });
});

describe("Hutch++", () => {
  // A decaying spectrum (Hutch++'s case), negatives included.
  const n = 150;
  const eig = Array.from({ length: n }, (_, i) => (i % 3 === 2 ? -1 : 1) * 30 / (i + 1) ** 1.2);
  const a = knownSpectrum(eig, 9).a;
  const tr = eig.reduce((x, y) => x + y, 0);

  it("error falls with more products and stays within a few reported standard errors", async () => {
    const seeds = [1, 2, 3, 4, 5, 6, 7, 8];
    const meanError: number[] = [];
    for (const m of [30, 90, 270]) {
      let err = 0;
      for (const seed of seeds) {
        const r = await hutchPlusPlusTrace(denseOperator(a, n), { matvecs: m, seed });
        expect(r.matvecs).toBe(m);
        expect(r.sketchRank).toBe(m / 3);
        expect(r.estimate).toBeCloseTo(r.exactPart + r.residualPart, 10);
        expect(Math.abs(r.estimate - tr)).toBeLessThan(5 * r.stderr);
        err += Math.abs(r.estimate - tr) / seeds.length;
      }
      meanError.push(err);
    }
    expect(meanError[1]).toBeLessThan(meanError[0]);
    expect(meanError[2]).toBeLessThan(0.5 * meanError[1]);
    // And beats Hutchinson at the same cost here.
    let hutch = 0;
    for (const seed of seeds) hutch += Math.abs((await hutchinsonTrace(denseOperator(a, n), { samples: 90, seed })).estimate - tr) / seeds.length;
    expect(meanError[1]).toBeLessThan(hutch);
  });

  it("exact once the sketch spans the space; dependent columns are dropped", async () => {
    const r = await hutchPlusPlusTrace(denseOperator(a, n), { matvecs: 3 * n + 30 });
    expect(r.sketchRank).toBe(n);
    expect(r.matvecs).toBe(3 * n + 30);
    expect(Math.abs(r.estimate - tr)).toBeLessThan(1e-9 * Math.abs(tr) + 1e-9);
    expect(Math.abs(r.residualPart)).toBeLessThan(1e-9);
  });
});

describe("diagonal and Frobenius norm", () => {
  const n = 30;
  // Diagonally dominant: d_i in [1, 5] plus a small rotated part.
  const base = knownSpectrum(Array.from({ length: n }, (_, i) => Math.sin(3 * i)), 12).a;
  const a = base.map((x, idx) => 0.3 * x + (Math.floor(idx / n) === idx % n ? 1 + 4 * ((idx % 7) / 6) : 0));
  const diag = Float64Array.from({ length: n }, (_, i) => a[i * n + i]);

  it("diagonal estimate: close to the true diagonal, errors within the per-entry standard errors", async () => {
    const samples = 2000;
    const r = await hessianDiagonal(denseOperator(a, n), { samples });
    expect(r.samples).toBe(samples);
    expect(r.matvecs).toBe(samples);
    let worst = 0;
    for (let i = 0; i < n; i++) {
      worst = Math.max(worst, Math.abs(r.diagonal[i] - diag[i]) / r.stderr[i]);
      // Var(z_i (Az)_i) = sum_{j != i} A_ij^2 for Rademacher z.
      let off = 0;
      for (let j = 0; j < n; j++) if (j !== i) off += a[i * n + j] ** 2;
      expect(rel(r.stderr[i], Math.sqrt(off / samples))).toBeLessThan(0.15);
    }
    expect(worst).toBeLessThan(4.5);
    const e = Array.from(diag, (d, i) => d - r.diagonal[i]);
    expect(Math.sqrt(dot(e, e) / dot(diag, diag))).toBeLessThan(0.02);
    const g = await hessianDiagonal(denseOperator(a, n), { samples, distribution: "gaussian", seed: 4 });
    const eg = Array.from(diag, (d, i) => d - g.diagonal[i]);
    expect(Math.sqrt(dot(eg, eg) / dot(diag, diag))).toBeLessThan(0.05);
  });

  it("squared Frobenius norm within its standard error", async () => {
    const exact = sumSq(A, N, false);
    for (const distribution of ["rademacher", "gaussian"] as const) {
      const r = await squaredFrobeniusNorm(denseOperator(A, N), { samples: 300, distribution, seed: 6 });
      expect(r.matvecs).toBe(300);
      expect(Math.abs(r.estimate - exact)).toBeLessThan(4 * r.stderr);
      expect(rel(r.estimate, exact)).toBeLessThan(0.1);
    }
  });
});

describe("stochastic Lanczos quadrature", () => {
  it("diagonal matrix: every run's moments are exact (Gauss quadrature, z_i^2 = 1); density mass per cluster", async () => {
    // 70 eigenvalues in [-0.5, 0.5], 30 in [4, 5].
    const n = 100;
    const eig = Array.from({ length: n }, (_, i) => (i < 70 ? -0.5 + i / 69 : 4 + (i - 70) / 29));
    const a = new Float64Array(n * n);
    eig.forEach((e, i) => (a[i * n + i] = e));
    const r = await spectralDensity(denseOperator(a, n), { runs: 4, steps: 20, seed: 2 });
    expect(r.nodes.length).toBe(4);
    expect(r.matvecs).toBe(80);
    for (let p = 0; p <= 3; p++) {
      const exact = eig.reduce((s, e) => s + e ** p, 0) / n;
      runMoments(r.nodes, r.weights, p).forEach((x) => expect(Math.abs(x - exact)).toBeLessThan(1e-10 * Math.max(1, Math.abs(exact))));
      expect(Math.abs(densityMoments(r.nodes, r.weights, p) - exact)).toBeLessThan(1e-10 * Math.max(1, Math.abs(exact)));
    }
    r.weights.forEach((w) => expect(Math.abs(w.reduce((x, y) => x + y, 0) - 1)).toBeLessThan(1e-12));
    r.nodes.flat().forEach((t) => {
      expect(t).toBeGreaterThanOrEqual(-0.5 - 1e-9);
      expect(t).toBeLessThanOrEqual(5 + 1e-9);
    });
    const h = r.grid[1] - r.grid[0];
    const mass = (lo: number, hi: number) => r.density.reduce((s, d, i) => s + (r.grid[i] >= lo && r.grid[i] < hi ? d * h : 0), 0);
    expect(Math.abs(mass(-Infinity, Infinity) - 1)).toBeLessThan(1e-3);
    expect(Math.abs(mass(2.25, Infinity) - 0.3)).toBeLessThan(0.01);
    expect(r.grid.length).toBe(1000);
    expect(r.sigma).toBeCloseTo((Math.max(...r.nodes.flat()) - Math.min(...r.nodes.flat())) / 20, 12);
  });

  it("rotated matrix: moments within sampling error of (1/n) tr(A^p); breakdown ends a run early", async () => {
    const r = await spectralDensity(denseOperator(A, N), { runs: 40, steps: 30, seed: 1 });
    const lo = Math.min(...EIG);
    const hi = Math.max(...EIG);
    r.nodes.flat().forEach((t) => expect(t >= lo - 1e-9 && t <= hi + 1e-9).toBe(true));
    for (let p = 1; p <= 3; p++) {
      const exact = EIG.reduce((s, e) => s + e ** p, 0) / N;
      const per = runMoments(r.nodes, r.weights, p);
      const mean = per.reduce((x, y) => x + y, 0) / per.length;
      const se = Math.sqrt(per.reduce((s, x) => s + (x - mean) ** 2, 0) / (per.length - 1) / per.length);
      expect(Math.abs(densityMoments(r.nodes, r.weights, p) - exact)).toBeLessThan(4 * se);
      expect(se).toBeLessThan(0.05 * EIG.reduce((s, e) => s + Math.abs(e) ** p, 0) / N);
    }
    // Few distinct eigenvalues: the Krylov space is invariant after 3 steps.
    const few = knownSpectrum([...Array(10).fill(2), ...Array(10).fill(-1), ...Array(10).fill(0.5)], 3).a;
    const f = await spectralDensity(denseOperator(few, 30), { runs: 2, steps: 20 });
    f.nodes.forEach((nodes, i) => {
      expect(nodes.length).toBe(3);
      [-1, 0.5, 2].forEach((want, j) => expect(Math.abs(nodes[j] - want)).toBeLessThan(1e-10));
      expect(Math.abs(f.weights[i].reduce((x, y) => x + y, 0) - 1)).toBeLessThan(1e-12);
    });
  });

  it("ReLU net Hessian: moments p = 0..2 against the dense spectrum", async () => {
    const c = makeCase({ widths: [3, 5, 4], batch: 16, loss: "mse", seed: 3 });
    const op = hessianOperator(c.reference, c.theta);
    const n = op.dim;
    const ev = symmetricEigen(await denseFromOperator(op), n).values;
    const r = await spectralDensity(op, { runs: 30, steps: 20, seed: 5 });
    expect(densityMoments(r.nodes, r.weights, 0)).toBeCloseTo(1, 12);
    for (const p of [1, 2]) {
      const exact = ev.reduce((s, e) => s + e ** p, 0) / n;
      const per = runMoments(r.nodes, r.weights, p);
      const mean = per.reduce((x, y) => x + y, 0) / per.length;
      const se = Math.sqrt(per.reduce((s, x) => s + (x - mean) ** 2, 0) / (per.length - 1) / per.length);
      expect(Math.abs(mean - exact)).toBeLessThan(4 * se);
    }
    r.nodes.flat().forEach((t) => expect(t >= ev[0] - 1e-9 && t <= ev[n - 1] + 1e-9).toBe(true));
  });
});

describe("restricted to one layer", () => {
  it("trace and diagonal of the principal block of the dense Hessian", async () => {
    const c = makeCase({ widths: [3, 5, 4], batch: 16, loss: "ce", seed: 3 });
    const op = hessianOperator(c.reference, c.theta);
    const n = op.dim;
    const h = await denseFromOperator(op);
    const mask = layerMask(c.spec, ["1"]);
    const idx = Array.from(mask.keys()).filter((i) => mask[i] === 1);
    const blockTrace = idx.reduce((s, i) => s + h[i * n + i], 0);
    expect(Math.abs(blockTrace - trace(h, n))).toBeGreaterThan(1e-3); // not the whole trace
    const restricted = restrictedOperator(op, c.reference.space.fromArray(mask));
    // The sketch (44 columns) spans the block's range (24 parameters; rank 18 with cross-entropy's
    // softmax shift invariance): exact, and its rank is the block's.
    const b = idx.length;
    const block = new Float64Array(b * b);
    idx.forEach((i, r) => idx.forEach((j, s) => (block[r * b + s] = h[i * n + j])));
    const ev = symmetricEigen(block, b).values;
    const rank = ev.filter((e) => Math.abs(e) > 1e-8 * Math.max(...ev.map(Math.abs))).length;
    const pp = await hutchPlusPlusTrace(restricted, { matvecs: 132 });
    expect(pp.sketchRank).toBe(rank);
    expect(Math.abs(pp.estimate - blockTrace)).toBeLessThan(1e-10);
    const hu = await hutchinsonTrace(restricted, { samples: 300 });
    expect(Math.abs(hu.estimate - blockTrace)).toBeLessThan(4 * hu.stderr);
    const d = await hessianDiagonal(restricted, { samples: 10 });
    for (let i = 0; i < n; i++) if (mask[i] === 0) expect(d.diagonal[i]).toBe(0);
  });
});

describe("seeding, options, disposal", () => {
  it("same seed, same numbers; another seed, others", async () => {
    const op = () => denseOperator(A, N);
    const strip = <T extends { wallMs: number }>(r: T) => ({ ...r, wallMs: 0 });
    const cases: [string, (seed: number) => Promise<{ wallMs: number }>][] = [
      ["hutchinson", (seed) => hutchinsonTrace(op(), { samples: 10, seed })],
      ["hutch++", (seed) => hutchPlusPlusTrace(op(), { matvecs: 30, seed })],
      ["diagonal", (seed) => hessianDiagonal(op(), { samples: 10, seed })],
      ["frobenius", (seed) => squaredFrobeniusNorm(op(), { samples: 10, seed })],
      ["density", (seed) => spectralDensity(op(), { runs: 2, steps: 10, gridPoints: 50, seed })],
    ];
    for (const [, run] of cases) {
      const [a, b, other] = [strip(await run(11)), strip(await run(11)), strip(await run(12))];
      expect(a).toEqual(b);
      expect(other).not.toEqual(a);
    }
  });

  it("bad options throw InputError naming the option", async () => {
    const op = denseOperator(A, N);
    const rejects = async (p: Promise<unknown>, name: RegExp) => {
      await expect(p).rejects.toThrow(InputError);
      await expect(p).rejects.toThrow(name);
    };
    await rejects(hutchinsonTrace(op, { samples: 0 }), /samples/);
    await rejects(hutchinsonTrace(op, { samples: 2.5 }), /samples/);
    await rejects(hutchinsonTrace(op, { blockSize: 0 }), /blockSize/);
    await rejects(hutchinsonTrace(op, { distribution: "uniform" as "gaussian" }), /distribution/);
    await rejects(hutchinsonTrace(op, { seed: NaN }), /seed/);
    await rejects(hutchPlusPlusTrace(op, { matvecs: 2 }), /matvecs/);
    await rejects(hutchPlusPlusTrace(op, { matvecs: -3 }), /matvecs/);
    await rejects(hessianDiagonal(op, { samples: 0 }), /samples/);
    await rejects(squaredFrobeniusNorm(op, { distribution: "x" as "gaussian" }), /distribution/);
    await rejects(spectralDensity(op, { runs: 0 }), /runs/);
    await rejects(spectralDensity(op, { steps: 1.5 }), /steps/);
    await rejects(spectralDensity(op, { gridPoints: 1 }), /gridPoints/);
    await rejects(spectralDensity(op, { sigma: -1 }), /sigma/);
    await rejects(spectralDensity(op, { gridPadding: -0.1 }), /gridPadding/);
    expect(() => densityMoments([[1]], [[1]], -1)).toThrow(InputError);
  });

  it("every temporary vector is disposed, on success and on error", async () => {
    const dense = () => denseOperator(A, N);
    const runs: ((op: SymmetricOperator<Float64Array>) => Promise<unknown>)[] = [
      (op) => hutchinsonTrace(op, { samples: 21, blockSize: 4 }),
      (op) => hutchPlusPlusTrace(op, { matvecs: 30 }),
      (op) => hutchPlusPlusTrace(op, { matvecs: 3 * N + 3 }), // drops dependent columns
      (op) => hessianDiagonal(op, { samples: 9 }),
      (op) => squaredFrobeniusNorm(op, { samples: 9 }),
      (op) => spectralDensity(op, { runs: 2, steps: 10, gridPoints: 20 }),
    ];
    for (const run of runs) {
      const c = counting(dense());
      await run(c.op);
      expect(c.live.size).toBe(0);
      const total = c.calls();
      for (const at of [1, Math.ceil(total / 2), total]) {
        const f = counting(dense(), at);
        await expect(run(f.op)).rejects.toThrow(/injected/);
        expect(f.live.size).toBe(0);
      }
    }
  });
});
