/**
 * The convolutional WebGPU engine (src/gpu/convObjective.ts) against the float64 reference
 * (src/reference/engine.ts) under Deno's WebGPU (Mesa lavapipe without a GPU): loss, outputs,
 * gradient, hvp, hvpBlock and minibatchGradient over a grid of small shapes (stride, padding, odd
 * sizes, dilation, groups, bias, max / average pooling with padding and countIncludePad, ReLU and
 * leaky ReLU, the three losses, chunking, conv→conv→linear), plus routing and limits. Each case
 * must release what it took from the shared context's buffer pool, as in gpu_test.ts.
 */
import { GpuContext } from "../../src/gpu/context.ts";
import { GpuConvObjective } from "../../src/gpu/convObjective.ts";
import { GpuObjective } from "../../src/gpu/objective.ts";
import { GpuBatchLoss } from "../../src/landscape/gpuBatchLoss.ts";
import { webgpuBackend } from "../../src/backend/webgpu.ts";
import type { Dataset } from "../../src/data.ts";
import {
  inputWidth,
  type LossKind,
  mlpSpec,
  type ModelSpec,
  outputWidth,
  parameterLayout,
} from "../../src/model.ts";
import { ReferenceObjective } from "../../src/reference/engine.ts";
import { Rng } from "../../src/random.ts";
import { conv, linear, spec } from "../support/cnn.ts";
import { assertClose } from "../support/numeric.ts";
import { check, expectThrows } from "../gpu/harness.ts";

const ctx = await GpuContext.create();
console.log(`adapter: ${ctx.describe()}`);

// f32 against f64 on sums of up to a few hundred terms.
const RTOL = 1e-4;

function gpuCase(name: string, fn: () => Promise<void>) {
  Deno.test({
    name,
    sanitizeResources: false,
    sanitizeOps: false,
    async fn() {
      const before = ctx.pool.counters.inUse;
      await fn();
      const leaked = ctx.pool.counters.inUse - before;
      if (leaked !== 0) throw new Error(`${leaked} pooled GPU buffers taken by this case were never released`);
    },
  });
}


interface Problem {
  spec: ModelSpec;
  data: Dataset;
  theta: Float64Array;
  reference: ReferenceObjective;
  loss: LossKind;
}

/** He-normal weights over the full fan-in (in/groups·kh·kw), biases N(0, 0.1²), rounded to f32 so both engines see the same theta. */
function initTheta(s: ModelSpec, rng: Rng): Float64Array {
  const layout = parameterLayout(s);
  const theta = new Float64Array(layout.dim);
  for (const v of layout.views) {
    const fanIn = v.shape.slice(1).reduce((a, b) => a * b, 1);
    const std = v.role === "weight" ? Math.sqrt(2 / fanIn) : 0.1;
    for (let i = 0; i < v.size; i++) theta[v.offset + i] = std * rng.normal();
  }
  return Float64Array.from(Float32Array.from(theta));
}

/** A seeded problem whose hidden pre-activations and max-pool gaps stay `margin` away from the kinks. */
function problem(s: ModelSpec, n: number, loss: LossKind, seed: number, margin = 2e-5): Problem {
  for (let attempt = 0; attempt < 50; attempt++) {
    const rng = new Rng(seed + 1000 * attempt);
    const d = inputWidth(s);
    const c = outputWidth(s);
    const x = Float32Array.from({ length: n * d }, () => rng.normal());
    const data: Dataset = loss === "mse"
      ? { n, features: d, x, targets: Float32Array.from({ length: n * c }, () => rng.normal()) }
      : { n, features: d, x, labels: Int32Array.from({ length: n }, () => rng.int(loss === "ce" ? c : 2)) };
    const theta = initTheta(s, rng);
    const reference = new ReferenceObjective(s, data, loss);
    if (reference.minHiddenPreactivation(theta) >= margin) return { spec: s, data, theta, reference, loss };
  }
  throw new Error(`no draw kept a kink margin of ${margin}`);
}

