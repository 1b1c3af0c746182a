/**
 * Metric cases on the GPU Hessian: the curvature algorithms and the metric suite run on WebGPU
 * vectors and HVPs, checked against the same algorithms on the float64 reference engine (same
 * seeds, so the same probes) and against the dense reference Hessian's exact spectrum.
 */
import { GpuObjective } from "../../src/gpu/objective.ts";
import type { GpuContext } from "../../src/gpu/context.ts";
import { spectralDensity } from "../../src/metrics/density.ts";
import { hessianOperator, layerMask, restrictedOperator } from "../../src/metrics/operator.ts";
import { lanczosEigenpairs, powerIteration } from "../../src/metrics/spectrum.ts";
import { measureMetrics, type MetricName } from "../../src/metrics/suite.ts";
import { hutchPlusPlusTrace } from "../../src/metrics/trace.ts";
import { symmetricEigen } from "../../src/metrics/tridiagonal.ts";
import { Rng } from "../../src/random.ts";
import { makeCase, type TestCase } from "../support/numeric.ts";
import { check, type GpuCase } from "./harness.ts";

/** The dense reference Hessian, column by column from float64 HVPs against unit vectors. */
async function denseHessian(c: TestCase): Promise<Float64Array> {
  const n = c.theta.length;
  const h = new Float64Array(n * n);
  const e = new Float64Array(n);
  const col = new Float64Array(n);
  for (let j = 0; j < n; j++) {
    e.fill(0);
    e[j] = 1;
    await c.reference.hvp(c.theta, e, col);
    for (let i = 0; i < n; i++) h[i * n + j] = col[i];
  }
  return h;
}

function relClose(label: string, got: number, want: number, rtol: number, scale = Math.abs(want)) {
  check(Math.abs(got - want) <= rtol * Math.max(scale, 1e-12), `${label}: got ${got}, want ${want} (rtol ${rtol})`);
}

async function withGpu<T>(ctx: GpuContext, c: TestCase, body: (gpu: GpuObjective, theta: ReturnType<GpuObjective["space"]["fromArray"]>) => Promise<T>): Promise<T> {
  const gpu = await GpuObjective.create(ctx, c.spec, c.data, c.reference.lossKind);
  const theta = gpu.space.fromArray(c.theta);
  try {
    return await body(gpu, theta);
  } finally {
    gpu.space.dispose(theta);
    gpu.dispose();
  }
}

