/**
 * The WebAssembly CPU engine (src/wasm/) under Node: the embedded module is fresh; the MLP and CNN
 * grids the WebGPU engine runs (odd sizes, every layer, activation and loss, chunking, block
 * HVPs, minibatches) against the float64 reference; the T_alpha identities; no leak; results
 * deterministic for a given thread count; the metric suite equal to the float64 run within f32
 * rounding; and the backend seam (names, --backend, auto).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { generateWasmModule } from "../build.mjs";
import { type Backend, openBackend, parseBackendChoice } from "../src/backend/mod.ts";
import type { Dataset } from "../src/data.ts";
import { measureMetrics } from "../src/metrics/suite.ts";
import {
  type Activation,
  inputWidth,
  LOSS_KINDS,
  type LossKind,
  type ModelSpec,
  outputWidth,
  parameterLayout,
} from "../src/model.ts";
import { ReferenceObjective } from "../src/reference/engine.ts";
import { Rng } from "../src/random.ts";
import { alphaScale, alphaScaleDiagonal } from "../src/transforms/alphaScale.ts";
import { WasmObjective } from "../src/wasm/objective.ts";
import { WasmRuntime } from "../src/wasm/runtime.ts";
import { conv, linear, spec } from "./support/cnn.ts";
import { assertClose, makeCase, type TestCase } from "./support/numeric.ts";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const RTOL = 2e-4;

// Two threads with every gemm split (minThreadWork 0), so the odd shapes exercise the parts too.
let rt: WasmRuntime;
beforeAll(async () => {
  rt = await WasmRuntime.create({ threads: 2, minThreadWork: 0 });
});
afterAll(() => rt?.close());

function closeLoss(label: string, got: number, want: number) {
  expect(Math.abs(got - want), `${label}: ${got} vs ${want}`).toBeLessThanOrEqual(1e-5 * Math.max(1, Math.abs(want)));
}

/** Loss, outputs, gradient, hvp and hvpBlock (3 directions) against the reference. */
async function compareAll(spec: ModelSpec, data: Dataset, theta: Float64Array, reference: ReferenceObjective, loss: LossKind, label: string, options: { chunkRows?: number; minibatch?: number[] } = {}) {
  const o = WasmObjective.create(rt, spec, data, loss, { chunkRows: options.chunkRows, minibatchRows: options.minibatch?.length });
  try {
    const n = theta.length;
    const refGrad = new Float64Array(n);
    const refLoss = await reference.gradient(theta, refGrad);
    closeLoss(`${label}: loss`, await o.loss(theta), refLoss);
    assertClose(`${label}: outputs`, await o.outputs(theta), await reference.outputs(theta), RTOL, 1e-6);
    const g = new Float64Array(n);
    closeLoss(`${label}: gradient's loss`, await o.gradient(theta, g), refLoss);
    assertClose(`${label}: gradient`, g, refGrad, RTOL, 1e-7);
    const rng = new Rng(77);
    const vs = [0, 1, 2].map(() => rng.normals(n));
    const refHv = vs.map(() => new Float64Array(n));
    await reference.hvpBlock(theta, vs, refHv);
    const outs = vs.map(() => new Float64Array(n));
    await o.hvp(theta, vs[0], outs[0]);
    assertClose(`${label}: hvp`, outs[0], refHv[0], RTOL, 1e-7);
    await o.hvpBlock(theta, vs, outs);
    for (let j = 0; j < vs.length; j++) assertClose(`${label}: hvpBlock direction ${j}`, outs[j], refHv[j], RTOL, 1e-7);
    if (options.minibatch) {
      const refMb = new Float64Array(n);
      await reference.minibatchGradient(theta, options.minibatch, refMb);
      await o.minibatchGradient(theta, options.minibatch, g);
      assertClose(`${label}: minibatchGradient`, g, refMb, RTOL, 1e-7);
      await o.hvp(theta, vs[1], outs[1]);
      assertClose(`${label}: hvp after a minibatch`, outs[1], refHv[1], RTOL, 1e-7);
    }
  } finally {
    o.dispose();
  }
}

const compareCase = (c: TestCase, label: string, options: { chunkRows?: number; minibatch?: number[] } = {}) =>
  compareAll(c.spec, c.data, c.theta, c.reference, c.reference.lossKind, label, options);

describe("wasm build", () => {
  it("src/wasm/module.generated.ts is up to date with src/wasm/kernels.ts (run `npm run build` if not)", async () => {
    expect(readFileSync(join(root, "src/wasm/module.generated.ts"), "utf8")).toBe(await generateWasmModule());
  });
});

