/** Loading a model and a dataset from the files named on the command line. */
import { type Dataset, validateDataset } from "../data.ts";
import { InputError } from "../errors.ts";
import { parseCsv } from "../io/csv.ts";
import { readFileBytes } from "../io/files.ts";
import { type LoadedModel, readModel } from "../io/modelFile.ts";
import { npyToFloat32, npyToLabels, parseNpy } from "../io/npy.ts";
import { type Activation, type LossKind, LOSS_KINDS, outputWidth } from "../model.ts";

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
  return readModel(await readFileBytes(path), path, activation ? { activation } : undefined);
}

/**
 * Features from `dataPath` (.npy [N, d] or .csv) and targets from `labelsPath` (.npy; or, for a
 * CSV without --labels, the CSV's label column).
 */
export async function loadDataset(
  dataPath: string | undefined,
  labelsPath: string | undefined,
  loss: LossKind,
  model: LoadedModel,
  labelColumn?: string,
): Promise<Dataset> {
  if (!dataPath) throw new InputError("--data is required (.npy of shape [N, features], or .csv)");
  const c = outputWidth(model.model.spec);
  let x: Float32Array;
  let n: number;
  let features: number;
  let csvLabels: Float64Array | undefined;
  if (/\.csv$/i.test(dataPath)) {
    const text = new TextDecoder().decode(await readFileBytes(dataPath));
    const column = labelsPath ? "none" : labelColumn === undefined ? "last" : /^\d+$/.test(labelColumn) ? Number(labelColumn) : labelColumn;
    const table = parseCsv(text, dataPath, { labelColumn: column as number | string });
    ({ x, n, features } = table);
    csvLabels = table.labels;
  } else {
    const arr = parseNpy(await readFileBytes(dataPath), dataPath);
    if (arr.shape.length !== 2) {
      throw new InputError(`${dataPath}: data must have shape [N, features], got [${arr.shape.join(", ")}]`);
    }
    [n, features] = arr.shape;
    x = npyToFloat32(arr, dataPath, "data");
  }
  let targetsRaw: { values: ArrayLike<number>; shape: number[]; path: string };
  if (labelsPath) {
    const arr = parseNpy(await readFileBytes(labelsPath), labelsPath);
    targetsRaw = { values: loss === "mse" ? npyToFloat32(arr, labelsPath, "targets") : npyToLabels(arr, labelsPath), shape: arr.shape, path: labelsPath };
  } else if (csvLabels) {
    targetsRaw = { values: csvLabels, shape: [csvLabels.length], path: dataPath };
  } else {
    throw new InputError(`--labels is required with ${dataPath} (a .npy of ${loss === "mse" ? "float targets [N, outputs]" : "integer labels [N]"})`);
  }
  const count = targetsRaw.shape.reduce((a, b) => a * b, 1);
  if (targetsRaw.shape[0] !== n) {
    throw new InputError(`${targetsRaw.path}: has ${targetsRaw.shape[0]} rows but ${dataPath} has ${n} samples`);
  }
  if (loss === "mse") {
    if (count !== n * c) throw new InputError(`${targetsRaw.path}: targets of shape [${targetsRaw.shape.join(", ")}] do not match [${n}, ${c}] (samples x model outputs)`);
    return checked({ n, features, x, targets: Float32Array.from(targetsRaw.values) }, model, loss, dataPath, targetsRaw.path);
  }
  if (targetsRaw.shape.length !== 1 && !(targetsRaw.shape.length === 2 && targetsRaw.shape[1] === 1)) {
    throw new InputError(`${targetsRaw.path}: labels must have shape [N], got [${targetsRaw.shape.join(", ")}]`);
  }
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const y = targetsRaw.values[i];
    if (!Number.isInteger(y)) throw new InputError(`${targetsRaw.path}: label ${y} at sample ${i} is not an integer`);
    labels[i] = y;
  }
  return checked({ n, features, x, labels }, model, loss, dataPath, targetsRaw.path);
}

/** Validates before any GPU work, naming the file each problem comes from. */
function checked(data: Dataset, model: LoadedModel, loss: LossKind, dataPath: string, targetsPath: string): Dataset {
  try {
    validateDataset(model.model.spec, data, loss);
  } catch (e) {
    if (!(e instanceof InputError)) throw e;
    const fromTargets = /^(label|targets|loss)/.test(e.message);
    throw new InputError(`${fromTargets ? targetsPath : dataPath}: ${e.message}`);
  }
  return data;
}
