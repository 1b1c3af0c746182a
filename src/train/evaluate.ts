/** Loss and accuracy of a model's outputs over a dataset, in float64 on the host. */
import type { Dataset } from "../data.ts";
import { InputError } from "../errors.ts";
import type { LossKind } from "../model.ts";
import { lossValueAndGradient } from "../reference/losses.ts";

export interface Evaluation {
  /** The mean loss (PyTorch's reduction: over samples, and over outputs too for mse). */
  loss: number;
  /** Fraction classified correctly: argmax for ce, output > 0 for logistic; absent for mse. */
  accuracy?: number;
}

/** Loss and accuracy of outputs z (row-major [N, C], as Objective.outputs gives) against `data`. */
export function evaluateOutputs(loss: LossKind, z: Float64Array, data: Dataset): Evaluation {
  const n = data.n;
  const c = z.length / n;
  if (!Number.isInteger(c) || c < 1) throw new InputError(`outputs have ${z.length} values, not a multiple of the ${n} samples`);
  const value = lossValueAndGradient(loss, z, data, c).loss;
  if (loss === "mse") return { loss: value };
  return { loss: value, accuracy: accuracy(loss, z, data.labels!, c) };
}

/** Classification accuracy: argmax of each row (first maximum on ties) for ce, z > 0 for logistic. */
export function accuracy(loss: "ce" | "logistic", z: Float64Array, labels: Int32Array, c: number): number {
  const n = labels.length;
  let correct = 0;
  for (let s = 0; s < n; s++) {
    let predicted: number;
    if (loss === "logistic") {
      predicted = z[s] > 0 ? 1 : 0;
    } else {
      predicted = 0;
      for (let j = 1; j < c; j++) if (z[s * c + j] > z[s * c + predicted]) predicted = j;
    }
    if (predicted === labels[s]) correct++;
  }
  return correct / n;
}
