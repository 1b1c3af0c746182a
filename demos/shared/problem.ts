/**
 * The demos' problem, without DOM or GPU (Node tests import it too): a seeded built-in dataset,
 * its train/test split and a small ReLU net, exactly as `flatness train` makes them from the same
 * options, and the command lines that compute the same numbers.
 */
import type { Dataset } from "../../src/data.ts";
import { builtinDataset, deriveSeed, splitDataset } from "../../src/datasets.ts";
import { type LossKind, mlpSpec, type ModelSpec, parameterLayout } from "../../src/model.ts";

/**
 * What `flatness train --dataset D --samples N --widths W --optimizer O --lr R --batch-size B
 * --epochs E --seed S --test-fraction F` trains; the page and the command line get the same data,
 * split, initial weights and shuffles from the seed.
 */
export interface DemoProblem {
  dataset: "spirals" | "mixture";
  samples: number;
  /** [2, hidden..., classes]; the output width must be the dataset's class count. */
  widths: number[];
  optimizer: "adam" | "sgd";
  lr: number;
  batchSize: number;
  epochs: number;
  seed: number;
  /** Held-out fraction (seeded split, as `flatness train --test-fraction`). */
  testFraction: number;
}

/** Small enough for software WebGPU: 200 spiral points, [2, 16, 16, 2] (354 parameters), 60 epochs of 5 steps. */
export const DEFAULT_PROBLEM: DemoProblem = {
  dataset: "spirals",
  samples: 200,
  widths: [2, 16, 16, 2],
  optimizer: "adam",
  lr: 0.01,
  batchSize: 32,
  epochs: 60,
  seed: 0,
  testFraction: 0.2,
};

/** The stream `flatness train` splits with (SPLIT_STREAM in src/cli/train.ts, a Node-only module). */
export const CLI_SPLIT_STREAM = 3;

export interface PreparedProblem {
  problem: DemoProblem;
  spec: ModelSpec;
  loss: LossKind;
  /** Every sample (for plotting). */
  all: Dataset;
  /** The training split: what training and every metric use (as `flatness measure` on x_train.npy). */
  train: Dataset;
  test: Dataset | undefined;
  classes: number;
  parameters: number;
  description: string;
}

/** The data, split and model spec of a problem (no GPU work). */
export function prepareProblem(problem: DemoProblem): PreparedProblem {
  const ds = builtinDataset(problem.dataset, { samples: problem.samples, seed: problem.seed });
  if (problem.widths[0] !== ds.data.features || problem.widths.at(-1) !== ds.outputs) {
    throw new RangeError(`widths [${problem.widths}] do not fit ${problem.dataset}: ${ds.data.features} inputs, ${ds.outputs} classes`);
  }
  const split = problem.testFraction > 0 ? splitDataset(ds.data, problem.testFraction, deriveSeed(problem.seed, CLI_SPLIT_STREAM)) : null;
  const spec = mlpSpec(problem.widths);
  return {
    problem,
    spec,
    loss: ds.loss,
    all: ds.data,
    train: split ? split.train : ds.data,
    test: split?.test,
    classes: ds.outputs,
    parameters: parameterLayout(spec).dim,
    description: ds.description,
  };
}

/** The command lines that compute the same model and numbers (`flatness train`, then `measure`). */
export function cliCommands(problem: DemoProblem, measureArgs = "--metrics spectrum,trace --seed 0"): string[] {
  return [
    `npx flatness train --dataset ${problem.dataset} --samples ${problem.samples} --widths ${problem.widths.join(",")} ` +
      `--optimizer ${problem.optimizer} --lr ${problem.lr} --batch-size ${problem.batchSize} --epochs ${problem.epochs} ` +
      `--seed ${problem.seed} --test-fraction ${problem.testFraction} --out model.json --save-data data/`,
    `npx flatness measure --model model.json --data data/x_train.npy --labels data/y_train.npy --loss ce ${measureArgs}`,
  ];
}
