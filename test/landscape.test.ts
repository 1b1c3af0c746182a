/**
 * Loss landscapes on the float64 reference: the directions' defining properties (filter
 * normalization's row norms, the T_alpha tangent's zero slope and constant orbit, eigenvectors of
 * the dense Hessian), grid values equal to ReferenceObjective.loss at the same points, the CSV and
 * SVG outputs, and `flatness landscape --cpu` end to end through runLandscape (imported directly),
 * with one-line errors and nothing written on bad input.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LANDSCAPE_HELP, runLandscape } from "../src/cli/landscape.ts";
import { InputError } from "../src/errors.ts";
import { writeModel } from "../src/io/modelFile.ts";
import { writeNpy } from "../src/io/npy.ts";
import { SequentialBatchLoss } from "../src/landscape/batchLoss.ts";
import { alphaOrbit, alphaOrbitPoint, eigenDirections, filterDirection, filterNormalize, norm, randomDirection } from "../src/landscape/directions.ts";
import { computeLandscape } from "../src/landscape/landscape.ts";
import { contourSegments, contourSvg, lineSvg } from "../src/landscape/plot.ts";
import { axisValues, lossSlice, sliceCsv } from "../src/landscape/slice.ts";
import { symmetricEigen } from "../src/metrics/tridiagonal.ts";
import { type Activation, LOSS_KINDS, parameterLayout } from "../src/model.ts";
import { alphaScale } from "../src/transforms/alphaScale.ts";
import { dot, makeCase, type TestCase } from "./support/numeric.ts";

const combo = (theta: Float64Array, terms: [number, Float64Array][]) => theta.map((t, i) => terms.reduce((s, [c, d]) => s + c * d[i], t));

describe("landscape directions", () => {
  const c = makeCase({ widths: [4, 6, 5, 3], batch: 25, loss: "ce", seed: 3, kinkMargin: 1e-3 });
  const layout = parameterLayout(c.spec);

  it("filter normalization: every weight row of d has theta's row norm; biases zero (ignore) or |theta_i| (include)", () => {
    for (const bias of ["ignore", "include"] as const) {
      const d = filterDirection(c.spec, c.theta, 7, bias);
      for (const v of layout.views) {
        if (v.role === "weight") {
          const [rows, cols] = v.shape;
          for (let r = 0; r < rows; r++) {
            const row = (x: Float64Array) => x.subarray(v.offset + r * cols, v.offset + (r + 1) * cols);
            expect(norm(row(d))).toBeCloseTo(norm(row(c.theta)), 12);
          }
        } else {
          for (let i = 0; i < v.size; i++) {
            expect(Math.abs(d[v.offset + i])).toBeCloseTo(bias === "ignore" ? 0 : Math.abs(c.theta[v.offset + i]), 12);
          }
        }
      }
    }
    // Seeded: the same seed gives the same direction; the raw direction's biases follow the policy.
    expect(filterDirection(c.spec, c.theta, 7)).toEqual(filterDirection(c.spec, c.theta, 7));
    const raw = randomDirection(c.spec, 7);
    expect(layout.views.filter((v) => v.role === "bias").every((v) => raw.subarray(v.offset, v.offset + v.size).every((x) => x === 0))).toBe(true);
    // Scale invariance (what filter normalization is for): scaling theta's rows scales d's rows alike.
    const scaled = c.theta.map((t) => 3 * t);
    const d1 = filterNormalize(c.spec, c.theta, raw);
    const d3 = filterNormalize(c.spec, scaled, raw);
    d1.forEach((x, i) => expect(d3[i]).toBeCloseTo(3 * x, 12));
  });

  for (const activation of [{ kind: "relu" }, { kind: "leaky_relu", slope: 0.1 }] as Activation[]) {
    for (const [up, down] of [[0, 2], [2, 0], [1, 2]]) {
      it(`T_alpha (${activation.kind}, layer ${up} up, ${down} down): the loss is constant along the orbit, the tangent has zero slope and bends at second order`, async () => {
        const t = makeCase({ widths: [4, 6, 5, 3], batch: 25, loss: "mse", seed: 9, activation, kinkMargin: 1e-3 });
        const ref = t.reference;
        const orbit = alphaOrbit(t.spec, t.theta, up, down);
        const L0 = await ref.loss(t.theta);
        for (const s of [-1, -0.3, 0.5, 2]) {
          const p = alphaOrbitPoint(orbit, t.theta, s);
          // The orbit is T_alpha with alpha_up = e^s, alpha_down = e^-s (Dinh et al. Definition 5, Appendix B).
          const alphas = [1, 1, 1];
          alphas[up] = Math.exp(s);
          alphas[down] = Math.exp(-s);
          alphaScale(t.spec, t.theta, alphas).forEach((v, i) => expect(p[i]).toBeCloseTo(v, 12));
          // The same point as the batched form theta + (e^s - 1) u+ + (e^-s - 1) u-.
          combo(t.theta, [[Math.expm1(s), orbit.plus], [Math.expm1(-s), orbit.minus]]).forEach((v, i) => expect(v).toBeCloseTo(p[i], 12));
          expect(Math.abs((await ref.loss(p)) - L0)).toBeLessThan(1e-12 * Math.max(1, L0));
        }
        // First order: g . d = 0.
        const g = ref.space.zeros();
        await ref.gradient(t.theta, g);
        const d = orbit.tangent;
        expect(Math.abs(dot(g, d))).toBeLessThan(1e-12 * norm(g) * norm(d));
        // Second order: (L(theta + h d) + L(theta - h d) - 2 L) / h^2 -> d^T H d, and the line leaves L.
        const hd = ref.space.zeros();
        await ref.hvp(t.theta, d, hd);
        const h = 1e-3;
        const second = ((await ref.loss(combo(t.theta, [[h, d]]))) + (await ref.loss(combo(t.theta, [[-h, d]]))) - 2 * L0) / (h * h);
        expect(second).toBeCloseTo(dot(d, hd), 3);
        expect(Math.abs(dot(d, hd))).toBeGreaterThan(1e-6);
      });
    }
  }

  it("T_alpha needs two layers and two different ones", () => {
    const one = makeCase({ widths: [3, 2], batch: 4, loss: "ce" });
    expect(() => alphaOrbit(one.spec, one.theta)).toThrow(/at least two layers/);
    expect(() => alphaOrbit(c.spec, c.theta, 1, 1)).toThrow(/two different layers/);
    expect(() => alphaOrbit(c.spec, c.theta, 0, 5)).toThrow(/one of 0\.\.2/);
  });

  it("eigen directions are unit eigenvectors of the Hessian for its top eigenvalues", async () => {
    const t = makeCase({ widths: [3, 5, 3], batch: 20, loss: "ce", seed: 2, kinkMargin: 1e-3 });
    const n = t.theta.length;
    const dense = await t.reference.denseHessian(t.theta);
    const exact = Array.from(symmetricEigen(dense, n).values).sort((a, b) => b - a);
    const e = await eigenDirections(t.reference, t.theta, 2, { seed: 1, tol: 1e-10, maxSteps: n });
    expect(e.eigenvalues[0]).toBeCloseTo(exact[0], 8);
    expect(e.eigenvalues[1]).toBeCloseTo(exact[1], 8);
    for (const [i, v] of e.vectors.entries()) {
      expect(norm(v)).toBeCloseTo(1, 10);
      const hv = t.reference.space.zeros();
      await t.reference.hvp(t.theta, v, hv);
      expect(norm(combo(hv, [[-e.eigenvalues[i], v]]))).toBeLessThan(1e-7 * Math.abs(e.eigenvalues[i]));
    }
  });
});

describe("landscape grids on the float64 reference", () => {
  for (const loss of LOSS_KINDS) {
    for (const bias of [true, false]) {
      it(`grid values equal ReferenceObjective.loss at theta + a d1 + b d2 (${loss}, bias ${bias})`, async () => {
        const t = makeCase({ widths: [3, 6, loss === "logistic" ? 1 : 3], batch: 15, loss, bias, seed: 4, activation: { kind: "leaky_relu", slope: 0.05 } });
        const d1 = filterDirection(t.spec, t.theta, 1, "include");
        const d2 = randomDirection(t.spec, 2, "include");
        const axes = [{ from: -1, to: 0.5, steps: 4 }, { from: -0.2, to: 0.2, steps: 3 }];
        const slice = await lossSlice(new SequentialBatchLoss(t.reference), t.theta, [d1, d2], axes);
        const a = axisValues(axes[0]);
        const b = axisValues(axes[1]);
        expect(slice.values.length).toBe(12);
        for (const [j, bj] of b.entries()) {
          for (const [i, ai] of a.entries()) {
            expect(slice.values[j * a.length + i]).toBeCloseTo(await t.reference.loss(combo(t.theta, [[ai, d1], [bj, d2]])), 12);
          }
        }
        expect(slice.center).toBe(await t.reference.loss(t.theta));
        const csv = sliceCsv(slice).trim().split("\n");
        expect(csv[0]).toBe("a,b,loss");
        expect(csv.length).toBe(13);
        expect(csv[1].split(",").map(Number)).toEqual([a[0], b[0], slice.values[0]]);
      });
    }
  }

  it("axes include both ends; computeLandscape reports extremes, norms and the orbit deviation", async () => {
    expect(axisValues({ from: -1, to: 1, steps: 5 })).toEqual([-1, -0.5, 0, 0.5, 1]);
    const t = makeCase({ widths: [3, 5, 4, 2], batch: 12, loss: "ce", seed: 6 });
    const r = await computeLandscape(new SequentialBatchLoss(t.reference), t.spec, t.theta, { directions: "alpha", dims: 1, axes: [{ from: -1, to: 1, steps: 5 }] });
    expect(r.orbitValues!.length).toBe(5);
    expect(r.orbit!.orbitMaxDeviation!).toBeLessThan(1e-12);
    expect(r.orbit!.lineMaxDeviation).toBeGreaterThan(1e-6);
    expect(r.min.loss).toBe(Math.min(...r.values));
    expect(sliceCsv(r).split("\n")[0]).toBe("a,b,loss,orbit_loss");
    const r2 = await computeLandscape(new SequentialBatchLoss(t.reference), t.spec, t.theta, { directions: "alpha", dims: 2, axes: [{ from: -1, to: 1, steps: 3 }, { from: -1, to: 1, steps: 3 }] });
    expect(r2.directionInfo.map((d) => d.kind)).toEqual(["alpha", "filter"]);
  });
});

describe("landscape plots", () => {
  it("contour segments lie on the level set (a cone, linear interpolation)", () => {
    const nx = 9;
    const ny = 7;
    const f = (i: number, j: number) => Math.hypot(i - 4, j - 3);
    const values = Array.from({ length: nx * ny }, (_, k) => f(k % nx, Math.floor(k / nx)));
    const segs = contourSegments(values, nx, ny, 2.2);
    expect(segs.length).toBeGreaterThan(8);
    for (const [x1, y1, x2, y2] of segs) {
      for (const [x, y] of [[x1, y1], [x2, y2]]) expect(Math.abs(f(x, y) - 2.2)).toBeLessThan(0.25);
    }
  });

  it("line and contour SVGs are well-formed and self-contained", async () => {
    const t = makeCase({ widths: [3, 4, 2], batch: 8, loss: "ce", seed: 1 });
    const d = filterDirection(t.spec, t.theta, 0);
    const one = await lossSlice(new SequentialBatchLoss(t.reference), t.theta, [d], [{ from: -1, to: 1, steps: 7 }]);
    const two = await lossSlice(new SequentialBatchLoss(t.reference), t.theta, [d, randomDirection(t.spec, 3)], [{ from: -1, to: 1, steps: 6 }, { from: -1, to: 1, steps: 5 }]);
    for (const svg of [lineSvg(one, { title: "t <1-D> & co", x: "a" }), contourSvg(two, { title: "2-D", x: "a", y: "b" })]) {
      expect(svg.startsWith("<svg xmlns=\"http://www.w3.org/2000/svg\"")).toBe(true);
      expect(svg.trim().endsWith("</svg>")).toBe(true);
      expect(svg).not.toMatch(/NaN|undefined|href=/);
      expect((svg.match(/</g) ?? []).length).toBe((svg.match(/>/g) ?? []).length);
    }
    expect(lineSvg(one, { title: "t <1-D> & co", x: "a" })).toContain("t &lt;1-D&gt; &amp; co");
    expect((contourSvg(two, { title: "2-D", x: "a", y: "b" }).match(/<rect /g) ?? []).length).toBeGreaterThanOrEqual(30);
  });
});

describe("flatness landscape --cpu (runLandscape)", () => {
  let dir: string;
  let c: TestCase;
  let base: string[];
  const run = async (args: string[]) => {
    const out: string[] = [];
    const err: string[] = [];
    let code: number;
    let error: unknown;
    try {
      code = await runLandscape(args, (s) => out.push(s), (s) => err.push(s));
    } catch (e) {
      error = e;
      code = 2;
    }
    return { code, out: out.join("\n"), err: err.join("\n"), error };
  };

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "flatness-landscape-"));
    c = makeCase({ widths: [4, 7, 5, 3], batch: 30, loss: "ce", seed: 12, kinkMargin: 1e-3 });
    writeFileSync(join(dir, "m.safetensors"), writeModel({ model: { spec: c.spec, theta: c.theta }, format: "safetensors", tensorNames: parameterLayout(c.spec).views.map((v) => v.name), metadata: {} }));
    writeFileSync(join(dir, "x.npy"), writeNpy(c.data.x, [c.data.n, 4]));
    writeFileSync(join(dir, "y.npy"), writeNpy(c.data.labels!, [c.data.n]));
    base = ["--cpu", "--quiet", "--model", join(dir, "m.safetensors"), "--data", join(dir, "x.npy"), "--labels", join(dir, "y.npy"), "--loss", "ce"];
  });

  it("--help", async () => {
    const r = await run(["--help"]);
    expect(r.code).toBe(0);
    expect(r.out).toBe(LANDSCAPE_HELP);
    expect(r.out).toMatch(/Usage:[\s\S]*--directions[\s\S]*Examples:/);
  });

  it("2-D filter slice: CSV values equal ReferenceObjective.loss on the seeded directions; SVG heat map written", async () => {
    const csv = join(dir, "f.csv");
    const svg = join(dir, "f.svg");
    const r = await run([...base, "--dims", "2", "--steps", "5,4", "--range", "-1:1,-0.5:0.5", "--seed", "3", "--out", csv, "--plot", svg]);
    expect(r.code, String(r.error)).toBe(0);
    expect(r.out).toMatch(/2-D slice, 5 x 4 grid/);
    const rows = readFileSync(csv, "utf8").trim().split("\n");
    expect(rows[0]).toBe("a,b,loss");
    expect(rows.length).toBe(21);
    const d1 = filterDirection(c.spec, c.theta, 3);
    const d2 = filterDirection(c.spec, c.theta, 4);
    for (const row of rows.slice(1)) {
      const [a, b, loss] = row.split(",").map(Number);
      expect(loss).toBeCloseTo(await c.reference.loss(combo(c.theta, [[a, d1], [b, d2]])), 12);
    }
    expect(readFileSync(svg, "utf8")).toMatch(/^<svg[\s\S]*<\/svg>\n$/);
  });

  it("--json, 1-D alpha: the orbit is flat, the straight line is not; JSON file equals stdout", async () => {
    const json = join(dir, "a.json");
    const r = await run([...base, "--directions", "alpha", "--steps", "7", "--range", "-2:2", "--json", "--out", json]);
    expect(r.code, String(r.error)).toBe(0);
    const o = JSON.parse(r.out);
    expect(JSON.parse(readFileSync(json, "utf8"))).toEqual(o);
    expect(o.directions).toBe("alpha");
    expect(o.a).toEqual([-2, -4 / 3, -2 / 3, 0, 2 / 3, 4 / 3, 2]);
    expect(o.values.length).toBe(7);
    expect(o.center).toBe(await c.reference.loss(c.theta));
    for (const v of o.orbitValues) expect(Math.abs(v - o.center)).toBeLessThan(1e-12);
    expect(o.orbit.lineMaxDeviation).toBeGreaterThan(1e-3);
    expect(o.evaluation.points).toBe(15);
    expect(Object.keys(o)).toEqual(expect.arrayContaining(["loss", "engine", "dims", "a", "b", "values", "min", "max", "directionInfo", "evaluation"]));
  });

  it("eigen directions: the reported eigenvalue is the dense Hessian's top one; readable output with a table", async () => {
    const r = await run([...base, "--directions", "eigen", "--steps", "5", "--range", "-0.5:0.5"]);
    expect(r.code, String(r.error)).toBe(0);
    const dense = await c.reference.denseHessian(c.theta);
    const top = Math.max(...symmetricEigen(dense, c.theta.length).values);
    const m = /lambda ([\d.e+-]+)/.exec(r.out)!;
    expect(Number(m[1])).toBeCloseTo(top, 2);
    expect(r.out).toMatch(/L\(theta \+ a d\)/);
  });

  it("accepts an ONNX model", async () => {
    const { default: onnxProto } = await import("onnx-proto");
    const { onnx } = onnxProto as unknown as { onnx: typeof import("onnx-proto").onnx };
    const layout = parameterLayout(c.spec);
    const nodes = c.spec.layers.flatMap((l, k) => {
      const gemm = { opType: "Gemm", name: `fc${k}`, input: [k === 0 ? "x" : `a${k - 1}`, `w${k}`, `b${k}`], output: [k + 1 < c.spec.layers.length ? `z${k}` : "y"], attribute: [{ name: "transB", type: 2, i: 1 }] };
      return k + 1 < c.spec.layers.length ? [gemm, { opType: "Relu", name: `relu${k}`, input: [`z${k}`], output: [`a${k}`] }] : [gemm];
    });
    const initializer = c.spec.layers.flatMap((l, k) => {
      const { weightOffset, biasOffset } = layout.layers[k];
      return [
        { name: `w${k}`, dims: [l.outFeatures, l.inFeatures], dataType: 11, doubleData: Array.from(c.theta.subarray(weightOffset, weightOffset + l.outFeatures * l.inFeatures)) },
        { name: `b${k}`, dims: [l.outFeatures], dataType: 11, doubleData: Array.from(c.theta.subarray(biasOffset, biasOffset + l.outFeatures)) },
      ];
    });
    const bytes = onnx.ModelProto.encode({ irVersion: 8, graph: { node: nodes, initializer, input: [{ name: "x" }], output: [{ name: "y" }] } }).finish();
    writeFileSync(join(dir, "net.onnx"), bytes);
    const args = (model: string) => [...base.slice(0, 3), model, ...base.slice(4), "--steps", "3", "--json"];
    const fromOnnx = JSON.parse((await run(args(join(dir, "net.onnx")))).out);
    const fromSafetensors = JSON.parse((await run(args(join(dir, "m.safetensors")))).out);
    expect(fromOnnx.values).toEqual(fromSafetensors.values);
  });

  it("bad options: one clear InputError, nothing written", async () => {
    const out = join(dir, "never.csv");
    const plot = join(dir, "never.svg");
    const cases: [string[], RegExp][] = [
      [["--dims", "3"], /--dims must be 1 or 2, got '3'/],
      [["--directions", "pca"], /--directions pca is not one of random, filter, eigen, alpha/],
      [["--range", "1:-1"], /must go from a smaller to a larger value/],
      [["--range", "-1..1"], /--range -1\.\.1 is not of the form A:B/],
      [["--steps", "1"], /--steps 1 must be an integer from 2 to 1001/],
      [["--steps", "5,5"], /--steps gives 2 counts for 1 dimension/],
      [["--bias", "zero"], /--bias must be ignore or include/],
      [["--alpha-layers", "0,1"], /--alpha-layers goes with --directions alpha/],
      [["--directions", "alpha", "--alpha-layers", "0,7"], /T_alpha up layer|down layer must be one of 0\.\.2/],
      [["--out", join(dir, "x.txt")], /--out .*x\.txt: the grid is written as \.csv or \.json/],
      [["--plot", join(dir, "x.png")], /--plot .*x\.png: the plot is written as \.svg/],
      [["--seed", "-1"], /--seed must be a non-negative integer/],
    ];
    for (const [extra, pattern] of cases) {
      const args = [...base, ...extra];
      if (!extra.includes("--out")) args.push("--out", out);
      if (!extra.includes("--plot")) args.push("--plot", plot);
      const r = await run(args);
      expect(r.error, extra.join(" ")).toBeInstanceOf(InputError);
      expect((r.error as Error).message).toMatch(pattern);
      expect((r.error as Error).message.split("\n").length).toBe(1);
    }
    const oneLayer = makeCase({ widths: [4, 3], batch: 30, loss: "ce", seed: 12 });
    writeFileSync(join(dir, "one.safetensors"), writeModel({ model: { spec: oneLayer.spec, theta: oneLayer.theta }, format: "safetensors", tensorNames: parameterLayout(oneLayer.spec).views.map((v) => v.name), metadata: {} }));
    const r = await run([...base.slice(0, 3), join(dir, "one.safetensors"), ...base.slice(4), "--directions", "alpha", "--out", out]);
    expect((r.error as Error).message).toMatch(/at least two layers/);
    const missing = await run(["--cpu", "--model", join(dir, "m.safetensors"), "--data", join(dir, "x.npy"), "--labels", join(dir, "y.npy")]);
    expect((missing.error as Error).message).toMatch(/--loss is required/);
    expect(existsSync(out)).toBe(false);
    expect(existsSync(plot)).toBe(false);
  });
});
