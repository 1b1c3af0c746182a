/**
 * Built-in seeded datasets for training and flatness experiments, each fully determined by its
 * options and seed (the same numbers in every runtime: src/random.ts), each with the loss it is
 * meant for:
 *   gaussianMixture   k Gaussian classes in d dimensions                     -> ce
 *   twoSpirals        two interleaved 2-D spirals                            -> ce (2 outputs)
 *   teacherStudent    targets of a random ReLU teacher MLP plus label noise  -> mse
 * and the seeded helpers training uses: permutation, splitDataset, deriveSeed. The real image
 * datasets (mnist, fashion-mnist) are read from the packages that ship them: src/imageDatasets.ts
 * (the parsers and the class-balanced choice) and src/io/imageDatasets.ts (the files).
 */
import { type Dataset, subsetDataset } from "./data.ts";
import { InputError } from "./errors.ts";
import { initParameters } from "./init.ts";
import type { ImageDatasetName } from "./imageDatasets.ts";
import { type Activation, type LinearLayerSpec, type LossKind, type Model, mlpSpec, type ModelSpec, negativeSlope, parameterLayout, requireMlp } from "./model.ts";
import { Rng } from "./random.ts";

/** Names of the built-in datasets: gaussianMixture, twoSpirals, teacherStudent. */
export type BuiltinDatasetName = "mixture" | "spirals" | "teacher";
/** Every built-in dataset name, in the order the command line lists them. */
export const BUILTIN_DATASETS: readonly BuiltinDatasetName[] = ["mixture", "spirals", "teacher"];

/** A built-in dataset with what a model needs to fit it. */
export interface BuiltinDataset {
  /** Which built-in dataset this is (an image dataset when loaded by src/io/imageDatasets.ts). */
  name: BuiltinDatasetName | ImageDatasetName;
  /** The samples (inputs and labels or targets). */
  data: Dataset;
  /** The loss the data is meant for. */
  loss: LossKind;
  /** Model outputs it needs: the class count (ce) or target width (mse). */
  outputs: number;
  /** One line saying how it was made. */
  description: string;
  /** teacherStudent only: the teacher that produced the targets. */
  teacher?: Model;
}

/** Options of gaussianMixture. */
export interface MixtureOptions {
  /** Sample count N (balanced: sample i has class i mod k). */
  samples: number;
  /** Classes k (default 3). */
  classes?: number;
  /** Dimensions d (default 2). */
  dims?: number;
  /** Distance between the nearest two class means (default 3). */
  separation?: number;
  /** Standard deviation of the isotropic Gaussian noise around each mean (default 1). */
  noise?: number;
  /** Seed of every random draw (means and noise). */
  seed: number;
}

/** Options of twoSpirals. */
export interface SpiralOptions {
  /** Sample count N (sample i has class i mod 2). */
  samples: number;
  /** Standard deviation of the Gaussian noise added to each coordinate (default 0.05; radii are <= 1). */
  noise?: number;
  /** Turns of each spiral (default 1.5). */
  turns?: number;
  /** Seed of the radii and the noise. */
  seed: number;
}

/** Options of teacherStudent. */
export interface TeacherOptions {
  /** Sample count N. */
  samples: number;
  /** Teacher widths [d, hidden..., outputs] (default [8, 32, 1]). */
  widths?: number[];
  /** Standard deviation of the Gaussian noise added to each target (default 0.1). */
  noise?: number;
  /** Hidden activation of the teacher (default ReLU). */
  activation?: Activation;
  /** Seed of the teacher's weights and of the inputs and noise. */
  seed: number;
}

/** The deriveSeed stream of `flatness train`'s train/test split: splitDataset(data, f, deriveSeed(seed, TRAIN_SPLIT_STREAM)). */
export const TRAIN_SPLIT_STREAM = 3;

/** A seed for an independent stream derived from `seed` (e.g. the split, the shuffles). */
export function deriveSeed(seed: number, stream: number): number {
  let h = Math.imul((seed >>> 0) ^ 0x85ebca6b, 0x9e3779b1) ^ Math.imul(stream + 1, 0xc2b2ae35);
  h ^= h >>> 15;
  h = Math.imul(h, 0x27d4eb2f);
  return (h ^ (h >>> 13)) >>> 0;
}

/** A uniformly random permutation of 0..n-1 (Fisher-Yates, drawing from `rng`). */
export function permutation(n: number, rng: Rng): Int32Array {
  const p = new Int32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    const t = p[i];
    p[i] = p[j];
    p[j] = t;
  }
  return p;
}

/** A train/test split of one dataset (splitDataset). */
export interface Split {
  /** The training samples, in their original order. */
  train: Dataset;
  /** The test samples, in their original order. */
  test: Dataset;
  /** Indices into the original data, ascending; together they are 0..n-1, each once. */
  trainIndices: Int32Array;
  /** Indices of the test samples into the original data, ascending. */
  testIndices: Int32Array;
}

