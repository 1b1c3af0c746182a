/**
 * The measures proposed as answers to Dinh et al. (path norm, Fisher-Rao norm, relative flatness,
 * normalized sharpness, magnitude-aware PAC-Bayes sigma, gradient and input sensitivities), each
 * checked against a brute-force float64 version on tiny nets, then audited for invariance under
 * T_alpha and neuron-wise rescaling (the plain Hessian trace, for contrast, changes).
 */
import { describe, expect, it } from "vitest";
import type { Dataset } from "../../src/data.ts";
import { type Activation, type ModelSpec, parameterLayout } from "../../src/model.ts";
import { ReferenceObjective } from "../../src/reference/engine.ts";
import { Rng } from "../../src/random.ts";
import { alphaScale } from "../../src/transforms/alphaScale.ts";
import { directionalOutputDerivative, fisherRaoNorm, pathNorm } from "../../src/metrics/normBased.ts";
import { relativeFlatness } from "../../src/metrics/relativeFlatness.ts";
import { minimizeRankOneSharpness, normalizedSharpness } from "../../src/metrics/normalizedSharpness.ts";
import { accuracyFromOutputs, pacBayesBound, pacBayesNoise, pacBayesSigma } from "../../src/metrics/pacBayes.ts";
import { inputGradientNorms, layerGradientNorms } from "../../src/metrics/sensitivity.ts";
import { assertClose, dot, makeCase } from "../support/numeric.ts";

const alphas = [4, 0.5, 0.5];
const rel = (a: number, b: number) => Math.abs(a - b) / Math.max(Math.abs(a), Math.abs(b), 1e-300);

/** Neuron-wise rescaling of hidden layer k: unit j's incoming weights and bias x c_j, outgoing weights / c_j. */
function neuronRescale(spec: ModelSpec, theta: Float64Array, k: number, c: number[]): Float64Array {
  const layout = parameterLayout(spec);
  const t = Float64Array.from(theta);
  const l = spec.layers[k];
  const next = spec.layers[k + 1];
  const { weightOffset: w, biasOffset: b } = layout.layers[k];
  const w2 = layout.layers[k + 1].weightOffset;
  for (let j = 0; j < l.outFeatures; j++) {
    for (let i = 0; i < l.inFeatures; i++) t[w + j * l.inFeatures + i] *= c[j];
    if (b >= 0) t[b + j] *= c[j];
    for (let o = 0; o < next.outFeatures; o++) t[w2 + o * next.inFeatures + j] /= c[j];
  }
  return t;
}

function sample(data: Dataset, s: number): Dataset {
  const d = data.features;
  const one: Dataset = { n: 1, features: d, x: data.x.slice(s * d, (s + 1) * d) };
  if (data.labels) one.labels = data.labels.slice(s, s + 1);
  if (data.targets) {
    const c = data.targets.length / data.n;
    one.targets = data.targets.slice(s * c, (s + 1) * c);
  }
  return one;
}

function trace(h: Float64Array, n: number) {
  let t = 0;
  for (let i = 0; i < n; i++) t += h[i * n + i];
  return t;
}

const variants: { name: string; bias: boolean; activation: Activation }[] = [
  { name: "relu, bias-free", bias: false, activation: { kind: "relu" } },
  { name: "relu, biases", bias: true, activation: { kind: "relu" } },
  { name: "leaky relu, biases", bias: true, activation: { kind: "leaky_relu", slope: 0.1 } },
];

