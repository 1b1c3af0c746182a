/**
 * Feed-forward rectified nets (Definition 3 of Dinh et al. 2017):
 *   y = phi(... phi(x·theta_1 + b_1) ...)·theta_K + b_K
 * with phi = ReLU or leaky ReLU on every hidden layer and a linear output layer.
 *
 * Convolutional rectified nets are the same with some theta_k a 2-D convolution (a linear map of
 * its input, PyTorch's Conv2d) and an optional pooling after the activation of a hidden
 * convolution (max pooling, positively homogeneous, or average pooling, linear; Dinh et al. 2017
 * section 4 note that the results extend to such nets). A spec is a list of parametric layers
 * ("stages"): layer k is a linear or conv2d map, then phi unless it is the last layer, then its
 * pooling if any. Images are NCHW and flattened per sample in that order, so a linear layer after
 * a convolution reads PyTorch's Flatten output. Layer indices k (T_alpha's alphas, per-layer
 * spectra, --layers) count parametric layers only.
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

/** One fully connected layer z = a·W^T + b (PyTorch's nn.Linear). */
export interface LinearLayerSpec {
  /** "linear", or absent (MLP specs written before convolutions existed). */
  kind?: "linear";
  /** Input width of the layer. */
  inFeatures: number;
  /** Output width of the layer. */
  outFeatures: number;
  /** Whether the layer has a bias b. */
  bias: boolean;
}

/** A pair (height, width), as PyTorch's Conv2d and MaxPool2d take kernel_size, stride, padding, dilation. */
export type Pair = [number, number];

/**
 * Pooling after the activation of a hidden convolution (PyTorch's MaxPool2d / AvgPool2d, floor
 * mode). Max pooling takes the first maximum of each window in row-major order (PyTorch's rule);
 * padded cells never win. Average pooling divides by the window area when countIncludePad (PyTorch's
 * default), else by the number of cells inside the image.
 */
export interface Pool2dSpec {
  /** Max or average pooling. */
  kind: "max" | "avg";
  /** Window (kh, kw). */
  kernel: Pair;
  /** Step (sh, sw); PyTorch's default is the kernel. */
  stride: Pair;
  /** Implicit padding on each side (ph, pw); at most half the kernel, as PyTorch requires. */
  padding: Pair;
  /** Average pooling only: divide by kh·kw even where the window covers padding. */
  countIncludePad?: boolean;
}

/**
 * A 2-D convolution (PyTorch's nn.Conv2d): weight [out, in/groups, kh, kw], optional bias [out],
 * input [inChannels, inHeight, inWidth] per sample, zero padding.
 *   z[o, y, x] = b[o] + sum_{c in group(o), i, j} W[o, c, i, j] · a[c, y·sh - ph + i·dh, x·sw - pw + j·dw]
 */
export interface Conv2dLayerSpec {
  /** The layer kind. */
  kind: "conv2d";
  /** Input channels. */
  inChannels: number;
  /** Input height. */
  inHeight: number;
  /** Input width. */
  inWidth: number;
  /** Output channels (filters). */
  outChannels: number;
  /** Kernel (kh, kw). */
  kernel: Pair;
  /** Stride (sh, sw). */
  stride: Pair;
  /** Zero padding on each side (ph, pw). */
  padding: Pair;
  /** Dilation (dh, dw). */
  dilation: Pair;
  /** Channel groups: inChannels and outChannels are multiples of it. */
  groups: number;
  /** Whether the layer has a bias. */
  bias: boolean;
  /** Pooling after the activation (hidden layers only). */
  pool?: Pool2dSpec;
}

/** A parametric layer: fully connected or convolutional. */
export type LayerSpec = LinearLayerSpec | Conv2dLayerSpec;

/** The architecture of a rectified net: its parametric layers in order and the hidden activation. */
export interface ModelSpec {
  /** The layers, input first; each takes what the previous one gives (see layerInputSize/layerOutputSize). */
  layers: LayerSpec[];
  /**
   * A fully connected first layer on images: the per-sample image shape [C, H, W] its input is
   * flattened from (PyTorch's Sequential(Flatten, Linear, ...), which puts the first Linear at
   * index 1). Absent for flat inputs and for nets that start with a convolution.
   */
  inputShape?: [number, number, number];
  /** The activation of every hidden layer (the output layer is linear). */
  activation: Activation;
}