/**
 * A seeded train/test split: round(n · testFraction) samples chosen by a seeded permutation go to
 * the test set, the rest to the training set, each kept in the original order.
 */
export function splitDataset(data: Dataset, testFraction: number, seed: number): Split {
  if (!(testFraction > 0 && testFraction < 1)) throw new InputError(`the test fraction must be in (0, 1), got ${testFraction}`);
  const nTest = Math.round(data.n * testFraction);
  if (nTest < 1 || nTest > data.n - 1) {
    throw new InputError(`a test fraction of ${testFraction} of ${data.n} samples leaves ${nTest} test and ${data.n - nTest} training samples; both need at least one`);
  }
  const p = permutation(data.n, new Rng(seed));
  const testIndices = p.slice(0, nTest).sort();
  const trainIndices = p.slice(nTest).sort();
  return { train: subsetDataset(data, trainIndices), test: subsetDataset(data, testIndices), trainIndices, testIndices };
}

function positiveInteger(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 1) throw new InputError(`${name} must be a positive integer, got ${value}`);
  return value;
}

function nonNegative(name: string, value: number): number {
  if (!(Number.isFinite(value) && value >= 0)) throw new InputError(`${name} must be a number >= 0, got ${value}`);
  return value;
}

/**
 * k Gaussian classes in d dimensions, sample i of class i mod k (balanced), x = mu_class + noise·N(0, I).
 * The means sit `separation` apart: for k <= d, at separation/√2 along k random orthonormal
 * directions (every pair exactly `separation` apart); for k > d >= 2, on a circle in a random
 * plane with neighbours `separation` apart; for d = 1, on a line.
 */
export function gaussianMixture(options: MixtureOptions): BuiltinDataset {
  const n = positiveInteger("samples", options.samples);
  const k = positiveInteger("classes", options.classes ?? 3);
  const d = positiveInteger("dims", options.dims ?? 2);
  const separation = nonNegative("separation", options.separation ?? 3);
  const noise = nonNegative("noise", options.noise ?? 1);
  if (k < 2) throw new InputError(`a mixture needs at least 2 classes, got ${k}`);
  const rng = new Rng(options.seed);
  const means = new Float64Array(k * d);
  if (d === 1) {
    for (let j = 0; j < k; j++) means[j] = separation * (j - (k - 1) / 2);
  } else {
    const directions = orthonormalDirections(Math.min(k, d), d, rng);
    if (k <= d) {
      for (let j = 0; j < k; j++) for (let i = 0; i < d; i++) means[j * d + i] = (separation / Math.SQRT2) * directions[j * d + i];
    } else {
      const radius = separation / (2 * Math.sin(Math.PI / k));
      for (let j = 0; j < k; j++) {
        const a = (2 * Math.PI * j) / k;
        for (let i = 0; i < d; i++) means[j * d + i] = radius * (Math.cos(a) * directions[i] + Math.sin(a) * directions[d + i]);
      }
    }
  }
  const x = new Float32Array(n * d);
  const labels = new Int32Array(n);
  for (let s = 0; s < n; s++) {
    const j = s % k;
    labels[s] = j;
    for (let i = 0; i < d; i++) x[s * d + i] = means[j * d + i] + noise * rng.normal();
  }
  return {
    name: "mixture",
    data: { n, features: d, x, labels },
    loss: "ce",
    outputs: k,
    description: `Gaussian mixture: ${n} samples, ${k} classes in ${d} dimensions, means ${separation} apart, noise ${noise}`,
  };
}

/** `count` random orthonormal vectors of length d (Gram-Schmidt on Gaussian draws), row-major. */
function orthonormalDirections(count: number, d: number, rng: Rng): Float64Array {
  const out = new Float64Array(count * d);
  for (let j = 0; j < count; j++) {
    for (;;) {
      const v = rng.normals(d);
      for (let p = 0; p < j; p++) {
        let dot = 0;
        for (let i = 0; i < d; i++) dot += v[i] * out[p * d + i];
        for (let i = 0; i < d; i++) v[i] -= dot * out[p * d + i];
      }
      const norm = Math.hypot(...v);
      if (norm < 1e-6) continue;
      for (let i = 0; i < d; i++) out[j * d + i] = v[i] / norm;
      break;
    }
  }
  return out;
}

/**
 * Two interleaved spirals in the plane, sample i of class i mod 2: t = sqrt(u), u uniform in
 * [0, 1), radius t, angle 2π·turns·t + π·class, plus noise·N(0, I). Radii are at most 1.
 */
