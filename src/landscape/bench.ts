/**
 * Benchmark of the batched landscape evaluation (GpuBatchLoss: many parameter vectors per data
 * pass) against P sequential GpuObjective.loss calls (SequentialBatchLoss over the GPU objective:
 * one parameter upload, one data pass and one readback per point), on the same 2-D grid of a
 * seeded net. Both are validated against each other before timing; times are the median of
 * `repeats` runs after a warm-up (pipelines compiled).
 *
 *   XDG_RUNTIME_DIR=/tmp npx deno run -A src/landscape/bench.ts [--json]
 */
import type { GpuContext } from "../gpu/context.ts";
import { GpuObjective } from "../gpu/objective.ts";
import { initParameters, randomDataset } from "../init.ts";
import { forwardFlops, mlpSpec } from "../model.ts";
import { SequentialBatchLoss } from "./batchLoss.ts";
import { filterDirection } from "./directions.ts";
import { GpuBatchLoss } from "./gpuBatchLoss.ts";
import { lossSlice } from "./slice.ts";

export interface LandscapeBenchCase {
  widths: number[];
  samples: number;
  /** Grid points per axis (steps x steps points, plus the center). */
  steps: number;
}

export interface LandscapeBenchResult extends LandscapeBenchCase {
  parameters: number;
  points: number;
  batchedMs: number;
  sequentialMs: number;
  speedup: number;
  batchedGflops: number;
  sequentialGflops: number;
  pointsPerPass: number;
  /** max |batched - sequential| / max(1, |sequential|) over the grid (both f32 on the GPU). */
  maxRelativeDifference: number;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

export async function benchLandscape(ctx: GpuContext, c: LandscapeBenchCase, repeats = 3): Promise<LandscapeBenchResult> {
  const spec = mlpSpec(c.widths);
  const data = randomDataset(spec, c.samples, "ce", 1);
  const theta = initParameters(spec, 2);
  const dirs = [filterDirection(spec, theta, 3), filterDirection(spec, theta, 4)];
  const axes = [{ from: -1, to: 1, steps: c.steps }, { from: -1, to: 1, steps: c.steps }];
  const batched = await GpuBatchLoss.create(ctx, spec, data, "ce");
  const objective = await GpuObjective.create(ctx, spec, data, "ce");
  const sequential = new SequentialBatchLoss(objective);
  try {
    // Validate (and warm up) before timing.
    const a = await lossSlice(batched, theta, dirs, axes);
    const b = await lossSlice(sequential, theta, dirs, axes);
    const diff = a.values.reduce((m, v, i) => Math.max(m, Math.abs(v - b.values[i]) / Math.max(1, Math.abs(b.values[i]))), 0);
    if (!(diff < 1e-4)) throw new Error(`batched and sequential losses differ by ${diff} (relative): not timing a wrong result`);
    const tb: number[] = [];
    const ts: number[] = [];
    for (let r = 0; r < repeats; r++) {
      tb.push((await lossSlice(batched, theta, dirs, axes)).wallMs);
      ts.push((await lossSlice(sequential, theta, dirs, axes)).wallMs);
    }
    const points = a.points;
    const flops = forwardFlops(spec, c.samples) * points;
    const batchedMs = median(tb);
    const sequentialMs = median(ts);
    return {
      ...c,
      parameters: theta.length,
      points,
      batchedMs,
      sequentialMs,
      speedup: sequentialMs / batchedMs,
      batchedGflops: flops / batchedMs / 1e6,
      sequentialGflops: flops / sequentialMs / 1e6,
      pointsPerPass: batched.maxBatch,
      maxRelativeDifference: diff,
    };
  } finally {
    batched.dispose();
    objective.dispose();
  }
}

export const DEFAULT_LANDSCAPE_BENCH: LandscapeBenchCase[] = [
  // Small: per-call overhead (submit, readback) dominates the sequential calls.
  { widths: [10, 32, 32, 4], samples: 256, steps: 21 },
  // Compute-bound, narrow input: batching shares the data and amortizes overhead only.
  { widths: [32, 128, 128, 10], samples: 512, steps: 11 },
  // Wide input (MNIST-shaped): the factorized first layer removes most of each point's work.
  { widths: [784, 128, 10], samples: 512, steps: 7 },
];

if (import.meta.main) {
  const { openBackend } = await import("../backend/mod.ts");
  const backend = await openBackend("webgpu");
  const ctx = backend.gpu!;
  const json = Deno.args.includes("--json");
  if (!json) console.log(`adapter: ${ctx.describe()}`);
  const results: LandscapeBenchResult[] = [];
  for (const c of DEFAULT_LANDSCAPE_BENCH) {
    const r = await benchLandscape(ctx, c);
    results.push(r);
    if (!json) {
      console.log(
        `[${r.widths}] ${r.parameters} params, ${r.samples} samples, ${r.points} points: batched ${r.batchedMs.toFixed(1)} ms ` +
          `(${r.batchedGflops.toFixed(2)} GFLOP/s, ${r.pointsPerPass} points/pass), sequential ${r.sequentialMs.toFixed(1)} ms ` +
          `(${r.sequentialGflops.toFixed(2)} GFLOP/s): speedup x${r.speedup.toFixed(1)} (max rel. diff ${r.maxRelativeDifference.toExponential(1)})`,
      );
    }
  }
  if (json) console.log(JSON.stringify({ adapter: ctx.describe(), results }));
  await backend.close();
}
