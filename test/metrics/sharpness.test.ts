/**
 * Sharpness and volume-flatness metrics, checked against closed forms on float64 quadratics
 * (L = ½ θᵀHθ + c) and on tiny ReLU nets: the second-order limit of Dinh's ε-sharpness at a
 * minimum, invariance of adaptive sharpness under T_alpha and neuron-wise rescaling (and the
 * non-invariance of the others), seeding, and m-sharpness bookkeeping.
 */
import { describe, expect, it } from "vitest";
import type { Dataset } from "../../src/data.ts";
import { mlpSpec, parameterLayout, type ModelSpec } from "../../src/model.ts";
import { type Objective, zeroCounters } from "../../src/objective.ts";
import { Rng } from "../../src/random.ts";
import { HostVectorSpace } from "../../src/hostVectorSpace.ts";
import { ReferenceObjective } from "../../src/reference/engine.ts";
import { alphaScale } from "../../src/transforms/alphaScale.ts";
import { apgdCheckpoints } from "../../src/metrics/ascent.ts";
import {
  adaptiveSharpness,
  epsilonSharpness,
  keskarSubspaceBasis,
  mSharpness,
  samSharpness,
  volumeFlatness,
} from "../../src/metrics/sharpness.ts";
import { logGamma, logUnitBallVolume, volumeScales } from "../../src/metrics/volume.ts";
import { logVolumeFactor } from "../../src/transforms/flatten.ts";
import { dot, makeCase } from "../support/numeric.ts";

/** L(θ) = ½ θᵀHθ + c over float64 host vectors. */
class Quadratic implements Objective<Float64Array> {
  readonly space: HostVectorSpace;
  readonly counters = zeroCounters();
  readonly spec: ModelSpec;
  readonly lossKind = "mse" as const;
  readonly sampleCount = 1;
  constructor(readonly h: Float64Array, readonly n: number, readonly c: number) {
    this.space = new HostVectorSpace(n);
    this.spec = mlpSpec([n, 1], { bias: false });
  }
  private mul(v: Float64Array, out: Float64Array) {
    for (let i = 0; i < this.n; i++) {
      let s = 0;
      for (let j = 0; j < this.n; j++) s += this.h[i * this.n + j] * v[j];
      out[i] = s;
    }
  }
  private value(theta: Float64Array) {
    const hv = new Float64Array(this.n);
    this.mul(theta, hv);
    return 0.5 * dot(theta, hv) + this.c;
  }
  loss(theta: Float64Array) {
    this.counters.forward++;
    return Promise.resolve(this.value(theta));
  }
  gradient(theta: Float64Array, out: Float64Array) {
    this.counters.gradient++;
    this.mul(theta, out);
    return Promise.resolve(this.value(theta));
  }
  hvp(_theta: Float64Array, v: Float64Array, out: Float64Array) {
    this.counters.hvp++;
    this.mul(v, out);
    return Promise.resolve();
  }
  hvpBlock(_theta: Float64Array, vs: Float64Array[], outs: Float64Array[]) {
    this.counters.blockHvpDirections += vs.length;
    vs.forEach((v, j) => this.mul(v, outs[j]));
    return Promise.resolve();
  }
  outputs(theta: Float64Array) {
    return Promise.resolve(Float64Array.of(this.value(theta)));
  }
  dispose() {}
}

/** H = Q diag(eigenvalues) Qᵀ with a seeded random orthogonal Q. */
function rotatedQuadratic(eigenvalues: number[], c: number, seed = 3): Quadratic {
  const n = eigenvalues.length;
  const rng = new Rng(seed);
  const q: Float64Array[] = [];
  for (let j = 0; j < n; j++) {
    const v = rng.normals(n);
    for (const u of q) {
      const d = dot(u, v);
      for (let i = 0; i < n; i++) v[i] -= d * u[i];
    }
    const norm = Math.sqrt(dot(v, v));
    q.push(v.map((x) => x / norm));
  }
  const h = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) for (let k = 0; k < n; k++) h[i * n + j] += q[k][i] * eigenvalues[k] * q[k][j];
  return new Quadratic(h, n, c);
}

