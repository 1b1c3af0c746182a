/** GPU engine cases: everything checked against the float64 reference engine. */
import { GpuObjective } from "../../src/gpu/objective.ts";
import type { GpuContext } from "../../src/gpu/context.ts";
import { type Activation, LOSS_KINDS, type LossKind } from "../../src/model.ts";
import { Rng } from "../../src/random.ts";
import { alphaScale, alphaScaleDiagonal } from "../../src/transforms/alphaScale.ts";
import { assertClose, makeCase, type TestCase } from "../support/numeric.ts";
import { check, expectThrows, type GpuCase } from "./harness.ts";

// f32 products over up to ~260 terms: 2e-4 of the largest entry leaves room for rounding while
// any wrong term (a missing cross-layer product, a wrong stride) shows up at O(1).
const RTOL = 2e-4;

async function compareAll(ctx: GpuContext, c: TestCase, label: string, options: { chunkRows?: number; block?: number } = {}) {
  const gpu = await GpuObjective.create(ctx, c.spec, c.data, c.reference.lossKind, { chunkRows: options.chunkRows });
  const s = gpu.space;
  const theta = s.fromArray(c.theta);
  const g = s.zeros();
  const hv = s.zeros();
  try {
    const refGrad = c.reference.space.zeros();
    const refLoss = await c.reference.gradient(c.theta, refGrad);
    const loss = await gpu.gradient(theta, g);
    check(Math.abs(loss - refLoss) <= 1e-5 * Math.max(1, Math.abs(refLoss)), `${label}: loss ${loss} vs reference ${refLoss}`);
    assertClose(`${label}: outputs`, await gpu.outputs(theta), await c.reference.outputs(c.theta), RTOL, 1e-6);
    assertClose(`${label}: gradient`, await s.toArray(g), refGrad, RTOL, 1e-7);
    const v = new Rng(c.seed + 5).normals(c.theta.length);
    const vGpu = s.fromArray(v);
    const refHv = c.reference.space.zeros();
    await c.reference.hvp(c.theta, v, refHv);
    await gpu.hvp(theta, vGpu, hv);
    assertClose(`${label}: Hv`, await s.toArray(hv), refHv, RTOL, 1e-7);
    s.dispose(vGpu);
  } finally {
    for (const x of [theta, g, hv]) s.dispose(x);
    gpu.dispose();
  }
}

function gridCases(): GpuCase[] {
  // Covering grid: every batch x width x depth combination, with bias / activation / loss rotated
  // through them so each value of those meets every batch and width.
  const batches = [1, 7, 64, 257];
  const widths = [1, 3, 63, 64, 65];
  const depths = [1, 2, 3, 4];
  const activations: Activation[] = [{ kind: "relu" }, { kind: "leaky_relu", slope: 0.05 }];
  const cases: GpuCase[] = [];
  let i = 0;
  for (const depth of depths) {
    for (const batch of batches) {
      const group: string[] = [];
      const configs: { widths: number[]; loss: LossKind; bias: boolean; activation: Activation; label: string }[] = [];
      for (const width of widths) {
        const loss = LOSS_KINDS[i % 3];
        const bias = i % 2 === 0;
        const activation = activations[Math.floor(i / 2) % 2];
        i++;
        const hidden = Array(depth - 1).fill(width);
        const outputs = loss === "logistic" ? 1 : loss === "ce" ? Math.max(2, (width % 5) + 2) : 3;
        const w = [Math.max(1, (width + 2) % 7 + 1), ...hidden, outputs];
        const label = `widths=[${w}] batch=${batch} ${loss} ${activation.kind} bias=${bias}`;
        group.push(label);
        configs.push({ widths: w, loss, bias, activation, label });
      }
      cases.push({
        name: `grid depth ${depth} batch ${batch}: forward, loss, gradient and HVP match float64 (${configs.length} nets)`,
        async run(ctx) {
          for (const cfg of configs) {
            const c = makeCase({ widths: cfg.widths, batch, loss: cfg.loss, bias: cfg.bias, activation: cfg.activation, seed: 17 + depth * 31 + batch, kinkMargin: 2e-5 });
            await compareAll(ctx, c, cfg.label);
          }
        },
      });
    }
  }
  // The input width 1..7 above keeps first layers small; add wide inputs explicitly.
  cases.push({
    name: "grid: wide inputs (63, 64, 65 features) into each loss",
    async run(ctx) {
      for (const [j, d] of [63, 64, 65].entries()) {
        const loss = LOSS_KINDS[j];
        const c = makeCase({ widths: [d, 9, loss === "logistic" ? 1 : 4], batch: 33, loss, seed: 3, kinkMargin: 1e-3 });
        await compareAll(ctx, c, `d=${d} ${loss}`);
      }
    },
  });
  return cases;
}