/** Every operation of GpuConvObjective against the reference. */
async function compareAll(p: Problem, options: { chunkRows?: number; maxBlock?: number; minibatch?: number[] } = {}) {
  const gpu = await GpuConvObjective.create(ctx, p.spec, p.data, p.loss, {
    chunkRows: options.chunkRows,
    maxBlock: options.maxBlock,
    minibatchRows: options.minibatch?.length,
  });
  const s = gpu.space;
  const n = p.theta.length;
  const theta = s.fromArray(p.theta);
  const g = s.zeros();
  const rng = new Rng(77);
  const vs = [0, 1, 2].map(() => rng.normals(n));
  const vGpu = vs.map((v) => s.fromArray(v));
  const outs = vs.map(() => s.zeros());
  try {
    const ref = p.reference;
    const refGrad = new Float64Array(n);
    const refLoss = await ref.gradient(p.theta, refGrad);
    const loss = await gpu.loss(theta);
    check(Math.abs(loss - refLoss) <= 1e-5 * Math.max(1, Math.abs(refLoss)), `loss ${loss} vs reference ${refLoss}`);
    assertClose("outputs", await gpu.outputs(theta), await ref.outputs(p.theta), RTOL, 1e-6);
    const gLoss = await gpu.gradient(theta, g);
    check(Math.abs(gLoss - refLoss) <= 1e-5 * Math.max(1, Math.abs(refLoss)), `gradient's loss ${gLoss} vs reference ${refLoss}`);
    assertClose("gradient", await s.toArray(g), refGrad, RTOL, 1e-7);
    const refHv = vs.map(() => new Float64Array(n));
    await ref.hvpBlock(p.theta, vs, refHv);
    await gpu.hvp(theta, vGpu[0], outs[0]);
    assertClose("hvp", await s.toArray(outs[0]), refHv[0], RTOL, 1e-7);
    await gpu.hvpBlock(theta, vGpu, outs);
    for (let j = 0; j < vs.length; j++) assertClose(`hvpBlock direction ${j}`, await s.toArray(outs[j]), refHv[j], RTOL, 1e-7);
    if (options.minibatch) {
      const refMb = new Float64Array(n);
      await ref.minibatchGradient(p.theta, options.minibatch, refMb);
      await gpu.minibatchGradient(theta, options.minibatch, g);
      assertClose("minibatchGradient", await s.toArray(g), refMb, RTOL, 1e-7);
      // The full-data passes are unchanged after a minibatch.
      await gpu.hvp(theta, vGpu[1], outs[1]);
      assertClose("hvp after a minibatch", await s.toArray(outs[1]), refHv[1], RTOL, 1e-7);
    }
  } finally {
    for (const v of [theta, g, ...vGpu, ...outs]) s.dispose(v);
    gpu.dispose();
  }
}

// ---- the grid ------------------------------------------------------------------------------

gpuCase("conv 3x3 stride 1 pad 0 on a 7x5 input, max pool 2, linear: ce, relu", async () => {
  const s = spec([conv({ in: [1, 7, 5], out: 3, pool: { kind: "max" } }), linear(3 * 2 * 1, 4)]);
  await compareAll(problem(s, 9, "ce", 1), { minibatch: [3, 0, 3, 8] });
});

gpuCase("conv stride 2 pad 1, avg pool 3/2 pad 1 without counting padding, no bias: mse, leaky relu", async () => {
  const c = conv({ in: [2, 7, 6], out: 4, stride: [2, 2], padding: [1, 1], bias: false, pool: { kind: "avg", kernel: [3, 3], stride: [2, 2], padding: [1, 1], countIncludePad: false } });
  const s = spec([c, linear(4 * 2 * 2, 3, false)], { kind: "leaky_relu", slope: 0.1 });
  await compareAll(problem(s, 6, "mse", 2), { minibatch: [5, 1] });
});

gpuCase("conv dilation 2 groups 2 rectangular kernel, max pool 3/2 pad 1: logistic", async () => {
  const c = conv({ in: [4, 9, 8], out: 6, kernel: [3, 2], dilation: [2, 2], padding: [1, 0], groups: 2, pool: { kind: "max", kernel: [3, 3], stride: [2, 2], padding: [1, 1] } });
  const s = spec([c, linear(6 * 4 * 3, 1)]);
  await compareAll(problem(s, 5, "logistic", 3));
});