describe("wasm engine: MLP grid against float64", () => {
  const batches = [1, 7, 64, 257];
  const widths = [1, 3, 63, 64, 65];
  const activations: Activation[] = [{ kind: "relu" }, { kind: "leaky_relu", slope: 0.05 }];
  let i = 0;
  for (const depth of [1, 2, 3, 4]) {
    for (const batch of batches) {
      const configs: { w: number[]; loss: LossKind; bias: boolean; activation: Activation }[] = [];
      for (const width of widths) {
        const loss = LOSS_KINDS[i % 3];
        const bias = i % 2 === 0;
        const activation = activations[Math.floor(i / 2) % 2];
        i++;
        const outputs = loss === "logistic" ? 1 : loss === "ce" ? Math.max(2, (width % 5) + 2) : 3;
        configs.push({ w: [Math.max(1, (width + 2) % 7 + 1), ...Array(depth - 1).fill(width), outputs], loss, bias, activation });
      }
      it(`depth ${depth} batch ${batch}: loss, outputs, gradient, HVP, block HVP (${configs.length} nets)`, async () => {
        for (const cfg of configs) {
          const c = makeCase({ widths: cfg.w, batch, loss: cfg.loss, bias: cfg.bias, activation: cfg.activation, seed: 17 + depth * 31 + batch, kinkMargin: 2e-5 });
          await compareCase(c, `widths=[${cfg.w}] batch=${batch} ${cfg.loss} ${cfg.activation.kind} bias=${cfg.bias}`);
        }
      });
    }
  }
  it("wide inputs (63, 64, 65 features), and 300-wide layers past one cache block (KC 256)", async () => {
    for (const [j, d] of [63, 64, 65].entries()) {
      const loss = LOSS_KINDS[j];
      await compareCase(makeCase({ widths: [d, 9, loss === "logistic" ? 1 : 4], batch: 33, loss, seed: 3, kinkMargin: 1e-3 }), `d=${d} ${loss}`);
    }
    await compareCase(makeCase({ widths: [300, 301, 5], batch: 270, loss: "ce", seed: 4, kinkMargin: 2e-5 }), "300-wide");
  });
  it("chunked data (chunks of 10 over 57 samples) and minibatches", async () => {
    for (const loss of LOSS_KINDS) {
      const c = makeCase({ widths: [4, 8, 6, loss === "logistic" ? 1 : 3], batch: 57, loss, seed: 9, kinkMargin: 1e-3 });
      await compareCase(c, `chunked ${loss}`, { chunkRows: 10, minibatch: [3, 56, 3, 0, 17] });
    }
  });
  it("block HVP of 11 directions equals 11 single HVPs; counters", async () => {
    const c = makeCase({ widths: [5, 12, 7, 4], batch: 40, loss: "ce", seed: 21, kinkMargin: 1e-3 });
    const o = WasmObjective.create(rt, c.spec, c.data, "ce");
    const rng = new Rng(4);
    const vs = Array.from({ length: 11 }, () => rng.normals(o.dim));
    const outs = vs.map(() => new Float64Array(o.dim));
    await o.hvpBlock(c.theta, vs, outs);
    const single = new Float64Array(o.dim);
    for (let j = 0; j < vs.length; j++) {
      await o.hvp(c.theta, vs[j], single);
      expect(Array.from(outs[j])).toEqual(Array.from(single));
    }
    expect(o.counters.blockHvpDirections).toBe(11);
    expect(o.counters.hvp).toBe(11);
    o.dispose();
  });
  it("T_alpha keeps outputs and loss, g -> D^-1 g, H -> D^-1 H D^-1; symmetry u·Hv = v·Hu", async () => {
    for (const loss of LOSS_KINDS) {
      const c = makeCase({ widths: [4, 10, 8, loss === "logistic" ? 1 : 3], batch: 25, loss, seed: 31, kinkMargin: 1e-3 });
      const alphas = [8, 0.25, 0.5];
      const d = alphaScaleDiagonal(c.spec, alphas);
      const o = WasmObjective.create(rt, c.spec, c.data, loss);
      const scaled = alphaScale(c.spec, c.theta, alphas);
      assertClose(`${loss} outputs under T_alpha`, await o.outputs(scaled), await o.outputs(c.theta), 1e-5, 1e-6);
      const [g0, g1, h0, h1] = [0, 1, 2, 3].map(() => new Float64Array(o.dim));
      const l0 = await o.gradient(c.theta, g0);
      const l1 = await o.gradient(scaled, g1);
      expect(Math.abs(l0 - l1)).toBeLessThanOrEqual(1e-5 * Math.max(1, l0));
      assertClose(`${loss} gradient under T_alpha`, g1, g0.map((x, i) => x / d[i]), 1e-4, 1e-7);
      const v = new Rng(2).normals(o.dim);
      await o.hvp(scaled, v, h1);
      await o.hvp(c.theta, v.map((x, i) => x / d[i]), h0);
      assertClose(`${loss} Hessian under T_alpha`, h1, h0.map((x, i) => x / d[i]), 1e-4, 1e-7);
      const u = new Rng(3).normals(o.dim);
      const hu = new Float64Array(o.dim);
      await o.hvp(c.theta, u, hu);
      await o.hvp(c.theta, v, h0);
      const uHv = u.reduce((s, x, i) => s + x * h0[i], 0);
      const vHu = v.reduce((s, x, i) => s + x * hu[i], 0);
      expect(Math.abs(uHv - vHu)).toBeLessThanOrEqual(1e-4 * (Math.abs(uHv) + 1e-3));
      o.dispose();
    }
  });
  it("a changed theta invalidates the kept forward state; reuse off gives the same bits", async () => {
    const c = makeCase({ widths: [3, 8, 2], batch: 12, loss: "ce", seed: 5, kinkMargin: 1e-3 });
    const a = WasmObjective.create(rt, c.spec, c.data, "ce");
    const b = WasmObjective.create(rt, c.spec, c.data, "ce", { reuseForwardState: false });
    const v = new Rng(1).normals(a.dim);
    const [ha, hb] = [new Float64Array(a.dim), new Float64Array(a.dim)];
    await a.hvp(c.theta, v, ha);
    const moved = c.theta.map((x, i) => x + 0.1 * Math.sin(i));
    await a.hvp(moved, v, ha);
    await b.hvp(moved, v, hb);
    expect(Array.from(ha)).toEqual(Array.from(hb));
    const ref = new Float64Array(a.dim);
    await c.reference.hvp(Float64Array.from(Float32Array.from(moved)), v, ref);
    assertClose("HVP after theta changed", ha, ref, RTOL, 1e-7);
    a.dispose();
    b.dispose();
  });
  it("no leak: memory back to baseline after 1,000 HVPs and dispose", async () => {
    const c = makeCase({ widths: [3, 6, 2], batch: 4, loss: "ce", seed: 2 });
    const before = rt.allocatedBytes;
    const o = WasmObjective.create(rt, c.spec, c.data, "ce");
    const setup = rt.allocatedBytes;
    const v = new Rng(1).normals(o.dim);
    for (let i = 0; i < 1000; i++) await o.hvp(c.theta, v, new Float64Array(o.dim));
    expect(rt.allocatedBytes).toBe(setup);
    o.dispose();
    expect(rt.allocatedBytes).toBe(before);
  });
  it("bad input: clear errors", async () => {
    const c = makeCase({ widths: [3, 4, 2], batch: 5, loss: "ce" });
    expect(() => WasmObjective.create(rt, c.spec, { ...c.data, x: c.data.x.map((v, i) => (i === 4 ? NaN : v)) }, "ce")).toThrow(/non-finite value \(NaN\) at flat index 4/);
    expect(() => WasmObjective.create(rt, c.spec, { ...c.data, labels: Int32Array.from([0, 7, 1, 0, 1]) }, "ce")).toThrow(/label 7 at sample 1 is out of range/);
    expect(() => WasmObjective.create(rt, c.spec, c.data, "logistic")).toThrow(/needs a model with 1 output/);
    const o = WasmObjective.create(rt, c.spec, c.data, "ce");
    await expect(o.hvp(c.theta, new Float64Array(3), new Float64Array(o.dim))).rejects.toThrow(/v has 3 entries/);
    await expect(o.gradient(c.theta, c.theta)).rejects.toThrow(/different vector from theta/);
    await expect(o.loss(c.theta.map(() => 1e30))).rejects.toThrow(/loss is not finite/);
    o.dispose();
  });
});