export const engineCases: GpuCase[] = [
  ...gridCases(),
  {
    name: "chunked data (chunks of 10 over 57 samples) gives the same loss, gradient and HVP",
    async run(ctx) {
      for (const loss of LOSS_KINDS) {
        const c = makeCase({ widths: [4, 8, 6, loss === "logistic" ? 1 : 3], batch: 57, loss, seed: 9, kinkMargin: 1e-3 });
        await compareAll(ctx, c, `chunked ${loss}`, { chunkRows: 10 });
      }
    },
  },
  {
    name: "block HVP over chunked data with a partial last chunk (10 samples in chunks of 4) equals the float64 HVP in every direction",
    async run(ctx) {
      // Regression: the loss curvature once stepped between directions by the last chunk's own
      // row count while the tangent buffers step by chunkRows, so directions after the first were
      // wrong (by 0.11 relative here) whenever the last chunk was partial.
      const c = makeCase({ widths: [3, 5, 4], batch: 10, loss: "ce", seed: 23, kinkMargin: 1e-3 });
      const gpu = await GpuObjective.create(ctx, c.spec, c.data, "ce", { chunkRows: 4, maxBlock: 8 });
      const s = gpu.space;
      const theta = s.fromArray(c.theta);
      const rng = new Rng(6);
      const hosts = Array.from({ length: 3 }, () => rng.normals(c.theta.length));
      const vs = hosts.map((v) => s.fromArray(v));
      const outs = vs.map(() => s.zeros());
      try {
        await gpu.hvpBlock(theta, vs, outs);
        for (let j = 0; j < hosts.length; j++) {
          const ref = c.reference.space.zeros();
          await c.reference.hvp(c.theta, hosts[j], ref);
          assertClose(`chunked block direction ${j}`, await s.toArray(outs[j]), ref, RTOL, 1e-7);
        }
      } finally {
        for (const x of [theta, ...vs, ...outs]) s.dispose(x);
        gpu.dispose();
      }
    },
  },
  {
    name: "block HVP of 11 directions (maxBlock 8: blocks of 8 and 3) equals 11 single HVPs",
    async run(ctx) {
      const c = makeCase({ widths: [5, 12, 7, 4], batch: 40, loss: "ce", seed: 21, kinkMargin: 1e-3 });
      const gpu = await GpuObjective.create(ctx, c.spec, c.data, "ce", { maxBlock: 8 });
      const s = gpu.space;
      const theta = s.fromArray(c.theta);
      const rng = new Rng(4);
      const vs = Array.from({ length: 11 }, () => s.fromArray(rng.normals(c.theta.length)));
      const outs = vs.map(() => s.zeros());
      const single = s.zeros();
      try {
        await gpu.hvpBlock(theta, vs, outs);
        for (let j = 0; j < vs.length; j++) {
          await gpu.hvp(theta, vs[j], single);
          assertClose(`block direction ${j}`, await s.toArray(outs[j]), await s.toArray(single), 1e-5, 1e-8);
        }
        check(gpu.counters.blockHvpDirections === 11 && gpu.counters.hvp === 11, `counters ${JSON.stringify(gpu.counters)}`);
      } finally {
        for (const x of [theta, single, ...vs, ...outs]) s.dispose(x);
        gpu.dispose();
      }
    },
  },
  {
    name: "symmetry u·Hv = v·Hu and linearity H(au + bv) = aHu + bHv",
    async run(ctx) {
      const c = makeCase({ widths: [6, 16, 16, 5], batch: 30, loss: "ce", seed: 8, kinkMargin: 1e-3 });
      const gpu = await GpuObjective.create(ctx, c.spec, c.data, "ce");
      const s = gpu.space;
      const rng = new Rng(12);
      const theta = s.fromArray(c.theta);
      const [u, v, hu, hv, w, hw] = [s.fromArray(rng.normals(gpu.dim)), s.fromArray(rng.normals(gpu.dim)), s.zeros(), s.zeros(), s.zeros(), s.zeros()];
      try {
        await gpu.hvp(theta, u, hu);
        await gpu.hvp(theta, v, hv);
        const uHv = await s.dot(u, hv);
        const vHu = await s.dot(v, hu);
        check(Math.abs(uHv - vHu) <= 1e-4 * (Math.abs(uHv) + 1e-3), `u·Hv ${uHv} != v·Hu ${vHu}`);
        s.copy(u, w);
        s.linearCombination(-0.5, v, 2, w); // w = 2u - 0.5v
        await gpu.hvp(theta, w, hw);
        const expected = (await s.toArray(hu)).map((x, i) => 2 * x);
        const hvHost = await s.toArray(hv);
        assertClose("linearity", await s.toArray(hw), expected.map((x, i) => x - 0.5 * hvHost[i]), 1e-4, 1e-7);
      } finally {
        for (const x of [theta, u, v, hu, hv, w, hw]) s.dispose(x);
        gpu.dispose();
      }
    },
  },
  {
    name: "paper identities on the GPU: T_alpha keeps outputs and loss, g -> D^-1 g, H -> D^-1 H D^-1 (Appendix B biases)",
    async run(ctx) {
      for (const loss of LOSS_KINDS) {
        const c = makeCase({ widths: [4, 10, 8, loss === "logistic" ? 1 : 3], batch: 25, loss, seed: 31, kinkMargin: 1e-3 });
        const alphas = [8, 0.25, 0.5];
        const d = alphaScaleDiagonal(c.spec, alphas);
        const gpu = await GpuObjective.create(ctx, c.spec, c.data, loss);
        const s = gpu.space;
        const theta = s.fromArray(c.theta);
        const scaled = s.fromArray(alphaScale(c.spec, c.theta, alphas));
        const [g0, g1, h0, h1] = [s.zeros(), s.zeros(), s.zeros(), s.zeros()];
        const v = new Rng(2).normals(gpu.dim);
        const vScaled = s.fromArray(v.map((x, i) => x / d[i]));
        const vGpu = s.fromArray(v);
        try {
          assertClose(`${loss} outputs under T_alpha`, await gpu.outputs(scaled), await gpu.outputs(theta), 1e-5, 1e-6);
          const l0 = await gpu.gradient(theta, g0);
          const l1 = await gpu.gradient(scaled, g1);
          check(Math.abs(l0 - l1) <= 1e-5 * Math.max(1, l0), `${loss}: loss ${l0} vs ${l1} under T_alpha`);
          const g0h = await s.toArray(g0);
          assertClose(`${loss} gradient under T_alpha`, await s.toArray(g1), g0h.map((x, i) => x / d[i]), 1e-4, 1e-7);
          await gpu.hvp(scaled, vGpu, h1);
          await gpu.hvp(theta, vScaled, h0);
          const h0h = await s.toArray(h0);
          assertClose(`${loss} Hessian under T_alpha`, await s.toArray(h1), h0h.map((x, i) => x / d[i]), 1e-4, 1e-7);
        } finally {
          for (const x of [theta, scaled, g0, g1, h0, h1, vScaled, vGpu]) s.dispose(x);
          gpu.dispose();
        }
      }
    },
  },
  {
    name: "HVPs at the same theta reuse the forward state, and a changed theta invalidates it",
    async run(ctx) {
      const c = makeCase({ widths: [3, 8, 2], batch: 12, loss: "ce", seed: 5, kinkMargin: 1e-3 });
      const gpu = await GpuObjective.create(ctx, c.spec, c.data, "ce");
      const s = gpu.space;
      const theta = s.fromArray(c.theta);
      const v = s.fromArray(new Rng(1).normals(gpu.dim));
      const out = s.zeros();
      try {
        await gpu.hvp(theta, v, out);
        const moved = c.theta.map((x, i) => x + 0.1 * Math.sin(i));
        s.write(theta, moved);
        await gpu.hvp(theta, v, out);
        const ref = c.reference.space.zeros();
        await c.reference.hvp(Float64Array.from(Float32Array.from(moved)), await s.toArray(v), ref);
        assertClose("HVP after theta changed", await s.toArray(out), ref, RTOL, 1e-7);
      } finally {
        for (const x of [theta, v, out]) s.dispose(x);
        gpu.dispose();
      }
    },
  },
  {
    name: "vector operations: dot, axpy, scale, copy, multiply match float64",
    async run(ctx) {
      const c = makeCase({ widths: [50, 40, 30], batch: 2, loss: "mse" });
      const gpu = await GpuObjective.create(ctx, c.spec, c.data, "mse");
      const s = gpu.space;
      const rng = new Rng(77);
      const a = rng.normals(gpu.dim);
      const b = rng.normals(gpu.dim);
      const [x, y] = [s.fromArray(a), s.fromArray(b)];
      try {
        const ref = a.reduce((acc, ai, i) => acc + ai * b[i], 0);
        const got = await s.dot(x, y);
        check(Math.abs(got - ref) <= 1e-5 * Math.sqrt(gpu.dim) * 10, `dot ${got} vs ${ref}`);
        s.axpy(0.5, x, y);
        s.scale(-2, y);
        assertClose("axpy+scale", await s.toArray(y), b.map((bi, i) => -2 * (bi + 0.5 * a[i])), 1e-6, 1e-6);
        s.axpy(1, x, x);
        assertClose("axpy aliasing", await s.toArray(x), a.map((ai) => 2 * ai), 1e-6, 1e-6);
        s.write(y, b);
        s.multiply(x, y);
        assertClose("multiply", await s.toArray(y), b.map((bi, i) => 2 * a[i] * bi), 1e-6, 1e-6);
        s.multiply(y, y);
        assertClose("multiply aliasing", await s.toArray(y), b.map((bi, i) => (2 * a[i] * bi) ** 2), 1e-6, 1e-6);
      } finally {
        s.dispose(x);
        s.dispose(y);
        gpu.dispose();
      }
    },
  },
  {
    name: "no leak: pool counters back to baseline after 1,000 HVPs",
    async run(ctx) {
      const c = makeCase({ widths: [3, 6, 2], batch: 4, loss: "ce", seed: 2 });
      const before = ctx.pool.counters;
      const gpu = await GpuObjective.create(ctx, c.spec, c.data, "ce");
      const s = gpu.space;
      const theta = s.fromArray(c.theta);
      const v = s.fromArray(new Rng(1).normals(gpu.dim));
      const afterSetup = ctx.pool.counters;
      for (let i = 0; i < 1000; i++) {
        const out = s.zeros();
        await gpu.hvp(theta, v, out);
        if (i % 250 === 0) await s.dot(out, v);
        s.dispose(out);
      }
      await ctx.device.queue.onSubmittedWorkDone();
      const afterLoop = ctx.pool.counters;
      check(afterLoop.inUse === afterSetup.inUse, `buffers in use grew from ${afterSetup.inUse} to ${afterLoop.inUse}`);
      check(afterLoop.created - afterSetup.created <= 2, `the pool created ${afterLoop.created - afterSetup.created} new buffers in the loop`);
      s.dispose(theta);
      s.dispose(v);
      gpu.dispose();
      check(ctx.pool.counters.inUse === before.inUse, `buffers in use ${ctx.pool.counters.inUse} != baseline ${before.inUse}`);
    },
  },
  {
    name: "bad input: clear errors for wrong lengths, disposed vectors, NaN data, labels out of range, empty data",
    async run(ctx) {
      const c = makeCase({ widths: [3, 4, 2], batch: 5, loss: "ce" });
      await expectThrows("NaN data", /non-finite value \(NaN\) at flat index 4/, "InputError", () =>
        GpuObjective.create(ctx, c.spec, { ...c.data, x: c.data.x.map((v, i) => (i === 4 ? NaN : v)) }, "ce"));
      await expectThrows("label range", /label 7 at sample 1 is out of range \[0, 1\]/, "InputError", () =>
        GpuObjective.create(ctx, c.spec, { ...c.data, labels: Int32Array.from([0, 7, 1, 0, 1]) }, "ce"));
      await expectThrows("empty", /empty/, "InputError", () =>
        GpuObjective.create(ctx, c.spec, { n: 0, features: 3, x: new Float32Array(0), labels: new Int32Array(0) }, "ce"));
      await expectThrows("feature count", /5 features per sample but the model's first layer takes 3/, "InputError", () =>
        GpuObjective.create(ctx, c.spec, { ...c.data, features: 5 }, "ce"));
      await expectThrows("logistic outputs", /needs a model with 1 output/, "InputError", () =>
        GpuObjective.create(ctx, c.spec, c.data, "logistic"));
      await expectThrows("binding limit", /maxStorageBufferBindingSize/, "DeviceLimitError", () =>
        GpuObjective.create(ctx, c.spec, c.data, "ce", { maxBlock: 1e9 }));
      const gpu = await GpuObjective.create(ctx, c.spec, c.data, "ce");
      const s = gpu.space;
      try {
        await expectThrows("vector length", /has 3 entries, the parameter space has 26/, "InputError", () => s.fromArray([1, 2, 3]));
        const theta = s.fromArray(c.theta);
        const gone = s.zeros();
        s.dispose(gone);
        const out = s.zeros();
        await expectThrows("disposed", /already disposed/, "InputError", () => gpu.hvp(theta, gone, out));
        s.dispose(out);
        await expectThrows("aliasing", /different vector from theta/, "InputError", () => gpu.gradient(theta, theta));
        s.write(theta, c.theta.map(() => 1e30));
        await expectThrows("overflowing theta", /loss is not finite/, "InputError", () => gpu.loss(theta));
        s.dispose(theta);
      } finally {
        gpu.dispose();
      }
    },
  },
];