export const metricCases: GpuCase[] = [
  {
    name: "dots(xs, y) returns the same bits as dot(x, y) for each x, across readback batches (70 vectors)",
    async run(ctx) {
      const c = makeCase({ widths: [9, 30, 4], batch: 3, loss: "ce", seed: 10 });
      await withGpu(ctx, c, async (gpu) => {
        const s = gpu.space;
        const xs = Array.from({ length: 70 }, (_, i) => s.fromArray(new Rng(100 + i).normals(s.dim)));
        const y = s.fromArray(new Rng(99).normals(s.dim));
        try {
          const batched = await s.dots(xs, y);
          const single = await Promise.all(xs.map((x) => s.dot(x, y)));
          check(batched.length === 70 && batched.every((d, i) => d === single[i]), `dots ${batched.slice(0, 3)} != dot ${single.slice(0, 3)}`);
        } finally {
          for (const x of [...xs, y]) s.dispose(x);
        }
      });
    },
  },
  {
    name: "metrics on the GPU: Lanczos top-3 and smallest eigenvalues match the dense float64 Hessian's spectrum",
    async run(ctx) {
      const c = makeCase({ widths: [4, 6, 3], batch: 40, loss: "ce", seed: 11, kinkMargin: 1e-3 });
      const exact = symmetricEigen(await denseHessian(c), c.theta.length).values.slice().sort((a, b) => b - a);
      const scale = Math.max(Math.abs(exact[0]), Math.abs(exact.at(-1)!));
      await withGpu(ctx, c, async (gpu, theta) => {
        const op = hessianOperator(gpu, theta);
        const top = await lanczosEigenpairs(op, { k: 3, which: "LA", seed: 1, tol: 1e-4 });
        top.eigenvalues.forEach((v, i) => relClose(`top eigenvalue ${i + 1}`, v, exact[i], 1e-3, scale));
        check(top.converged.every(Boolean), `top eigenpairs not converged: residuals ${top.residuals}`);
        const low = await lanczosEigenpairs(op, { k: 1, which: "SA", seed: 1, tol: 1e-4 });
        relClose("smallest eigenvalue", low.eigenvalues[0], exact.at(-1)!, 1e-3, scale);
        const pw = await powerIteration(op, { k: 1, maxIter: 300, tol: 1e-5, seed: 1 });
        const largestMagnitude = Math.abs(exact[0]) >= Math.abs(exact.at(-1)!) ? exact[0] : exact.at(-1)!;
        relClose("power iteration", pw.eigenvalues[0], largestMagnitude, 2e-3, scale);
      });
    },
  },
  {
    name: "metrics on the GPU: Hutch++ on a layer block of lower rank than its sketch equals the block's trace (f32 dependent columns dropped)",
    async run(ctx) {
      const c = makeCase({ widths: [2, 8, 3], batch: 20, loss: "ce", seed: 14, kinkMargin: 1e-3 });
      const h = await denseHessian(c);
      const n = c.theta.length;
      const mask = layerMask(c.spec, ["1"]);
      let blockTrace = 0;
      for (let i = 0; i < n; i++) if (mask[i] === 1) blockTrace += h[i * n + i];
      await withGpu(ctx, c, async (gpu, theta) => {
        const m = gpu.space.fromArray(mask);
        try {
          const r = await hutchPlusPlusTrace(restrictedOperator(hessianOperator(gpu, theta), m), { matvecs: 99, seed: 2 });
          check(r.sketchRank <= 27, `sketch rank ${r.sketchRank} exceeds the block's 27 parameters`);
          relClose("block trace", r.estimate, blockTrace, 1e-3, Math.abs(blockTrace) + 1e-3);
          // Lanczos sees the exhausted Krylov space in f32 too: SLQ stops at the block's rank, and the
          // zero eigenvalues of the restricted operator count as converged (to working precision).
          const op = restrictedOperator(hessianOperator(gpu, theta), m);
          const slq = await spectralDensity(op, { runs: 1, steps: 40, seed: 3 });
          check(slq.nodes[0].length <= 27, `SLQ kept ${slq.nodes[0].length} nodes on a block of 27 parameters`);
          const low = await lanczosEigenpairs(op, { k: 1, which: "SA", seed: 3 });
          check(low.converged[0] && Math.abs(low.eigenvalues[0]) < 1e-5, `smallest eigenvalue ${low.eigenvalues[0]} (converged ${low.converged[0]})`);
        } finally {
          gpu.space.dispose(m);
        }
      });
    },
  },
  {
    name: "metrics on the GPU: Hutch++ and SLQ with one seed equal the float64 reference run with that seed",
    async run(ctx) {
      const c = makeCase({ widths: [5, 7, 2], batch: 33, loss: "mse", seed: 12, kinkMargin: 1e-3 });
      await withGpu(ctx, c, async (gpu, theta) => {
        const gpuTrace = await hutchPlusPlusTrace(hessianOperator(gpu, theta), { matvecs: 30, seed: 4 });
        const refTrace = await hutchPlusPlusTrace(hessianOperator(c.reference, c.theta), { matvecs: 30, seed: 4 });
        relClose("Hutch++ estimate", gpuTrace.estimate, refTrace.estimate, 1e-3, Math.abs(refTrace.estimate) + refTrace.stderr);
        const gpuDensity = await spectralDensity(hessianOperator(gpu, theta), { runs: 2, steps: 12, seed: 5 });
        const refDensity = await spectralDensity(hessianOperator(c.reference, c.theta), { runs: 2, steps: 12, seed: 5 });
        const spread = Math.max(...refDensity.nodes.flat().map(Math.abs));
        relClose("SLQ largest node", Math.max(...gpuDensity.nodes[0]), Math.max(...refDensity.nodes[0]), 1e-3, spread);
      });
    },
  },
  {
    name: "metrics on the GPU: the metric suite agrees with the float64 reference, is deterministic by seed, and leaks nothing",
    async run(ctx) {
      const c = makeCase({ widths: [3, 5, 4, 3], batch: 24, loss: "ce", seed: 13, kinkMargin: 1e-3 });
      const metrics: MetricName[] = ["spectrum", "trace", "per-layer", "adaptive-average", "fisher-rao", "path-norm", "relative-flatness", "gradient-norms"];
      const options = { metrics, topK: 2, traceSamples: 12, seed: 3 };
      const before = ctx.pool.counters.inUse;
      const first = await withGpu(ctx, c, (gpu, theta) => measureMetrics(gpu, theta, c.theta, c.data, options));
      const second = await withGpu(ctx, c, (gpu, theta) => measureMetrics(gpu, theta, c.theta, c.data, options));
      await ctx.device.queue.onSubmittedWorkDone();
      check(ctx.pool.counters.inUse === before, `buffers in use ${ctx.pool.counters.inUse} != baseline ${before} after two suite runs`);
      const ref = await measureMetrics(c.reference, c.theta, c.theta, c.data, options);
      const strip = (r: Record<string, unknown>) => JSON.stringify(r, (k, v) => (k === "wallMs" ? undefined : v));
      check(strip(first) === strip(second), "the same seed on the same device gave different reports");
      const scale = Math.abs((ref.topEigenvalues as number[])[0]);
      (first.topEigenvalues as number[]).forEach((v, i) => relClose(`suite eigenvalue ${i + 1}`, v, (ref.topEigenvalues as number[])[i], 2e-3, scale));
      const t = first.trace as { estimate: number };
      const tr = ref.trace as { estimate: number; stderr: number };
      relClose("suite trace", t.estimate, tr.estimate, 2e-3, Math.abs(tr.estimate) + tr.stderr);
      for (const key of ["fisherRaoNorm", "pathNorm"]) {
        relClose(key, (first[key] as { value: number }).value, (ref[key] as { value: number }).value, 1e-3);
      }
      relClose("relative flatness", (first.relativeFlatness as { total: number }).total, (ref.relativeFlatness as { total: number }).total, 2e-3);
      relClose("gradient norm", first.gradientNorm, ref.gradientNorm, 1e-3);
    },
  },
];