/** Where one named tensor lives inside the flat parameter vector. */
export interface TensorView {
  /** PyTorch nn.Sequential tensor name, "<module>.weight" or "<module>.bias" (moduleIndices; "2k.weight" for an MLP's layer k). */
  name: string;
  /** 0-based layer index k. */
  layer: number;
  /** Whether the tensor is the weight W_k or the bias b_k. */
  role: "weight" | "bias";
  /** Offset of its first entry in theta. */
  offset: number;
  /** Shape: [out_k, in_k] (linear) or [out_k, in_k/groups, kh, kw] (conv2d) for a weight, [out_k] for a bias. */
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

/** A spec whose layers are all fully connected: what the MLP-only algorithms take. */
export type MlpSpec = ModelSpec & { layers: LinearLayerSpec[] };

/** Whether a layer is a 2-D convolution. */
export function isConv(l: LayerSpec): l is Conv2dLayerSpec {
  return l.kind === "conv2d";
}

/** Whether every layer is fully connected (an MLP). */
export function isMlp(spec: ModelSpec): spec is MlpSpec {
  return spec.layers.every((l) => !isConv(l));
}

/**
 * Refuses (InputError naming `what` and the first convolution) a spec that is not an MLP: for the
 * constructions and measures defined for fully connected nets only.
 */
export function requireMlp(spec: ModelSpec, what: string): asserts spec is MlpSpec {
  const k = spec.layers.findIndex(isConv);
  if (k >= 0) throw new InputError(`${what} supports fully connected (linear) layers only, but layer ${k} is a conv2d`);
}

/** Output size along one axis of a window op (PyTorch floor mode): floor((n + 2p - d(k-1) - 1)/s) + 1. */
function windowOutput(n: number, kernel: number, stride: number, padding: number, dilation = 1): number {
  return Math.floor((n + 2 * padding - dilation * (kernel - 1) - 1) / stride) + 1;
}

/** Shape [C, H, W] of a convolution's output z, before activation and pooling. */
export function convOutputShape(l: Conv2dLayerSpec): [number, number, number] {
  return [
    l.outChannels,
    windowOutput(l.inHeight, l.kernel[0], l.stride[0], l.padding[0], l.dilation[0]),
    windowOutput(l.inWidth, l.kernel[1], l.stride[1], l.padding[1], l.dilation[1]),
  ];
}

/** Shape [C, H', W'] after pooling an image of shape [C, H, W]. */
export function poolOutputShape(pool: Pool2dSpec, shape: [number, number, number]): [number, number, number] {
  return [
    shape[0],
    windowOutput(shape[1], pool.kernel[0], pool.stride[0], pool.padding[0]),
    windowOutput(shape[2], pool.kernel[1], pool.stride[1], pool.padding[1]),
  ];
}

/** Shape a layer gives the next one: [C, H, W] for a convolution (after its pooling), [out] for a linear layer. */
export function layerOutputShape(l: LayerSpec): number[] {
  if (!isConv(l)) return [l.outFeatures];
  const z = convOutputShape(l);
  return l.pool ? poolOutputShape(l.pool, z) : z;
}

/** Entries per sample of a layer's input (C·H·W for a convolution). */
export function layerInputSize(l: LayerSpec): number {
  return isConv(l) ? l.inChannels * l.inHeight * l.inWidth : l.inFeatures;
}

/** Entries per sample of a layer's pre-activation z (C·H·W of the convolution's output, before pooling). */
export function layerPreactivationSize(l: LayerSpec): number {
  if (!isConv(l)) return l.outFeatures;
  const [c, h, w] = convOutputShape(l);
  return c * h * w;
}

/** Entries per sample a layer gives the next one (after pooling). */
export function layerOutputSize(l: LayerSpec): number {
  return layerOutputShape(l).reduce((a, b) => a * b, 1);
}

/** Output units (neurons, or channels of a convolution): what neuron-wise rescaling scales one at a time. */
export function layerUnits(l: LayerSpec): number {
  return isConv(l) ? l.outChannels : l.outFeatures;
}

/** Shape of a layer's weight: [out, in] (linear) or [out, in/groups, kh, kw] (conv2d), PyTorch's layout. */
export function weightShape(l: LayerSpec): number[] {
  return isConv(l) ? [l.outChannels, l.inChannels / l.groups, l.kernel[0], l.kernel[1]] : [l.outFeatures, l.inFeatures];
}

function positiveInt(v: unknown): boolean {
  return Number.isInteger(v) && (v as number) >= 1;
}

function checkPair(where: string, key: string, p: unknown, min: number): void {
  if (!Array.isArray(p) || p.length !== 2 || !p.every((v) => Number.isInteger(v) && v >= min)) {
    throw new InputError(`${where}: ${key} must be a pair of integers >= ${min}, got ${JSON.stringify(p)}`);
  }
}

function validateConv(l: Conv2dLayerSpec, k: number, last: boolean): void {
  const where = `layer ${k} (conv2d)`;
  for (const key of ["inChannels", "inHeight", "inWidth", "outChannels", "groups"] as const) {
    if (!positiveInt(l[key])) throw new InputError(`${where}: ${key} must be a positive integer, got ${l[key]}`);
  }
  checkPair(where, "kernel", l.kernel, 1);
  checkPair(where, "stride", l.stride, 1);
  checkPair(where, "padding", l.padding, 0);
  checkPair(where, "dilation", l.dilation, 1);
  if (l.inChannels % l.groups !== 0 || l.outChannels % l.groups !== 0) {
    throw new InputError(`${where}: groups ${l.groups} must divide inChannels ${l.inChannels} and outChannels ${l.outChannels}`);
  }
  const [, h, w] = convOutputShape(l);
  if (h < 1 || w < 1) {
    throw new InputError(`${where}: a ${l.kernel.join("x")} kernel (dilation ${l.dilation.join("x")}, padding ${l.padding.join("x")}) does not fit a ${l.inHeight}x${l.inWidth} input`);
  }
  if (!l.pool) return;
  const p = l.pool;
  if (last) throw new InputError(`${where}: pooling after the output layer is not supported`);
  if (p.kind !== "max" && p.kind !== "avg") throw new InputError(`${where}: unsupported pooling ${(p as { kind: string }).kind}: use max or avg`);
  checkPair(`${where} ${p.kind} pool`, "kernel", p.kernel, 1);
  checkPair(`${where} ${p.kind} pool`, "stride", p.stride, 1);
  checkPair(`${where} ${p.kind} pool`, "padding", p.padding, 0);
  if (2 * p.padding[0] > p.kernel[0] || 2 * p.padding[1] > p.kernel[1]) {
    throw new InputError(`${where} ${p.kind} pool: padding ${p.padding.join("x")} must be at most half the kernel ${p.kernel.join("x")}`);
  }
  const [, ph, pw] = poolOutputShape(p, [l.outChannels, h, w]);
  if (ph < 1 || pw < 1) throw new InputError(`${where} ${p.kind} pool: a ${p.kernel.join("x")} window does not fit the ${h}x${w} feature map`);
}

/** Checks that a spec is a well-formed rectified net (positive sizes, chained layers, supported activation); throws InputError otherwise. */
export function validateSpec(spec: ModelSpec): void {
  if (!spec.layers || spec.layers.length === 0) throw new InputError("model has no layers");
  const K = spec.layers.length;
  spec.layers.forEach((l, k) => {
    if (isConv(l)) {
      validateConv(l, k, k === K - 1);
    } else if (l.kind !== undefined && l.kind !== "linear") {
      throw new InputError(`layer ${k}: unsupported layer kind ${(l as { kind: string }).kind}: use linear or conv2d`);
    } else {
      for (const key of ["inFeatures", "outFeatures"] as const) {
        if (!positiveInt(l[key])) throw new InputError(`layer ${k}: ${key} must be a positive integer, got ${l[key]}`);
      }
    }
    if (k === 0) return;
    const prev = spec.layers[k - 1];
    if (isConv(l)) {
      if (!isConv(prev)) throw new InputError(`layer ${k} is a conv2d after a linear layer: reshaping a vector back to an image is not supported`);
      const [c, h, w] = layerOutputShape(prev);
      if (l.inChannels !== c || l.inHeight !== h || l.inWidth !== w) {
        throw new InputError(`layer ${k} takes a ${l.inChannels}x${l.inHeight}x${l.inWidth} input but layer ${k - 1} gives ${c}x${h}x${w}`);
      }
    } else if (l.inFeatures !== layerOutputSize(prev)) {
      throw new InputError(`layer ${k} takes ${l.inFeatures} inputs but layer ${k - 1} gives ${layerOutputSize(prev)} outputs`);
    }
  });
  spec.layers.forEach((l, k) => {
    if (typeof l.bias !== "boolean") throw new InputError(`layer ${k}: bias must be true or false, got ${JSON.stringify(l.bias)}`);
  });
  if (spec.inputShape !== undefined) {
    const s = spec.inputShape;
    const first = spec.layers[0];
    if (!Array.isArray(s) || s.length !== 3 || !s.every(positiveInt)) throw new InputError(`inputShape must be [channels, height, width] of positive integers, got ${JSON.stringify(s)}`);
    if (isConv(first) || first.inFeatures !== s[0] * s[1] * s[2]) {
      throw new InputError(`inputShape ${s.join("x")} is for a linear first layer taking ${s[0] * s[1] * s[2]} inputs`);
    }
  }
  const a = spec.activation;
  if (a.kind === "leaky_relu") {
    if (!Number.isFinite(a.slope)) throw new InputError(`leaky_relu slope must be finite, got ${a.slope}`);
  } else if (a.kind !== "relu") {
    throw new InputError(`unsupported activation ${(a as { kind: string }).kind}: use relu or leaky_relu`);
  }
}

/**
 * PyTorch nn.Sequential module index of each parametric layer: every layer is one module, then
 * one for the activation (hidden layers), one for the pooling, and one Flatten where a convolution
 * meets a linear layer or before a first linear layer on images (inputShape). An MLP's layer k sits
 * at 2k; Conv, ReLU, MaxPool, Flatten, Linear puts the Linear at 4; Flatten, Linear, ReLU, Linear at 1 and 3.
 */
export function moduleIndices(spec: ModelSpec): number[] {
  const K = spec.layers.length;
  const indices: number[] = [];
  let next = spec.inputShape ? 1 : 0; // a leading Flatten is module 0
  spec.layers.forEach((l, k) => {
    indices.push(next);
    next += 1 + (k + 1 < K ? 1 : 0);
    if (isConv(l) && l.pool) next++;
    if (isConv(l) && k + 1 < K && !isConv(spec.layers[k + 1])) next++;
  });
  return indices;
}

/** The flat parameter layout of a spec: offsets and shapes of every weight and bias (see the module comment). */
export function parameterLayout(spec: ModelSpec): ParameterLayout {
  const views: TensorView[] = [];
  const layers: ParameterLayout["layers"] = [];
  const names = moduleIndices(spec);
  let offset = 0;
  spec.layers.forEach((l, k) => {
    const weightOffset = offset;
    const shape = weightShape(l);
    const wSize = shape.reduce((a, b) => a * b, 1);
    views.push({ name: `${names[k]}.weight`, layer: k, role: "weight", offset, shape, size: wSize });
    offset += wSize;
    let biasOffset = -1;
    const units = layerUnits(l);
    if (l.bias) {
      biasOffset = offset;
      views.push({ name: `${names[k]}.bias`, layer: k, role: "bias", offset, shape: [units], size: units });
      offset += units;
    }
    layers.push({ weightOffset, biasOffset });
  });
  return { dim: offset, views, layers };
}

/** `layers` (0-based parametric layer indices), or every layer when absent; an index out of range throws, naming `what`. */
export function selectLayers(spec: ModelSpec, layers: number[] | undefined, what: string): number[] {
  const K = spec.layers.length;
  const selected = layers ?? spec.layers.map((_, k) => k);
  for (const k of selected) {
    if (!Number.isInteger(k) || k < 0 || k >= K) throw new InputError(`${what}: no layer ${k} (layers are 0..${K - 1})`);
  }
  return selected;
}

/** Entries per input sample (C·H·W of an image, flattened NCHW). */
export function inputWidth(spec: ModelSpec): number {
  return layerInputSize(spec.layers[0]);
}

/** Entries per output (the last layer's output, flattened). */
export function outputWidth(spec: ModelSpec): number {
  return layerOutputSize(spec.layers[spec.layers.length - 1]);
}

/** Slope of phi on the negative side: 0 for ReLU. phi'(z) = z > 0 ? 1 : slope (phi'(0) = slope, as PyTorch). */
export function negativeSlope(a: Activation): number {
  return a.kind === "leaky_relu" ? a.slope : 0;
}

/** Multiply-adds of one layer's linear map for one sample: in·out, or, for a convolution, out·H'·W'·(in/groups)·kh·kw. */
export function layerMultiplyAdds(l: LayerSpec): number {
  if (!isConv(l)) return l.inFeatures * l.outFeatures;
  return layerPreactivationSize(l) * (l.inChannels / l.groups) * l.kernel[0] * l.kernel[1];
}

/** FLOPs of one forward pass over `batch` samples (multiply-adds counted as 2; pooling and activations not counted). */
export function forwardFlops(spec: ModelSpec, batch: number): number {
  return spec.layers.reduce((s, l) => s + 2 * batch * layerMultiplyAdds(l), 0);
}
