/**
 * Shared builders for the tests of convolutional nets (runtime-neutral: vitest and the Deno suite):
 * layer specs by hand (conv, linear, spec) for the engine grids, and seeded tiny-CNN problems kept
 * away from the ReLU kinks and max-pooling ties (makeCnnCase), where f32 and f64 and finite
 * differences agree.
 */
import { parseArchitecture } from "../../src/architecture.ts";
import type { Dataset } from "../../src/data.ts";
import {
  type Activation,
  type Conv2dLayerSpec,
  type LayerSpec,
  type LossKind,
  type ModelSpec,
  outputWidth,
  type Pair,
  parameterLayout,
  type Pool2dSpec,
  validateSpec,
} from "../../src/model.ts";
import { Rng } from "../../src/random.ts";
import { ReferenceObjective } from "../../src/reference/engine.ts";

/** A conv layer by hand: 3x3 kernel, stride 1, no padding, no dilation, one group and a bias unless given; a 2x2 pool with stride = kernel. */
export interface ConvOptions {
  in: [number, number, number];
  out: number;
  kernel?: Pair;
  stride?: Pair;
  padding?: Pair;
  dilation?: Pair;
  groups?: number;
  bias?: boolean;
  pool?: Partial<Pool2dSpec> & { kind: "max" | "avg" };
}

export function conv(o: ConvOptions): Conv2dLayerSpec {
  const l: Conv2dLayerSpec = {
    kind: "conv2d",
    inChannels: o.in[0],
    inHeight: o.in[1],
    inWidth: o.in[2],
    outChannels: o.out,
    kernel: o.kernel ?? [3, 3],
    stride: o.stride ?? [1, 1],
    padding: o.padding ?? [0, 0],
    dilation: o.dilation ?? [1, 1],
    groups: o.groups ?? 1,
    bias: o.bias ?? true,
  };
  if (o.pool) {
    const k = o.pool.kernel ?? [2, 2];
    l.pool = { kind: o.pool.kind, kernel: k, stride: o.pool.stride ?? k, padding: o.pool.padding ?? [0, 0] };
    if (o.pool.countIncludePad !== undefined) l.pool.countIncludePad = o.pool.countIncludePad;
  }
  return l;
}

export function linear(inFeatures: number, outFeatures: number, bias = true): LayerSpec {
  return { inFeatures, outFeatures, bias };
}

/** A validated spec of these layers. */
export function spec(layers: LayerSpec[], activation: Activation = { kind: "relu" }): ModelSpec {
  const s = { layers, activation };
  validateSpec(s);
  return s;
}

/** A seeded problem on a tiny CNN, with its float64 objective. */
export interface CnnCase {
  spec: ModelSpec;
  data: Dataset;
  theta: Float64Array;
  reference: ReferenceObjective;
}

/**
 * `arch` on `input` with `n` (default 4) Gaussian samples and theta ~ N(0, 0.6²), redrawn (seed + 1000 per
 * attempt) until every hidden pre-activation and max-pooling gap is above 1e-3.
 */
export function makeCnnCase(arch: string, input: number[], loss: LossKind, seed: number, n = 4): CnnCase {
  const spec = parseArchitecture(arch, input);
  const dim = parameterLayout(spec).dim;
  const d = input.reduce((a, b) => a * b, 1);
  const c = outputWidth(spec);
  for (let attempt = 0; attempt < 200; attempt++) {
    const rng = new Rng(seed + 1000 * attempt);
    const data: Dataset = {
      n,
      features: d,
      x: Float32Array.from({ length: n * d }, () => rng.normal()),
      labels: loss === "mse" ? undefined : Int32Array.from({ length: n }, () => rng.int(loss === "ce" ? c : 2)),
      targets: loss === "mse" ? Float32Array.from({ length: n * c }, () => rng.normal()) : undefined,
      imageShape: input as [number, number, number],
    };
    const theta = Float64Array.from({ length: dim }, () => 0.6 * rng.normal());
    const reference = new ReferenceObjective(spec, data, loss);
    if (reference.minHiddenPreactivation(theta) > 1e-3) return { spec, data, theta, reference };
  }
  throw new Error(`no draw away from the kinks for ${arch}`);
}
