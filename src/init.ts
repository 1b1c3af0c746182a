/** Parameter initialisation and small built-in problems (seeded, identical in every runtime). */
import type { Dataset } from "./data.ts";
import { inputWidth, isConv, type LossKind, type ModelSpec, outputWidth, parameterLayout } from "./model.ts";
import { Rng } from "./random.ts";

/**
 * He (Kaiming) normal weights, std sqrt(2 / fan_in), fan_in = in (linear) or in/groups·kh·kw
 * (conv2d: the weight's entries per output unit, as PyTorch's kaiming_normal_); biases
 * N(0, biasStd²) (default 0.1 so no bias sits exactly at 0).
 */
export function initParameters(spec: ModelSpec, seed: number, biasStd = 0.1): Float64Array {
  const rng = new Rng(seed);
  const layout = parameterLayout(spec);
  const theta = new Float64Array(layout.dim);
  for (const v of layout.views) {
    const fanIn = v.shape.slice(1).reduce((a, b) => a * b, 1);
    const std = v.role === "weight" ? Math.sqrt(2 / fanIn) : biasStd;
    for (let i = 0; i < v.size; i++) theta[v.offset + i] = std * rng.normal();
  }
  return theta;
}

/**
 * Gaussian inputs with labels/targets drawn for `loss` (random labels; a synthetic check problem,
 * not a benchmark of learning). For a net starting with a convolution the inputs are images of its
 * input shape (imageShape set).
 */
export function randomDataset(spec: ModelSpec, n: number, loss: LossKind, seed: number): Dataset {
  const rng = new Rng(seed);
  const first = spec.layers[0];
  const d = inputWidth(spec);
  const c = outputWidth(spec);
  const x = Float32Array.from({ length: n * d }, () => rng.normal());
  const image = isConv(first) ? { imageShape: [first.inChannels, first.inHeight, first.inWidth] as [number, number, number] } : {};
  if (loss === "mse") return { n, features: d, x, targets: Float32Array.from({ length: n * c }, () => rng.normal()), ...image };
  const classes = loss === "ce" ? c : 2;
  return { n, features: d, x, labels: Int32Array.from({ length: n }, () => rng.int(classes)), ...image };
}