function diagonalQuadratic(diag: number[], c: number): Quadratic {
  const n = diag.length;
  const h = new Float64Array(n * n);
  diag.forEach((d, i) => (h[i * n + i] = d));
  return new Quadratic(h, n, c);
}

const rel = (a: number, b: number) => Math.abs(a - b) / Math.max(Math.abs(a), Math.abs(b), 1e-300);

/** λ_max of a dense symmetric PSD matrix by power iteration. */
function topEigenvalue(h: Float64Array, n: number): number {
  let v = new Rng(11).normals(n);
  let lambda = 0;
  for (let it = 0; it < 5000; it++) {
    const w = new Float64Array(n);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) w[i] += h[i * n + j] * v[j];
    const norm = Math.sqrt(dot(w, w));
    lambda = dot(v, w) / dot(v, v);
    v = w.map((x) => x / norm);
  }
  return lambda;
}

function subsetDataset(data: Dataset, indices: ArrayLike<number>): Dataset {
  const d = data.features;
  const n = indices.length;
  const x = new Float32Array(n * d);
  const c = data.targets ? data.targets.length / data.n : 0;
  const targets = data.targets ? new Float32Array(n * c) : undefined;
  const labels = data.labels ? new Int32Array(n) : undefined;
  for (let k = 0; k < n; k++) {
    const i = indices[k];
    x.set(data.x.subarray(i * d, (i + 1) * d), k * d);
    if (targets) targets.set(data.targets!.subarray(i * c, (i + 1) * c), k * c);
    if (labels) labels[k] = data.labels![i];
  }
  return { n, features: d, x, targets, labels };
}

/** A tiny ReLU net at a global minimum: mse against its own outputs (teacher = student), so L = 0 up to f32 target rounding. */
async function teacherCase() {
  const c = makeCase({ widths: [3, 5, 2], batch: 24, loss: "mse", kinkMargin: 1e-2, seed: 5 });
  const targets = Float32Array.from(await c.reference.outputs(c.theta));
  const data = { ...c.data, targets };
  const objective = new ReferenceObjective(c.spec, data, "mse");
  return { ...c, data, objective };
}

/** Neuron-wise rescaling: hidden unit j of layer k gets incoming weights and bias times s_j, outgoing weights divided by s_j. */
function neuronRescale(spec: ModelSpec, theta: Float64Array, k: number, scales: number[]): Float64Array {
  const layout = parameterLayout(spec);
  const out = Float64Array.from(theta);
  const l = spec.layers[k];
  const next = spec.layers[k + 1];
  const { weightOffset, biasOffset } = layout.layers[k];
  const nextW = layout.layers[k + 1].weightOffset;
  for (let j = 0; j < l.outFeatures; j++) {
    for (let i = 0; i < l.inFeatures; i++) out[weightOffset + j * l.inFeatures + i] *= scales[j];
    if (biasOffset >= 0) out[biasOffset + j] *= scales[j];
    for (let o = 0; o < next.outFeatures; o++) out[nextW + o * next.inFeatures + j] /= scales[j];
  }
  return out;
}

