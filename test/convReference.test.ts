/**
 * The float64 reference engine on convolutional nets, checked without trusting it: outputs against
 * a direct transcription of PyTorch's Conv2d / MaxPool2d / AvgPool2d definitions, gradients against
 * central finite differences, HVPs against finite differences of gradients and dense Hessians of
 * tiny CNNs (<= 60 parameters) over a grid of layer kinds, strides, paddings, dilations, groups, odd
 * sizes and losses; max-pooling ties routed to the first maximum; a 1x1 convolution equal to the
 * linear layer it is.
 */
import { describe, expect, it } from "vitest";
import { parseArchitecture } from "../src/architecture.ts";
import type { Dataset } from "../src/data.ts";
import { convOutputShape, isConv, type LossKind, type ModelSpec, parameterLayout, poolOutputShape } from "../src/model.ts";
import { Rng } from "../src/random.ts";
import { ReferenceObjective } from "../src/reference/engine.ts";
import { makeCnnCase } from "./support/cnn.ts";
import { assertClose } from "./support/numeric.ts";

/** Tiny CNNs: every layer kind and option, <= 60 parameters each. */
const CASES: { name: string; arch: string; input: number[]; activation?: "leaky" }[] = [
  { name: "conv stride 1, max pool, linear", arch: "conv(2,2),relu,maxpool(2),flatten,linear(2)", input: [1, 5, 5] },
  { name: "conv stride 2 padding 1, odd 5x4 input", arch: "conv(2,3,stride=2,padding=1),relu,flatten,linear(2)", input: [1, 5, 4] },
  { name: "dilation 2, rectangular kernel", arch: "conv(2,2x3,dilation=2),relu,flatten,linear(2)", input: [1, 5, 6] },
  { name: "groups 2, no bias", arch: "conv(2,2,groups=2,bias=false),relu,flatten,linear(2)", input: [2, 4, 3] },
  { name: "avg pool, padding 1, count_include_pad false", arch: "conv(2,2),relu,avgpool(3,stride=2,padding=1,count_include_pad=false),flatten,linear(2)", input: [1, 5, 5] },
  { name: "avg pool counting padding", arch: "conv(1,2),relu,avgpool(2,stride=1,padding=1),flatten,linear(2)", input: [1, 4, 4] },
  { name: "max pool with padding and stride 1", arch: "conv(2,2,padding=1),relu,maxpool(3,stride=2,padding=1),flatten,linear(2)", input: [1, 4, 5] },
  { name: "conv -> conv -> linear, leaky ReLU", arch: "conv(2,2),leaky_relu(0.1),conv(2,2,stride=2),leaky_relu(0.1),flatten,linear(2)", input: [1, 5, 5], activation: "leaky" },
  { name: "conv output layer", arch: "conv(2,2),relu,maxpool(2),conv(1,2)", input: [1, 6, 6] },
];


