/**
 * The command line end to end (it runs under Deno's WebGPU): the demo, `hvp` on safetensors and
 * JSON models against the float64 reference, and clear errors with nothing written on bad input.
 */
import { describe, expect, it, beforeAll } from "vitest";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { writeNpy } from "../src/io/npy.ts";
import { type LoadedModel, readParameterVector, writeModel, writeParameterVector } from "../src/io/modelFile.ts";
import { parameterLayout } from "../src/model.ts";
import { Rng } from "../src/random.ts";
import { assertClose, makeCase, type TestCase } from "./support/numeric.ts";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");

function flatness(args: string[]) {
  const r = spawnSync(process.execPath, [join(root, "bin/flatness.mjs"), ...args], { encoding: "utf8", cwd: root });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function loadedFor(c: TestCase, format: "json" | "safetensors"): LoadedModel {
  return {
    model: { spec: c.spec, theta: c.theta },
    format,
    tensorNames: parameterLayout(c.spec).views.map((v) => v.name),
    metadata: {},
  };
}

describe("flatness command line", () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "flatness-cli-"));
  });

  it("demo passes its checks and prints the adapter, loss, gradient norm and vHv", () => {
    const r = flatness(["demo", "--json"]);
    expect(r.code, r.stderr).toBe(0);
    const result = JSON.parse(r.stdout);
    expect(result.checks.length).toBeGreaterThanOrEqual(5);
    expect(result.checks.every((c: { pass: boolean }) => c.pass)).toBe(true);
    expect(r.stderr).toMatch(/adapter: /);
    expect(result.gradientNorm).toBeGreaterThan(0);
  });

  for (const format of ["safetensors", "json"] as const) {
    for (const loss of ["ce", "mse", "logistic"] as const) {
      it(`hvp on a ${format} model (${loss}) matches the float64 reference, in the model's own tensor names`, async () => {
        const c = makeCase({ widths: [4, 7, 5, loss === "logistic" ? 1 : 3], batch: 20, loss, activation: { kind: "leaky_relu", slope: 0.1 }, seed: 3, kinkMargin: 1e-3 });
        const loaded = loadedFor(c, format);
        const ext = format === "json" ? "json" : "safetensors";
        const p = (name: string) => join(dir, `${loss}-${name}`);
        writeFileSync(p(`model.${ext}`), writeModel(loaded));
        writeFileSync(p("x.npy"), writeNpy(c.data.x, [c.data.n, c.data.features]));
        if (loss === "mse") writeFileSync(p("y.npy"), writeNpy(c.data.targets!, [c.data.n, 3]));
        else writeFileSync(p("y.npy"), writeNpy(c.data.labels!, [c.data.n]));
        const v = new Rng(9).normals(c.theta.length);
        writeFileSync(p(`v.${ext}`), writeParameterVector(loaded, v));
        const r = flatness(["hvp", "--model", p(`model.${ext}`), "--data", p("x.npy"), "--labels", p("y.npy"), "--loss", loss,
          "--vector", p(`v.${ext}`), "--out", p(`hv.${ext}`), "--grad-out", p(`g.${ext}`), "--activation", "leaky_relu", "--negative-slope", "0.1", "--json"]);
        expect(r.code, r.stderr).toBe(0);
        const summary = JSON.parse(r.stdout);
        const v32 = Float64Array.from(Float32Array.from(v));
        const refHv = c.reference.space.zeros();
        await c.reference.hvp(c.theta, v32, refHv);
        const refG = c.reference.space.zeros();
        const refLoss = await c.reference.gradient(c.theta, refG);
        expect(summary.loss).toBeCloseTo(refLoss, 5);
        expect(summary.gradientNorm).toBeCloseTo(Math.hypot(...refG), 4);
        expect(summary.vHv).toBeCloseTo(refHv.reduce((s, x, i) => s + x * v32[i], 0), 2);
        const hv = readParameterVector(readFileSync(p(`hv.${ext}`)), p(`hv.${ext}`), loaded);
        assertClose("Hv file", hv, refHv, 2e-4, 1e-7);
        const g = readParameterVector(readFileSync(p(`g.${ext}`)), p(`g.${ext}`), loaded);
        assertClose("gradient file", g, refG, 2e-4, 1e-7);
      });
    }
  }

  it("hvp --cpu uses the float64 reference engine", () => {
    const c = makeCase({ widths: [3, 4, 2], batch: 6, loss: "ce" });
    const loaded = loadedFor(c, "safetensors");
    writeFileSync(join(dir, "cpu-model.safetensors"), writeModel(loaded));
    writeFileSync(join(dir, "cpu-x.npy"), writeNpy(c.data.x, [6, 3]));
    writeFileSync(join(dir, "cpu-y.npy"), writeNpy(c.data.labels!, [6]));
    writeFileSync(join(dir, "cpu-v.safetensors"), writeParameterVector(loaded, new Float64Array(c.theta.length).fill(1)));
    const r = flatness(["hvp", "--cpu", "--model", join(dir, "cpu-model.safetensors"), "--data", join(dir, "cpu-x.npy"), "--labels", join(dir, "cpu-y.npy"),
      "--loss", "ce", "--vector", join(dir, "cpu-v.safetensors"), "--out", join(dir, "cpu-hv.safetensors"), "--json"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).not.toMatch(/adapter/);
    expect(Object.keys(JSON.parse(r.stdout)).sort()).toEqual(["gradientNorm", "loss", "vHv"]);
  });

  it("bad input: a clear one-line error naming the file and problem, exit 2, nothing written", () => {
    const c = makeCase({ widths: [3, 4, 2], batch: 6, loss: "ce" });
    const loaded = loadedFor(c, "safetensors");
    writeFileSync(join(dir, "bad-model.safetensors"), writeModel(loaded));
    writeFileSync(join(dir, "bad-x.npy"), writeNpy(c.data.x, [6, 3]));
    writeFileSync(join(dir, "bad-y.npy"), writeNpy(Int32Array.from([0, 1, 5, 0, 1, 0]), [6]));
    writeFileSync(join(dir, "good-y.npy"), writeNpy(Int32Array.from([0, 1, 1, 0, 1, 0]), [6]));
    writeFileSync(join(dir, "bad-v.safetensors"), writeParameterVector(loaded, new Float64Array(c.theta.length)));
    const base = ["hvp", "--model", join(dir, "bad-model.safetensors"), "--data", join(dir, "bad-x.npy"), "--loss", "ce", "--vector", join(dir, "bad-v.safetensors")];
    const out = join(dir, "never.safetensors");
    const cases: [string[], RegExp][] = [
      [[...base, "--labels", join(dir, "bad-y.npy"), "--out", out], /label 5 at sample 2 is out of range/],
      [[...base, "--labels", join(dir, "missing.npy"), "--out", out], /missing\.npy/],
      [[...base, "--labels", join(dir, "bad-x.npy"), "--out", out], /bad-x\.npy.*labels must have shape \[N\]|not an integer/],
      [[...base.slice(0, -2), "--vector", join(dir, "bad-x.npy"), "--labels", join(dir, "good-y.npy"), "--out", out], /bad-x\.npy/],
      [["hvp", "--model", join(dir, "bad-model.safetensors"), "--loss", "hinge"], /--loss hinge is not one of ce, mse, logistic/],
      [["hvp", "--bogus"], /Unknown option '--bogus'/],
    ];
    for (const [args, pattern] of cases) {
      const r = flatness(args);
      expect(r.code, `${args.join(" ")}\n${r.stderr}`).toBe(2);
      expect(r.stderr).toMatch(pattern);
      expect(r.stderr.trim().split("\n").length, r.stderr).toBeLessThanOrEqual(2);
    }
    expect(existsSync(out)).toBe(false);
  });

  it("prints help for each command", () => {
    for (const cmd of [["--help"], ["hvp", "--help"], ["bench", "--help"]]) {
      const r = flatness(cmd);
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/Usage/);
    }
  });
});