describe("epsilon-sharpness on quadratics (closed forms)", () => {
  it("dinh: max over the ε-ball at θ = 0 is ½ λ_max ε² / (1 + c), and the second-order estimate is exact", async () => {
    const eig = [5, 2, 1, 0.5, 0.1, 0];
    const q = rotatedQuadratic(eig, 0.3);
    const eps = 0.1;
    const r = await epsilonSharpness(q, q.space.zeros(), { epsilon: eps, kind: "dinh", topEigenvalue: 5 });
    const expected = (0.5 * 5 * eps * eps) / 1.3;
    expect(rel(r.value, expected)).toBeLessThan(1e-3);
    expect(r.value).toBeLessThanOrEqual(expected * (1 + 1e-12));
    expect(r.secondOrderEstimate).toBeCloseTo(expected, 14);
    expect(r.baseLoss).toBeCloseTo(0.3, 14);
    expect(r.iterations).toBe(60);
    expect(r.cost.gradients).toBe(3 * 21);
    expect(r.cost.forwards).toBe(1);
    expect(r.subspaceDim).toBeNull();
  });

  it("keskar: the box |δ_i| <= ε(|θ_i| + 1) of a diagonal quadratic is maximised at the outward corner", async () => {
    const h = [3, 1, 0.5, 2, 0];
    const q = diagonalQuadratic(h, 0.2);
    const theta = Float64Array.of(0.5, -1, 0, 2, 0.7);
    const eps = 0.05;
    const r = await epsilonSharpness(q, theta, { epsilon: eps, kind: "keskar" });
    const l0 = 0.2 + h.reduce((s, hi, i) => s + 0.5 * hi * theta[i] ** 2, 0);
    const lmax = 0.2 + h.reduce((s, hi, i) => s + 0.5 * hi * (Math.abs(theta[i]) + eps * (Math.abs(theta[i]) + 1)) ** 2, 0);
    expect(rel(r.value, (100 * (lmax - l0)) / (1 + l0))).toBeLessThan(1e-12);
    // θ = 0: Σ ½ h_i ε² (the brief's closed form).
    const r0 = await epsilonSharpness(q, q.space.zeros(), { epsilon: eps, kind: "keskar" });
    expect(rel(r0.value, (100 * h.reduce((s, hi) => s + 0.5 * hi * eps * eps, 0)) / 1.2)).toBeLessThan(1e-12);
    expect(r0.secondOrderEstimate).toBeNull();
  });

  it("keskar-subspace: orthonormal basis, maximum equals the best vertex of the z-box (brute force)", async () => {
    const q = rotatedQuadratic([4, 3, 1, 0.5, 0.2, 0.1], 0.1);
    const theta = Float64Array.of(0.3, -0.2, 0.5, 0.1, -0.4, 0.25);
    const p = 3;
    const eps = 0.1;
    const seed = 7;
    const r = await epsilonSharpness(q, theta, { epsilon: eps, kind: "keskar-subspace", subspaceDim: p, seed, steps: 30 });
    expect(r.subspaceDim).toBe(p);
    const a = await keskarSubspaceBasis(q.space, p, seed);
    for (let i = 0; i < p; i++) for (let j = 0; j < p; j++) expect(dot(a[i], a[j])).toBeCloseTo(i === j ? 1 : 0, 12);
    const bound = a.map((col) => eps * (Math.abs(dot(col, theta)) + 1));
    const l0 = await q.loss(theta);
    let best = -Infinity;
    for (let mask = 0; mask < 1 << p; mask++) {
      const point = Float64Array.from(theta);
      for (let j = 0; j < p; j++) {
        const z = (mask >> j) & 1 ? bound[j] : -bound[j];
        for (let i = 0; i < 6; i++) point[i] += z * a[j][i];
      }
      best = Math.max(best, await q.loss(point));
    }
    expect(rel(r.value, (100 * (best - l0)) / (1 + l0))).toBeLessThan(1e-9);
    // p is capped at n.
    const capped = await epsilonSharpness(q, theta, { epsilon: eps, kind: "keskar-subspace", subspaceDim: 1000, steps: 2, restarts: 1 });
    expect(capped.subspaceDim).toBe(6);
  });

  it("rejects bad options", async () => {
    const q = diagonalQuadratic([1, 1], 0);
    await expect(epsilonSharpness(q, q.space.zeros(), { epsilon: 0, kind: "dinh" })).rejects.toThrow(/epsilon/);
    await expect(epsilonSharpness(q, q.space.zeros(), { epsilon: 0.1, kind: "nope" as "dinh" })).rejects.toThrow(/kind/);
    await expect(adaptiveSharpness(q, q.space.zeros(), { rho: 0.1, norm: "l2", kind: "worst", steps: 0 })).rejects.toThrow(/steps/);
  });

  it("APGD checkpoints follow Croce & Hein's schedule", () => {
    const w = apgdCheckpoints(100);
    expect(w[0]).toBe(22);
    expect(w.slice(0, 3)).toEqual([22, 41, 57]);
    expect(w.every((k, i) => k > 0 && k <= 100 && (i === 0 || k > w[i - 1]))).toBe(true);
    expect(apgdCheckpoints(1).every((k) => k <= 1)).toBe(true);
  });
});