describe("brute-force checks", () => {
  it("path norm equals explicit path enumeration (biases start paths)", async () => {
    for (const bias of [false, true]) {
      const c = makeCase({ widths: [3, 4, 3, 2], batch: 2, loss: "ce", bias, seed: 11 });
      const layout = parameterLayout(c.spec);
      const K = c.spec.layers.length;
      for (const p of [1, 2, 3]) {
        let total = 0;
        const walk = (k: number, unit: number, prod: number) => {
          if (k === K) return void (total += prod);
          const l = c.spec.layers[k];
          for (let o = 0; o < l.outFeatures; o++) {
            walk(k + 1, o, prod * Math.abs(c.theta[layout.layers[k].weightOffset + o * l.inFeatures + unit]) ** p);
          }
        };
        for (let i = 0; i < c.spec.layers[0].inFeatures; i++) walk(0, i, 1);
        c.spec.layers.forEach((l, k) => {
          const b = layout.layers[k].biasOffset;
          if (b >= 0) for (let o = 0; o < l.outFeatures; o++) walk(k + 1, o, Math.abs(c.theta[b + o]) ** p);
        });
        const got = await pathNorm(c.spec, c.theta, { p });
        expect(rel(got.sumOverPaths, total)).toBeLessThan(1e-13);
        expect(rel(got.value, total ** (1 / p))).toBeLessThan(1e-13);
      }
    }
  });

  it("Fisher-Rao norm equals E[<theta, grad l_i>^2] from per-sample gradients", async () => {
    for (const loss of ["ce", "mse", "logistic"] as const) {
      for (const bias of [false, true]) {
        const c = makeCase({ widths: [3, 4, 3, loss === "logistic" ? 1 : 2], batch: 6, loss, bias, seed: 21 });
        let expected = 0;
        const g = new Float64Array(c.theta.length);
        for (let s = 0; s < c.data.n; s++) {
          await new ReferenceObjective(c.spec, sample(c.data, s), loss).gradient(c.theta, g);
          expected += dot(c.theta, g) ** 2 / c.data.n;
        }
        const fr = await fisherRaoNorm(c.reference, c.theta, c.data);
        expect(rel(fr.squared, expected), `${loss} bias=${bias}`).toBeLessThan(1e-11);
        if (!bias) expect(rel(fr.closedForm, fr.squared)).toBeLessThan(1e-11);
        else expect(rel(fr.closedForm, fr.squared)).toBeGreaterThan(1e-6);
        expect(fr.cost.forwards).toBe(1);
      }
    }
  });

  it("directionalOutputDerivative matches central differences of the outputs", async () => {
    const c = makeCase({ widths: [3, 5, 4, 2], batch: 5, loss: "mse", seed: 31, kinkMargin: 1e-2 });
    const v = new Rng(5).normals(c.theta.length);
    const h = 1e-6;
    const { outputs, tangent } = directionalOutputDerivative(c.spec, c.theta, v, c.data.x);
    assertClose("outputs", outputs, await c.reference.outputs(c.theta), 1e-14);
    const plus = await c.reference.outputs(c.theta.map((t, i) => t + h * v[i]));
    const minus = await c.reference.outputs(c.theta.map((t, i) => t - h * v[i]));
    assertClose("tangent", tangent, plus.map((p, i) => (p - minus[i]) / (2 * h)), 1e-7);
  });

  it("relative flatness (exact) equals sum_{s,s'} <w_s, w_s'> Tr(H_{s,s'}) from the dense Hessian; Hutchinson agrees", async () => {
    for (const bias of [false, true]) {
      const c = makeCase({ widths: [3, 4, 3, 3], batch: 8, loss: "ce", bias, seed: 41 });
      const n = c.theta.length;
      const H = await c.reference.denseHessian(c.theta);
      const layout = parameterLayout(c.spec);
      const rf = await relativeFlatness(c.reference, c.theta, { exact: true });
      c.spec.layers.forEach((l, k) => {
        const w = layout.layers[k].weightOffset;
        let kappa = 0;
        for (let s = 0; s < l.outFeatures; s++) {
          for (let t = 0; t < l.outFeatures; t++) {
            let g = 0;
            let tr = 0;
            for (let i = 0; i < l.inFeatures; i++) {
              g += c.theta[w + s * l.inFeatures + i] * c.theta[w + t * l.inFeatures + i];
              tr += H[(w + s * l.inFeatures + i) * n + w + t * l.inFeatures + i];
            }
            kappa += g * tr;
          }
        }
        expect(rel(rf.layers[k].value, kappa), `layer ${k}`).toBeLessThan(1e-10);
      });
      expect(rf.cost.hvps).toBe(rf.layers.reduce((s, l) => s + l.directions, 0));
      const hutch = await relativeFlatness(c.reference, c.theta, { exact: false, samples: 400, seed: 3 });
      hutch.layers.forEach((l, k) => {
        expect(l.stderr).toBeGreaterThan(0);
        expect(Math.abs(l.value - rf.layers[k].value)).toBeLessThan(5 * l.stderr + 1e-12);
      });
    }
  });

  it("normalized sharpness: exact Hessian diagonal, a stationary minimum, per-entry lower bound", async () => {
    const c = makeCase({ widths: [3, 4, 3, 3], batch: 8, loss: "ce", bias: true, seed: 51 });
    const n = c.theta.length;
    const H = await c.reference.denseHessian(c.theta);
    const layout = parameterLayout(c.spec);
    const ns = await normalizedSharpness(c.reference, c.theta, { exact: true });
    const rng = new Rng(9);
    ns.layers.forEach((L, k) => {
      const l = c.spec.layers[k];
      const w = layout.layers[k].weightOffset;
      const size = l.inFeatures * l.outFeatures;
      const diag = Float64Array.from({ length: size }, (_, e) => H[(w + e) * n + w + e]);
      assertClose(`diag ${k}`, L.diagonal, diag, 1e-12);
      expect(L.converged).toBe(true);
      expect(L.value).toBeGreaterThanOrEqual(L.perEntry * (1 - 1e-12));
      const F = (a: ArrayLike<number>, b: ArrayLike<number>) => {
        let f = 0;
        for (let i = 0; i < l.outFeatures; i++) {
          for (let j = 0; j < l.inFeatures; j++) {
            const q = i * l.inFeatures + j;
            f += diag[q] * a[i] * b[j] + c.theta[w + q] ** 2 / (a[i] * b[j]);
          }
        }
        return f;
      };
      expect(rel(F(L.rowScale, L.columnScale), L.value)).toBeLessThan(1e-12);
      // Stationarity in log-space: dF/dlog a_i = sum_j [h a_i b_j - W²/(a_i b_j)] = 0, likewise for b_j.
      const a = L.rowScale;
      const b = L.columnScale;
      for (let i = 0; i < l.outFeatures; i++) {
        let up = 0;
        let down = 0;
        for (let j = 0; j < l.inFeatures; j++) {
          up += diag[i * l.inFeatures + j] * a[i] * b[j];
          down += c.theta[w + i * l.inFeatures + j] ** 2 / (a[i] * b[j]);
        }
        expect(rel(up, down), `row ${i}`).toBeLessThan(1e-9);
      }
      for (let j = 0; j < l.inFeatures; j++) {
        let up = 0;
        let down = 0;
        for (let i = 0; i < l.outFeatures; i++) {
          up += diag[i * l.inFeatures + j] * a[i] * b[j];
          down += c.theta[w + i * l.inFeatures + j] ** 2 / (a[i] * b[j]);
        }
        expect(rel(up, down), `column ${j}`).toBeLessThan(1e-9);
      }
      for (let trial = 0; trial < 20; trial++) {
        const a = L.rowScale.map((v) => v * Math.exp(0.05 * rng.normal()));
        const b = L.columnScale.map((v) => v * Math.exp(0.05 * rng.normal()));
        expect(F(a, b)).toBeGreaterThanOrEqual(L.value * (1 - 1e-12));
      }
    });
    const hutch = await normalizedSharpness(c.reference, c.theta, { exact: false, samples: 4000, seed: 2 });
    expect(rel(hutch.totalPerEntry, ns.totalPerEntry)).toBeLessThan(0.1);
  });

  it("rank-one minimization: separable problems reach the per-entry bound; degenerate rows contribute 0", () => {
    const p = [0.5, 2, 1.5];
    const q = [1, 0.1, 3, 0.7];
    const r = [2, 0.3, 1];
    const sc = [0.2, 1, 4, 0.9];
    const h = Float64Array.from({ length: 12 }, (_, e) => p[Math.floor(e / 4)] * q[e % 4]);
    const w2 = Float64Array.from({ length: 12 }, (_, e) => r[Math.floor(e / 4)] * sc[e % 4]);
    const bound = h.reduce((s, v, e) => s + 2 * Math.sqrt(v * w2[e]), 0);
    const m = minimizeRankOneSharpness(h, w2, 3, 4);
    expect(m.converged).toBe(true);
    expect(rel(m.value, bound)).toBeLessThan(1e-12);
    // Row 1 without curvature (a dead unit) and column 2 without weights: their terms vanish at the infimum.
    const h2 = h.map((v, e) => (Math.floor(e / 4) === 1 ? 0 : v));
    const w22 = w2.map((v, e) => (e % 4 === 2 ? 0 : v));
    const sub = minimizeRankOneSharpness(h2, w22, 3, 4);
    const keep = (e: number) => Math.floor(e / 4) !== 1 && e % 4 !== 2;
    const hs = h2.filter((_, e) => keep(e));
    const ws = w22.filter((_, e) => keep(e));
    expect(rel(sub.value, minimizeRankOneSharpness(hs, ws, 2, 3).value)).toBeLessThan(1e-12);
    expect(sub.a[1]).toBe(Infinity);
    expect(sub.b[2]).toBe(0);
  });

  it("PAC-Bayes sigma: the bisection's deviations are the Monte Carlo means of the seeded draws", async () => {
    const c = makeCase({ widths: [3, 4, 3, 3], batch: 8, loss: "ce", bias: true, seed: 61 });
    const base = await c.reference.loss(c.theta);
    for (const magnitudeAware of [true, false]) {
      const eps = 1e-3;
      const r = await pacBayesSigma(c.reference, c.theta, { magnitudeAware, epsilon: eps, samples: 4, seed: 8, searchDepth: 12 });
      for (const { sigma, deviation } of r.trace.slice(0, 3)) {
        let sum = 0;
        for (let s = 0; s < 4; s++) {
          const z = pacBayesNoise(8, s, c.theta.length);
          const p = c.theta.map((t, i) => t + (magnitudeAware ? Math.sqrt(sigma * sigma * t * t + eps * eps) : sigma) * z[i]);
          sum += await c.reference.loss(p);
        }
        expect(rel(deviation, Math.abs(sum / 4 - base))).toBeLessThan(1e-12);
      }
      for (const t of r.trace) {
        if (t.sigma >= r.bracket[1]) expect(t.deviation).toBeGreaterThan(0.1);
        if (t.sigma <= r.bracket[0]) expect(t.deviation).toBeLessThanOrEqual(0.1);
      }
      expect(r.sigma).toBeGreaterThan(r.bracket[0]);
      expect(r.sigma).toBeLessThan(r.bracket[1]);
      expect(r.cost.forwards).toBe(1 + 12 * 4);
    }
    // The accuracy deviation (Jiang et al.'s) is the Monte Carlo mean accuracy displacement of the same seeded draws.
    const acc = await pacBayesSigma(c.reference, c.theta, { deviation: "accuracy", data: c.data, samples: 3, searchDepth: 6, seed: 8 });
    const accuracyAt = async (p: Float64Array) => accuracyFromOutputs(await c.reference.outputs(p), c.data, 3, "ce");
    const baseAccuracy = await accuracyAt(c.theta);
    expect(acc.base).toBe(baseAccuracy);
    for (const { sigma, deviation } of acc.trace) {
      let sum = 0;
      for (let s = 0; s < 3; s++) {
        const z = pacBayesNoise(8, s, c.theta.length);
        sum += await accuracyAt(c.theta.map((t, i) => t + Math.sqrt(sigma * sigma * t * t + 1e-6) * z[i]));
      }
      expect(Math.abs(deviation - Math.abs(sum / 3 - baseAccuracy))).toBeLessThan(1e-12);
    }
    const bound = pacBayesBound(c.theta, 0.5, 100);
    expect(rel(bound.value, dot(c.theta, c.theta) / (4 * 0.25) + Math.log(200) + 10)).toBeLessThan(1e-14);
  });

  it("layer gradient norms are the norms of the gradient's tensors, and scale as 1/alpha under T_alpha", async () => {
    const c = makeCase({ widths: [3, 4, 3, 3], batch: 8, loss: "mse", bias: true, seed: 71 });
    const g = new Float64Array(c.theta.length);
    await c.reference.gradient(c.theta, g);
    const r = await layerGradientNorms(c.reference, c.theta);
    for (const v of parameterLayout(c.spec).views) {
      const norm = Math.sqrt(dot(g.subarray(v.offset, v.offset + v.size), g.subarray(v.offset, v.offset + v.size)));
      expect(rel(r.tensors.find((t) => t.name === v.name)!.norm, norm)).toBeLessThan(1e-13);
    }
    const t = await layerGradientNorms(c.reference, alphaScale(c.spec, c.theta, alphas));
    let cumulative = 1;
    r.layers.forEach((l, k) => {
      cumulative *= alphas[k];
      expect(rel(t.layers[k].weight, l.weight / alphas[k])).toBeLessThan(1e-12);
      expect(rel(t.layers[k].bias!, l.bias! / cumulative)).toBeLessThan(1e-12);
    });
    expect(r.cost.gradients).toBe(1);
  });

  it("input gradient norms match finite differences in the input", async () => {
    for (const loss of ["ce", "mse"] as const) {
      const c = makeCase({ widths: [3, 5, 4, 2], batch: 4, loss, seed: 81, kinkMargin: 1e-2 });
      const d = c.data.features;
      const h = 1e-6;
      const out = await inputGradientNorms(c.spec, c.theta, c.data, { of: "output" });
      const lo = await inputGradientNorms(c.spec, c.theta, c.data, { of: "loss", loss });
      for (let s = 0; s < c.data.n; s++) {
        let jf = 0;
        let gl = 0;
        for (let i = 0; i < d; i++) {
          const shifted = (sign: number) => {
            const one = sample(c.data, s);
            one.x = Float32Array.from(one.x);
            const x64 = Float64Array.from(one.x);
            x64[i] += sign * h;
            return { one, x64 };
          };
          // Finite differences in float64: evaluate the one-sample net on the shifted input.
          const p = shifted(1);
          const m = shifted(-1);
          const fp = directionalOutputDerivative(c.spec, c.theta, c.theta, p.x64).outputs;
          const fm = directionalOutputDerivative(c.spec, c.theta, c.theta, m.x64).outputs;
          const col = fp.map((v, j) => (v - fm[j]) / (2 * h));
          jf += dot(col, col);
          const lossAt = (f: Float64Array) => {
            if (loss === "mse") return f.reduce((a, v, j) => a + (v - p.one.targets![j]) ** 2, 0) / f.length;
            const y = p.one.labels![0];
            const mx = Math.max(...f);
            return mx + Math.log(f.reduce((a, v) => a + Math.exp(v - mx), 0)) - f[y];
          };
          gl += ((lossAt(fp) - lossAt(fm)) / (2 * h)) ** 2;
        }
        expect(rel(out.perSample[s], Math.sqrt(jf))).toBeLessThan(1e-7);
        expect(rel(lo.perSample[s], Math.sqrt(gl))).toBeLessThan(1e-6);
      }
      expect(out.max).toBe(Math.max(...out.perSample));
    }
  });
});

