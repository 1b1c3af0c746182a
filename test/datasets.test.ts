/**
 * Built-in datasets: determined by their seed, the documented shapes, labels and geometry, the
 * teacher's targets, and seeded train/test splits that are disjoint and complete.
 */
import { describe, expect, it } from "vitest";
import { validateDataset } from "../src/data.ts";
import {
  builtinDataset,
  deriveSeed,
  gaussianMixture,
  mlpForward,
  permutation,
  splitDataset,
  teacherStudent,
  twoSpirals,
} from "../src/datasets.ts";
import { mlpSpec } from "../src/model.ts";
import { Rng } from "../src/random.ts";
import { ReferenceObjective } from "../src/reference/engine.ts";

function classMeans(x: Float32Array, labels: Int32Array, d: number, k: number): Float64Array[] {
  const means = Array.from({ length: k }, () => new Float64Array(d));
  const counts = new Array(k).fill(0);
  labels.forEach((y, s) => {
    counts[y]++;
    for (let i = 0; i < d; i++) means[y][i] += x[s * d + i];
  });
  return means.map((m, j) => m.map((v) => v / counts[j]));
}

const distance = (a: Float64Array, b: Float64Array) => Math.hypot(...a.map((v, i) => v - b[i]));

describe("built-in datasets", () => {
  it("are fully determined by their seed (same seed, same bits; another seed, other data)", () => {
    const makers = [
      (seed: number) => gaussianMixture({ samples: 50, classes: 4, dims: 3, seed }),
      (seed: number) => twoSpirals({ samples: 50, seed }),
      (seed: number) => teacherStudent({ samples: 50, widths: [3, 5, 2], seed }),
    ];
    for (const make of makers) {
      const a = make(11).data;
      const b = make(11).data;
      const c = make(12).data;
      expect(a.x).toEqual(b.x);
      expect(a.labels ?? a.targets).toEqual(b.labels ?? b.targets);
      expect(a.x).not.toEqual(c.x);
    }
  });

  it("mixture: [N, d] features, balanced labels in [0, k), nearest means `separation` apart (k <= d, k > d, d = 1)", () => {
    for (const [k, d] of [[3, 5], [5, 2], [3, 1]]) {
      const m = gaussianMixture({ samples: 600, classes: k, dims: d, separation: 4, noise: 0.01, seed: 3 });
      expect(m.loss).toBe("ce");
      expect(m.outputs).toBe(k);
      expect(m.data.n).toBe(600);
      expect(m.data.features).toBe(d);
      expect(m.data.x.length).toBe(600 * d);
      validateDataset(mlpSpec([d, 4, k]), m.data, "ce");
      const counts = new Array(k).fill(0);
      m.data.labels!.forEach((y) => counts[y]++);
      expect(counts).toEqual(new Array(k).fill(600 / k));
      const means = classMeans(m.data.x, m.data.labels!, d, k);
      const distances: number[] = [];
      for (let a = 0; a < k; a++) for (let b = a + 1; b < k; b++) distances.push(distance(means[a], means[b]));
      expect(Math.min(...distances)).toBeCloseTo(4, 1);
      if (k <= d) expect(Math.max(...distances)).toBeCloseTo(4, 1); // every pair equally far apart
    }
  });

  it("mixture: the noise is isotropic with the given standard deviation", () => {
    const m = gaussianMixture({ samples: 4000, classes: 2, dims: 2, separation: 3, noise: 0.7, seed: 5 });
    const means = classMeans(m.data.x, m.data.labels!, 2, 2);
    let ss = 0;
    m.data.labels!.forEach((y, s) => {
      for (let i = 0; i < 2; i++) ss += (m.data.x[2 * s + i] - means[y][i]) ** 2;
    });
    expect(Math.sqrt(ss / (4000 * 2))).toBeCloseTo(0.7, 1);
  });

  it("spirals: [N, 2], alternating labels 0/1, radius t <= 1 and angle 2π·turns·t + π·class without noise", () => {
    const s = twoSpirals({ samples: 301, noise: 0, turns: 2, seed: 8 });
    expect(s.loss).toBe("ce");
    expect(s.outputs).toBe(2);
    expect(s.data.features).toBe(2);
    expect(s.data.x.length).toBe(602);
    for (let i = 0; i < 301; i++) {
      const [x, y] = [s.data.x[2 * i], s.data.x[2 * i + 1]];
      const r = Math.hypot(x, y);
      const c = s.data.labels![i];
      expect(c).toBe(i % 2);
      expect(r).toBeLessThanOrEqual(1 + 1e-6);
      const expected = 2 * Math.PI * 2 * r + Math.PI * c;
      const diff = Math.atan2(y, x) - expected;
      const wrapped = Math.abs(Math.atan2(Math.sin(diff), Math.cos(diff)));
      expect(wrapped).toBeLessThan(1e-3 / Math.max(r, 1e-3) + 1e-4);
    }
  });

  it("teacher: targets are the teacher MLP's outputs (exactly without noise) plus Gaussian noise of the given std", async () => {
    const clean = teacherStudent({ samples: 200, widths: [4, 6, 2], noise: 0, seed: 9 });
    expect(clean.loss).toBe("mse");
    expect(clean.outputs).toBe(2);
    expect(clean.data.targets!.length).toBe(400);
    const teacher = clean.teacher!;
    const viaReference = await new ReferenceObjective(teacher.spec, clean.data, "mse").outputs(teacher.theta);
    expect(Array.from(clean.data.targets!)).toEqual(Array.from(Float32Array.from(viaReference)));
    expect(Array.from(mlpForward(teacher.spec, teacher.theta, clean.data.x, 200))).toEqual(Array.from(viaReference));
    const noisy = teacherStudent({ samples: 4000, widths: [4, 6, 2], noise: 0.3, seed: 9 });
    const y = mlpForward(noisy.teacher!.spec, noisy.teacher!.theta, noisy.data.x, 4000);
    const residual = Math.sqrt(noisy.data.targets!.reduce((s, t, i) => s + (t - y[i]) ** 2, 0) / 8000);
    expect(residual).toBeCloseTo(0.3, 1);
  });

  it("builtinDataset dispatches by name and rejects unknown names and bad options with InputErrors", () => {
    expect(builtinDataset("spirals", { samples: 10, seed: 1 }).name).toBe("spirals");
    expect(builtinDataset("teacher", { samples: 10, seed: 1, teacherWidths: [2, 3, 1] }).data.features).toBe(2);
    expect(() => builtinDataset("moons", { samples: 10, seed: 1 })).toThrow(/unknown dataset 'moons': use one of mixture, spirals, teacher/);
    expect(() => gaussianMixture({ samples: 0, seed: 1 })).toThrow(/samples must be a positive integer/);
    expect(() => gaussianMixture({ samples: 10, classes: 1, seed: 1 })).toThrow(/at least 2 classes/);
    expect(() => twoSpirals({ samples: 10, noise: -1, seed: 1 })).toThrow(/noise must be a number >= 0/);
  });
});

