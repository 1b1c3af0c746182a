/**
 * Training on the float64 CPU engine (the twin of the GPU training in test/gpu/trainCases.ts):
 * the optimizers against PyTorch's update rules in closed form, minibatch gradients, learning on
 * the built-in datasets, determinism by seed, and `flatness train` (runTrain with --cpu, and one
 * WebGPU run through the command line).
 */
import { beforeAll, describe, expect, it } from "vitest";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { subsetDataset } from "../src/data.ts";
import { deriveSeed, gaussianMixture, splitDataset, teacherStudent, twoSpirals } from "../src/datasets.ts";
import { FlatnessError } from "../src/errors.ts";
import { initParameters } from "../src/init.ts";
import { readModel } from "../src/io/modelFile.ts";
import { npyToFloat32, npyToLabels, parseNpy } from "../src/io/npy.ts";
import { mlpSpec, parameterLayout } from "../src/model.ts";
import { Rng } from "../src/random.ts";
import { ReferenceObjective } from "../src/reference/engine.ts";
import { runTrain, SPLIT_STREAM } from "../src/cli/train.ts";
import { cpuEngine, type TrainingEngine } from "../src/train/engines.ts";
import { accuracy, evaluateOutputs } from "../src/train/evaluate.ts";
import { adamStep, HostOptimizer, resolveOptimizerConfig, sgdMomentumStep } from "../src/train/optimizers.ts";
import { trainModel } from "../src/train/trainModel.ts";
import { assertClose } from "./support/numeric.ts";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");

describe("optimizers (float64 twins of the WGSL kernels)", () => {
  it("SGD with momentum follows torch.optim.SGD: v1 = g1 + wd θ0, v2 = μ v1 + g2 + wd θ1, θ -= lr v", () => {
    const theta = Float64Array.from([1, -2]);
    const opt = new HostOptimizer(2, { kind: "sgd", lr: 0.1, momentum: 0.9, weightDecay: 0.5 });
    const g1 = Float64Array.from([0.2, 0.4]);
    const g2 = Float64Array.from([-1, 3]);
    opt.step(theta, g1);
    const v1 = [0.2 + 0.5 * 1, 0.4 + 0.5 * -2];
    const t1 = [1 - 0.1 * v1[0], -2 - 0.1 * v1[1]];
    expect(Array.from(theta)).toEqual(t1.map((x, i) => Float64Array.from(t1)[i]));
    opt.step(theta, g2);
    const v2 = [0.9 * v1[0] - 1 + 0.5 * t1[0], 0.9 * v1[1] + 3 + 0.5 * t1[1]];
    assertClose("theta after 2 steps", theta, [t1[0] - 0.1 * v2[0], t1[1] - 0.1 * v2[1]], 1e-15);
    assertClose("velocity", opt.stateArrays()[0], v2, 1e-15);
  });

  it("Adam's first step moves each coordinate by lr·g/(|g| + eps); with L2 decay g includes wd θ; AdamW decays θ first", () => {
    const g = Float64Array.from([0.3, -2, 1e-3]);
    const theta0 = Float64Array.from([1, 2, -3]);
    const lr = 0.01;
    const eps = 1e-8;
    const adam = new HostOptimizer(3, { kind: "adam", lr, weightDecay: 0 });
    const t = theta0.slice();
    adam.step(t, g);
    assertClose("adam step 1", t, theta0.map((x, i) => x - (lr * g[i]) / (Math.abs(g[i]) + eps)), 1e-12);
    const l2 = new HostOptimizer(3, { kind: "adam", lr, weightDecay: 0.5 });
    const t2 = theta0.slice();
    l2.step(t2, g);
    const d = g.map((x, i) => x + 0.5 * theta0[i]);
    assertClose("adam + L2 step 1", t2, theta0.map((x, i) => x - (lr * d[i]) / (Math.abs(d[i]) + eps)), 1e-12);
    const w = new HostOptimizer(3, { kind: "adamw", lr, weightDecay: 0.5 });
    const t3 = theta0.slice();
    w.step(t3, g);
    assertClose("adamw step 1", t3, theta0.map((x, i) => x * (1 - lr * 0.5) - (lr * g[i]) / (Math.abs(g[i]) + eps)), 1e-12);
  });

  it("Adam's bias correction: with a constant gradient every step moves by about lr", () => {
    const opt = new HostOptimizer(1, { kind: "adam", lr: 0.1 });
    const theta = Float64Array.from([0]);
    for (let t = 0; t < 50; t++) opt.step(theta, Float64Array.from([2]));
    expect(theta[0]).toBeCloseTo(-5, 6);
  });

  it("the step functions take the kernels' argument order and agree with HostOptimizer", () => {
    const rng = new Rng(1);
    const [g, th, v] = [rng.normals(5), rng.normals(5), new Float64Array(5)];
    const th2 = th.slice();
    sgdMomentumStep(g, th, v, { lr: 0.1, momentum: 0.5, weightDecay: 0 });
    new HostOptimizer(5, { kind: "sgd", lr: 0.1, momentum: 0.5 }).step(th2, g);
    expect(th).toEqual(th2);
    const [m, s, th3] = [new Float64Array(5), new Float64Array(5), th.slice()];
    const c = resolveOptimizerConfig({ kind: "adam", lr: 0.1 });
    adamStep(g, th3, m, s, { ...c, decoupled: false, stepSize: 0.1 / 0.1, sqrtBias2: Math.sqrt(1 - 0.999), decayFactor: 1 });
    const th4 = th.slice();
    new HostOptimizer(5, { kind: "adam", lr: 0.1 }).step(th4, g);
    assertClose("adam", th3, th4, 1e-14);
  });

  it("bad settings are InputErrors naming the value", () => {
    expect(() => resolveOptimizerConfig({ kind: "rmsprop" as "sgd", lr: 1 })).toThrow(/optimizer rmsprop is not one of sgd, adam, adamw/);
    expect(() => resolveOptimizerConfig({ kind: "sgd", lr: 0 })).toThrow(/learning rate must be a positive number, got 0/);
    expect(() => resolveOptimizerConfig({ kind: "sgd", lr: 1, momentum: 1 })).toThrow(/momentum must be in \[0, 1\), got 1/);
    expect(() => resolveOptimizerConfig({ kind: "adam", lr: 1, beta2: -0.1 })).toThrow(/beta2 must be in \[0, 1\)/);
    expect(() => resolveOptimizerConfig({ kind: "adam", lr: 1, weightDecay: -1 })).toThrow(/weight decay must be a number >= 0/);
  });
});

