/**
 * The commands that read a model and data, on convolutional nets: a bare PyTorch state dict of a
 * CNN with its architecture beside it (--architecture), and the built-in digits (--dataset) split
 * exactly as `flatness train --dataset` splits them; clear errors (exit 2) for wrong combinations.
 */
import { describe, expect, it } from "vitest";
import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { architectureOf, parseArchitecture } from "../src/architecture.ts";
import { initParameters } from "../src/init.ts";
import { loadImageSplit } from "../src/io/imageDatasets.ts";
import { writeSafetensors } from "../src/io/safetensors.ts";
import { parameterLayout } from "../src/model.ts";
import { ReferenceObjective } from "../src/reference/engine.ts";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const ARCH = "conv(2,3),relu,maxpool(2),flatten,linear(10)";

function flatness(args: string[]) {
  return spawnSync(process.execPath, [join(root, "bin/flatness.mjs"), ...args], { encoding: "utf8", cwd: root });
}

/** A bare state dict (no metadata, as torch's save_file(model.state_dict()) writes) and its architecture JSON. */
function bareCnn(dir: string) {
  const spec = parseArchitecture(ARCH, [1, 28, 28]);
  const theta = initParameters(spec, 3);
  const tensors = parameterLayout(spec).views.map((v) => ({ name: v.name, shape: v.shape, data: Float32Array.from(theta.subarray(v.offset, v.offset + v.size)) }));
  writeFileSync(join(dir, "cnn.safetensors"), writeSafetensors(tensors));
  writeFileSync(join(dir, "cnn.json"), JSON.stringify(architectureOf(spec)));
  return { spec, theta: Float64Array.from(Float32Array.from(theta)) };
}

describe("measure on a CNN state dict with --architecture and --dataset mnist", () => {
  it("the loss printed equals the float64 loss on train's split of the same digits", async () => {
    const dir = mkdtempSync(join(tmpdir(), "flatness-cli-cnn-"));
    const { spec, theta } = bareCnn(dir);
    const r = flatness(["measure", "--model", join(dir, "cnn.safetensors"), "--architecture", join(dir, "cnn.json"), "--dataset", "mnist",
      "--dataset-samples", "40", "--dataset-seed", "5", "--split", "test", "--loss", "ce", "--metrics", "path-norm", "--backend", "cpu", "--json"]);
    expect(r.status, r.stderr).toBe(0);
    const json = JSON.parse(r.stdout);
    const { split } = await loadImageSplit("mnist", { samples: 40, seed: 5 });
    const expected = await new ReferenceObjective(spec, split.test, "ce").loss(theta);
    expect(json.loss).toBeCloseTo(expected, 12);
    expect(json.samples ?? split.test.n).toBe(split.test.n);
    // --test-fraction 0, as train's: every one of the 40 digits is the training part.
    const all = flatness(["measure", "--model", join(dir, "cnn.safetensors"), "--architecture", join(dir, "cnn.json"), "--dataset", "mnist",
      "--dataset-samples", "40", "--dataset-seed", "5", "--test-fraction", "0", "--loss", "ce", "--metrics", "path-norm", "--backend", "cpu", "--json"]);
    expect(all.status, all.stderr).toBe(0);
    const { dataset } = await loadImageSplit("mnist", { samples: 40, seed: 5 });
    expect(JSON.parse(all.stdout).loss).toBeCloseTo(await new ReferenceObjective(spec, dataset.data, "ce").loss(theta), 12);
  }, 60_000);

  it("without --architecture the bare state dict is refused with a pointer to the docs; wrong combinations exit 2 with one clear line", () => {
    const dir = mkdtempSync(join(tmpdir(), "flatness-cli-cnn-"));
    bareCnn(dir);
    const model = join(dir, "cnn.safetensors");
    const cases: [string[], RegExp][] = [
      [["measure", "--model", model, "--dataset", "mnist", "--loss", "ce"], /architecture/],
      [["measure", "--model", model, "--architecture", join(dir, "cnn.json"), "--dataset", "mnist", "--data", "x.npy", "--loss", "ce"], /--dataset and --data exclude each other/],
      [["measure", "--model", model, "--architecture", join(dir, "cnn.json"), "--dataset", "mnist", "--split", "validation", "--loss", "ce"], /--split must be train or test/],
      [["measure", "--model", model, "--architecture", join(dir, "cnn.json"), "--dataset", "mnist", "--loss", "mse"], /use --loss ce/],
      [["measure", "--model", model, "--architecture", join(dir, "cnn.json"), "--dataset", "digits", "--loss", "ce"], /--dataset digits: use mnist or fashion-mnist/],
      [["audit", "--model", model, "--architecture", join(dir, "missing.json"), "--dataset", "mnist", "--loss", "ce"], /missing\.json/],
      [["measure", "--model", model, "--architecture", join(dir, "cnn.json"), "--dataset", "mnist", "--test-fraction", "0", "--split", "test", "--loss", "ce"], /--split test needs a test part/],
      [["measure", "--model", model, "--architecture", join(dir, "cnn.json"), "--data", "x.npy", "--labels", "y.npy", "--test-fraction", "0.3", "--loss", "ce"], /--test-fraction goes with --dataset/],
    ];
    for (const [args, message] of cases) {
      const r = flatness(args);
      expect(r.status, `${args.join(" ")}: ${r.stderr}`).toBe(2);
      expect(r.stderr).toMatch(message);
    }
  }, 60_000);
});