describe("volume ε-flatness", () => {
  it("log Γ and unit-ball volumes", () => {
    expect(logGamma(5)).toBeCloseTo(Math.log(24), 13);
    expect(logGamma(0.5)).toBeCloseTo(0.5 * Math.log(Math.PI), 13);
    expect(logGamma(101)).toBeCloseTo(363.73937555556347, 9);
    expect(logUnitBallVolume(2)).toBeCloseTo(Math.log(Math.PI), 13);
    expect(logUnitBallVolume(3)).toBeCloseTo(Math.log((4 / 3) * Math.PI), 13);
  });

  it("the ε-sublevel set of a quadratic is an ellipsoid: MC log-volume within 4 stderr of the exact one", async () => {
    const eig = [4, 1, 0.25];
    const q = rotatedQuadratic(eig, 0.5);
    const eps = 0.5;
    const r = await volumeFlatness(q, q.space.zeros(), { epsilon: eps, rays: 400, seed: 2 });
    const exact = logUnitBallVolume(3) + eig.reduce((s, l) => s + 0.5 * Math.log((2 * eps) / l), 0);
    expect(r.radii.length).toBe(400);
    expect(r.censoredRays).toBe(0);
    for (const radius of r.radii) {
      expect(radius).toBeGreaterThanOrEqual(Math.sqrt((2 * eps) / 4) * (1 - 1e-8));
      expect(radius).toBeLessThanOrEqual(Math.sqrt((2 * eps) / 0.25) * (1 + 1e-8));
    }
    expect(r.stderrLog).toBeGreaterThan(0);
    expect(Math.abs(r.logVolume - exact)).toBeLessThan(4 * r.stderrLog);
    expect(r.cost.forwards).toBeGreaterThan(400);
  });

  it("a ray along a flat direction is censored at maxRadius", async () => {
    const q = diagonalQuadratic([1, 0], 0);
    const r = await volumeFlatness(q, q.space.zeros(), { epsilon: 0.1, rays: 4, maxRadius: 10, seed: 1 });
    expect(r.censoredRays).toBe(0); // a random direction is never exactly along the flat axis
    const flat = await volumeFlatness(diagonalQuadratic([0], 0), new Float64Array(1), { epsilon: 0.1, rays: 2, maxRadius: 10 });
    expect(flat.censoredRays).toBe(2);
    expect(flat.radii).toEqual([10, 10]);
  });
});

