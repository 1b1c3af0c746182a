/**
 * `flatness transform` end to end through runTransform (imported directly, so it runs under Node
 * with --cpu): each transform writes a model in the input's format with the same tensor names,
 * the function unchanged (checked here against the float64 reference on the file read back), the
 * promised curvature (checked on the dense Hessian of the file read back), and one JSON object
 * with --json; bad options fail with one clear error and write nothing.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { FileFormatError, InputError } from "../src/errors.ts";
import { writeNpy } from "../src/io/npy.ts";
import { type LoadedModel, readModel, readParameterVector, writeModel } from "../src/io/modelFile.ts";
import { parseSafetensors } from "../src/io/safetensors.ts";
import { parameterLayout } from "../src/model.ts";
import { symmetricEigen } from "../src/metrics/tridiagonal.ts";
import { runTransform, TRANSFORM_HELP } from "../src/cli/transform.ts";
import { alphaScale } from "../src/transforms/alphaScale.ts";
import { ConstructionError } from "../src/transforms/constructions.ts";
import { neuronScale, randomNeuronFactors } from "../src/transforms/neuronScale.ts";
import { makeCase } from "./support/numeric.ts";

const c = makeCase({ widths: [4, 6, 5, 3], batch: 30, loss: "ce", activation: { kind: "leaky_relu", slope: 0.1 }, seed: 12 });

async function run(args: string[]) {
  const stdout: string[] = [];
  const stderr: string[] = [];
  const code = await runTransform(args, (s) => stdout.push(s), (s) => stderr.push(s));
  return { code, stdout: stdout.join("\n"), stderr: stderr.join("\n") };
}

function relMax(a: Float64Array, b: Float64Array) {
  let d = 0;
  let s = 0;
  for (let i = 0; i < a.length; i++) {
    d = Math.max(d, Math.abs(a[i] - b[i]));
    s = Math.max(s, Math.abs(a[i]));
  }
  return d / s;
}

async function topEigenvalues(theta: Float64Array): Promise<number[]> {
  return Array.from(symmetricEigen(await c.reference.denseHessian(theta), theta.length).values).sort((a, b) => b - a);
}

describe("flatness transform", () => {
  let dir: string;
  let st: string;
  let js: string;
  let data: string[];
  const p = (name: string) => join(dir, name);
  const load = (path: string) => readModel(readFileSync(path), path, { activation: c.spec.activation });

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "flatness-transform-"));
    const names = parameterLayout(c.spec).views.map((v) => `net.${v.name}`);
    const loaded: LoadedModel = { model: { spec: c.spec, theta: c.theta }, format: "safetensors", tensorNames: names, metadata: { origin: "test" } };
    st = p("net.safetensors");
    js = p("net.json");
    writeFileSync(st, writeModel(loaded));
    writeFileSync(js, writeModel({ ...loaded, format: "json", tensorNames: parameterLayout(c.spec).views.map((v) => v.name) }));
    writeFileSync(p("x.npy"), writeNpy(c.data.x, [c.data.n, c.data.features]));
    writeFileSync(p("y.npy"), writeNpy(c.data.labels!, [c.data.n]));
    data = ["--data", p("x.npy"), "--labels", p("y.npy"), "--loss", "ce"];
  });

  it("--help for the command and every transform", async () => {
    const top = await run(["--help"]);
    expect(top.code).toBe(0);
    expect(top.stdout).toBe(TRANSFORM_HELP);
    for (const sub of ["alpha", "neuron", "sharpen", "sharpen-count", "flatten", "eps-construction"]) {
      const r = await run([sub, "--help"]);
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(new RegExp(`Usage:\\n  flatness transform ${sub} --model M`));
    }
  });

  it("alpha: safetensors stays safetensors with the same tensor names; theta' = T_alpha(theta); outputs unchanged", async () => {
    const r = await run(["alpha", "--model", st, "--alphas", "4,1/8,2", "--out", p("alpha.safetensors"), ...data, "--json"]);
    expect(r.code).toBe(0);
    const s = JSON.parse(r.stdout);
    expect(s.alphas).toEqual([4, 0.125, 2]);
    expect(s.functionCheck.relativeDifference).toBeLessThan(1e-6);
    expect(s.loss).toBeCloseTo(s.baseLoss, 5);
    const inNames = [...parseSafetensors(readFileSync(st), st).tensors.keys()].sort();
    const outFile = parseSafetensors(readFileSync(p("alpha.safetensors")), "out");
    expect([...outFile.tensors.keys()].sort()).toEqual(inNames);
    expect(outFile.metadata).toMatchObject({ origin: "test", activation: "leaky_relu" });
    const theta2 = load(p("alpha.safetensors")).model.theta;
    expect(relMax(Float64Array.from(Float32Array.from(alphaScale(c.spec, c.theta, [4, 0.125, 2]))), theta2)).toBe(0);
    expect(relMax(await c.reference.outputs(c.theta), await c.reference.outputs(theta2))).toBeLessThan(1e-6);
    // Without data: probe inputs, text output.
    const t = await run(["alpha", "--model", js, "--alphas", "0.5,2,1", "--out", p("alpha.json"), "--quiet"]);
    expect(t.stdout).toMatch(/T_alpha with alphas 0.5000, 2, 1\nmax output difference .* over 256 seeded Gaussian inputs \(the parameters as written\)\nwrote /);
    expect(load(p("alpha.json")).format).toBe("json");
  });

  it("neuron: --seed draws the documented factors; --factors exact; outputs unchanged", async () => {
    const r = await run(["neuron", "--model", js, "--layer", "1", "--seed", "3", "--out", p("neuron.json"), "--json"]);
    const s = JSON.parse(r.stdout);
    const factors = randomNeuronFactors(5, 3, 10);
    expect(s.factors).toEqual(factors);
    const theta2 = load(p("neuron.json")).model.theta;
    expect(relMax(neuronScale(c.spec, c.theta, 1, factors), theta2)).toBeLessThan(1e-15);
    expect(relMax(await c.reference.outputs(c.theta), await c.reference.outputs(theta2))).toBeLessThan(1e-13);
    const f = await run(["neuron", "--model", st, "--layer", "0", "--factors", "1,2,3,4,5,1/6", "--out", p("neuron.safetensors"), ...data, "--json"]);
    expect(JSON.parse(f.stdout).functionCheck.relativeDifference).toBeLessThan(1e-6);
  });

  it("sharpen --cpu: the written model's dense top eigenvalue is >= the target, outputs unchanged", async () => {
    const r = await run(["sharpen", "--model", st, ...data, "--min-top-eigenvalue", "1e4", "--out", p("sharp.safetensors"), "--cpu", "--json"]);
    const s = JSON.parse(r.stdout);
    expect(s.transform).toBe("sharpen");
    expect(s.topEigenvalue).toBeGreaterThanOrEqual(1e4);
    expect(s.alphas).toHaveLength(3);
    expect(s.writtenFunctionCheck.relativeDifference).toBeLessThan(1e-6);
    expect(r.stderr).toMatch(/\[sharpen\] \d+%/);
    const theta2 = load(p("sharp.safetensors")).model.theta;
    expect((await topEigenvalues(theta2))[0]).toBeGreaterThanOrEqual(1e4);
    expect(relMax(await c.reference.outputs(c.theta), await c.reference.outputs(theta2))).toBeLessThan(1e-6);
    const text = await run(["sharpen", "--model", js, ...data, "--min-top-eigenvalue", "100", "--out", p("sharp.json"), "--cpu", "--quiet"]);
    expect(text.stdout).toMatch(/^top Hessian eigenvalue .* -> .* \(target >= 100\)\n.*\nweight-block top eigenvalues .*\nalphas .*\nloss .*\nmax output difference/);
    expect(text.stderr).toBe("");
  });

  it("sharpen on WebGPU through bin/flatness.mjs: M = 1e6 reached, the written model's function unchanged", async () => {
    const root = join(dirname(fileURLToPath(import.meta.url)), "..");
    const r = spawnSync(process.execPath, [join(root, "bin/flatness.mjs"), "transform", "sharpen", "--model", st, ...data, "--min-top-eigenvalue", "1e6", "--out", p("sharp-gpu.safetensors"), "--json", "--quiet"], { encoding: "utf8", cwd: root });
    expect(r.status, r.stderr).toBe(0);
    const s = JSON.parse(r.stdout);
    expect(s.topEigenvalue).toBeGreaterThanOrEqual(1e6);
    const theta2 = load(p("sharp-gpu.safetensors")).model.theta;
    expect((await topEigenvalues(theta2))[0]).toBeGreaterThanOrEqual(0.999e6);
    expect(relMax(await c.reference.outputs(c.theta), await c.reference.outputs(theta2))).toBeLessThan(1e-5);
  });

  it("sharpen-count, flatten and eps-construction --cpu do what they report", async () => {
    const sc = JSON.parse((await run(["sharpen-count", "--model", js, ...data, "--threshold", "1000", "--out", p("count.json"), "--cpu", "--json", "--quiet"])).stdout);
    expect(sc.countAbove).toBeGreaterThanOrEqual(sc.guaranteedCount);
    expect(sc.guaranteedCount).toBeGreaterThan(0);
    expect((await topEigenvalues(load(p("count.json")).model.theta)).filter((x) => x > 1000).length).toBeGreaterThanOrEqual(sc.guaranteedCount);

    const fl = JSON.parse((await run(["flatten", "--model", js, ...data, "--refine", "4", "--out", p("flat.json"), "--cpu", "--json", "--quiet"])).stdout);
    expect(fl.topEigenvalue).toBeLessThanOrEqual(fl.originalTopEigenvalue);
    expect(fl.topEigenvalue).toBeGreaterThanOrEqual(fl.lowerBound);
    expect((await topEigenvalues(load(p("flat.json")).model.theta))[0]).toBeCloseTo(fl.topEigenvalue, 6);
    const vol = JSON.parse((await run(["flatten", "--model", js, ...data, "--measure", "volume", "--log-volume-gain", "3", "--out", p("vol.json"), "--cpu", "--json", "--quiet"])).stdout);
    expect(vol.logVolumeGain).toBeCloseTo(3, 9);

    const eps = JSON.parse((await run(["eps-construction", "--model", js, ...data, "--epsilon", "0.05", "--subspace-dim", "40", "--perturbation-out", p("delta.json"),
      "--out", p("eps.json"), "--cpu", "--json", "--quiet"])).stdout);
    const theta2 = load(p("eps.json")).model.theta;
    const delta = readParameterVector(readFileSync(p("delta.json")), "delta", load(p("eps.json")));
    expect(Math.hypot(...delta)).toBeLessThanOrEqual(0.05);
    expect(await c.reference.loss(theta2.map((x, i) => x + delta[i]))).toBeCloseTo(eps.constantLoss, 10);
    expect(eps.subspace.dim).toBe(40);
    expect(eps.perturbation).toBeUndefined(); // vectors are not printed
  });

  it("bad input: one clear error, nothing written", async () => {
    const out = p("never.safetensors");
    const cases: [string[], typeof InputError | typeof FileFormatError | typeof ConstructionError, RegExp][] = [
      [["alpha", "--model", st, "--alphas", "2,2,2", "--out", out], InputError, /--alphas 2,2,2: the alphas must multiply to 1/],
      [["alpha", "--model", st, "--alphas", "2,0.5", "--out", out], InputError, /--alphas has 2 entries but the model has 3 layers/],
      [["alpha", "--model", st, "--alphas", "2,x,0.5", "--out", out], InputError, /--alphas: entry 2 \('x'\) is not a number/],
      [["alpha", "--model", st, "--alphas", "1,1,1"], InputError, /--out is required/],
      [["alpha", "--model", st, "--alphas", "1,1,1", "--out", out, "--labels", p("y.npy")], InputError, /--labels needs --data/],
      [["neuron", "--model", st, "--layer", "2", "--seed", "1", "--out", out], InputError, /layer 2 is the linear output layer/],
      [["neuron", "--model", st, "--layer", "0", "--factors", "1,1,0,1,1,1", "--out", out], InputError, /factor c_2 of layer 0 must be positive and finite, got 0/],
      [["neuron", "--model", st, "--layer", "0", "--out", out], InputError, /--factors c1,...,c6 or --seed N is required/],
      [["sharpen", "--model", st, ...data, "--out", out, "--cpu"], InputError, /--min-top-eigenvalue is required/],
      [["sharpen", "--model", st, ...data, "--min-top-eigenvalue", "big", "--out", out, "--cpu"], InputError, /--min-top-eigenvalue must be a number, got 'big'/],
      [["sharpen", "--model", st, ...data, "--min-top-eigenvalue", "10", "--alphas", "1,1,1", "--out", out], InputError, /--alphas does not apply to 'transform sharpen'/],
      [["sharpen", "--model", p("missing.safetensors"), ...data, "--min-top-eigenvalue", "10", "--out", out], FileFormatError, /missing\.safetensors: cannot read: No such file/],
      [["flatten", "--model", st, ...data, "--max-top-eigenvalue", "1e-6", "--out", out, "--cpu"], ConstructionError, /no T_alpha\(theta\) has top eigenvalue <= 0.000001/],
      [["flatten", "--model", st, ...data, "--measure", "volume", "--out", out, "--cpu"], InputError, /--measure volume needs --log-volume-gain/],
      [["eps-construction", "--model", st, ...data, "--out", out, "--cpu"], InputError, /--epsilon is required/],
      [["rotate", "--model", st], InputError, /unknown transform 'rotate'/],
    ];
    for (const [args, type, message] of cases) {
      const attempt = run(args);
      await expect(attempt, args.join(" ")).rejects.toThrow(type);
      await expect(run(args), args.join(" ")).rejects.toThrow(message);
    }
    await expect(run(["alpha", "--model", st, "--bogus", "1"])).rejects.toThrow(/Unknown option '--bogus'/);
    expect(existsSync(out)).toBe(false);
  });
});