// ---- convolutions --------------------------------------------------------------------------


/** A seeded problem (He-normal weights rounded to f32) whose kinks stay `margin` away. */
function problem(s: ModelSpec, n: number, loss: LossKind, seed: number, margin = 2e-5) {
  for (let attempt = 0; attempt < 50; attempt++) {
    const rng = new Rng(seed + 1000 * attempt);
    const d = inputWidth(s);
    const c = outputWidth(s);
    const x = Float32Array.from({ length: n * d }, () => rng.normal());
    const data: Dataset = loss === "mse"
      ? { n, features: d, x, targets: Float32Array.from({ length: n * c }, () => rng.normal()) }
      : { n, features: d, x, labels: Int32Array.from({ length: n }, () => rng.int(loss === "ce" ? c : 2)) };
    const layout = parameterLayout(s);
    const theta = new Float64Array(layout.dim);
    for (const v of layout.views) {
      const fanIn = v.shape.slice(1).reduce((a, b) => a * b, 1);
      const std = v.role === "weight" ? Math.sqrt(2 / fanIn) : 0.1;
      for (let i = 0; i < v.size; i++) theta[v.offset + i] = std * rng.normal();
    }
    const t32 = Float64Array.from(Float32Array.from(theta));
    const reference = new ReferenceObjective(s, data, loss);
    if (reference.minHiddenPreactivation(t32) >= margin) return { spec: s, data, theta: t32, reference, loss };
  }
  throw new Error(`no draw kept a kink margin of ${margin}`);
}