gpuCase("conv→conv→linear, max then avg pool counting padding, stride (1,2): ce, leaky relu, chunked", async () => {
  const c1 = conv({ in: [2, 8, 8], out: 4, padding: [1, 1], pool: { kind: "max" } });
  const c2 = conv({ in: [4, 4, 4], out: 6, kernel: [3, 2], stride: [1, 2], bias: false, pool: { kind: "avg", kernel: [2, 2], stride: [1, 1], padding: [1, 1], countIncludePad: true } });
  // c2: 6x2x2, avg pool 2 stride 1 pad 1 -> 6x3x3
  const s = spec([c1, c2, linear(6 * 3 * 3, 5)], { kind: "leaky_relu", slope: 0.05 });
  await compareAll(problem(s, 11, "ce", 4), { chunkRows: 4, maxBlock: 2, minibatch: [10, 2, 7] });
});

gpuCase("conv output layer (conv→conv, no linear), stride 2 kernel 2: mse, no pooling on the first layer", async () => {
  const c1 = conv({ in: [3, 6, 5], out: 4, padding: [1, 1] });
  const c2 = conv({ in: [4, 6, 5], out: 2, kernel: [2, 2], stride: [2, 2] });
  const s = spec([c1, c2]);
  await compareAll(problem(s, 7, "mse", 5), { chunkRows: 3, maxBlock: 2 });
});

gpuCase("conv→linear→linear, groups = channels (depthwise), no pooling: ce, chunked block HVPs", async () => {
  const c1 = conv({ in: [3, 5, 5], out: 3, groups: 3, padding: [1, 1], stride: [2, 1] });
  // 3x3x5
  const s = spec([c1, linear(45, 7), linear(7, 3, false)], { kind: "leaky_relu", slope: 0.2 });
  await compareAll(problem(s, 10, "ce", 6), { chunkRows: 4, maxBlock: 2 });
});

gpuCase("max pool with leaky relu and a 1x1 conv, pooling overlapping windows (kernel 3, stride 1): logistic", async () => {
  const c1 = conv({ in: [2, 6, 7], out: 3, kernel: [1, 1], pool: { kind: "max", kernel: [3, 3], stride: [1, 1] } });
  // 3x4x5
  const s = spec([c1, linear(60, 1)], { kind: "leaky_relu", slope: 0.1 });
  await compareAll(problem(s, 8, "logistic", 7), { minibatch: [1, 1, 4] });
});

gpuCase("a chunk whose parameter-gradient sums run past 65,535 terms (100 samples x 784 positions in one chunk): ce", async () => {
  // Regression: lavapipe ends an invocation's loops after 65,535 back-edges in all, and the old
  // one-thread-per-weight gradient kernels summed rows*outH*outW = 78,400 terms in one loop, so the
  // first layer's weight and bias gradients (and HVPs) came out truncated (relative errors ~0.1).
  const c1 = conv({ in: [1, 28, 28], out: 2, padding: [1, 1] });
  const s = spec([c1, linear(2 * 28 * 28, 3)]);
  await compareAll(problem(s, 100, "ce", 11, 1e-6), { maxBlock: 2 });
});

// ---- behaviour -----------------------------------------------------------------------------

gpuCase("results are deterministic across calls and the forward state cache (one chunk vs reuse off)", async () => {
  const s = spec([conv({ in: [1, 6, 6], out: 2, pool: { kind: "max" } }), linear(8, 3)]);
  const p = problem(s, 12, "ce", 8);
  const a = await GpuConvObjective.create(ctx, p.spec, p.data, p.loss);
  const b = await GpuConvObjective.create(ctx, p.spec, p.data, p.loss, { reuseForwardState: false, chunkRows: 5 });
  const sa = a.space;
  const sb = b.space;
  const v = new Rng(3).normals(p.theta.length);
  const ta = sa.fromArray(p.theta);
  const tb = sb.fromArray(p.theta);
  const va = sa.fromArray(v);
  const vb = sb.fromArray(v);
  const [ga, gb, ha, hb] = [sa.zeros(), sb.zeros(), sa.zeros(), sb.zeros()];
  try {
    await a.gradient(ta, ga);
    const g1 = await sa.toArray(ga);
    await a.hvp(ta, va, ha); // reuses the forward state of the gradient call
    const h1 = await sa.toArray(ha);
    await a.loss(ta);
    await a.hvp(ta, va, ha); // recomputes it
    const h2 = await sa.toArray(ha);
    await a.gradient(ta, ga);
    const g2 = await sa.toArray(ga);
    check(g1.every((x, i) => x === g2[i]), "two gradients differ");
    check(h1.every((x, i) => x === h2[i]), "hvp with and without the cached forward state differ");
    await b.gradient(tb, gb);
    await b.hvp(tb, vb, hb);
    assertClose("chunked gradient", await sb.toArray(gb), g1, 1e-5, 1e-8);
    assertClose("chunked hvp", await sb.toArray(hb), h1, 1e-5, 1e-8);
    check(a.counters.gradient === 2 && a.counters.hvp === 2 && a.counters.forward === 1, `counters ${JSON.stringify(a.counters)}`);
  } finally {
    for (const x of [ta, va, ga, ha]) sa.dispose(x);
    for (const x of [tb, vb, gb, hb]) sb.dispose(x);
    a.dispose();
    b.dispose();
  }
});

