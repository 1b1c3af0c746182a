/**
 * Training on the GPU: the optimizer kernels (shaders/sgd_momentum.wgsl, shaders/adam.wgsl)
 * against their float64 twins, minibatch gradients against the float64 reference, whole training
 * runs against the CPU twin, determinism by seed, and learning on the built-in datasets. Sizes are
 * kept small for software WebGPU.
 */
import { openBackend } from "../../src/backend/mod.ts";
import { gaussianMixture, splitDataset, twoSpirals } from "../../src/datasets.ts";
import type { GpuContext } from "../../src/gpu/context.ts";
import { GpuObjective } from "../../src/gpu/objective.ts";
import { GpuVectorSpace } from "../../src/gpu/vectors.ts";
import { mlpSpec } from "../../src/model.ts";
import { Rng } from "../../src/random.ts";
import { GpuOptimizer } from "../../src/train/gpuOptimizers.ts";
import { HostOptimizer, type OptimizerConfig } from "../../src/train/optimizers.ts";
import { trainModel } from "../../src/train/trainModel.ts";
import { assertClose, makeCase } from "../support/numeric.ts";
import { check, expectThrows, type GpuCase } from "./harness.ts";

const f32 = (v: Float64Array) => Float64Array.from(Float32Array.from(v));

async function compareOptimizer(ctx: GpuContext, config: OptimizerConfig, dim: number, steps: number) {
  const s = await GpuVectorSpace.create(ctx, dim);
  const rng = new Rng(dim + steps);
  const thetaHost = f32(rng.normals(dim));
  const theta = s.fromArray(thetaHost);
  const grad = s.zeros();
  const opt = await GpuOptimizer.create(s, config);
  const twin = new HostOptimizer(dim, config);
  const label = `${JSON.stringify(config)} dim ${dim}`;
  try {
    for (let t = 0; t < steps; t++) {
      const g = f32(rng.normals(dim, 0.5 + t));
      s.write(grad, g);
      opt.step(theta, grad);
      twin.step(thetaHost, g);
    }
    check(opt.steps === steps && twin.steps === steps, `${label}: step counters ${opt.steps}, ${twin.steps}`);
    assertClose(`${label}: theta after ${steps} steps`, await s.toArray(theta), thetaHost, 2e-6, 1e-6);
    // The state stays on the GPU; it is read back here only to check it.
    const state = await opt.stateArrays();
    const ref = twin.stateArrays();
    check(state.length === ref.length, `${label}: ${state.length} state vectors, the twin has ${ref.length}`);
    assertClose(`${label}: velocity / first moment`, state[0], ref[0], 2e-6, 1e-7);
    if (ref[1]) assertClose(`${label}: second moment`, state[1], ref[1], 2e-6, 1e-9);
  } finally {
    opt.dispose();
    s.dispose(theta);
    s.dispose(grad);
    s.destroy();
  }
}