const compareProblem = (p: ReturnType<typeof problem>, label: string, options: { chunkRows?: number; minibatch?: number[] } = {}) =>
  compareAll(p.spec, p.data, p.theta, p.reference, p.loss, label, options);

describe("wasm engine: CNN grid against float64", () => {
  it("conv 3x3 on 7x5, max pool 2, linear: ce, relu, minibatch", async () => {
    const s = spec([conv({ in: [1, 7, 5], out: 3, pool: { kind: "max" } }), linear(3 * 2 * 1, 4)]);
    await compareProblem(problem(s, 9, "ce", 1), "c1", { minibatch: [3, 0, 3, 8] });
  });
  it("stride 2 pad 1, avg pool 3/2 pad 1 without counting padding, no bias: mse, leaky relu", async () => {
    const c = conv({ in: [2, 7, 6], out: 4, stride: [2, 2], padding: [1, 1], bias: false, pool: { kind: "avg", kernel: [3, 3], stride: [2, 2], padding: [1, 1], countIncludePad: false } });
    await compareProblem(problem(spec([c, linear(4 * 2 * 2, 3, false)], { kind: "leaky_relu", slope: 0.1 }), 6, "mse", 2), "c2", { minibatch: [5, 1] });
  });
  it("dilation 2, groups 2, rectangular kernel, max pool 3/2 pad 1: logistic", async () => {
    const c = conv({ in: [4, 9, 8], out: 6, kernel: [3, 2], dilation: [2, 2], padding: [1, 0], groups: 2, pool: { kind: "max", kernel: [3, 3], stride: [2, 2], padding: [1, 1] } });
    await compareProblem(problem(spec([c, linear(6 * 4 * 3, 1)]), 5, "logistic", 3), "c3");
  });
  it("conv→conv→linear, max then avg pool counting padding, stride (1,2): ce, leaky relu, chunked", async () => {
    const c1 = conv({ in: [2, 8, 8], out: 4, padding: [1, 1], pool: { kind: "max" } });
    const c2 = conv({ in: [4, 4, 4], out: 6, kernel: [3, 2], stride: [1, 2], bias: false, pool: { kind: "avg", kernel: [2, 2], stride: [1, 1], padding: [1, 1], countIncludePad: true } });
    await compareProblem(problem(spec([c1, c2, linear(6 * 3 * 3, 5)], { kind: "leaky_relu", slope: 0.05 }), 11, "ce", 4), "c4", { chunkRows: 4, minibatch: [10, 2, 7] });
  });
  it("conv output layer (conv→conv, no linear), stride 2 kernel 2: mse, chunked", async () => {
    const s = spec([conv({ in: [3, 6, 5], out: 4, padding: [1, 1] }), conv({ in: [4, 6, 5], out: 2, kernel: [2, 2], stride: [2, 2] })]);
    await compareProblem(problem(s, 7, "mse", 5), "c5", { chunkRows: 3 });
  });
  it("depthwise (groups = channels) conv→linear→linear: ce, chunked", async () => {
    const c1 = conv({ in: [3, 5, 5], out: 3, groups: 3, padding: [1, 1], stride: [2, 1] });
    await compareProblem(problem(spec([c1, linear(45, 7), linear(7, 3, false)], { kind: "leaky_relu", slope: 0.2 }), 10, "ce", 6), "c6", { chunkRows: 4 });
  });
  it("1x1 conv, overlapping max pool windows (kernel 3, stride 1): logistic, leaky relu", async () => {
    const c1 = conv({ in: [2, 6, 7], out: 3, kernel: [1, 1], pool: { kind: "max", kernel: [3, 3], stride: [1, 1] } });
    await compareProblem(problem(spec([c1, linear(60, 1)], { kind: "leaky_relu", slope: 0.1 }), 8, "logistic", 7), "c7", { minibatch: [1, 1, 4] });
  });
  it("MNIST-sized: 100 samples x 784 positions in one chunk, 16 channels into 32 (groups 4)", async () => {
    const c1 = conv({ in: [1, 28, 28], out: 16, padding: [1, 1], pool: { kind: "max" } });
    const c2 = conv({ in: [16, 14, 14], out: 32, padding: [1, 1], groups: 4, pool: { kind: "avg" } });
    await compareProblem(problem(spec([c1, c2, linear(32 * 7 * 7, 10)]), 100, "ce", 11, 1e-6), "mnist-sized");
  });
});

