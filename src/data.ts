/**
 * A dataset: N samples of d float features (row-major [N, d]) and their targets.
 * - loss "ce": `labels` holds N integer class indices in [0, C).
 * - loss "logistic": `labels` holds N values in {0, 1}; the model has one output.
 * - loss "mse": `targets` holds N*C floats (row-major [N, C]).
 */
import { InputError, assertFinite } from "./errors.ts";
import { type LossKind, type ModelSpec, inputWidth, outputWidth } from "./model.ts";

/** A dataset of N samples: inputs row-major [N, d] and their labels (ce, logistic) or targets (mse). */
export interface Dataset {
  /** Sample count N. */
  n: number;
  /** Input width d. */
  features: number;
  /** Inputs, row-major [N, d]. */
  x: Float32Array;
  /** ce: N class indices in [0, C); logistic: N values in {0, 1}. */
  labels?: Int32Array;
  /** mse: targets, row-major [N, C]. */
  targets?: Float32Array;
  /** Images: the per-sample shape [C, H, W] of x (NCHW, flattened per sample, so d = C·H·W). */
  imageShape?: [number, number, number];
}

/** Checks that `data` fits `spec` and `loss`; throws InputError naming the tensor and shapes. */
export function validateDataset(spec: ModelSpec, data: Dataset, loss: LossKind): void {
  const d = inputWidth(spec);
  const c = outputWidth(spec);
  if (!Number.isInteger(data.n) || data.n < 1) throw new InputError(`the data is empty (${data.n} samples)`);
  if (data.features !== d) {
    throw new InputError(`data has ${data.features} features per sample but the model's first layer takes ${d}`);
  }
  if (data.x.length !== data.n * d) {
    throw new InputError(`data x has ${data.x.length} values, expected ${data.n} x ${d} = ${data.n * d}`);
  }
  assertFinite("data x", data.x);
  if (loss === "mse") {
    if (!data.targets) throw new InputError("loss mse needs float targets of shape [N, outputs]");
    if (data.targets.length !== data.n * c) {
      throw new InputError(`targets have ${data.targets.length} values, expected ${data.n} x ${c} = ${data.n * c}`);
    }
    assertFinite("targets", data.targets);
    return;
  }
  if (!data.labels) throw new InputError(`loss ${loss} needs integer labels of shape [N]`);
  if (data.labels.length !== data.n) {
    throw new InputError(`labels have ${data.labels.length} entries but the data has ${data.n} samples`);
  }
  if (loss === "logistic" && c !== 1) {
    throw new InputError(`loss logistic needs a model with 1 output, this one has ${c}`);
  }
  const classes = loss === "ce" ? c : 2;
  for (let i = 0; i < data.n; i++) {
    const y = data.labels[i];
    if (!(y >= 0 && y < classes)) {
      throw new InputError(`label ${y} at sample ${i} is out of range [0, ${classes - 1}] for loss ${loss}`);
    }
  }
}

/** The samples at `indices` (in that order), as a new dataset: used for per-subset metrics (m-sharpness). */
export function subsetDataset(data: Dataset, indices: ArrayLike<number>): Dataset {
  const d = data.features;
  const m = indices.length;
  const x = new Float32Array(m * d);
  const c = data.targets ? data.targets.length / data.n : 0;
  const targets = data.targets ? new Float32Array(m * c) : undefined;
  const labels = data.labels ? new Int32Array(m) : undefined;
  for (let r = 0; r < m; r++) {
    const i = indices[r];
    if (!(Number.isInteger(i) && i >= 0 && i < data.n)) throw new InputError(`subset index ${i} is outside the dataset's ${data.n} samples`);
    x.set(data.x.subarray(i * d, (i + 1) * d), r * d);
    if (labels) labels[r] = data.labels![i];
    if (targets) targets.set(data.targets!.subarray(i * c, (i + 1) * c), r * c);
  }
  return { n: m, features: d, x, labels, targets, ...(data.imageShape ? { imageShape: data.imageShape } : {}) };
}
