/**
 * Training the demos' problem (shared/problem.ts) in the page, as `flatness train` does from the
 * same options: trainModel on the page's backend, run as a task with progress per epoch.
 */
import type { Backend } from "../../src/backend/mod.ts";
import type { EpochRecord } from "../../src/train/trainer.ts";
import { trainModel, type TrainModelResult } from "../../src/train/trainModel.ts";
import { formatNumber } from "./format.ts";
import type { PreparedProblem } from "./problem.ts";
import type { Task } from "./tasks.ts";

/**
 * Trains the problem's net on the page's backend (trainModel) as a task:
 * progress per epoch, Cancel stops it at the next epoch (AbortError). `onEpoch` sees each record.
 */
export async function trainProblem(
  backend: Backend,
  prepared: PreparedProblem,
  task: Task,
  onEpoch?: (record: EpochRecord, epochs: number) => void,
): Promise<TrainModelResult> {
  const { problem, spec, loss, train, test } = prepared;
  return await trainModel({
    spec,
    data: train,
    test,
    loss,
    optimizer: problem.optimizer,
    lr: problem.lr,
    momentum: problem.optimizer === "sgd" ? 0.9 : undefined,
    batchSize: problem.batchSize,
    epochs: problem.epochs,
    seed: problem.seed,
    backend,
    onProgress: (record, epochs) => {
      onEpoch?.(record, epochs);
      task.progress(record.epoch / Math.max(1, epochs), `epoch ${record.epoch}/${epochs}, loss ${formatNumber(record.trainLoss)}`);
    },
  });
}
