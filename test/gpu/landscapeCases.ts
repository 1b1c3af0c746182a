/**
 * Landscape cases on the GPU: the batched evaluation (GpuBatchLoss: many parameter vectors per
 * data pass, the first layer factorized over the basis) against its float64 twin
 * (SequentialBatchLoss over ReferenceObjective: one ReferenceObjective.loss per point) on small
 * grids of nets: every loss, with and without biases, ReLU and leaky ReLU, one and several layers,
 * several data chunks and several blocks of points, 1-D, 2-D and T_alpha orbit slices.
 */
import type { GpuContext } from "../../src/gpu/context.ts";
import { type PerturbationBatch, SequentialBatchLoss } from "../../src/landscape/batchLoss.ts";
import { alphaOrbit, filterDirection, randomDirection } from "../../src/landscape/directions.ts";
import { GpuBatchLoss } from "../../src/landscape/gpuBatchLoss.ts";
import { lossSlice } from "../../src/landscape/slice.ts";
import { type Activation, LOSS_KINDS, type LossKind } from "../../src/model.ts";
import { Rng } from "../../src/random.ts";
import { assertClose, makeCase } from "../support/numeric.ts";
import { check, expectThrows, type GpuCase } from "./harness.ts";

// f32 forward passes over a few hundred terms and f32 sums of per-sample losses (Kahan): the mean
// loss agrees with float64 to ~1e-6 relative; 2e-5 leaves room, while a wrong stride, bias or
// point index shows up at O(1e-2) or more.
const RTOL = 2e-5;

interface Config {
  widths: number[];
  batch: number;
  loss: LossKind;
  bias: boolean;
  activation: Activation;
  chunkRows?: number;
  maxBatch?: number;
}

function configs(): Config[] {
  const activations: Activation[] = [{ kind: "relu" }, { kind: "leaky_relu", slope: 0.1 }];
  const shapes = [[3, 1], [4, 7, 5], [6, 9, 8, 3], [65, 33, 2]];
  const out: Config[] = [];
  let i = 0;
  for (const loss of LOSS_KINDS) {
    for (const bias of [true, false]) {
      for (const activation of activations) {
        const shape = shapes[i % shapes.length];
        const outputs = loss === "logistic" ? 1 : loss === "ce" ? Math.max(2, shape[shape.length - 1]) : 3;
        const widths = [...shape.slice(0, -1), outputs];
        // Rotate chunking (several chunks, a ragged last one) and blocking (a ragged last block).
        out.push({ widths, batch: [37, 70, 5, 130][i % 4], loss, bias, activation, chunkRows: i % 3 === 0 ? 16 : undefined, maxBatch: i % 2 === 0 ? 7 : undefined });
        i++;
      }
    }
  }
  return out;
}

function label(c: Config): string {
  return `widths=[${c.widths}] batch=${c.batch} ${c.loss} ${c.activation.kind} bias=${c.bias}` +
    `${c.chunkRows ? ` chunkRows=${c.chunkRows}` : ""}${c.maxBatch ? ` maxBatch=${c.maxBatch}` : ""}`;
}

async function withBatchLoss<T>(ctx: GpuContext, cfg: Config, seed: number, body: (gpu: GpuBatchLoss, cpu: SequentialBatchLoss<Float64Array>, theta: Float64Array, c: ReturnType<typeof makeCase>) => Promise<T>): Promise<T> {
  const c = makeCase({ widths: cfg.widths, batch: cfg.batch, loss: cfg.loss, bias: cfg.bias, activation: cfg.activation, seed, kinkMargin: 1e-3 });
  const gpu = await GpuBatchLoss.create(ctx, c.spec, c.data, cfg.loss, { chunkRows: cfg.chunkRows, maxBatch: cfg.maxBatch });
  try {
    return await body(gpu, new SequentialBatchLoss(c.reference), c.theta, c);
  } finally {
    gpu.dispose();
  }
}