export const trainCases: GpuCase[] = [
  {
    name: "train: sgd_momentum.wgsl and adam.wgsl (Adam, AdamW) equal their float64 twins over 7 steps (dims 1, 300, 70001)",
    async run(ctx) {
      for (const dim of [1, 300, 70001]) {
        await compareOptimizer(ctx, { kind: "sgd", lr: 0.05 }, dim, 7);
        await compareOptimizer(ctx, { kind: "sgd", lr: 0.03, momentum: 0.9, weightDecay: 0.01 }, dim, 7);
        await compareOptimizer(ctx, { kind: "adam", lr: 0.01, weightDecay: 0.05 }, dim, 7);
        await compareOptimizer(ctx, { kind: "adamw", lr: 0.01, weightDecay: 0.1, beta1: 0.8, beta2: 0.99, eps: 1e-6 }, dim, 7);
      }
    },
  },
  {
    name: "train: minibatchGradient equals the float64 reference on the same samples (every loss, chunked data, partial and repeated batches)",
    async run(ctx) {
      for (const loss of ["ce", "mse", "logistic"] as const) {
        const c = makeCase({ widths: [5, 9, 7, loss === "logistic" ? 1 : 3], batch: 47, loss, seed: 31, kinkMargin: 1e-3 });
        // chunkRows 10 < minibatchRows 16: the layer buffers grow to the minibatch, the chunked passes keep working.
        const gpu = await GpuObjective.create(ctx, c.spec, c.data, loss, { chunkRows: 10, minibatchRows: 16 });
        const s = gpu.space;
        const theta = s.fromArray(c.theta);
        const g = s.zeros();
        const hv = s.zeros();
        const v = new Rng(3).normals(gpu.dim);
        const vGpu = s.fromArray(v);
        try {
          for (const indices of [[...Array(16).keys()].map((i) => (i * 7) % 47), [46, 3, 3, 20, 0], [12]]) {
            await gpu.minibatchGradient(theta, indices, g);
            const ref = c.reference.space.zeros();
            await c.reference.minibatchGradient(c.theta, indices, ref);
            assertClose(`${loss} minibatch [${indices.slice(0, 4)}...] (${indices.length})`, await s.toArray(g), ref, 2e-4, 1e-7);
          }
          // The whole-data operations are unchanged after minibatches.
          const refG = c.reference.space.zeros();
          const refLoss = await c.reference.gradient(c.theta, refG);
          const lossGpu = await gpu.gradient(theta, g);
          check(Math.abs(lossGpu - refLoss) <= 1e-5 * Math.max(1, Math.abs(refLoss)), `${loss}: loss ${lossGpu} vs ${refLoss}`);
          assertClose(`${loss}: full gradient after minibatches`, await s.toArray(g), refG, 2e-4, 1e-7);
          await gpu.minibatchGradient(theta, [1, 2, 3], g);
          await gpu.hvp(theta, vGpu, hv);
          const refHv = c.reference.space.zeros();
          await c.reference.hvp(c.theta, v, refHv);
          assertClose(`${loss}: Hv after a minibatch`, await s.toArray(hv), refHv, 2e-4, 1e-7);
          assertClose(`${loss}: outputs`, await gpu.outputs(theta), await c.reference.outputs(c.theta), 2e-4, 1e-6);
        } finally {
          for (const x of [theta, g, hv, vGpu]) s.dispose(x);
          gpu.dispose();
        }
      }
    },
  },
  {
    name: "train: minibatch errors (no minibatchRows, too many samples, index out of range) are InputErrors",
    async run(ctx) {
      const c = makeCase({ widths: [3, 4, 2], batch: 10, loss: "ce" });
      const plain = await GpuObjective.create(ctx, c.spec, c.data, "ce");
      const mb = await GpuObjective.create(ctx, c.spec, c.data, "ce", { minibatchRows: 4 });
      const theta = plain.space.fromArray(c.theta);
      const g = plain.space.zeros();
      try {
        await expectThrows("no minibatchRows", /minibatchRows option/, "InputError", () => plain.minibatchGradient(theta, [0], g));
        await expectThrows("too many", /1 to 4 samples/, "InputError", () => mb.minibatchGradient(theta, [0, 1, 2, 3, 4], g));
        await expectThrows("out of range", /index 10 is outside/, "InputError", () => mb.minibatchGradient(theta, [0, 10], g));
        await expectThrows("bad option", /minibatchRows must be a positive integer/, "InputError", () => GpuObjective.create(ctx, c.spec, c.data, "ce", { minibatchRows: 0 }));
      } finally {
        plain.space.dispose(theta);
        plain.space.dispose(g);
        plain.dispose();
        mb.dispose();
      }
    },
  },
  {
    name: "train: SGD-momentum and Adam training on the GPU follows the float64 CPU twin step for step (same seed)",
    async run(ctx) {
      const c = makeCase({ widths: [4, 8, 3], batch: 30, loss: "ce", seed: 5, kinkMargin: 1e-2 });
      for (const [optimizer, lr] of [["sgd", 0.05], ["adam", 0.003]] as const) {
        const options = {
          spec: c.spec, data: c.data, loss: "ce" as const, optimizer, lr, momentum: optimizer === "sgd" ? 0.9 : undefined,
          weightDecay: 0.01, batchSize: 8, epochs: 2, seed: 4, theta: c.theta,
        };
        const gpu = await trainModel({ ...options, backend: await openBackend("webgpu", { context: ctx }) });
        const cpu = await trainModel({ ...options, backend: "cpu" });
        check(gpu.steps === 8 && cpu.steps === 8, `${optimizer}: ${gpu.steps} GPU and ${cpu.steps} CPU steps, expected 2 epochs x 4 batches`);
        assertClose(`${optimizer}: theta after 8 steps`, gpu.theta, cpu.theta, 1e-4, 1e-6);
        gpu.history.forEach((h, i) => {
          const r = cpu.history[i];
          check(Math.abs(h.trainLoss - r.trainLoss) <= 1e-4 * Math.max(1, r.trainLoss), `${optimizer} epoch ${h.epoch}: loss ${h.trainLoss} vs ${r.trainLoss}`);
        });
      }
    },
  },
  {
    name: "train: GPU training is deterministic by seed (bit-identical parameters and history), and the seed matters",
    async run(ctx) {
      const ds = twoSpirals({ samples: 120, seed: 2 });
      const spec = mlpSpec([2, 16, 2]);
      const run = async (seed: number) => trainModel({ spec, data: ds.data, loss: "ce", optimizer: "adam", lr: 0.01, batchSize: 16, epochs: 3, seed, backend: await openBackend("webgpu", { context: ctx }) });
      const a = await run(7);
      const b = await run(7);
      const other = await run(8);
      check(a.theta.every((x, i) => x === b.theta[i]), "same seed: parameters differ");
      check(a.history.every((h, i) => h.trainLoss === b.history[i].trainLoss), "same seed: losses differ");
      check(a.theta.some((x, i) => x !== other.theta[i]), "another seed gave the same parameters");
    },
  },
  {
    name: "train: no leak: pool counters back to baseline after training runs (train and test objectives, optimizer state)",
    async run(ctx) {
      const mix = gaussianMixture({ samples: 60, classes: 2, dims: 3, seed: 4 });
      const { train, test } = splitDataset(mix.data, 0.5, 1);
      const before = ctx.pool.counters;
      for (const optimizer of ["sgd", "adam"] as const) {
        await trainModel({ spec: mlpSpec([3, 5, 2]), data: train, test, loss: "ce", optimizer, lr: 0.01, batchSize: 7, epochs: 2, seed: 1, backend: await openBackend("webgpu", { context: ctx }) });
      }
      const after = ctx.pool.counters;
      check(after.inUse === before.inUse && after.bytesInUse === before.bytesInUse, `pool in use ${JSON.stringify(before)} -> ${JSON.stringify(after)}`);
    },
  },
  {
    name: "train: GPU training reaches > 95% test accuracy on a separated mixture and lowers the spirals loss",
    async run(ctx) {
      const mix = gaussianMixture({ samples: 400, classes: 3, dims: 4, separation: 6, noise: 1, seed: 1 });
      const { train, test } = splitDataset(mix.data, 0.25, 2);
      const r = await trainModel({ spec: mlpSpec([4, 16, 3]), data: train, test, loss: "ce", optimizer: "sgd", lr: 0.05, momentum: 0.9, batchSize: 32, epochs: 5, seed: 1, backend: await openBackend("webgpu", { context: ctx }) });
      check(r.finalTestAccuracy! > 0.95, `mixture test accuracy ${r.finalTestAccuracy}`);
      check(r.finalTrainLoss < 0.5 * r.initial.trainLoss, `mixture loss ${r.initial.trainLoss} -> ${r.finalTrainLoss}`);
      const spirals = twoSpirals({ samples: 200, seed: 3 });
      const s = await trainModel({ spec: mlpSpec([2, 32, 32, 2]), data: spirals.data, loss: "ce", optimizer: "adam", lr: 0.01, batchSize: 32, epochs: 8, seed: 3, backend: await openBackend("webgpu", { context: ctx }) });
      check(s.finalTrainLoss < 0.8 * s.initial.trainLoss, `spirals loss ${s.initial.trainLoss} -> ${s.finalTrainLoss}`);
      check(s.history.length === 8 && s.history.every((h) => h.trainAccuracy !== undefined && h.testLoss === undefined), "history entries");
    },
  },
];
