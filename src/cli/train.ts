/**
 * `flatness train`: minibatch SGD (momentum) or Adam on WebGPU (or the float64 CPU reference),
 * from a built-in seeded dataset or .npy / .csv files, from fresh He-initialised weights or a
 * model file; writes the trained model (JSON or safetensors, by extension) atomically, optionally
 * the per-epoch history, and can write a built-in dataset as .npy files for `flatness measure`.
 *
 * The GPU modules are imported only when used, so `--cpu` also runs where WebGPU's globals do not
 * exist (Node, the tests).
 */
import { parseArgs } from "node:util";
import { type Dataset, validateDataset } from "../data.ts";
import { BUILTIN_DATASETS, builtinDataset, deriveSeed, splitDataset } from "../datasets.ts";
import { InputError } from "../errors.ts";
import { writeFileAtomic } from "../io/files.ts";
import { type LoadedModel, writeModel } from "../io/modelFile.ts";
import { writeNpy } from "../io/npy.ts";
import { type LossKind, mlpSpec, type ModelSpec, parameterLayout } from "../model.ts";
import { OPTIMIZER_KINDS, type OptimizerKind, resolveOptimizerConfig } from "../train/optimizers.ts";
import type { EpochRecord } from "../train/trainer.ts";
import { trainModel, type TrainModelResult } from "../train/trainModel.ts";
import { formatNumber } from "../format.ts";
import { BACKEND_ARGS, BACKEND_HELP, numberOption, withCliBackend } from "./engine.ts";
import { loadDataset, loadModel, parseActivation, parseLoss } from "./load.ts";

/** Stream of deriveSeed for the train/test split. */
export const SPLIT_STREAM = 3;

export const TRAIN_HELP = `flatness train: train a ReLU net with minibatch SGD (momentum) or Adam on WebGPU

Usage:
  flatness train --dataset spirals|mixture|teacher [--widths W] --out M [options]
  flatness train --data X --labels Y --loss L (--widths W | --model M) --out M [options]
  flatness train --dataset NAME --save-data DIR        (write the data as .npy, no training)

Data (one of):
  --dataset NAME       a built-in seeded dataset (its loss unless --loss says otherwise):
                         spirals   two interleaved 2-D spirals, 2 classes (ce)
                         mixture   Gaussian mixture, --classes K (3) in --dims D (2),
                                   means --separation S (3) apart, --noise E (1) (ce)
                         teacher   targets of a random ReLU teacher --teacher-widths (8,32,1)
                                   plus Gaussian label noise --noise E (0.1) (mse)
  --samples N          samples of the built-in dataset (default 1000)
  --turns T            spirals: turns of each arm (1.5);  --noise E  spirals: noise (0.05)
  --data X             .npy [N, features] or .csv;  --labels Y  .npy labels [N] or targets [N, C]
  --label-column C     CSV label column, by index or header name (default: last)
  --loss L             ce, mse or logistic (required with --data)
  --test-fraction F    held out by a seeded split, evaluated every epoch (default 0.2; 0: none)

Model (one of):
  --widths W           e.g. 2,32,32,2: fresh weights, He-normal (biases N(0, 0.1²)) from --seed;
                       default with --dataset: [features, 32, 32, outputs]
  --model M            initial weights from a .safetensors / .json model (its architecture)
  --activation A       relu (default) or leaky_relu;  --negative-slope S (0.01)

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
  if (values.widths && values.model) throw new InputError("give --widths or --model, not both");
  if (values.dataset && values.data) throw new InputError("give --dataset or --data, not both");
  if (!values.dataset && !values.data) throw new InputError(`--dataset (${BUILTIN_DATASETS.join(", ")}) or --data X --labels Y is required`);
  const activation = parseActivation(values.activation, values["negative-slope"]);

  // ---- data and model -----------------------------------------------------------------------
  let data: Dataset;
  let loss: LossKind;
  let loaded: LoadedModel | null = values.model ? await loadModel(values.model, activation) : null;
  let dataName: string;
  if (values.dataset) {
    const dataset = builtinDataset(values.dataset, {
      samples: integerOption("samples", values.samples, 1) ?? 1000,
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
    if (!loaded && (values.widths || values.out)) {
      const widths = values.widths ? widthsOption("widths", values.widths) : [data.features, 32, 32, loss === "logistic" ? 1 : dataset.outputs];
      loaded = freshModel(mlpSpec(widths, { activation }), outFormat ?? "safetensors");
    }
  } else {
    loss = parseLoss(values.loss);
    if (!loaded && !values.widths) throw new InputError("--widths (e.g. 2,32,32,2) or --model is required with --data");
    if (!loaded) loaded = freshModel(mlpSpec(widthsOption("widths", values.widths!), { activation }), outFormat ?? "safetensors");
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
  log(`model: [${[spec.layers[0].inFeatures, ...spec.layers.map((l) => l.outFeatures)].join(", ")}] ${spec.activation.kind}, ${parameters} parameters; ` +
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