describe("minibatches and evaluation", () => {
  it("ReferenceObjective.minibatchGradient is the gradient of the mean loss over those samples", async () => {
    for (const loss of ["ce", "mse", "logistic"] as const) {
      const spec = mlpSpec([3, 5, loss === "logistic" ? 1 : 2]);
      const data = loss === "mse" ? teacherStudent({ samples: 20, widths: [3, 4, 2], seed: 1 }).data : gaussianMixture({ samples: 20, classes: 2, dims: 3, seed: 1 }).data;
      const f = new ReferenceObjective(spec, data, loss);
      const theta = initParameters(spec, 2);
      const idx = [4, 19, 4, 0, 7];
      const g = new Float64Array(f.space.dim);
      const l = await f.minibatchGradient(theta, idx, g);
      const sub = new ReferenceObjective(spec, subsetDataset(data, idx), loss);
      const ref = new Float64Array(f.space.dim);
      expect(l).toBe(await sub.gradient(theta, ref));
      expect(g).toEqual(ref);
      const all = new Float64Array(f.space.dim);
      const full = new Float64Array(f.space.dim);
      await f.minibatchGradient(theta, [...Array(20).keys()], all);
      await f.gradient(theta, full);
      assertClose(`${loss}: all samples = full gradient`, all, full, 1e-14);
    }
  });

  it("evaluateOutputs: loss as the reference engine's, accuracy by argmax (first on ties) or z > 0, none for mse", async () => {
    expect(accuracy("ce", Float64Array.from([1, 1, 0, 2, 5, -1]), Int32Array.from([0, 1, 1]), 2)).toBeCloseTo(2 / 3);
    expect(accuracy("logistic", Float64Array.from([0.1, -0.1, 0]), Int32Array.from([1, 0, 1]), 1)).toBeCloseTo(2 / 3);
    const spec = mlpSpec([2, 4, 3]);
    const data = gaussianMixture({ samples: 30, seed: 2 }).data;
    const f = new ReferenceObjective(spec, data, "ce");
    const theta = initParameters(spec, 1);
    const e = evaluateOutputs("ce", await f.outputs(theta), data);
    expect(e.loss).toBeCloseTo(await f.loss(theta), 12);
    expect(e.accuracy).toBeGreaterThanOrEqual(0);
    const t = teacherStudent({ samples: 10, widths: [2, 3, 1], seed: 1 }).data;
    expect(evaluateOutputs("mse", new Float64Array(10), t).accuracy).toBeUndefined();
  });
});