describe("seeded helpers", () => {
  it("permutation is a permutation of 0..n-1; deriveSeed gives distinct streams", () => {
    const p = permutation(1000, new Rng(4));
    expect(Array.from(p).sort((a, b) => a - b)).toEqual([...Array(1000).keys()]);
    expect(Array.from(p)).not.toEqual([...Array(1000).keys()]);
    expect(permutation(1000, new Rng(4))).toEqual(p);
    const seeds = new Set([0, 1, 2, 3].flatMap((s) => [1, 2, 3].map((stream) => deriveSeed(s, stream))));
    expect(seeds.size).toBe(12);
  });

  it("splitDataset: disjoint, complete, round(n·f) test samples, rows follow their indices, deterministic by seed", () => {
    const data = gaussianMixture({ samples: 101, classes: 3, dims: 2, seed: 1 }).data;
    const a = splitDataset(data, 0.3, 7);
    expect(a.test.n).toBe(30);
    expect(a.train.n).toBe(71);
    const all = [...a.trainIndices, ...a.testIndices].sort((x, y) => x - y);
    expect(all).toEqual([...Array(101).keys()]);
    expect(new Set([...a.trainIndices].filter((i) => a.testIndices.includes(i))).size).toBe(0);
    a.testIndices.forEach((i, r) => {
      expect(a.test.labels![r]).toBe(data.labels![i]);
      expect(Array.from(a.test.x.subarray(2 * r, 2 * r + 2))).toEqual(Array.from(data.x.subarray(2 * i, 2 * i + 2)));
    });
    expect(splitDataset(data, 0.3, 7).testIndices).toEqual(a.testIndices);
    expect(splitDataset(data, 0.3, 8).testIndices).not.toEqual(a.testIndices);
    const teacher = teacherStudent({ samples: 20, widths: [2, 3, 2], seed: 1 }).data;
    const t = splitDataset(teacher, 0.5, 1);
    expect(t.test.targets!.length).toBe(20);
    expect(() => splitDataset(data, 0, 1)).toThrow(/test fraction must be in \(0, 1\)/);
    expect(() => splitDataset(data, 1, 1)).toThrow(/test fraction must be in \(0, 1\)/);
    expect(() => splitDataset({ ...data, n: 1, x: data.x.subarray(0, 2), labels: data.labels!.subarray(0, 1) }, 0.5, 1)).toThrow(/both need at least one/);
  });
});
