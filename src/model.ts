/**
 * Feed-forward rectified nets (Definition 3 of Dinh et al. 2017):
 *   y = phi(... phi(x·theta_1 + b_1) ...)·theta_K + b_K
 * with phi = ReLU or leaky ReLU on every hidden layer and a linear output layer.
 *
 * Flat parameter layout. Every algorithm sees one vector theta of dimension n. Layer k (0-based)
 * contributes, in this order:
 *   weight W_k, shape [out_k, in_k], row-major (PyTorch's nn.Linear layout, so W_k = theta_{k+1}^T
 *           in the paper's notation: z = a·W_k^T + b_k);
 *   bias   b_k, shape [out_k] (only when the layer has a bias).
 * Tensor names follow PyTorch's nn.Sequential of Linear and ReLU modules: the k-th Linear sits at
 * index 2k, so its tensors are "2k.weight" and "2k.bias".
 */
import { InputError } from "./errors.ts";

/** The hidden-layer nonlinearity phi: ReLU, or leaky ReLU with negative slope `slope` (Dinh et al. 2017, Definition 3: rectified nets). */
export type Activation =
  | { kind: "relu" }
  | { kind: "leaky_relu"; slope: number };

/** One fully connected layer z = a·W^T + b. */
export interface LayerSpec {
  /** Input width of the layer. */
  inFeatures: number;
  /** Output width of the layer. */
  outFeatures: number;
  /** Whether the layer has a bias b. */
  bias: boolean;
}

/** The architecture of a rectified MLP: its layers in order and the hidden activation. */
export interface ModelSpec {
  /** The layers, input first; layer k's inFeatures is layer k-1's outFeatures. */
  layers: LayerSpec[];
  /** The activation of every hidden layer (the output layer is linear). */
  activation: Activation;
}

/** Where one named tensor lives inside the flat parameter vector. */
export interface TensorView {
  /** PyTorch-style tensor name, "2k.weight" or "2k.bias" for layer k. */
  name: string;
  /** 0-based layer index k. */
  layer: number;
  /** Whether the tensor is the weight W_k or the bias b_k. */
  role: "weight" | "bias";
  /** Offset of its first entry in theta. */
  offset: number;
  /** Shape: [out_k, in_k] for a weight, [out_k] for a bias. */
  shape: number[];
  /** Entry count (the product of the shape). */
  size: number;
}

/** The layout of the flat parameter vector theta of a spec (parameterLayout). */
export interface ParameterLayout {
  /** Parameter count n = dim(theta). */
  dim: number;
  /** Every tensor in theta order (layer by layer, weight before bias). */
  views: TensorView[];
  /** Per layer: offset of the weight, and of the bias (-1 when absent). */
  layers: { weightOffset: number; biasOffset: number }[];
}

/** A model: its architecture and a flat parameter vector in the layout above. */
export interface Model {
  /** The architecture. */
  spec: ModelSpec;
  /** The flat parameters, length parameterLayout(spec).dim. */
  theta: Float64Array;
}

/** The loss, a mean over the samples (PyTorch conventions): "ce" softmax cross-entropy, "mse" squared error averaged over N·C entries, "logistic" binary logistic on one output. */
export type LossKind = "ce" | "mse" | "logistic";
/** Every loss kind. */
export const LOSS_KINDS: readonly LossKind[] = ["ce", "mse", "logistic"];

/** Builds a spec from widths [d_0, d_1, ..., d_K]; `bias` may be per layer. */
export function mlpSpec(
  widths: number[],
  options: { bias?: boolean | boolean[]; activation?: Activation } = {},
): ModelSpec {
  if (widths.length < 2) throw new InputError(`an MLP needs at least an input and an output width, got [${widths}]`);
  const layers: LayerSpec[] = [];
  for (let k = 0; k + 1 < widths.length; k++) {
    const bias = Array.isArray(options.bias) ? options.bias[k] ?? true : options.bias ?? true;
    layers.push({ inFeatures: widths[k], outFeatures: widths[k + 1], bias });
  }
  const spec = { layers, activation: options.activation ?? { kind: "relu" as const } };
  validateSpec(spec);
  return spec;
}

/** Checks that a spec is a well-formed rectified MLP (positive widths, chained layers, supported activation); throws InputError otherwise. */
export function validateSpec(spec: ModelSpec): void {
  if (!spec.layers || spec.layers.length === 0) throw new InputError("model has no layers");
  spec.layers.forEach((l, k) => {
    for (const key of ["inFeatures", "outFeatures"] as const) {
      if (!Number.isInteger(l[key]) || l[key] < 1) {
        throw new InputError(`layer ${k}: ${key} must be a positive integer, got ${l[key]}`);
      }
    }
    if (k > 0 && l.inFeatures !== spec.layers[k - 1].outFeatures) {
      throw new InputError(
        `layer ${k} takes ${l.inFeatures} inputs but layer ${k - 1} gives ${spec.layers[k - 1].outFeatures} outputs`,
      );
    }
  });
  const a = spec.activation;
  if (a.kind === "leaky_relu") {
    if (!Number.isFinite(a.slope)) throw new InputError(`leaky_relu slope must be finite, got ${a.slope}`);
  } else if (a.kind !== "relu") {
    throw new InputError(`unsupported activation ${(a as { kind: string }).kind}: use relu or leaky_relu`);
  }
}

/** The flat parameter layout of a spec: offsets and shapes of every weight and bias (see the module comment). */
export function parameterLayout(spec: ModelSpec): ParameterLayout {
  const views: TensorView[] = [];
  const layers: ParameterLayout["layers"] = [];
  let offset = 0;
  spec.layers.forEach((l, k) => {
    const weightOffset = offset;
    const wSize = l.outFeatures * l.inFeatures;
    views.push({ name: `${2 * k}.weight`, layer: k, role: "weight", offset, shape: [l.outFeatures, l.inFeatures], size: wSize });
    offset += wSize;
    let biasOffset = -1;
    if (l.bias) {
      biasOffset = offset;
      views.push({ name: `${2 * k}.bias`, layer: k, role: "bias", offset, shape: [l.outFeatures], size: l.outFeatures });
      offset += l.outFeatures;
    }
    layers.push({ weightOffset, biasOffset });
  });
  return { dim: offset, views, layers };
}

/** `layers` (0-based Linear indices), or every layer when absent; an index out of range throws, naming `what`. */
export function selectLayers(spec: ModelSpec, layers: number[] | undefined, what: string): number[] {
  const K = spec.layers.length;
  const selected = layers ?? spec.layers.map((_, k) => k);
  for (const k of selected) {
    if (!Number.isInteger(k) || k < 0 || k >= K) throw new InputError(`${what}: no layer ${k} (layers are 0..${K - 1})`);
  }
  return selected;
}

export function inputWidth(spec: ModelSpec): number {
  return spec.layers[0].inFeatures;
}

export function outputWidth(spec: ModelSpec): number {
  return spec.layers[spec.layers.length - 1].outFeatures;
}

/** Slope of phi on the negative side: 0 for ReLU. phi'(z) = z > 0 ? 1 : slope (phi'(0) = slope, as PyTorch). */
export function negativeSlope(a: Activation): number {
  return a.kind === "leaky_relu" ? a.slope : 0;
}

/** FLOPs of one forward pass over `batch` samples (multiply-adds counted as 2). */
export function forwardFlops(spec: ModelSpec, batch: number): number {
  return spec.layers.reduce((s, l) => s + 2 * batch * l.inFeatures * l.outFeatures, 0);
}