/**
 * The workgroup-memory GEMM (the default on hardware GPUs) checked on whatever adapter runs the
 * suite, by a second context that forces it.
 */
export const tiledKernelCases: GpuCase[] = [
  {
    name: "tiled GEMM kernel (gemm_tiled.wgsl): forward, gradient and HVP match float64 on awkward shapes",
    async run(_ctx) {
      const { GpuContext } = await import("../../src/gpu/context.ts");
      const ctx = await GpuContext.create({ gemm: "tiled" });
      try {
        check(ctx.gemmVariant === "tiled", "context did not take the tiled kernel");
        const shapes: [number[], number, LossKind][] = [[[5, 65, 63, 3], 70, "ce"], [[64, 17, 1], 129, "logistic"], [[3, 1, 66, 2], 7, "mse"]];
        for (const [widths, batch, loss] of shapes) {
          const c = makeCase({ widths, batch, loss, seed: 41, kinkMargin: 2e-5 });
          await compareAll(ctx, c, `tiled widths=[${widths}] batch=${batch} ${loss}`, { chunkRows: 50 });
        }
      } finally {
        ctx.destroy();
      }
    },
  },
];

/** WebGPU failures become typed errors a user can act on. */
export const errorCases: GpuCase[] = [
  {
    name: "a WGSL compile error becomes ShaderCompileError with file:line:col",
    async run(ctx) {
      const bad = "@group(0) @binding(0) var<storage, read_write> X: array<f32>;\n@compute @workgroup_size(1)\nfn main() {\n  X[0] = undefinedThing;\n}\n";
      await expectThrows("compile", /gemm\.wgsl:4:\d+: .*undefinedThing|gemm\.wgsl:4:\d+/, "ShaderCompileError", () =>
        ctx.kernel({ shader: "gemm", source: bad, bindings: ["write"] }));
    },
  },
  {
    name: "a WebGPU validation error inside an operation becomes GpuValidationError naming the operation",
    async run(ctx) {
      await expectThrows("validation", /while making a bad buffer: /, "GpuValidationError", () =>
        ctx.withErrorScope("making a bad buffer", () => {
          // MAP_READ may only be combined with COPY_DST: a validation error.
          ctx.device.createBuffer({ size: 16, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.STORAGE });
        }));
    },
  },
  {
    name: "device loss becomes DeviceLostError on the next call",
    async run(_ctx) {
      const { GpuContext } = await import("../../src/gpu/context.ts");
      const own = await GpuContext.create();
      try {
        const c = makeCase({ widths: [3, 4, 2], batch: 5, loss: "ce" });
        const gpu = await GpuObjective.create(own, c.spec, c.data, "ce");
        const theta = gpu.space.fromArray(c.theta);
        own.device.destroy();
        await own.device.lost;
        await expectThrows("lost", /device was lost/, "DeviceLostError", () => gpu.loss(theta));
      } finally {
        // The lost context's buffers still need releasing, as any context's do.
        await own.close();
        check(own.isDestroyed, "a lost context must close");
      }
    },
  },
];