// ---- threads, metrics, backend --------------------------------------------------------------

describe("wasm engine: threads, metrics and the backend seam", () => {
  it("results are deterministic for a given thread count (bitwise), and MLP results agree across 1 and 2 threads", async () => {
    const c = makeCase({ widths: [40, 300, 70, 10], batch: 200, loss: "ce", seed: 12, kinkMargin: 2e-5 });
    const one = await WasmRuntime.create({ threads: 1 });
    const runs: Float64Array[] = [];
    try {
      for (const r of [rt, rt, one]) {
        const o = WasmObjective.create(r, c.spec, c.data, "ce", { reuseForwardState: false });
        const out = new Float64Array(o.dim);
        await o.hvp(c.theta, new Rng(1).normals(o.dim), out);
        runs.push(out);
        o.dispose();
      }
    } finally {
      one.close();
    }
    expect(Array.from(runs[1])).toEqual(Array.from(runs[0]));
    // Split-K (small C, long sums) may round differently per thread count: f32-close.
    assertClose("1 thread vs 2", runs[2], runs[0], 1e-5, 1e-9);
  });

  it("the metric suite on wasm equals the float64 run within f32 rounding", async () => {
    const c = makeCase({ widths: [6, 16, 12, 3], batch: 48, loss: "ce", seed: 14, kinkMargin: 1e-3 });
    const reports = [];
    for (const name of ["cpu", "wasm"] as const) {
      const backend = await openBackend(name, { threads: 2 });
      try {
        const objective = await backend.objective(c.spec, c.data, "ce");
        const theta = objective.space.fromArray(c.theta);
        reports.push(await measureMetrics(objective as never, theta as never, c.theta, c.data, { metrics: ["spectrum", "trace", "frobenius"], seed: 3, backend } as never));
        objective.dispose();
      } finally {
        await backend.close();
      }
    }
    const [f64, f32] = reports as Record<string, unknown>[];
    // Numbers of a report entry: a number, an array of them, or an estimate object.
    const numbers = (x: unknown): number[] => {
      if (typeof x === "number") return [x];
      if (Array.isArray(x)) return x.flatMap(numbers);
      if (x && typeof x === "object" && "estimate" in x) return numbers((x as { estimate: unknown }).estimate);
      return [];
    };
    let compared = 0;
    for (const key of ["topEigenvalues", "trace", "frobenius", "loss", "gradientNorm"]) {
      const xs = numbers(f64[key]);
      const ys = numbers(f32[key]);
      expect(ys.length, key).toBe(xs.length);
      xs.forEach((x, i) => expect(Math.abs(ys[i] - x), `${key}[${i}]: ${ys[i]} vs ${x}`).toBeLessThanOrEqual(1e-3 * Math.max(1, Math.abs(x))));
      compared += xs.length;
    }
    expect(compared).toBeGreaterThanOrEqual(6);
  });

  it("backend seam: names, --backend wasm, auto picks wasm without WebGPU; training runs", async () => {
    expect(parseBackendChoice("wasm", undefined)).toBe("wasm");
    expect(parseBackendChoice(undefined, undefined)).toBe("auto");
    const auto: Backend = await openBackend("auto");
    try {
      expect(auto.name).toBe("wasm");
      expect(auto.precision).toBe("f32");
      expect(auto.describe()).toMatch(/WebAssembly/);
      const c = makeCase({ widths: [4, 16, 3], batch: 64, loss: "ce", seed: 5 });
      const train = await auto.minibatchObjective(c.spec, c.data, "ce", 16);
      const opt = await auto.optimizer(train.space, { kind: "sgd", lr: 0.1 } as never);
      const theta = Float64Array.from(c.theta);
      const before = await train.loss(theta);
      const g = new Float64Array(theta.length);
      for (let step = 0; step < 30; step++) {
        await train.minibatchGradient(theta as never, Array.from({ length: 16 }, (_, i) => (step * 16 + i) % 64), g as never);
        opt.step(theta as never, g as never);
      }
      expect(await train.loss(theta)).toBeLessThan(before);
      train.dispose();
    } finally {
      await auto.close();
    }
  });
});

