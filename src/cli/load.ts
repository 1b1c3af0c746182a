/** Loading a model and a dataset from the files named on the command line. */
import { type Dataset, validateDataset } from "../data.ts";
import { InputError } from "../errors.ts";
import { IMAGE_DATASETS, isImageDatasetName } from "../imageDatasets.ts";
import { readFileBytes } from "../io/files.ts";
import { loadImageDataset, loadImageSplit } from "../io/imageDatasets.ts";
import { loadDatasetFiles, loadModelFile } from "../io/load.ts";
import type { LoadedModel } from "../io/modelFile.ts";
import { type Activation, type LossKind, LOSS_KINDS } from "../model.ts";

export function parseLoss(value: string | undefined): LossKind {
  if (!value) throw new InputError(`--loss is required: one of ${LOSS_KINDS.join(", ")}`);
  if (!(LOSS_KINDS as readonly string[]).includes(value)) throw new InputError(`--loss ${value} is not one of ${LOSS_KINDS.join(", ")}`);
  return value as LossKind;
}

/** --activation relu | leaky_relu (with --negative-slope, default 0.01 as PyTorch). */
export function parseActivation(name: string | undefined, slope: string | undefined): Activation | undefined {
  if (!name) return undefined;
  if (name === "relu") return { kind: "relu" };
  if (name === "leaky_relu") {
    const s = slope === undefined ? 0.01 : Number(slope);
    if (!Number.isFinite(s)) throw new InputError(`--negative-slope must be a number, got ${slope}`);
    return { kind: "leaky_relu", slope: s };
  }
  throw new InputError(`--activation ${name} is not supported: use relu or leaky_relu`);
}

/**
 * The options of every command that reads a model and a dataset, besides --model, --data and
 * --labels: the architecture of a bare safetensors state dict, and the built-in image datasets.
 */
export const MODEL_DATA_ARGS = {
  architecture: { type: "string" },
  dataset: { type: "string" },
  "dataset-samples": { type: "string" },
  "dataset-seed": { type: "string" },
  "test-fraction": { type: "string" },
  split: { type: "string" },
} as const;

/** Help lines of MODEL_DATA_ARGS. */
export const MODEL_DATA_HELP = `  --architecture A     the architecture of a safetensors state dict whose metadata has none: a JSON
                       file {"input": [C, H, W], "modules": [...]} (docs/model-format.md)
  --dataset D          built-in images instead of --data/--labels: ${IMAGE_DATASETS.join(" or ")} (loss ce), split
                       as \`flatness train --dataset D\` splits them: --dataset-samples N (default 1000, as
                       train), --dataset-seed S (train's --seed, default 0), --test-fraction F (train's,
                       default 0.2; 0: every sample is train), --split train|test (default train)`;

/** The values MODEL_DATA_ARGS parse to. */
export interface ModelDataValues {
  architecture?: string;
  dataset?: string;
  "dataset-samples"?: string;
  "dataset-seed"?: string;
  "test-fraction"?: string;
  split?: string;
}

export async function loadModel(path: string | undefined, activation?: Activation, architecturePath?: string): Promise<LoadedModel> {
  if (!path) throw new InputError("--model is required (a .safetensors, .json or .onnx model file)");
  const architecture = architecturePath === undefined ? undefined : new TextDecoder().decode(await readFileBytes(architecturePath));
  return await loadModelFile(path, { ...(activation ? { activation } : {}), ...(architecture !== undefined ? { architecture } : {}) });
}

function nonNegativeInteger(name: string, value: string | undefined, fallback: number, min: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || !(n >= min)) throw new InputError(`--${name} must be an integer >= ${min}, got '${value}'`);
  return n;
}

/**
 * A built-in image dataset's train or test part, exactly as \`flatness train --dataset\` makes it
 * (same samples, seed and split), checked against the model; null when --dataset is not given.
 */
export async function loadBuiltinImages(values: ModelDataValues, loss: LossKind, model: LoadedModel, dataPath: string | undefined): Promise<Dataset | null> {
  const name = values.dataset;
  if (name === undefined) {
    for (const key of ["dataset-samples", "dataset-seed", "test-fraction", "split"] as const) {
      if (values[key] !== undefined) throw new InputError(`--${key} goes with --dataset`);
    }
    return null;
  }
  if (!isImageDatasetName(name)) throw new InputError(`--dataset ${name}: use ${IMAGE_DATASETS.join(" or ")}`);
  if (dataPath !== undefined) throw new InputError("--dataset and --data exclude each other");
  if (loss !== "ce") throw new InputError(`--dataset ${name} has class labels: use --loss ce, not ${loss}`);
  const split = values.split ?? "train";
  if (split !== "train" && split !== "test") throw new InputError(`--split must be train or test, got '${split}'`);
  const samples = nonNegativeInteger("dataset-samples", values["dataset-samples"], 1000, 1);
  const seed = nonNegativeInteger("dataset-seed", values["dataset-seed"], 0, 0);
  const fraction = values["test-fraction"] === undefined ? 0.2 : Number(values["test-fraction"]);
  if (!(fraction >= 0 && fraction < 1)) throw new InputError(`--test-fraction must be in [0, 1), got '${values["test-fraction"]}'`);
  if (fraction === 0) {
    // As train with --test-fraction 0: every sample trains, there is no test part.
    if (split === "test") throw new InputError("--split test needs a test part: --test-fraction above 0");
    const dataset = await loadImageDataset(name, { samples, seed });
    validateDataset(model.model.spec, dataset.data, loss);
    return dataset.data;
  }
  const { split: parts } = await loadImageSplit(name, { samples, seed, testFraction: fraction });
  const data = split === "train" ? parts.train : parts.test;
  validateDataset(model.model.spec, data, loss);
  return data;
}

/**
 * Features from `dataPath` (.npy [N, d] or .csv) and targets from `labelsPath` (.npy; or, for a
 * CSV without --labels, the CSV's label column), read from disk and checked by datasetFromBytes.
 */
export async function loadDataset(
  dataPath: string | undefined,
  labelsPath: string | undefined,
  loss: LossKind,
  model: LoadedModel,
  labelColumn?: string,
  builtin: ModelDataValues = {},
): Promise<Dataset> {
  const images = await loadBuiltinImages(builtin, loss, model, dataPath);
  if (images) {
    if (labelsPath !== undefined || labelColumn !== undefined) throw new InputError("--dataset brings its labels: drop --labels / --label-column");
    return images;
  }
  if (!dataPath) throw new InputError(`--data is required (.npy of shape [N, features] or [N, C, H, W], or .csv), or --dataset ${IMAGE_DATASETS.join("|")}`);
  if (!labelsPath && !/\.csv$/i.test(dataPath)) {
    throw new InputError(`--labels is required with ${dataPath} (a .npy of ${loss === "mse" ? "float targets [N, outputs]" : "integer labels [N]"})`);
  }
  return await loadDatasetFiles(dataPath, labelsPath ?? null, loss, model, labelColumn);
}