gpuCase("routing: the webgpu backend picks GpuConvObjective for conv specs, GpuObjective for MLPs; MLP-only engines refuse convs", async () => {
  const backend = webgpuBackend(ctx, false);
  const s = spec([conv({ in: [1, 5, 5], out: 2, pool: { kind: "avg" } }), linear(2, 2)]);
  const p = problem(s, 4, "ce", 9);
  const o = await backend.objective(p.spec, p.data, p.loss);
  check(o instanceof GpuConvObjective, "conv spec did not get a GpuConvObjective");
  o.dispose();
  const mlp = mlpSpec([3, 4, 2]);
  const mlpData: Dataset = { n: 2, features: 3, x: new Float32Array(6).fill(0.5), labels: Int32Array.from([0, 1]) };
  const m = await backend.objective(mlp, mlpData, "ce");
  check(m instanceof GpuObjective, "MLP spec did not get a GpuObjective");
  m.dispose();
  const training = await backend.minibatchObjective(p.spec, p.data, p.loss, 2);
  check(training instanceof GpuConvObjective, "conv spec did not get a GpuConvObjective for training");
  training.dispose();
  // The conv batch loss: one objective pass per point, equal to the reference loss.
  const batch = await backend.batchLoss(p.spec, p.data, p.loss);
  try {
    const losses = await batch.losses({ base: p.theta, basis: [new Float64Array(p.theta.length)], coefficients: new Float64Array(1) });
    const ref = await p.reference.loss(p.theta);
    check(Math.abs(losses[0] - ref) <= 1e-5 * Math.max(1, ref), `batch loss ${losses[0]} vs ${ref}`);
  } finally {
    batch.dispose();
  }
  await expectThrows("GpuObjective on a conv spec", /layer 0 is a conv2d/, "InputError", () => GpuObjective.create(ctx, p.spec, p.data, p.loss));
  await expectThrows("GpuBatchLoss on a conv spec", /layer 0 is a conv2d/, "InputError", () => GpuBatchLoss.create(ctx, p.spec, p.data, p.loss));
});

gpuCase("an image whose maxBlock tangents do not fit one storage binding is a DeviceLimitError", async () => {
  const s = spec([conv({ in: [1, 8, 8], out: 4, padding: [1, 1] }), linear(256, 2)]);
  const p = problem(s, 2, "ce", 10);
  const limit = ctx.limits.maxStorageBufferBindingSize;
  const maxBlock = Math.floor(limit / (4 * 256)) + 1;
  await expectThrows("huge maxBlock", /does not fit one storage binding/, "DeviceLimitError", () => GpuConvObjective.create(ctx, p.spec, p.data, p.loss, { maxBlock }));
  await expectThrows("chunkRows past the limit", /maxStorageBufferBindingSize/, "DeviceLimitError", () =>
    GpuConvObjective.create(ctx, p.spec, p.data, p.loss, { maxBlock: 8, chunkRows: Math.floor(limit / (4 * 8 * 256)) + 1 }));
});

Deno.test({
  name: "teardown: the shared context closes with no pooled buffer in use",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const { inUse } = ctx.pool.counters;
    await ctx.close();
    if (inUse !== 0) throw new Error(`${inUse} pooled GPU buffers were still in use at the end of the file`);
  },
});