export function twoSpirals(options: SpiralOptions): BuiltinDataset {
  const n = positiveInteger("samples", options.samples);
  const noise = nonNegative("noise", options.noise ?? 0.05);
  const turns = options.turns ?? 1.5;
  if (!(Number.isFinite(turns) && turns > 0)) throw new InputError(`turns must be a positive number, got ${turns}`);
  const rng = new Rng(options.seed);
  const x = new Float32Array(n * 2);
  const labels = new Int32Array(n);
  for (let s = 0; s < n; s++) {
    const c = s % 2;
    const t = Math.sqrt(rng.uniform());
    const angle = 2 * Math.PI * turns * t + Math.PI * c;
    labels[s] = c;
    x[2 * s] = t * Math.cos(angle) + noise * rng.normal();
    x[2 * s + 1] = t * Math.sin(angle) + noise * rng.normal();
  }
  return {
    name: "spirals",
    data: { n, features: 2, x, labels },
    loss: "ce",
    outputs: 2,
    description: `two spirals: ${n} samples, ${turns} turns, noise ${noise}`,
  };
}

/**
 * Teacher-student regression: x ~ N(0, I_d); targets = teacher(x) + noise·N(0, 1) per output,
 * the teacher an MLP of the given widths with He-initialised weights (initParameters) drawn from
 * the seed. Meant for mse with a student of the same input and output widths.
 */
export function teacherStudent(options: TeacherOptions): BuiltinDataset {
  const n = positiveInteger("samples", options.samples);
  const widths = options.widths ?? [8, 32, 1];
  widths.forEach((w, i) => positiveInteger(`teacher width ${i}`, w));
  const noise = nonNegative("noise", options.noise ?? 0.1);
  const spec = mlpSpec(widths, { activation: options.activation });
  const theta = initParameters(spec, deriveSeed(options.seed, 1));
  const rng = new Rng(options.seed);
  const d = widths[0];
  const c = widths[widths.length - 1];
  const x = Float32Array.from({ length: n * d }, () => rng.normal());
  const y = mlpForward(spec, theta, x, n);
  const targets = Float32Array.from(y, (v) => v + noise * rng.normal());
  return {
    name: "teacher",
    data: { n, features: d, x, targets },
    loss: "mse",
    outputs: c,
    description: `teacher-student regression: ${n} samples, teacher [${widths.join(", ")}], label noise ${noise}`,
    teacher: { spec, theta },
  };
}

/** Outputs of an MLP in float64, row-major [n, outputs] (InputError for a net with convolutions: use ReferenceObjective.outputs). */
export function mlpForward(spec: ModelSpec, theta: Float64Array, x: ArrayLike<number>, n: number): Float64Array {
  requireMlp(spec, "mlpForward");
  const layers: LinearLayerSpec[] = spec.layers;
  const layout = parameterLayout(spec);
  const slope = negativeSlope(spec.activation);
  let input = Float64Array.from(x);
  layers.forEach((l, k) => {
    const { weightOffset, biasOffset } = layout.layers[k];
    const z = new Float64Array(n * l.outFeatures);
    for (let s = 0; s < n; s++) {
      for (let o = 0; o < l.outFeatures; o++) {
        let acc = biasOffset >= 0 ? theta[biasOffset + o] : 0;
        for (let i = 0; i < l.inFeatures; i++) acc += input[s * l.inFeatures + i] * theta[weightOffset + o * l.inFeatures + i];
        z[s * l.outFeatures + o] = k + 1 < spec.layers.length && acc <= 0 ? slope * acc : acc;
      }
    }
    input = z;
  });
  return input;
}

/** Options of builtinDataset: the union of the three datasets' options (those that do not apply are ignored). */
export interface BuiltinDatasetOptions {
  /** Sample count N. */
  samples: number;
  /** Seed of every random draw. */
  seed: number;
  /** Noise standard deviation (default 1 for mixture, 0.05 for spirals, 0.1 for teacher). */
  noise?: number;
  /** mixture: classes k (default 3). */
  classes?: number;
  /** mixture: input dimensions d (default 2). */
  dims?: number;
  /** mixture: distance between class means (default 3). */
  separation?: number;
  /** spirals: turns of each spiral (default 1.5). */
  turns?: number;
  /** teacher: widths [d, hidden..., outputs] (default [8, 32, 1]). */
  teacherWidths?: number[];
  /** teacher: hidden activation (default ReLU). */
  activation?: Activation;
}

/** One of the built-in datasets by name, with its options (those that do not apply are ignored). */
export function builtinDataset(name: string, o: BuiltinDatasetOptions): BuiltinDataset {
  switch (name) {
    case "mixture":
      return gaussianMixture({ samples: o.samples, classes: o.classes, dims: o.dims, separation: o.separation, noise: o.noise, seed: o.seed });
    case "spirals":
      return twoSpirals({ samples: o.samples, noise: o.noise, turns: o.turns, seed: o.seed });
    case "teacher":
      return teacherStudent({ samples: o.samples, widths: o.teacherWidths, noise: o.noise, activation: o.activation, seed: o.seed });
    case "mnist":
    case "fashion-mnist":
      throw new InputError(`dataset ${name} is read from its package: use loadImageDataset (src/io/imageDatasets.ts)`);
    default:
      throw new InputError(`unknown dataset '${name}': use one of ${BUILTIN_DATASETS.join(", ")}, mnist, fashion-mnist`);
  }
}
