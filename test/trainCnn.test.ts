/**
 * `flatness train` on convolutional nets, on the float64 CPU engine: --arch (text) and --arch-file
 * (JSON) on the built-in image datasets and on .npy files (--input-shape), He initialisation of
 * conv weights, and clear errors (exit 2 from the command line) for a bad architecture.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArchitecture } from "../src/architecture.ts";
import { deriveSeed, splitDataset } from "../src/datasets.ts";
import { FlatnessError } from "../src/errors.ts";
import { initParameters } from "../src/init.ts";
import { loadImageDataset } from "../src/io/imageDatasets.ts";
import { parseNpy } from "../src/io/npy.ts";
import { parameterLayout } from "../src/model.ts";
import { runTrain, SPLIT_STREAM } from "../src/cli/train.ts";
import { trainModel } from "../src/train/trainModel.ts";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const ARCH = "conv(4,3),relu,maxpool(2),flatten,linear(10)";

function safetensorsHeader(path: string): Record<string, { shape: number[] }> {
  const bytes = readFileSync(path);
  const size = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  return JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + size)));
}

describe("He initialisation of convolutions", () => {
  it("weights N(0, 2/fan_in) with fan_in = in/groups·kh·kw; biases N(0, 0.1²); MLPs as before", () => {
    const spec = parseArchitecture("conv(64,3,groups=2),relu,flatten,linear(3)", [4, 5, 5]);
    const theta = initParameters(spec, 1);
    const [w, b] = parameterLayout(spec).views;
    expect(w.shape).toEqual([64, 2, 3, 3]);
    const std = (v: { offset: number; size: number }) => Math.sqrt(theta.subarray(v.offset, v.offset + v.size).reduce((a, x) => a + x * x, 0) / v.size);
    expect(std(w) / Math.sqrt(2 / 18)).toBeGreaterThan(0.95);
    expect(std(w) / Math.sqrt(2 / 18)).toBeLessThan(1.05);
    expect(std(b)).toBeGreaterThan(0.05);
    expect(std(b)).toBeLessThan(0.15);
  });
});

describe("flatness train --arch (runTrain, --cpu)", () => {
  let dir: string;
  const p = (name: string) => join(dir, name);
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "flatness-train-cnn-"));
  });

  async function train(args: string[]) {
    const out: string[] = [];
    const err: string[] = [];
    const code = await runTrain(args, (s) => out.push(s), (s) => err.push(s));
    return { code, stdout: out.join("\n"), stderr: err.join("\n") };
  }

  it("a tiny CNN on 200 MNIST digits: the loss goes down, the run is the in-process trainModel's, the file has conv tensors", async () => {
    const r = await train(["--dataset", "mnist", "--samples", "200", "--arch", ARCH, "--epochs", "2", "--batch-size", "20",
      "--seed", "4", "--out", p("cnn.safetensors"), "--json", "--cpu"]);
    expect(r.code, r.stderr).toBe(0);
    const s = JSON.parse(r.stdout);
    expect(s).toMatchObject({ engine: "cpu", trainSamples: 160, testSamples: 40, loss: "ce", steps: 16, parameters: 4 * 9 + 4 + 10 * 4 * 13 * 13 + 10 });
    expect(s.finalTrainLoss).toBeLessThan(0.8 * s.initialTrainLoss);
    expect(s.finalTestAccuracy).toBeGreaterThan(0.3);
    expect(r.stderr).toMatch(/dataset: MNIST digits: 200 of 10000 28x28 images, class-balanced, seed 4/);
    expect(r.stderr).toContain(`model: 1x28x28 -> ${ARCH}, 6810 parameters; 160 training and 40 test samples`);
    const header = safetensorsHeader(p("cnn.safetensors"));
    expect(header["0.weight"].shape).toEqual([4, 1, 3, 3]);
    expect(header["4.weight"].shape).toEqual([10, 676]);
    const data = (await loadImageDataset("mnist", { samples: 200, seed: 4 })).data;
    const { train: tr, test } = splitDataset(data, 0.2, deriveSeed(4, SPLIT_STREAM));
    const ref = await trainModel({ spec: parseArchitecture(ARCH, [1, 28, 28]), data: tr, test, loss: "ce", optimizer: "adam", lr: 0.01, batchSize: 20, epochs: 2, seed: 4, backend: "cpu" });
    expect(s.finalTrainLoss).toBe(ref.finalTrainLoss);
    expect(s.initialTrainLoss).toBe(ref.initial.trainLoss);
  });

  it("--arch-file on fashion-mnist; --save-data then --data with --arch and --input-shape", async () => {
    writeFileSync(p("arch.json"), JSON.stringify({
      input: [1, 28, 28],
      modules: [{ type: "conv2d", outChannels: 2, kernel: 5, stride: 3 }, { type: "relu" }, { type: "avgpool2d", kernel: 2 }, { type: "flatten" }, { type: "linear", outFeatures: 10 }],
    }));
    const f = await train(["--dataset", "fashion-mnist", "--samples", "100", "--arch-file", p("arch.json"), "--epochs", "1", "--test-fraction", "0",
      "--out", p("f.safetensors"), "--json", "--cpu"]);
    expect(f.code, f.stderr).toBe(0);
    expect(JSON.parse(f.stdout)).toMatchObject({ trainSamples: 100, parameters: 2 * 25 + 2 + 10 * 2 * 4 * 4 + 10 });
    expect(f.stderr).toContain("model: 1x28x28 -> conv(2,5,stride=3),relu,avgpool(2),flatten,linear(10)");
    expect(f.stderr).toMatch(/Fashion-MNIST images: 100 of 70000/);

    const s = await train(["--dataset", "mnist", "--samples", "60", "--save-data", p("mnist"), "--quiet"]);
    expect(s.code).toBe(0);
    expect(parseNpy(readFileSync(p("mnist/x_train.npy")), "x").shape).toEqual([48, 784]);
    const d = await train(["--data", p("mnist/x_train.npy"), "--labels", p("mnist/y_train.npy"), "--loss", "ce", "--arch", ARCH, "--input-shape", "1,28,28",
      "--epochs", "1", "--test-fraction", "0", "--out", p("d.safetensors"), "--json", "--cpu", "--quiet"]);
    expect(d.code).toBe(0);
    expect(JSON.parse(d.stdout)).toMatchObject({ trainSamples: 48, parameters: 6810 });
  });

  it("bad architectures and options: one clear FlatnessError naming the option, nothing written", async () => {
    const out = p("never.safetensors");
    writeFileSync(p("notjson.json"), "{input:");
    writeFileSync(p("shape.json"), JSON.stringify({ modules: [] }));
    writeFileSync(p("badarch.json"), JSON.stringify({ input: [1, 28, 28], modules: [{ type: "linear", outFeatures: 10 }] }));
    const mnist = ["--dataset", "mnist", "--samples", "20", "--out", out, "--cpu"];
    const cases: [string[], RegExp][] = [
      [[...mnist, "--arch", "conv(4)"], /--arch on input shape \[1, 28, 28\]: architecture module 0 \(conv\(4\)\): conv takes \(out_channels, kernel\)/],
      [[...mnist, "--arch", "linear(10)"], /--arch on input shape \[1, 28, 28\]: .*a linear layer needs a flat input, got 1x28x28 \(add flatten\)/],
      [[...mnist, "--arch", "conv(4,3),relu,pool(2),flatten,linear(10)"], /unknown module pool/],
      [[...mnist, "--arch", "conv(4,3);linear(10)"], /cannot read the architecture/],
      [[...mnist, "--arch", "conv(4,3),relu,flatten,linear(7)"], /data has|label \d+ at sample \d+ is out of range \[0, 6\]/],
      [[...mnist, "--arch", ARCH, "--widths", "784,10"], /give one of --widths, --arch, --arch-file and --model, not --widths and --arch/],
      [[...mnist, "--arch", ARCH, "--activation", "leaky_relu"], /--activation applies to --widths: with --arch write relu or leaky_relu\(slope\)/],
      [[...mnist, "--arch", ARCH, "--input-shape", "1,28"], /--input-shape must be C,H,W \(an image shape, e\.g\. 1,28,28\) or D/],
      [[...mnist, "--widths", "784,10", "--input-shape", "1,28,28"], /--input-shape applies to --arch only/],
      [[...mnist, "--arch", ARCH, "--input-shape", "3,16,16"], /data has 784 features per sample but the model's first layer takes 768/],
      [[...mnist, "--arch-file", p("missing.json")], /missing\.json: cannot read: No such file/],
      [[...mnist, "--arch-file", p("notjson.json")], /notjson\.json: not JSON/],
      [[...mnist, "--arch-file", p("shape.json")], /shape\.json: an architecture file holds \{"input"/],
      [[...mnist, "--arch-file", p("badarch.json")], /badarch\.json: .*a linear layer needs a flat input/],
      [["--data", p("x.npy"), "--labels", p("y.npy"), "--loss", "ce", "--arch", ARCH, "--out", out], /--arch with --data needs --input-shape/],
      [["--dataset", "mnist", "--samples", "10001", "--out", out, "--cpu"], /mnist has 10000 images, so --samples 10001 is too many/],
      [["--out", out], /--dataset \(mixture, spirals, teacher, mnist, fashion-mnist\) or --data X --labels Y is required/],
    ];
    for (const [args, pattern] of cases) {
      const r = train(args);
      await expect(r, args.join(" ")).rejects.toThrow(pattern);
      await expect(r).rejects.toBeInstanceOf(FlatnessError);
    }
    expect(existsSync(out)).toBe(false);
  });

  it("--help documents --arch, --arch-file, --input-shape and the image datasets", async () => {
    const r = await train(["--help"]);
    for (const s of ["--arch A", "--arch-file F", "--input-shape S", "mnist", "fashion-mnist", "dataset-fashion-mnist"]) expect(r.stdout).toContain(s);
  });
});

describe("flatness train --arch (bin/flatness.mjs)", () => {
  it("a bad --arch exits 2 with one line naming the module", () => {
    const dir = mkdtempSync(join(tmpdir(), "flatness-train-cnn-cli-"));
    const r = spawnSync(process.execPath, [join(root, "bin/flatness.mjs"), "train", "--dataset", "mnist", "--samples", "20",
      "--arch", "conv(4,3),relu,maxpool(2),flatten,linear(10,bias=maybe)", "--out", join(dir, "x.safetensors"), "--cpu"], { encoding: "utf8", cwd: root });
    expect(r.status).toBe(2);
    expect(r.stderr.trim().split("\n").length).toBe(1);
    expect(r.stderr).toMatch(/flatness train: InputError: --arch on input shape \[1, 28, 28\]: architecture module 4 \(linear\(10,bias=maybe\)\): cannot read "maybe"/);
    expect(existsSync(join(dir, "x.safetensors"))).toBe(false);
  });
});

describe("loadImageSplit", () => {
  it("gives the split flatness train makes (same seed, samples, test fraction)", async () => {
    const { loadImageSplit } = await import("../src/io/imageDatasets.ts");
    const { dataset, split } = await loadImageSplit("mnist", { samples: 50, seed: 2, testFraction: 0.2 });
    const ref = splitDataset(dataset.data, 0.2, deriveSeed(2, SPLIT_STREAM));
    expect(split.testIndices).toEqual(ref.testIndices);
    expect(split.test.x).toEqual(ref.test.x);
    expect(split.test.imageShape).toEqual([1, 28, 28]);
  });
});
