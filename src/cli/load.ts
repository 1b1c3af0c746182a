/** Loading a model and a dataset from the files named on the command line. */
import type { Dataset } from "../data.ts";
import { InputError } from "../errors.ts";
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

export async function loadModel(path: string | undefined, activation?: Activation): Promise<LoadedModel> {
  if (!path) throw new InputError("--model is required (a .safetensors, .json or .onnx model file)");
  return await loadModelFile(path, activation ? { activation } : undefined);
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
): Promise<Dataset> {
  if (!dataPath) throw new InputError("--data is required (.npy of shape [N, features], or .csv)");
  if (!labelsPath && !/\.csv$/i.test(dataPath)) {
    throw new InputError(`--labels is required with ${dataPath} (a .npy of ${loss === "mse" ? "float targets [N, outputs]" : "integer labels [N]"})`);
  }
  return await loadDatasetFiles(dataPath, labelsPath ?? null, loss, model, labelColumn);
}
