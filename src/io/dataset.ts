/** A dataset from the bytes of its files: .npy or CSV features, .npy labels or a CSV label column. */
import { type Dataset, validateDataset } from "../data.ts";
import { InputError } from "../errors.ts";
import { isConv, type LossKind, outputWidth } from "../model.ts";
import { parseCsv } from "./csv.ts";
import type { LoadedModel } from "./modelFile.ts";
import { npyToFeatures, npyToFloat32, npyToLabels, parseNpy } from "./npy.ts";

/** A file's name (for messages and the format, by extension) and its bytes. */
export interface InputFile {
  /** The file name; its extension selects the format (.npy, .csv). */
  name: string;
  /** The file's raw bytes. */
  bytes: Uint8Array;
}

/**
 * Features from `data` (.npy [N, d] or .csv) and targets from `labels` (.npy; or, for a CSV
 * without labels, its label column: `labelColumn` by index or header name, default the last),
 * checked against the model and loss with every problem named by its file. The command line reads
 * the files and the browser demos take them from file inputs; both land here.
 */
export function datasetFromBytes(data: InputFile, labels: InputFile | null, loss: LossKind, model: LoadedModel, labelColumn?: string): Dataset {
  const c = outputWidth(model.model.spec);
  let x: Float32Array;
  let n: number;
  let features: number;
  let csvLabels: Float64Array | undefined;
  let imageShape: [number, number, number] | undefined;
  if (/\.csv$/i.test(data.name)) {
    const text = new TextDecoder().decode(data.bytes);
    const column = labels ? "none" : !labelColumn ? "last" : /^\d+$/.test(labelColumn) ? Number(labelColumn) : labelColumn;
    const table = parseCsv(text, data.name, { labelColumn: column as number | string });
    ({ x, n, features } = table);
    csvLabels = table.labels;
  } else {
    // [N, features], or images [N, C, H, W] / [N, H, W] flattened per sample (NCHW).
    ({ n, features, x, imageShape } = npyToFeatures(parseNpy(data.bytes, data.name), data.name, "data"));
  }
  const first = model.model.spec.layers[0];
  if (isConv(first)) {
    const want: [number, number, number] = [first.inChannels, first.inHeight, first.inWidth];
    if (imageShape && imageShape.join() !== want.join()) {
      const nhwc = imageShape.join() === [want[1], want[2], want[0]].join() ? " (this looks like NHWC: transpose to NCHW, e.g. x.transpose(0, 3, 1, 2))" : "";
      throw new InputError(`${data.name}: images of shape [${imageShape.join(", ")}] per sample but the model takes [${want.join(", ")}] (channels, height, width)${nhwc}`);
    }
    // Flat rows of C·H·W values are taken as flattened NCHW images.
    if (features === want[0] * want[1] * want[2]) imageShape = want;
  }
  let raw: { values: ArrayLike<number>; shape: number[]; name: string };
  if (labels) {
    const arr = parseNpy(labels.bytes, labels.name);
    raw = { values: loss === "mse" ? npyToFloat32(arr, labels.name, "targets") : npyToLabels(arr, labels.name), shape: arr.shape, name: labels.name };
  } else if (csvLabels) {
    raw = { values: csvLabels, shape: [csvLabels.length], name: data.name };
  } else {
    throw new InputError(`${data.name}: labels are needed (a .npy of ${loss === "mse" ? "float targets [N, outputs]" : "integer labels [N]"}, or a CSV with a label column)`);
  }
  if (raw.shape[0] !== n) throw new InputError(`${raw.name}: has ${raw.shape[0]} rows but ${data.name} has ${n} samples`);
  let dataset: Dataset;
  if (loss === "mse") {
    const count = raw.shape.reduce((a, b) => a * b, 1);
    if (count !== n * c) throw new InputError(`${raw.name}: targets of shape [${raw.shape.join(", ")}] do not match [${n}, ${c}] (samples x model outputs)`);
    dataset = { n, features, x, targets: Float32Array.from(raw.values) };
    if (imageShape) dataset.imageShape = imageShape;
  } else {
    if (raw.shape.length !== 1 && !(raw.shape.length === 2 && raw.shape[1] === 1)) throw new InputError(`${raw.name}: labels must have shape [N], got [${raw.shape.join(", ")}]`);
    const y = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      const v = raw.values[i];
      if (!Number.isInteger(v)) throw new InputError(`${raw.name}: label ${v} at sample ${i} is not an integer`);
      y[i] = v;
    }
    dataset = { n, features, x, labels: y };
    if (imageShape) dataset.imageShape = imageShape;
  }
  try {
    validateDataset(model.model.spec, dataset, loss);
  } catch (e) {
    if (!(e instanceof InputError)) throw e;
    throw new InputError(`${/^(label|targets|loss)/.test(e.message) ? raw.name : data.name}: ${e.message}`);
  }
  return dataset;
}