describe("trainModel on the float64 CPU engine", () => {
  it("reaches > 95% test accuracy on a separated mixture (SGD with momentum and Adam)", async () => {
    const mix = gaussianMixture({ samples: 400, classes: 3, dims: 4, separation: 6, noise: 1, seed: 1 });
    const { train, test } = splitDataset(mix.data, 0.25, 2);
    for (const [optimizer, lr] of [["sgd", 0.05], ["adam", 0.01]] as const) {
      const r = await trainModel({ spec: mlpSpec([4, 16, 3]), data: train, test, loss: "ce", optimizer, lr, momentum: 0.9, batchSize: 32, epochs: 5, seed: 1, backend: "cpu" });
      expect(r.finalTestAccuracy, optimizer).toBeGreaterThan(0.95);
      expect(r.history.map((h) => h.epoch)).toEqual([1, 2, 3, 4, 5]);
      expect(r.steps).toBe(5 * Math.ceil(300 / 32));
      expect(r.finalTrainLoss).toBeLessThan(0.3 * r.initial.trainLoss);
    }
  });

  it("lowers the loss on two spirals and on teacher-student regression (mse: no accuracy)", async () => {
    const s = twoSpirals({ samples: 300, seed: 3 });
    const r = await trainModel({ spec: mlpSpec([2, 32, 32, 2]), data: s.data, loss: "ce", optimizer: "adam", lr: 0.01, batchSize: 32, epochs: 15, seed: 3, backend: "cpu" });
    expect(r.finalTrainLoss).toBeLessThan(0.6 * r.initial.trainLoss);
    expect(r.finalTrainAccuracy).toBeGreaterThan(0.75);
    const t = teacherStudent({ samples: 300, widths: [4, 16, 1], noise: 0.05, seed: 2 });
    const m = await trainModel({ spec: mlpSpec([4, 32, 1]), data: t.data, loss: "mse", optimizer: "adamw", lr: 0.01, weightDecay: 1e-4, batchSize: 16, epochs: 10, seed: 2, backend: "cpu" });
    expect(m.finalTrainLoss).toBeLessThan(0.2 * m.initial.trainLoss);
    expect(m.finalTrainAccuracy).toBeUndefined();
    expect(m.history[0].trainAccuracy).toBeUndefined();
  });

  it("is deterministic by seed, the seed sets the initial weights and the shuffles, and epochs 0 only evaluates", async () => {
    const s = twoSpirals({ samples: 100, seed: 1 });
    const spec = mlpSpec([2, 8, 2]);
    const run = (seed: number, theta?: Float64Array, epochs = 2) =>
      trainModel({ spec, data: s.data, loss: "ce", optimizer: "sgd", lr: 0.1, momentum: 0.9, batchSize: 10, epochs, seed, theta, backend: "cpu" });
    const a = await run(5);
    expect((await run(5)).theta).toEqual(a.theta);
    expect((await run(6)).theta).not.toEqual(a.theta);
    const theta0 = initParameters(spec, 5);
    // Same initial weights, another shuffle stream: another result.
    expect((await run(6, theta0)).theta).not.toEqual(a.theta);
    expect((await run(5, theta0)).theta).toEqual(a.theta);
    const none = await run(5, undefined, 0);
    expect(none.theta).toEqual(theta0);
    expect(none.history).toEqual([]);
    expect(none.finalTrainLoss).toBe(none.initial.trainLoss);
  });

  it("clamps the batch size to the data, accepts a custom engine, and reports divergence as an InputError", async () => {
    const s = twoSpirals({ samples: 12, seed: 1 });
    const spec = mlpSpec([2, 4, 2]);
    let made = 0;
    const base = cpuEngine();
    const engine: TrainingEngine<Float64Array> = { ...base, name: "mine", minibatchObjective: (...a) => (made++, base.minibatchObjective(...a)) };
    const r = await trainModel({ spec, data: s.data, loss: "ce", optimizer: "sgd", lr: 0.1, batchSize: 100, epochs: 3, seed: 1, backend: engine as TrainingEngine<unknown> });
    expect(r.batchSize).toBe(12);
    expect(r.steps).toBe(3);
    expect(r.engine).toBe("mine");
    expect(made).toBe(1);
    await expect(trainModel({ spec, data: s.data, loss: "ce", optimizer: "sgd", lr: 1e300, batchSize: 4, epochs: 3, seed: 1, backend: "cpu" }))
      .rejects.toThrow(/training diverged in epoch 1 \(theta has a non-finite value .*\); lower the learning rate/);
    await expect(trainModel({ spec, data: s.data, loss: "ce", optimizer: "sgd", lr: 0.1, batchSize: 0, epochs: 1, seed: 1, backend: "cpu" }))
      .rejects.toThrow(/batch size must be a positive integer, got 0/);
    await expect(trainModel({ spec: mlpSpec([3, 2]), data: s.data, loss: "ce", optimizer: "sgd", lr: 0.1, batchSize: 4, epochs: 1, seed: 1, backend: "cpu" }))
      .rejects.toThrow(/data has 2 features per sample but the model's first layer takes 3/);
  });
});

describe("flatness train (runTrain, --cpu)", () => {
  let dir: string;
  const p = (name: string) => join(dir, name);
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "flatness-train-"));
  });

  async function train(args: string[]) {
    const out: string[] = [];
    const err: string[] = [];
    const code = await runTrain(args, (s) => out.push(s), (s) => err.push(s));
    return { code, stdout: out.join("\n"), stderr: err.join("\n") };
  }

  it("trains on a built-in dataset and writes the model (safetensors, PyTorch names), the history and a JSON summary", async () => {
    const r = await train(["--dataset", "spirals", "--samples", "200", "--widths", "2,16,2", "--epochs", "4", "--batch-size", "16",
      "--optimizer", "sgd", "--lr", "0.1", "--seed", "3", "--out", p("spirals.safetensors"), "--history", p("h.csv"), "--json", "--cpu"]);
    expect(r.code).toBe(0);
    const summary = JSON.parse(r.stdout);
    expect(summary).toMatchObject({ engine: "cpu", trainSamples: 160, testSamples: 40, loss: "ce", optimizer: "sgd", lr: 0.1, batchSize: 16, epochs: 4, steps: 40, seed: 3 });
    expect(summary.finalTestAccuracy).toBeGreaterThan(0);
    expect(r.stderr).toMatch(/epoch 1\/4: train loss [\d.]+ acc [\d.]+ \| test loss [\d.]+ acc [\d.]+ \| \d+ ms/);
    expect(r.stderr).toMatch(/epoch 4\/4/);
    const bytes = readFileSync(p("spirals.safetensors"));
    const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true)))));
    expect(Object.keys(header).filter((k) => k !== "__metadata__").sort()).toEqual(["0.bias", "0.weight", "2.bias", "2.weight"]);
    expect(header["0.weight"]).toMatchObject({ dtype: "F32", shape: [16, 2] });
    expect(header.__metadata__).toMatchObject({ trained_by: "flatness train", optimizer: "sgd", seed: "3" });
    // The file holds exactly what trainModel computes from the same seed and split.
    const loaded = readModel(bytes, "spirals.safetensors");
    const { train: tr, test } = splitDataset(twoSpirals({ samples: 200, seed: 3 }).data, 0.2, deriveSeed(3, SPLIT_STREAM));
    const ref = await trainModel({ spec: mlpSpec([2, 16, 2]), data: tr, test, loss: "ce", optimizer: "sgd", lr: 0.1, momentum: 0.9, batchSize: 16, epochs: 4, seed: 3, backend: "cpu" });
    expect(Array.from(loaded.model.theta)).toEqual(Array.from(Float32Array.from(ref.theta)));
    expect(summary.finalTestAccuracy).toBe(ref.finalTestAccuracy);
    const csv = readFileSync(p("h.csv"), "utf8").trim().split("\n");
    expect(csv[0]).toBe("epoch,trainLoss,trainAccuracy,testLoss,testAccuracy,ms");
    expect(csv.length).toBe(5);
    expect(Number(csv[4].split(",")[1])).toBeCloseTo(ref.finalTrainLoss, 12);
  });

  it("--save-data writes .npy files that train again through --data/--labels, from --model initial weights, to JSON", async () => {
    const s = await train(["--dataset", "teacher", "--samples", "60", "--teacher-widths", "3,5,2", "--seed", "1", "--save-data", p("tdata"), "--quiet"]);
    expect(s.code).toBe(0);
    expect(s.stdout).toMatch(/wrote 6 files/);
    const x = parseNpy(readFileSync(p("tdata/x.npy")), "x.npy");
    const y = parseNpy(readFileSync(p("tdata/y.npy")), "y.npy");
    expect(x.shape).toEqual([60, 3]);
    expect(y.shape).toEqual([60, 2]);
    const t = teacherStudent({ samples: 60, widths: [3, 5, 2], seed: 1 }).data;
    expect(npyToFloat32(x, "x", "x")).toEqual(t.x);
    expect(npyToFloat32(y, "y", "y")).toEqual(t.targets);
    expect(parseNpy(readFileSync(p("tdata/x_train.npy")), "x").shape).toEqual([48, 3]);
    expect(parseNpy(readFileSync(p("tdata/y_test.npy")), "y").shape).toEqual([12, 2]);
    // First run: fresh weights; second: starts from the first's file.
    const a = await train(["--data", p("tdata/x_train.npy"), "--labels", p("tdata/y_train.npy"), "--loss", "mse", "--widths", "3,8,2",
      "--test-fraction", "0", "--epochs", "3", "--out", p("a.json"), "--json", "--cpu", "--quiet"]);
    expect(a.code).toBe(0);
    const sa = JSON.parse(a.stdout);
    expect(sa.testSamples).toBe(0);
    expect(sa.finalTrainAccuracy).toBeUndefined();
    const b = await train(["--data", p("tdata/x_train.npy"), "--labels", p("tdata/y_train.npy"), "--loss", "mse", "--model", p("a.json"),
      "--test-fraction", "0", "--epochs", "3", "--optimizer", "adamw", "--weight-decay", "0.01", "--out", p("b.safetensors"), "--history", p("b.json"), "--json", "--cpu", "--quiet"]);
    expect(b.code).toBe(0);
    const sb = JSON.parse(b.stdout);
    expect(sb.initialTrainLoss).toBeCloseTo(sa.finalTrainLoss, 5);
    expect(sb.finalTrainLoss).toBeLessThan(sb.initialTrainLoss);
    const history = JSON.parse(readFileSync(p("b.json"), "utf8"));
    expect(history.map((h: { epoch: number }) => h.epoch)).toEqual([1, 2, 3]);
    expect(readModel(readFileSync(p("b.safetensors")), "b").model.spec.layers.map((l) => l.outFeatures)).toEqual([8, 2]);
    const labels = await train(["--dataset", "mixture", "--samples", "30", "--classes", "4", "--save-data", p("mdata"), "--test-fraction", "0", "--quiet"]);
    expect(labels.code).toBe(0);
    const ym = parseNpy(readFileSync(p("mdata/y.npy")), "y");
    expect(ym.shape).toEqual([30]);
    expect(Math.max(...npyToLabels(ym, "y"))).toBe(3);
    expect(existsSync(p("mdata/x_train.npy"))).toBe(false);
  });

  it("the default widths follow the dataset, --loss logistic gives one output, leaky_relu is recorded", async () => {
    const r = await train(["--dataset", "spirals", "--samples", "40", "--loss", "logistic", "--activation", "leaky_relu", "--negative-slope", "0.2",
      "--epochs", "1", "--out", p("logit.json"), "--json", "--cpu", "--quiet"]);
    expect(r.code).toBe(0);
    const m = readModel(readFileSync(p("logit.json")), "logit.json");
    expect(m.model.spec.layers.map((l) => l.outFeatures)).toEqual([32, 32, 1]);
    expect(m.model.spec.activation).toEqual({ kind: "leaky_relu", slope: 0.2 });
    expect(JSON.parse(r.stdout).finalTrainAccuracy).toBeGreaterThanOrEqual(0);
    expect(parameterLayout(m.model.spec).dim).toBe(JSON.parse(r.stdout).parameters);
  });

  it("bad options: one clear FlatnessError (main prints it and exits 2), nothing written", async () => {
    const out = p("never.safetensors");
    const cases: [string[], RegExp][] = [
      [["--dataset", "spirals"], /--out is required/],
      [["--dataset", "moons", "--out", out], /unknown dataset 'moons'/],
      [["--out", out], /--dataset \(mixture, spirals, teacher, mnist, fashion-mnist\) or --data X --labels Y is required/],
      [["--dataset", "spirals", "--data", "x.npy", "--out", out], /give --dataset or --data, not both/],
      [["--dataset", "spirals", "--out", p("m.onnx")], /--out .*m\.onnx: the name must end in \.safetensors or \.json/],
      [["--dataset", "spirals", "--out", out, "--history", p("h.txt")], /--history .*h\.txt: the name must end in \.csv or \.json/],
      [["--dataset", "spirals", "--out", out, "--optimizer", "rmsprop"], /--optimizer rmsprop is not one of sgd, adam, adamw/],
      [["--dataset", "spirals", "--out", out, "--lr", "fast"], /--lr must be a number, got 'fast'/],
      [["--dataset", "spirals", "--out", out, "--lr=-1"], /learning rate must be a positive number, got -1/],
      [["--dataset", "spirals", "--out", out, "--batch-size", "2.5"], /--batch-size must be a whole number >= 1, got '2.5'/],
      [["--dataset", "spirals", "--out", out, "--epochs=-1"], /--epochs must be a whole number >= 0/],
      [["--dataset", "spirals", "--out", out, "--test-fraction", "1"], /--test-fraction must be in \[0, 1\), got 1/],
      [["--dataset", "spirals", "--out", out, "--optimizer", "adam", "--momentum", "0.9"], /--momentum applies to --optimizer sgd, not adam/],
      [["--dataset", "spirals", "--out", out, "--widths", "2,x,2"], /--widths must be at least two positive integers/],
      [["--dataset", "spirals", "--out", out, "--widths", "3,8,2", "--cpu"], /data has 2 features per sample but the model's first layer takes 3/],
      [["--dataset", "teacher", "--out", out, "--loss", "ce", "--cpu"], /loss ce needs integer labels/],
      [["--data", p("missing.npy"), "--labels", p("missing.npy"), "--loss", "ce", "--widths", "2,2", "--out", out], /missing\.npy/],
      [["--data", p("tdata/x.npy"), "--labels", p("tdata/y.npy"), "--loss", "ce", "--out", out], /--widths \(e\.g\. 2,32,32,2\) or --model is required/],
      [["--dataset", "spirals", "--samples", "1", "--out", out, "--cpu"], /leaves 0 test and 1 training samples/],
      [["--dataset", "spirals", "--out", out, "stray"], /unexpected argument 'stray'/],
    ];
    for (const [args, pattern] of cases) {
      const r = train(args);
      await expect(r, args.join(" ")).rejects.toThrow(pattern);
      await expect(r).rejects.toBeInstanceOf(FlatnessError);
    }
    await expect(train(["--dataset", "spirals", "--out", out, "--bogus"])).rejects.toThrow(/Unknown option '--bogus'/);
    expect(existsSync(out)).toBe(false);
  });

  it("--help documents every option with examples", async () => {
    const r = await train(["--help"]);
    expect(r.code).toBe(0);
    for (const option of ["--dataset", "--data", "--labels", "--loss", "--widths", "--model", "--optimizer", "--lr", "--momentum", "--batch-size",
      "--epochs", "--weight-decay", "--test-fraction", "--seed", "--activation", "--out", "--history", "--save-data", "--json", "--cpu"]) {
      expect(r.stdout).toContain(option);
    }
    expect(r.stdout).toMatch(/Examples:/);
  });
});