/** PyTorch's definitions, written out directly (no tap tables, no shared code with the engine). */
function directForward(spec: ModelSpec, theta: Float64Array, x: Float32Array, n: number): Float64Array {
  const layout = parameterLayout(spec);
  const slope = spec.activation.kind === "leaky_relu" ? spec.activation.slope : 0;
  let a: Float64Array = Float64Array.from(x);
  spec.layers.forEach((l, k) => {
    const { weightOffset: w, biasOffset: b } = layout.layers[k];
    let z: Float64Array;
    let shape: number[];
    if (isConv(l)) {
      const [C, H, W] = convOutputShape(l);
      const cg = l.inChannels / l.groups;
      z = new Float64Array(n * C * H * W);
      for (let s = 0; s < n; s++) for (let o = 0; o < C; o++) for (let y = 0; y < H; y++) for (let xo = 0; xo < W; xo++) {
        let acc = b >= 0 ? theta[b + o] : 0;
        const g = Math.floor(o / (C / l.groups));
        for (let ci = 0; ci < cg; ci++) for (let i = 0; i < l.kernel[0]; i++) for (let j = 0; j < l.kernel[1]; j++) {
          const iy = y * l.stride[0] - l.padding[0] + i * l.dilation[0];
          const ix = xo * l.stride[1] - l.padding[1] + j * l.dilation[1];
          if (iy < 0 || iy >= l.inHeight || ix < 0 || ix >= l.inWidth) continue;
          const c = g * cg + ci;
          acc += theta[w + ((o * cg + ci) * l.kernel[0] + i) * l.kernel[1] + j] * a[((s * l.inChannels + c) * l.inHeight + iy) * l.inWidth + ix];
        }
        z[((s * C + o) * H + y) * W + xo] = acc;
      }
      shape = [C, H, W];
    } else {
      z = new Float64Array(n * l.outFeatures);
      for (let s = 0; s < n; s++) for (let o = 0; o < l.outFeatures; o++) {
        let acc = b >= 0 ? theta[b + o] : 0;
        for (let i = 0; i < l.inFeatures; i++) acc += theta[w + o * l.inFeatures + i] * a[s * l.inFeatures + i];
        z[s * l.outFeatures + o] = acc;
      }
      shape = [l.outFeatures];
    }
    if (k + 1 === spec.layers.length) {
      a = z;
      return;
    }
    a = z.map((v) => (v > 0 ? v : slope * v));
    if (isConv(l) && l.pool) {
      const p = l.pool;
      const [C, H, W] = shape;
      const [, PH, PW] = poolOutputShape(p, [C, H, W]);
      const pooled = new Float64Array(n * C * PH * PW);
      for (let s = 0; s < n; s++) for (let c = 0; c < C; c++) for (let y = 0; y < PH; y++) for (let xo = 0; xo < PW; xo++) {
        let best = -Infinity;
        let sum = 0;
        let inside = 0;
        for (let i = 0; i < p.kernel[0]; i++) for (let j = 0; j < p.kernel[1]; j++) {
          const iy = y * p.stride[0] - p.padding[0] + i;
          const ix = xo * p.stride[1] - p.padding[1] + j;
          if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
          const v = a[((s * C + c) * H + iy) * W + ix];
          best = Math.max(best, v);
          sum += v;
          inside++;
        }
        pooled[((s * C + c) * PH + y) * PW + xo] = p.kind === "max" ? best : sum / (p.countIncludePad === false ? inside : p.kernel[0] * p.kernel[1]);
      }
      a = pooled;
    }
  });
  return a;
}

const h = 1e-5;