export const landscapeCases: GpuCase[] = [
  {
    name: "landscape: batched GPU losses on 1-D and 2-D slices equal the float64 reference (every loss, bias, activation; chunks and blocks)",
    async run(ctx) {
      for (const [i, cfg] of configs().entries()) {
        await withBatchLoss(ctx, cfg, 40 + i, async (gpu, cpu, theta, c) => {
          const d1 = filterDirection(c.spec, theta, 1, cfg.bias ? "include" : "ignore");
          const d2 = randomDirection(c.spec, 2, "include").map((x) => 0.3 * x);
          const axes = [{ from: -1, to: 1, steps: 5 }, { from: -0.5, to: 0.7, steps: 4 }];
          for (const dirs of [[d1], [d1, d2]]) {
            const got = await lossSlice(gpu, theta, dirs, axes.slice(0, dirs.length));
            const want = await lossSlice(cpu, theta, dirs, axes.slice(0, dirs.length));
            assertClose(`${label(cfg)} ${dirs.length}-D slice`, [...got.values, got.center], [...want.values, want.center], RTOL, 1e-7);
          }
          check(gpu.evaluated === 5 + 1 + 20 + 1, `${label(cfg)}: evaluated ${gpu.evaluated} points, expected 27`);
        });
      }
    },
  },
  {
    name: "landscape: the T_alpha orbit evaluated in the batch keeps L(theta) on the GPU, the straight tangent line matches float64",
    async run(ctx) {
      for (const activation of [{ kind: "relu" }, { kind: "leaky_relu", slope: 0.2 }] as Activation[]) {
        const cfg: Config = { widths: [5, 8, 6, 3], batch: 40, loss: "ce", bias: true, activation, maxBatch: 4 };
        await withBatchLoss(ctx, cfg, 7, async (gpu, cpu, theta, c) => {
          const orbit = alphaOrbit(c.spec, theta);
          const axes = [{ from: -1.5, to: 1.5, steps: 7 }];
          const got = await lossSlice(gpu, theta, [orbit.tangent], axes, orbit);
          const want = await lossSlice(cpu, theta, [orbit.tangent], axes, orbit);
          assertClose(`${label(cfg)} tangent line`, got.values, want.values, RTOL, 1e-7);
          assertClose(`${label(cfg)} orbit`, got.orbitValues!, want.orbitValues!, RTOL, 1e-7);
          for (const v of got.orbitValues!) check(Math.abs(v - want.center) <= 1e-5 * Math.abs(want.center), `${label(cfg)}: orbit loss ${v} != L(theta) ${want.center}`);
        });
      }
    },
  },
  {
    name: "landscape: arbitrary bases (0 to 4 vectors), repeated calls give the same bits, a wide first layer",
    async run(ctx) {
      const cfg: Config = { widths: [130, 17, 4], batch: 33, loss: "mse", bias: true, activation: { kind: "relu" }, maxBatch: 5 };
      await withBatchLoss(ctx, cfg, 3, async (gpu, cpu, theta, c) => {
        const rng = new Rng(11);
        for (const J of [0, 1, 3, 4]) {
          const P = 9;
          const batch: PerturbationBatch = {
            base: theta,
            basis: Array.from({ length: J }, (_, j) => randomDirection(c.spec, 20 + j, "include").map((x) => 0.05 * x)),
            coefficients: Float64Array.from({ length: P * J }, () => rng.normal()),
          };
          const got = await gpu.losses(batch);
          assertClose(`J=${J}`, got, await cpu.losses(batch), RTOL, 1e-7);
          const again = await gpu.losses(batch);
          check(got.every((v, i) => v === again[i]), `J=${J}: a second evaluation gave different bits`);
        }
      });
    },
  },
  {
    name: "landscape: bad batches are InputErrors, before any GPU work",
    async run(ctx) {
      const cfg: Config = { widths: [3, 4, 2], batch: 5, loss: "ce", bias: true, activation: { kind: "relu" } };
      await withBatchLoss(ctx, cfg, 1, async (gpu, _cpu, theta) => {
        const n = theta.length;
        await expectThrows("wrong base length", /base has 3 entries, the model has \d+ parameters/, "InputError", () => gpu.losses({ base: new Float64Array(3), basis: [], coefficients: new Float64Array(0) }));
        await expectThrows("five basis vectors", /at most 4 basis vectors/, "InputError", () => gpu.losses({ base: theta, basis: Array(5).fill(new Float64Array(n)), coefficients: new Float64Array(5) }));
        await expectThrows("ragged coefficients", /not a multiple of the 2 basis vectors/, "InputError", () => gpu.losses({ base: theta, basis: [theta, theta], coefficients: new Float64Array(3) }));
        await expectThrows("NaN coefficient", /coefficients has a non-finite value/, "InputError", () => gpu.losses({ base: theta, basis: [theta], coefficients: Float64Array.of(NaN) }));
      });
    },
  },
];