describe("flatness train on WebGPU (bin/flatness.mjs)", () => {
  it("trains spirals on the GPU, matching the float64 run to 1e-3, and exits 2 with one line on bad input", () => {
    const dir = mkdtempSync(join(tmpdir(), "flatness-train-gpu-"));
    const run = (args: string[]) => spawnSync(process.execPath, [join(root, "bin/flatness.mjs"), "train", ...args], { encoding: "utf8", cwd: root });
    const common = ["--dataset", "spirals", "--samples", "300", "--widths", "2,16,16,2", "--epochs", "5", "--seed", "2", "--json"];
    const gpu = run([...common, "--backend", "webgpu", "--out", join(dir, "gpu.safetensors")]);
    expect(gpu.status, gpu.stderr).toBe(0);
    expect(gpu.stderr).toMatch(/adapter: /);
    expect(gpu.stderr).toMatch(/epoch 5\/5/);
    const g = JSON.parse(gpu.stdout);
    expect(g.engine).toBe("webgpu");
    const cpu = run([...common, "--cpu", "--out", join(dir, "cpu.safetensors")]);
    expect(cpu.status, cpu.stderr).toBe(0);
    const c = JSON.parse(cpu.stdout);
    expect(Math.abs(g.finalTrainLoss - c.finalTrainLoss)).toBeLessThan(1e-3 * c.finalTrainLoss);
    const bad = run(["--dataset", "spirals", "--out", join(dir, "x.safetensors"), "--optimizer", "lbfgs"]);
    expect(bad.status).toBe(2);
    expect(bad.stderr.trim().split("\n").length).toBe(1);
    expect(bad.stderr).toMatch(/--optimizer lbfgs is not one of sgd, adam, adamw/);
    expect(existsSync(join(dir, "x.safetensors"))).toBe(false);
  });
});