describe("invariance audit", () => {
  for (const v of variants) {
    it(`${v.name}: invariant measures stay put under T_alpha and neuron-wise rescaling; the Hessian trace moves`, async () => {
      const c = makeCase({ widths: [3, 4, 3, 3], batch: 10, loss: "ce", bias: v.bias, activation: v.activation, seed: 91, kinkMargin: 1e-3 });
      const n = c.theta.length;
      const transforms: { name: string; theta: Float64Array; neuronLayer?: number }[] = [
        { name: "T_alpha", theta: alphaScale(c.spec, c.theta, alphas) },
        { name: "neurons of layer 0", theta: neuronRescale(c.spec, c.theta, 0, [2, 0.5, 3, 0.25]), neuronLayer: 0 },
        { name: "neurons of layer 1", theta: neuronRescale(c.spec, c.theta, 1, [0.3, 5, 1.7]), neuronLayer: 1 },
      ];
      const measure = async (theta: Float64Array) => ({
        outputs: await c.reference.outputs(theta),
        trace: trace(await c.reference.denseHessian(theta), n),
        path: await pathNorm(c.spec, theta, { p: 2 }),
        fr: await fisherRaoNorm(c.reference, theta, c.data),
        rf: await relativeFlatness(c.reference, theta, { exact: true }),
        ns: await normalizedSharpness(c.reference, theta, { exact: true }),
        pb: await pacBayesSigma(c.reference, theta, { epsilon: 0, seed: 4, samples: 3, searchDepth: 12 }),
        iso: await pacBayesSigma(c.reference, theta, { magnitudeAware: false, seed: 4, samples: 3, searchDepth: 12 }),
        input: await inputGradientNorms(c.spec, theta, c.data, { of: "loss", loss: "ce" }),
      });
      const before = await measure(c.theta);
      for (const t of transforms) {
        const after = await measure(t.theta);
        const tag = `${v.name}, ${t.name}`;
        assertClose(`${tag}: outputs`, after.outputs, before.outputs, 1e-12);
        expect(rel(after.trace, before.trace), `${tag}: trace`).toBeGreaterThan(1e-3);
        expect(rel(after.path.value, before.path.value), `${tag}: path norm`).toBeLessThan(1e-6);
        expect(rel(after.fr.squared, before.fr.squared), `${tag}: Fisher-Rao`).toBeLessThan(1e-6);
        expect(rel(after.ns.total, before.ns.total), `${tag}: normalized sharpness`).toBeLessThan(1e-6);
        expect(rel(after.ns.totalPerEntry, before.ns.totalPerEntry), `${tag}: per-entry`).toBeLessThan(1e-6);
        expect(rel(after.pb.sigma, before.pb.sigma), `${tag}: PAC-Bayes sigma`).toBeLessThan(1e-6);
        assertClose(`${tag}: input gradients`, after.input.perSample, before.input.perSample, 1e-10);
        // Relative flatness: every layer under T_alpha; under rescaling of hidden layer k, layers other than k+1.
        before.rf.layers.forEach((l, k) => {
          const changed = rel(after.rf.layers[k].value, l.value);
          if (t.neuronLayer !== undefined && k === t.neuronLayer + 1) expect(changed, `${tag}: kappa_${k}`).toBeGreaterThan(1e-4);
          else expect(changed, `${tag}: kappa_${k}`).toBeLessThan(1e-6);
        });
        if (t.name === "T_alpha") expect(rel(after.iso.sigma, before.iso.sigma), `${tag}: isotropic sigma`).toBeGreaterThan(1e-3);
      }
    });
  }
});
