/**
 * trainModel: one call from a spec and data to trained parameters and a per-epoch history, on
 * WebGPU or the float64 CPU reference (or any TrainingEngine). Deterministic for a seed on a
 * device: the initial parameters (initParameters(spec, seed) unless given) and the per-epoch
 * shuffles (stream deriveSeed(seed, SHUFFLE_STREAM)) come from the seed, and every GPU kernel
 * sums in a fixed order.
 */
import { type Dataset, validateDataset } from "../data.ts";
import { deriveSeed } from "../datasets.ts";
import { InputError } from "../errors.ts";
import { initParameters } from "../init.ts";
import { type LossKind, type ModelSpec, parameterLayout, validateSpec } from "../model.ts";
import type { Objective } from "../objective.ts";
import { type BackendChoice, withBackend } from "../backend/open.ts";
import type { TrainingEngine } from "./engines.ts";
import { type OptimizerKind, resolveOptimizerConfig } from "./optimizers.ts";
import { type EpochRecord, type Snapshot, trainLoop } from "./trainer.ts";

/** Stream of deriveSeed for the per-epoch shuffles. */
export const SHUFFLE_STREAM = 2;

/** Options of trainModel. */
export interface TrainModelOptions {
  /** The architecture. */
  spec: ModelSpec;
  /** Training data. */
  data: Dataset;
  /** Held-out data, evaluated after every epoch. */
  test?: Dataset;
  /** The loss to minimize. */
  loss: LossKind;
  /** The optimizer (PyTorch conventions). */
  optimizer: OptimizerKind;
  /** Learning rate. */
  lr: number;
  /** SGD momentum (default 0). */
  momentum?: number;
  /** Adam's β1, β2, eps (defaults 0.9, 0.999, 1e-8). */
  beta1?: number;
  /** Adam's β2 (default 0.999). */
  beta2?: number;
  /** Adam's eps (default 1e-8). */
  eps?: number;
  /** Clamped to the number of training samples. */
  batchSize: number;
  /** Passes over the training data. */
  epochs: number;
  /** L2 penalty (sgd, adam) or decoupled decay (adamw); default 0. */
  weightDecay?: number;
  /** Seed of the initial parameters (unless given) and of the per-epoch shuffles. */
  seed: number;
  /** Initial parameters (default initParameters(spec, seed): He-normal weights, N(0, 0.1²) biases). */
  theta?: Float64Array;
  /**
   * Where to train: a Backend (src/backend/) or any TrainingEngine, used as given and left open; or
   * a backend name ("webgpu", "cpu", "auto": the default), opened for this call and closed after.
   */
  backend?: TrainingEngine<unknown> | BackendChoice;
  /** Called after each epoch. */
  onProgress?: (record: EpochRecord, epochs: number) => void;
}

/** What trainModel returns: the trained parameters, the per-epoch history and the final numbers. */
export interface TrainModelResult {
  /** The trained parameters (as stored by the engine: f32 values on the GPU). */
  theta: Float64Array;
  /** One record per epoch, in order. */
  history: EpochRecord[];
  /** Loss and accuracy before training. */
  initial: Snapshot;
  /** Training loss after the last epoch. */
  finalTrainLoss: number;
  /** Training accuracy after the last epoch (ce and logistic only). */
  finalTrainAccuracy?: number;
  /** Test loss after the last epoch (when test data was given). */
  finalTestLoss?: number;
  /** Test accuracy after the last epoch (test data given; ce and logistic only). */
  finalTestAccuracy?: number;
  /** Optimizer steps taken. */
  steps: number;
  /** The batch size used (after clamping to the sample count). */
  batchSize: number;
  /** Wall time, objectives' creation and evaluation included. */
  ms: number;
  /** The engine's name (TrainingEngine.name, e.g. "webgpu" or "cpu"). */
  engine: string;
  /** The engine's description (the adapter on the GPU). */
  device: string;
}

/** Trains a model; see TrainModelOptions. Bad options throw InputError before any work. */
export async function trainModel(options: TrainModelOptions): Promise<TrainModelResult> {
  const t0 = performance.now();
  const { spec, data, test, loss } = options;
  validateSpec(spec);
  validateDataset(spec, data, loss);
  if (test) validateDataset(spec, test, loss);
  const optimizer = resolveOptimizerConfig({
    kind: options.optimizer,
    lr: options.lr,
    momentum: options.momentum,
    weightDecay: options.weightDecay,
    beta1: options.beta1,
    beta2: options.beta2,
    eps: options.eps,
  });
  if (!Number.isInteger(options.batchSize) || options.batchSize < 1) throw new InputError(`the batch size must be a positive integer, got ${options.batchSize}`);
  if (!Number.isInteger(options.epochs) || options.epochs < 0) throw new InputError(`epochs must be a whole number >= 0, got ${options.epochs}`);
  if (!Number.isInteger(options.seed)) throw new InputError(`the seed must be an integer, got ${options.seed}`);
  const dim = parameterLayout(spec).dim;
  const theta0 = options.theta ?? initParameters(spec, options.seed);
  if (theta0.length !== dim) throw new InputError(`the initial parameters have ${theta0.length} entries, the model has ${dim}`);
  const batchSize = Math.min(options.batchSize, data.n);

  const choice = options.backend ?? "auto";
  if (typeof choice !== "string") return await run(choice, theta0, batchSize, optimizer, options, t0);
  return await withBackend(choice, (backend) => run(backend, theta0, batchSize, optimizer, options, t0));
}

async function run<V>(
  engine: TrainingEngine<V>,
  theta0: Float64Array,
  batchSize: number,
  optimizerConfig: ReturnType<typeof resolveOptimizerConfig>,
  options: TrainModelOptions,
  t0: number,
): Promise<TrainModelResult> {
  const { spec, data, test, loss } = options;
  const objective = await engine.minibatchObjective(spec, data, loss, batchSize);
  let testObjective: Objective<V> | null = null;
  let optimizer: Awaited<ReturnType<TrainingEngine<V>["optimizer"]>> | null = null;
  const space = objective.space;
  const theta = space.fromArray(theta0);
  try {
    if (test) testObjective = await engine.objective(spec, test, loss);
    optimizer = await engine.optimizer(space, optimizerConfig);
    const result = await trainLoop(objective, optimizer, theta, {
      data,
      loss,
      batchSize,
      epochs: options.epochs,
      shuffleSeed: deriveSeed(options.seed, SHUFFLE_STREAM),
      test: test && testObjective ? { objective: testObjective, data: test } : undefined,
      onProgress: options.onProgress,
    });
    const last: Snapshot = result.history.at(-1) ?? result.initial;
    const out: TrainModelResult = {
      theta: await space.toArray(theta),
      history: result.history,
      initial: result.initial,
      finalTrainLoss: last.trainLoss,
      steps: result.steps,
      batchSize,
      ms: 0,
      engine: engine.name,
      device: engine.describe(),
    };
    if (last.trainAccuracy !== undefined) out.finalTrainAccuracy = last.trainAccuracy;
    if (last.testLoss !== undefined) out.finalTestLoss = last.testLoss;
    if (last.testAccuracy !== undefined) out.finalTestAccuracy = last.testAccuracy;
    out.ms = performance.now() - t0;
    return out;
  } finally {
    space.dispose(theta);
    optimizer?.dispose();
    testObjective?.dispose();
    objective.dispose();
  }
}