// ---- the gemm's epilogues --------------------------------------------------------------------

describe("wasm gemm: bias and epilogues (rectifier mask and activation) after the last block of the sum", () => {
  it("match a float64 product then the rectifier, at edge tiles, past KC, split in parts and split-K, on 1 and 2 threads", async () => {
    const one = await WasmRuntime.create({ threads: 1 });
    try {
      const rng = new Rng(5);
      // (M, N, K): edge tiles both ways; K past one KC block (256); a split-K shape (small C, long
      // sum); sums not a multiple of 4; transposed A and B (the packing's vector paths).
      const shapes: [number, number, number, boolean, boolean][] = [[7, 13, 300], [50, 3, 600], [5, 5, 1100], [61, 40, 19], [30, 17, 262]].map(([m, n, k], i) => [m, n, k, i % 2 === 1, i >= 3]);
      for (const r of [rt, one]) {
        for (const [M, N, K, transA, transB] of shapes) {
          for (const kind of ["mask", "rectify"] as const) {
            for (const accumulate of [false, true]) {
              const slope = 0.1;
              const A = rng.normals(M * K);
              const B = rng.normals(K * N);
              const C0 = rng.normals(M * N);
              const Zv = rng.normals(M * N);
              const biasV = rng.normals(N);
              const useBias = !accumulate && M % 2 === 1;
              const at = [M * K, K * N, M * N, M * N, N].map((n) => r.alloc(n));
              const f = r.f32;
              f.set(A, at[0] / 4);
              f.set(B, at[1] / 4);
              f.set(C0, at[2] / 4);
              f.set(Zv, at[3] / 4);
              f.set(biasV, at[4] / 4);
              const bias32 = Float32Array.from(biasV);
              const a32 = Float32Array.from(A);
              const b32 = Float32Array.from(B);
              const c32 = Float32Array.from(C0);
              const z32 = Float32Array.from(Zv);
              r.gemm({
                M, N, K, A: at[0], rsA: transA ? 1 : K, csA: transA ? M : 1, B: at[1], rsB: transB ? 1 : N, csB: transB ? K : 1, C: at[2], ldc: N, accumulate, bias: useBias ? at[4] : undefined,
                epilogue: { kind, Z: at[3], slope },
              });
              const g = r.f32;
              const wantC = new Float64Array(M * N);
              const wantZ = new Float64Array(M * N);
              for (let i = 0; i < M; i++) {
                for (let j = 0; j < N; j++) {
                  let v = accumulate ? c32[i * N + j] : useBias ? bias32[j] : 0;
                  for (let k = 0; k < K; k++) v += a32[transA ? k * M + i : i * K + k] * b32[transB ? j * K + k : k * N + j];
                  const rect = (x: number, cond: number) => (cond > 0 ? x : slope * x);
                  wantC[i * N + j] = kind === "mask" ? rect(v, z32[i * N + j]) : v;
                  wantZ[i * N + j] = kind === "mask" ? z32[i * N + j] : rect(v, v);
                }
              }
              const label = `${r.threads} threads, ${M}x${N}x${K}${transA ? " (A^T)" : ""}${transB ? " (B^T)" : ""}, ${kind}, accumulate ${accumulate}, bias ${useBias}`;
              assertClose(`${label}: C`, Float64Array.from(g.subarray(at[2] / 4, at[2] / 4 + M * N)), wantC, 1e-4, 1e-4);
              assertClose(`${label}: Z`, Float64Array.from(g.subarray(at[3] / 4, at[3] / 4 + M * N)), wantZ, 1e-4, 1e-4);
              for (const p of at) r.release(p);
            }
          }
        }
      }
    } finally {
      one.close();
    }
  });
});
