/** Reading a model and a dataset from files by path (Deno and Node; see files.ts). */
import type { Dataset } from "../data.ts";
import { InputError } from "../errors.ts";
import type { LossKind } from "../model.ts";
import { datasetFromBytes } from "./dataset.ts";
import { readFileBytes } from "./files.ts";
import { type LoadedModel, readModel, type ReadModelOptions } from "./modelFile.ts";

/**
 * Reads a model file: safetensors (a PyTorch nn.Sequential state dict of Linear and ReLU /
 * LeakyReLU), ONNX (Gemm / MatMul+Add, Relu, LeakyRelu) or this toolkit's JSON
 * (docs/model-format.md), told apart by their bytes. FileFormatError names the file and tensor at fault.
 */
export async function loadModelFile(path: string, options?: ReadModelOptions): Promise<LoadedModel> {
  return readModel(await readFileBytes(path), path, options);
}

/**
 * Reads a dataset for `model` and `loss`: features from `dataPath` (.npy [N, features] or .csv),
 * targets from `labelsPath` (.npy integer labels [N] for ce / logistic, float targets
 * [N, outputs] for mse), or, for a CSV without labels, its label column (`labelColumn`: index or
 * header name, default the last). Shapes and values are checked against the model, naming the file.
 */
export async function loadDatasetFiles(
  dataPath: string,
  labelsPath: string | null,
  loss: LossKind,
  model: LoadedModel,
  labelColumn?: string,
): Promise<Dataset> {
  if (!labelsPath && !/\.csv$/i.test(dataPath)) {
    throw new InputError(`${dataPath}: labels are needed (a .npy of ${loss === "mse" ? "float targets [N, outputs]" : "integer labels [N]"})`);
  }
  const data = { name: dataPath, bytes: await readFileBytes(dataPath) };
  const labels = labelsPath ? { name: labelsPath, bytes: await readFileBytes(labelsPath) } : null;
  return datasetFromBytes(data, labels, loss, model, labelColumn);
}