describe("reference engine on convolutional nets", () => {
  for (const c of CASES) {
    for (const loss of ["ce", "mse", "logistic"] as LossKind[]) {
      if (loss === "logistic" && !c.arch.endsWith("linear(2)")) continue;
      const arch = loss === "logistic" ? c.arch.replace(/linear\(2\)$/, "linear(1)") : c.arch;
      it(`${c.name} (${loss}): outputs follow PyTorch's definitions, gradient and HVP match finite differences, dense Hessian symmetric`, async () => {
        const t = makeCnnCase(arch, c.input, loss, 11, 3);
        const n = t.theta.length;
        expect(n).toBeLessThanOrEqual(60);
        assertClose("outputs", await t.reference.outputs(t.theta), directForward(t.spec, t.theta, t.data.x, t.data.n), 1e-12, 1e-14);

        const g = new Float64Array(n);
        await t.reference.gradient(t.theta, g);
        const fd = new Float64Array(n);
        for (let i = 0; i < n; i++) {
          const p = Float64Array.from(t.theta);
          p[i] += h;
          const m = Float64Array.from(t.theta);
          m[i] -= h;
          fd[i] = ((await t.reference.loss(p)) - (await t.reference.loss(m))) / (2 * h);
        }
        assertClose("gradient vs central differences", g, fd, 1e-6, 1e-9);

        const H = await t.reference.denseHessian(t.theta);
        for (let i = 0; i < n; i++) for (let j = 0; j < i; j++) expect(Math.abs(H[i * n + j] - H[j * n + i])).toBeLessThan(1e-12);
        const v = new Rng(5).normals(n);
        const hv = new Float64Array(n);
        await t.reference.hvp(t.theta, v, hv);
        const gp = new Float64Array(n);
        const gm = new Float64Array(n);
        await t.reference.gradient(t.theta.map((x, i) => x + h * v[i]), gp);
        await t.reference.gradient(t.theta.map((x, i) => x - h * v[i]), gm);
        assertClose("Hv vs finite differences of gradients", hv, gp.map((x, i) => (x - gm[i]) / (2 * h)), 1e-6, 1e-9);
        const dense = new Float64Array(n);
        for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) dense[i] += H[i * n + j] * v[j];
        assertClose("Hv vs dense Hessian", hv, dense, 1e-12, 1e-15);
      });
    }
  }

  it("negative control: dropping the cross-layer terms (Gauss-Newton) breaks the finite-difference check on a CNN", async () => {
    const t = makeCnnCase(CASES[0].arch, CASES[0].input, "ce", 11, 3);
    const n = t.theta.length;
    const v = new Rng(5).normals(n);
    const gn = new Float64Array(n);
    await t.reference.gaussNewtonProduct(t.theta, v, gn);
    const gp = new Float64Array(n);
    const gm = new Float64Array(n);
    await t.reference.gradient(t.theta.map((x, i) => x + h * v[i]), gp);
    await t.reference.gradient(t.theta.map((x, i) => x - h * v[i]), gm);
    expect(() => assertClose("GN vs FD", gn, gp.map((x, i) => (x - gm[i]) / (2 * h)), 1e-6, 1e-9)).toThrow();
  });

  it("max pooling routes ties to the first maximum in row-major order, as PyTorch does", async () => {
    // A 1x1 convolution of two channels with weights (1, 1) gives 2 in every cell of the 2x2 window,
    // from different inputs: (1, 1), (2, 0), (0, 2), (0, 2). Only the first cell's input (1, 1) may
    // reach the gradient of the convolution's weights: dL/dw = 2 (y - t) x_first = (4, 4).
    const spec = parseArchitecture("conv(1,1),relu,maxpool(2),flatten,linear(1,bias=false)", [2, 2, 2]);
    const theta = Float64Array.from([1, 1, 0, 1]); // conv weights (2), conv bias, linear weight
    const data: Dataset = { n: 1, features: 8, x: Float32Array.from([1, 2, 0, 0, 1, 0, 2, 2]), targets: Float32Array.from([0]) };
    const ref = new ReferenceObjective(spec, data, "mse");
    expect(Array.from(await ref.outputs(theta))).toEqual([2]);
    const g = new Float64Array(4);
    await ref.gradient(theta, g);
    expect(Array.from(g.subarray(0, 2))).toEqual([4, 4]);
    const hv = new Float64Array(4);
    await ref.hvp(theta, Float64Array.from([1, 0, 0, 0]), hv);
    expect(Array.from(hv.subarray(0, 2))).toEqual([2, 2]); // d²L/dw_1 dw = 2 x_first,1 x_first
  });

  it("a 1x1 convolution on 1x1 images is the linear layer it is (same loss, gradient and HVP)", async () => {
    const conv = parseArchitecture("conv(3,1),relu,flatten,linear(2)", [4, 1, 1]);
    const mlp = parseArchitecture("linear(3),relu,linear(2)", [4]);
    expect(parameterLayout(conv).dim).toBe(parameterLayout(mlp).dim);
    const rng = new Rng(9);
    const data: Dataset = { n: 5, features: 4, x: Float32Array.from({ length: 20 }, () => rng.normal()), labels: Int32Array.from([0, 1, 1, 0, 1]) };
    const theta = Float64Array.from({ length: parameterLayout(mlp).dim }, () => rng.normal());
    const v = Float64Array.from({ length: theta.length }, () => rng.normal());
    const a = new ReferenceObjective(conv, data, "ce");
    const b = new ReferenceObjective(mlp, data, "ce");
    const ga = new Float64Array(theta.length);
    const gb = new Float64Array(theta.length);
    expect(await a.gradient(theta, ga)).toBeCloseTo(await b.gradient(theta, gb), 14);
    assertClose("gradient", ga, gb, 1e-13, 1e-15);
    await a.hvp(theta, v, ga);
    await b.hvp(theta, v, gb);
    assertClose("HVP", ga, gb, 1e-13, 1e-15);
  });
});
