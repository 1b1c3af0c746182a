/**
 * The training loop, generic over the vector space: minibatch gradients from an objective that
 * supports them (GpuObjective with minibatchRows, or the float64 ReferenceObjective), an optimizer
 * on the same space, a seeded shuffle each epoch, and loss / accuracy on the training and test
 * data after every epoch. On the GPU, parameters, gradients and optimizer state never leave it
 * during an epoch; only the outputs of the evaluation pass come back.
 */
import type { Dataset } from "../data.ts";
import { InputError } from "../errors.ts";
import type { LossKind } from "../model.ts";
import type { Objective } from "../objective.ts";
import { Rng } from "../random.ts";
import { permutation } from "../datasets.ts";
import { evaluateOutputs } from "./evaluate.ts";
import type { Optimizer } from "./optimizers.ts";

/** An objective that also gives the gradient of the mean loss over a subset of its samples. */
export interface MinibatchObjective<V> extends Objective<V> {
  /** Writes the gradient of the mean loss over the samples at `indices` into `out`. */
  minibatchGradient(theta: V, indices: ArrayLike<number>, out: V): Promise<unknown>;
}

/** One epoch's numbers: evaluated at the parameters the epoch ended with. */
export interface EpochRecord {
  /** 1-based. */
  epoch: number;
  /** Mean training loss. */
  trainLoss: number;
  /** ce and logistic only. */
  trainAccuracy?: number;
  /** Mean test loss (when test data was given). */
  testLoss?: number;
  /** Test accuracy (test data given; ce and logistic only). */
  testAccuracy?: number;
  /** Wall time of the epoch, its evaluation included. */
  ms: number;
}

/** Loss and accuracy at one point, on the training data and (when given) the test data. */
export interface Snapshot {
  /** Mean training loss. */
  trainLoss: number;
  /** Training accuracy (ce and logistic only). */
  trainAccuracy?: number;
  /** Mean test loss (when test data was given). */
  testLoss?: number;
  /** Test accuracy (test data given; ce and logistic only). */
  testAccuracy?: number;
}

export interface TrainLoopOptions<V> {
  /** The training data: the samples `objective` was built on, in the same order. */
  data: Dataset;
  loss: LossKind;
  batchSize: number;
  epochs: number;
  /** Seed of the per-epoch shuffles (one stream over all epochs). */
  shuffleSeed: number;
  /** Held-out data and an objective over it (outputs only are used). */
  test?: { objective: Objective<V>; data: Dataset };
  /** Called after each epoch with its record. */
  onProgress?: (record: EpochRecord, epochs: number) => void;
}

export interface TrainLoopResult {
  history: EpochRecord[];
  /** Before the first step. */
  initial: Snapshot;
  steps: number;
}

/**
 * Trains `theta` in place: for each epoch, a seeded permutation of the samples cut into
 * minibatches of batchSize (the last one smaller when batchSize does not divide N, as PyTorch's
 * DataLoader with drop_last=False), one optimizer step per minibatch, then an evaluation pass.
 * Throws InputError when the loss stops being finite (the learning rate is too large).
 */
export async function trainLoop<V>(
  objective: MinibatchObjective<V>,
  optimizer: Optimizer<V>,
  theta: V,
  options: TrainLoopOptions<V>,
): Promise<TrainLoopResult> {
  const { data, batchSize, epochs } = options;
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new InputError(`the batch size must be a positive integer, got ${batchSize}`);
  if (!Number.isInteger(epochs) || epochs < 0) throw new InputError(`epochs must be a whole number >= 0, got ${epochs}`);
  if (objective.sampleCount !== data.n) throw new InputError(`the objective has ${objective.sampleCount} samples but the training data ${data.n}`);
  const space = objective.space;
  const grad = space.zeros();
  const rng = new Rng(options.shuffleSeed);
  const history: EpochRecord[] = [];
  try {
    const initial = await snapshot(objective, theta, options);
    for (let epoch = 1; epoch <= epochs; epoch++) {
      const t0 = performance.now();
      const order = permutation(data.n, rng);
      for (let start = 0; start < data.n; start += batchSize) {
        try {
          await objective.minibatchGradient(theta, order.subarray(start, Math.min(start + batchSize, data.n)), grad);
        } catch (e) {
          // The float64 engine refuses non-finite parameters at once; the GPU shows them in the evaluation below.
          if (e instanceof InputError && /non-finite|not finite/.test(e.message)) {
            throw new InputError(`training diverged in epoch ${epoch} (${e.message}); lower the learning rate`, { cause: e });
          }
          throw e;
        }
        optimizer.step(theta, grad);
      }
      const s = await snapshot(objective, theta, options);
      if (!Number.isFinite(s.trainLoss)) {
        throw new InputError(`training diverged in epoch ${epoch}: the training loss is ${s.trainLoss}; lower the learning rate`);
      }
      const record: EpochRecord = { epoch, ...s, ms: performance.now() - t0 };
      history.push(record);
      options.onProgress?.(record, epochs);
    }
    return { history, initial, steps: optimizer.steps };
  } finally {
    space.dispose(grad);
  }
}

async function snapshot<V>(objective: Objective<V>, theta: V, options: TrainLoopOptions<V>): Promise<Snapshot> {
  const train = evaluateOutputs(options.loss, await objective.outputs(theta), options.data);
  const s: Snapshot = { trainLoss: train.loss };
  if (train.accuracy !== undefined) s.trainAccuracy = train.accuracy;
  if (options.test) {
    const test = evaluateOutputs(options.loss, await options.test.objective.outputs(theta), options.test.data);
    s.testLoss = test.loss;
    if (test.accuracy !== undefined) s.testAccuracy = test.accuracy;
  }
  return s;
}