describe("sharpness of tiny ReLU nets", () => {
  it("dinh sharpness at a minimum approaches λ_max ε² / (2(1 + L)) as ε -> 0", async () => {
    const c = await teacherCase();
    const n = c.theta.length;
    const lambda = topEigenvalue(await c.objective.denseHessian(c.theta), n);
    expect(lambda).toBeGreaterThan(0);
    const ratios: number[] = [];
    for (const eps of [3e-1, 3e-2, 3e-3]) {
      const r = await epsilonSharpness(c.objective, c.theta, { epsilon: eps, kind: "dinh", topEigenvalue: lambda, steps: 40 });
      ratios.push(r.value / r.secondOrderEstimate!);
    }
    // Same order of magnitude throughout; within 2% at the smallest ε; closer as ε shrinks.
    for (const q of ratios) {
      expect(q).toBeGreaterThan(0.3);
      expect(q).toBeLessThan(3);
    }
    expect(Math.abs(ratios[2] - 1)).toBeLessThan(0.02);
    expect(Math.abs(ratios[2] - 1)).toBeLessThanOrEqual(Math.abs(ratios[0] - 1));
  });

  it("dinh and keskar sharpness change under T_alpha; adaptive sharpness does not", async () => {
    const c = makeCase({ widths: [3, 4, 3, 2], batch: 12, loss: "ce", kinkMargin: 1e-3, seed: 2 });
    const alphas = [4, 0.5, 0.5];
    const scaled = alphaScale(c.spec, c.theta, alphas);
    expect(rel(await c.reference.loss(scaled), await c.reference.loss(c.theta))).toBeLessThan(1e-12);
    for (const kind of ["dinh", "keskar"] as const) {
      const a = await epsilonSharpness(c.reference, c.theta, { epsilon: 0.05, kind, steps: 10 });
      const b = await epsilonSharpness(c.reference, scaled, { epsilon: 0.05, kind, steps: 10 });
      expect(rel(a.value, b.value), kind).toBeGreaterThan(0.05);
    }
    const rescaled = neuronRescale(c.spec, c.theta, 0, [2, 0.5, 3, 0.25]);
    expect(rel(await c.reference.loss(rescaled), await c.reference.loss(c.theta))).toBeLessThan(1e-12);
    for (const norm of ["l2", "linf"] as const) {
      for (const kind of ["worst", "average"] as const) {
        const o = { rho: 0.1, norm, kind, samples: 20, steps: 10, seed: 4 };
        const base = await adaptiveSharpness(c.reference, c.theta, o);
        expect(base.value, `${norm} ${kind}`).not.toBe(0);
        for (const other of [scaled, rescaled]) {
          const t = await adaptiveSharpness(c.reference, other, o);
          expect(rel(t.value, base.value), `${norm} ${kind}`).toBeLessThan(1e-6);
        }
      }
    }
    // eta > 0 breaks the exact invariance.
    const withEta = { rho: 0.1, norm: "l2" as const, kind: "worst" as const, steps: 10, eta: 0.1 };
    const e1 = await adaptiveSharpness(c.reference, c.theta, withEta);
    const e2 = await adaptiveSharpness(c.reference, scaled, withEta);
    expect(rel(e1.value, e2.value)).toBeGreaterThan(1e-4);
  });

  it("worst-case adaptive sharpness bounds the average case from above; average has a stderr", async () => {
    const c = makeCase({ widths: [3, 4, 2], batch: 10, loss: "ce", seed: 3 });
    const worst = await adaptiveSharpness(c.reference, c.theta, { rho: 0.2, norm: "linf", kind: "worst", steps: 20 });
    const avg = await adaptiveSharpness(c.reference, c.theta, { rho: 0.2, norm: "linf", kind: "average", samples: 50 });
    expect(worst.value).toBeGreaterThan(avg.value);
    expect(avg.stderr).toBeGreaterThan(0);
    expect(avg.cost.forwards).toBe(51);
    expect(worst.cost.gradients).toBe(21);
  });

  it("volume flatness stays exactly equivariant under T_alpha when a whole bias tensor is zero (it takes the scale of the weights before it)", async () => {
    const c = makeCase({ widths: [3, 4, 3, 2], batch: 8, loss: "ce", seed: 2 });
    const layout = parameterLayout(c.spec);
    const theta = Float64Array.from(c.theta);
    const b1 = layout.layers[1].biasOffset;
    theta.fill(0, b1, b1 + 3); // layer 1's biases all zero
    const alphas = [4, 0.5, 0.5];
    const o = { epsilon: 0.05, rays: 16, seed: 3 };
    for (const coordinates of ["parameter", "tensor"] as const) {
      const a = await volumeFlatness(c.reference, theta, { ...o, coordinates });
      const b = await volumeFlatness(c.reference, alphaScale(c.spec, theta, alphas), { ...o, coordinates });
      // Before the fix the all-zero tensor took the RMS of all of theta: +12.686 / +12.757 against 11.784.
      expect(Math.abs(b.logVolume - a.logVolume - logVolumeFactor(c.spec, alphas))).toBeLessThan(1e-6);
    }
  });

  it("volume flatness moves by exactly log|det D| under T_alpha and neuron-wise rescaling (the function does not)", async () => {
    const c = makeCase({ widths: [2, 3, 1], batch: 8, loss: "mse", seed: 4 });
    const alphas = [5, 0.2];
    const scaled = alphaScale(c.spec, c.theta, alphas);
    const logDet = logVolumeFactor(c.spec, alphas);
    expect(logDet).toBeCloseTo(9.656627474604601, 12); // (6 + 3 + 1) log 5 + (3 + 1) log 0.2
    // log|det D| of any diagonal D from the entries (no zero in theta here).
    const logDetOf = (t2: Float64Array) => c.theta.reduce((s, t, i) => s + Math.log(Math.abs(t2[i] / t)), 0);
    expect(logDetOf(scaled)).toBeCloseTo(logDet, 12);
    const base = { epsilon: 0.05, rays: 16, seed: 9 };
    const change = async (t2: Float64Array, coordinates: "parameter" | "tensor" | "euclidean") => {
      const a = await volumeFlatness(c.reference, c.theta, { ...base, coordinates });
      const b = await volumeFlatness(c.reference, t2, { ...base, coordinates });
      expect(Number.isFinite(a.logVolume) && Number.isFinite(b.logVolume)).toBe(true);
      return { a, b, change: b.logVolume - a.logVolume };
    };
    // Default (per-entry "parameter" coordinates): the same rays and radii in y, log vol + log|det D|.
    const p = await change(scaled, "parameter");
    expect(p.a.coordinates).toBe("parameter");
    expect(Math.abs(p.change - logDet)).toBeLessThan(1e-6);
    expect(p.b.scaledRadii.map((r, i) => Math.abs(r - p.a.scaledRadii[i]) / r).every((e) => e < 1e-6)).toBe(true);
    expect(p.b.effectiveRays).toBeCloseTo(p.a.effectiveRays, 6);
    expect(p.b.logScale - p.a.logScale).toBeCloseTo(logDet, 10);
    // "tensor" coordinates (one scale per tensor) too.
    expect(Math.abs((await change(scaled, "tensor")).change - logDet)).toBeLessThan(1e-6);
    // Negative controls: the isotropic estimator moves the wrong way (about -4.1, not +9.66), and a
    // wrong D (alphas swapped) does not give the measured change.
    const e = await change(scaled, "euclidean");
    expect(Math.abs(e.change - logDet)).toBeGreaterThan(1);
    expect(Math.abs(p.change - logVolumeFactor(c.spec, [0.2, 5]))).toBeGreaterThan(1);
    // Neuron-wise rescaling (several scalars in one tensor): exact per entry, not per tensor.
    const rescaled = neuronRescale(c.spec, c.theta, 0, [2, 0.5, 3]);
    expect(rel(await c.reference.loss(rescaled), await c.reference.loss(c.theta))).toBeLessThan(1e-12);
    const logDetN = logDetOf(rescaled);
    expect(Math.abs(logDetN)).toBeGreaterThan(0.5);
    expect(Math.abs((await change(rescaled, "parameter")).change - logDetN)).toBeLessThan(1e-6);
    expect(Math.abs((await change(rescaled, "tensor")).change - logDetN)).toBeGreaterThan(1e-3);
  });

  it("parameter coordinates: the scales, their floor, and an unbiased ellipsoid volume away from 0", async () => {
    const groups = [{ offset: 0, size: 4 }, { offset: 4, size: 2 }, { offset: 6, size: 1 }];
    const theta = [0, 2, -1e-5, 1, 0, 0, 3];
    // rms of the nonzero entries of the first tensor: sqrt((4 + 1e-10 + 1) / 3); the all-zero second
    // tensor falls back to all nonzero entries: sqrt((4 + 1e-10 + 1 + 9) / 4).
    const r0 = Math.sqrt((4 + 1e-10 + 1) / 3);
    const rAll = Math.sqrt((4 + 1e-10 + 1 + 9) / 4);
    const a = volumeScales(theta, groups, "parameter", 0.01);
    const expected = [0.01 * r0, 2, -0.01 * r0, 1, 0.01 * rAll, 0.01 * rAll, 3];
    expected.forEach((x, i) => expect(a[i]).toBeCloseTo(x, 14));
    const t = volumeScales(theta, groups, "tensor");
    [r0, r0, r0, r0, rAll, rAll, 3].forEach((x, i) => expect(t[i]).toBeCloseTo(x, 14));
    expect(Array.from(volumeScales(theta, groups, "euclidean"))).toEqual(new Array(7).fill(1));
    expect(Array.from(volumeScales(new Array(7).fill(0), groups, "parameter"))).toEqual(new Array(7).fill(1));
    // Scaling one tensor scales its floor: the scales stay equivariant under T_alpha-like maps.
    const theta2 = theta.map((x, i) => (i < 4 ? 7 * x : x));
    const a2 = volumeScales(theta2, groups, "parameter", 0.01);
    for (let i = 0; i < 4; i++) expect(a2[i] / a[i]).toBeCloseTo(7, 12);

    // A quadratic bowl centred at theta0 != 0: the exact ellipsoid volume, with A = diag(theta0).
    const eig = [4, 1, 0.25];
    const q = rotatedQuadratic(eig, 0.5);
    const theta0 = Float64Array.of(3, -0.5, 0.2);
    const shifted: Objective<Float64Array> = {
      spec: q.spec, lossKind: q.lossKind, sampleCount: 1, space: q.space, counters: q.counters,
      loss: (x) => q.loss(x.map((v, i) => v - theta0[i])),
      gradient: () => Promise.reject(new Error("unused")), hvp: () => Promise.reject(new Error("unused")),
      hvpBlock: () => Promise.reject(new Error("unused")), outputs: () => Promise.reject(new Error("unused")), dispose() {},
    };
    const eps = 0.5;
    const r = await volumeFlatness(shifted, theta0, { epsilon: eps, rays: 400, seed: 2 });
    const exact = logUnitBallVolume(3) + eig.reduce((s, l) => s + 0.5 * Math.log((2 * eps) / l), 0);
    expect(r.logScale).toBeCloseTo(Math.log(3 * 0.5 * 0.2), 12);
    expect(r.censoredRays).toBe(0);
    // radii are theta-space distances to the boundary: between the ellipsoid's semi-axes.
    for (const radius of r.radii) {
      expect(radius).toBeGreaterThanOrEqual(Math.sqrt((2 * eps) / 4) * (1 - 1e-8));
      expect(radius).toBeLessThanOrEqual(Math.sqrt((2 * eps) / 0.25) * (1 + 1e-8));
    }
    expect(r.scaledRadii).not.toEqual(r.radii);
    expect(Math.abs(r.logVolume - exact)).toBeLessThan(4 * r.stderrLog);
    await expect(volumeFlatness(shifted, theta0, { epsilon: eps, coordinates: "polar" as "parameter" })).rejects.toThrow(/coordinates must be/);
    await expect(volumeFlatness(shifted, theta0, { epsilon: eps, floor: 0 })).rejects.toThrow(/floor/);
  });

  it("same seed gives identical results, a different seed different ones", async () => {
    const c = makeCase({ widths: [3, 4, 2], batch: 10, loss: "ce", seed: 6 });
    const runs = {
      volume: (seed: number) => volumeFlatness(c.reference, c.theta, { epsilon: 0.05, rays: 8, seed }).then((r) => r.logVolume),
      average: (seed: number) => adaptiveSharpness(c.reference, c.theta, { rho: 0.1, norm: "l2", kind: "average", samples: 10, seed }).then((r) => r.value),
      subspace: (seed: number) =>
        epsilonSharpness(c.reference, c.theta, { epsilon: 0.05, kind: "keskar-subspace", subspaceDim: 5, steps: 5, restarts: 2, seed }).then((r) => r.value),
      dinh: (seed: number) => epsilonSharpness(c.reference, c.theta, { epsilon: 0.5, kind: "dinh", steps: 5, restarts: 2, seed }).then((r) => r.maxLoss),
    };
    for (const [name, run] of Object.entries(runs)) {
      const a = await run(1);
      expect(await run(1), name).toBe(a);
      expect(await run(2), name).not.toBe(a);
    }
  });

  it("m-sharpness: m = N equals SAM sharpness of the whole data; subsets are disjoint, disposed, and each is SAM's value", async () => {
    const c = makeCase({ widths: [3, 4, 2], batch: 13, loss: "ce", seed: 8 });
    const seen: number[][] = [];
    let disposed = 0;
    const factory = (indices: Int32Array) => {
      seen.push([...indices]);
      const o = new ReferenceObjective(c.spec, subsetDataset(c.data, indices), "ce");
      o.dispose = () => void disposed++;
      return Promise.resolve(o);
    };
    const rho = 0.05;
    const full = await samSharpness(c.reference, c.theta, { rho });
    const whole = await mSharpness(factory, 13, c.theta, { m: 13, rho, seed: 1 });
    expect(whole.subsets).toBe(1);
    expect(whole.value).toBe(full.value);
    expect(disposed).toBe(1);
    // SAM's single step: δ = ρ g / ||g||.
    const g = c.reference.space.zeros();
    const l0 = await c.reference.gradient(c.theta, g);
    const gn = Math.sqrt(dot(g, g));
    const stepped = Float64Array.from(c.theta, (t, i) => t + (rho * g[i]) / gn);
    expect(full.value).toBeCloseTo(Math.max(0, (await c.reference.loss(stepped)) - l0), 14);
    expect(full.iterations).toBe(1);

    seen.length = 0;
    const split = await mSharpness(factory, 13, c.theta, { m: 4, rho, seed: 1, steps: 3 });
    expect(split.subsets).toBe(3);
    expect(split.droppedSamples).toBe(1);
    expect(disposed).toBe(4);
    const all = seen.flat();
    expect(new Set(all).size).toBe(12);
    let sum = 0;
    for (const idx of seen) {
      const o = new ReferenceObjective(c.spec, subsetDataset(c.data, idx), "ce");
      sum += (await samSharpness(o, c.theta, { rho, steps: 3 })).value;
    }
    expect(split.value).toBeCloseTo(sum / 3, 14);
    expect(split.cost.gradients).toBe(3 * 4);
    // Different permutation seeds give different subsets.
    seen.length = 0;
    await mSharpness(factory, 13, c.theta, { m: 4, rho, seed: 2, steps: 1 });
    expect(seen.flat()).not.toEqual(all);
    // Adaptive m-sharpness is invariant under T_alpha.
    const a = await mSharpness(factory, 13, c.theta, { m: 4, rho, adaptive: true, steps: 2 });
    const b = await mSharpness(factory, 13, alphaScale(c.spec, c.theta, [3, 1 / 3]), { m: 4, rho, adaptive: true, steps: 2 });
    expect(rel(a.value, b.value)).toBeLessThan(1e-6);
  });

  it("reports progress up to 1", async () => {
    const c = makeCase({ widths: [2, 3, 1], batch: 5, loss: "mse", seed: 1 });
    const fractions: number[] = [];
    await epsilonSharpness(c.reference, c.theta, { epsilon: 0.01, kind: "keskar", steps: 4, restarts: 2, onProgress: (f) => fractions.push(f) });
    expect(fractions.length).toBe(8);
    expect(fractions[fractions.length - 1]).toBe(1);
  });
});
