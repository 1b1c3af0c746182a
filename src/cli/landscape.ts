/**
 * `flatness landscape`: 1-D and 2-D loss slices L(theta + a d1 + b d2) around a model along random,
 * filter-normalized (Li et al. 2018), top-Hessian-eigenvector or T_alpha directions, as CSV or
 * JSON and an SVG plot. On WebGPU every grid point is evaluated in batched data passes
 * (src/landscape/gpuBatchLoss.ts); --cpu uses the float64 reference, one point at a time.
 */
import { parseArgs } from "node:util";
import { InputError } from "../errors.ts";
import { writeFileAtomic } from "../io/files.ts";
import type { ModelSpec } from "../model.ts";
import type { Objective } from "../objective.ts";
import { type BiasPolicy, DIRECTION_KINDS, type DirectionKind } from "../landscape/directions.ts";
import { computeLandscape, type LandscapeOptions, type LandscapeResult } from "../landscape/landscape.ts";
import { contourSvg, lineSvg } from "../landscape/plot.ts";
import { type Axis, checkAxis, sliceCsv } from "../landscape/slice.ts";
import { BACKEND_ARGS, BACKEND_HELP, numberOption, withCliBackend } from "./engine.ts";
import { formatNumber, table } from "./format.ts";
import { loadDataset, loadModel, MODEL_DATA_ARGS, MODEL_DATA_HELP, parseActivation, parseLoss } from "./load.ts";
import { describeModel } from "./measure.ts";

export const LANDSCAPE_HELP = `flatness landscape: 1-D and 2-D loss slices around a model, as CSV/JSON and an SVG plot

Usage:
  flatness landscape --model M --data X --labels Y --loss ce|mse|logistic [options]

Evaluates L(theta + a d1) on a 1-D grid, or L(theta + a d1 + b d2) on a 2-D grid (Li et al.,
"Visualizing the Loss Landscape of Neural Nets", NeurIPS 2018). On WebGPU the grid's parameter
vectors are evaluated many per data pass (one batched GEMM over all of them, the data shared).

Input:
  --model M            .safetensors (PyTorch nn.Sequential of Linear + ReLU/LeakyReLU), .json or .onnx
  --data X             .npy [N, features] or .csv;  --labels Y  .npy labels [N] or targets [N, outputs]
  --label-column C     CSV label column, by index or header name (default: last)
  --loss L             ce, mse or logistic
  --activation A       relu or leaky_relu when the model file does not say;  --negative-slope S (0.01)

Directions:
  --directions D       filter (default): seeded Gaussian, filter-normalized per output unit
                         (d_row <- d_row ||theta_row|| / ||d_row||, Li et al.)
                       random: seeded Gaussian, N(0, 1) per entry, not normalized
                       eigen: the top Hessian eigenvector(s) by Lanczos, unit norm (2-D: the top two)
                       alpha: the tangent of the T_alpha orbit, scaling one layer up and another down
                         (Dinh et al. 2017): a flat direction. 1-D also evaluates the orbit itself,
                         on which the loss is constant; 2-D pairs it with a filter direction
  --dims 1|2           slice dimension (default 1)
  --bias ignore|include  biases in random/filter directions: ignore (default: zero, as
                       loss-landscape's --xignore biasbn) or include (filter: each bias entry
                       normalized to |theta_i|)
  --alpha-layers U,D   T_alpha: the layer scaled up and the one scaled down (default: first, last)
  --seed N             seed of the random directions (d2 uses N + 1) and of Lanczos (default 0)

Grid:
  --range A:B          grid range of a (and b), default -1:1; per axis: --range -1:1,-0.5:0.5
  --steps S            grid points per axis, default 21; per axis: --steps 21,11

Output:
  --out F              write the grid: .csv (columns a,b,loss; b = 0 in 1-D; 1-D alpha adds
                       orbit_loss) or .json (the --json object)
  --plot F             write an SVG: a line plot (1-D) or a heat map with contours (2-D)
  --json               print one JSON object: center, min, max, axes a and b, values (1-D by a;
                       2-D row-major [b][a]), orbitValues (1-D alpha), directionInfo, evaluation
${MODEL_DATA_HELP}
${BACKEND_HELP} (cpu: one point at a time)
  --batch P            points per batched GPU pass at most (default: what the device memory allows)
  --quiet              no progress on stderr
  -h, --help           this help

Examples:
  flatness landscape --model net.safetensors --data x.npy --labels y.npy --loss ce --dims 2 --steps 31 --out slice.csv --plot slice.svg
  flatness landscape --model net.onnx --data x.npy --labels y.npy --loss ce --directions eigen --range -0.5:0.5 --plot eigen.svg
  flatness landscape --model net.safetensors --data x.npy --labels y.npy --loss ce --directions alpha --json
`;

const STRING_OPTIONS = [
  "model", "data", "labels", "loss", "label-column", "activation", "negative-slope", "directions", "dims", "range", "steps", "seed",
  "bias", "alpha-layers", "out", "plot", "batch",
] as const;

/**
 * node:util parseArgs refuses an option value that starts with "-" ("--range -1:1"); join such
 * numeric values to their option ("--range=-1:1") so the natural spelling works.
 */
function joinNegativeValues(argv: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const next = argv[i + 1];
    if (/^--[\w-]+$/.test(arg) && (STRING_OPTIONS as readonly string[]).includes(arg.slice(2)) && next !== undefined && /^-[\d.]/.test(next)) {
      out.push(`${arg}=${next}`);
      i++;
    } else {
      out.push(arg);
    }
  }
  return out;
}

function parseAxes(range: string | undefined, steps: string | undefined, dims: 1 | 2): Axis[] {
  const ranges = (range ?? "-1:1").split(",");
  const counts = (steps ?? "21").split(",");
  if (ranges.length > dims || ranges.length < 1) throw new InputError(`--range gives ${ranges.length} ranges for ${dims} dimension${dims > 1 ? "s" : ""}`);
  if (counts.length > dims || counts.length < 1) throw new InputError(`--steps gives ${counts.length} counts for ${dims} dimension${dims > 1 ? "s" : ""}`);
  const axes: Axis[] = [];
  for (let i = 0; i < dims; i++) {
    const r = (ranges[i] ?? ranges[0]).trim();
    const m = /^(-?[\d.]+(?:e[-+]?\d+)?):(-?[\d.]+(?:e[-+]?\d+)?)$/i.exec(r);
    if (!m) throw new InputError(`--range ${r} is not of the form A:B (e.g. -1:1)`);
    const c = (counts[i] ?? counts[0]).trim();
    const n = Number(c);
    if (!/^\d+$/.test(c) || !Number.isInteger(n) || n < 2 || n > 1001) throw new InputError(`--steps ${c} must be an integer from 2 to 1001`);
    const axis = { from: Number(m[1]), to: Number(m[2]), steps: n };
    checkAxis(axis, `--range ${r}`);
    axes.push(axis);
  }
  return axes;
}

function describeDirections(r: LandscapeResult): string {
  const bias = r.bias === "include" ? "biases included" : "biases ignored";
  switch (r.directions) {
    case "filter":
      return `filter-normalized random (Li et al.; ${bias}), seed ${r.seed}`;
    case "random":
      return `random Gaussian (${bias}), seed ${r.seed}`;
    case "eigen":
      return `top Hessian eigenvector${r.dims === 2 ? "s" : ""} (${r.directionInfo.map((d) => `lambda ${formatNumber(d.eigenvalue!)}, residual ${formatNumber(d.residual!)}`).join("; ")})`;
    case "alpha":
      return `T_alpha tangent (layer ${r.orbit!.up} up, layer ${r.orbit!.down} down)${r.dims === 2 ? `, and a filter-normalized random direction (${bias}), seed ${r.seed + 1}` : ""}`;
  }
}

function axisLabel(r: LandscapeResult, i: number): string {
  const d = r.directionInfo[i];
  const name = i === 0 ? "a" : "b";
  switch (d.kind) {
    case "eigen":
      return `${name}: top-${i + 1} Hessian eigenvector (λ = ${formatNumber(d.eigenvalue!)}), unit norm`;
    case "alpha":
      return `${name}: T_α tangent (layer ${r.orbit!.up} up, layer ${r.orbit!.down} down)`;
    case "filter":
      return `${name}: filter-normalized random direction (seed ${r.seed + i})`;
    default:
      return `${name}: random Gaussian direction (seed ${r.seed + i})`;
  }
}

/** The SVG plot of a landscape result. */
export function landscapeSvg(r: LandscapeResult, lossKind: string): string {
  const title = `${lossKind} loss around θ: ${r.dims}-D slice, ${r.directions} direction${r.dims === 2 ? "s" : ""}`;
  return r.dims === 1
    ? lineSvg(r, { title, x: axisLabel(r, 0), y: `${lossKind} loss` })
    : contourSvg(r, { title, x: axisLabel(r, 0), y: axisLabel(r, 1) });
}

export async function runLandscape(argv: string[], out: (s: string) => void, err: (s: string) => void): Promise<number> {
  const { values } = parseArgs({
    args: joinNegativeValues(argv),
    options: {
      ...Object.fromEntries(STRING_OPTIONS.map((name) => [name, { type: "string" as const }])),
      json: { type: "boolean" }, ...BACKEND_ARGS, ...MODEL_DATA_ARGS, quiet: { type: "boolean" }, help: { type: "boolean", short: "h" },
    },
    strict: true,
  }) as { values: Record<string, string | boolean | undefined> };
  const v = (name: string) => values[name] as string | undefined;
  if (values.help) {
    out(LANDSCAPE_HELP);
    return 0;
  }
  // Every option is checked before any file is read or any GPU work starts.
  const loss = parseLoss(v("loss"));
  const directions = (v("directions") ?? "filter") as DirectionKind;
  if (!DIRECTION_KINDS.includes(directions)) throw new InputError(`--directions ${directions} is not one of ${DIRECTION_KINDS.join(", ")}`);
  const dimsText = v("dims") ?? "1";
  if (dimsText !== "1" && dimsText !== "2") throw new InputError(`--dims must be 1 or 2, got '${dimsText}'`);
  const dims = Number(dimsText) as 1 | 2;
  const axes = parseAxes(v("range"), v("steps"), dims);
  const bias = (v("bias") ?? "ignore") as BiasPolicy;
  if (bias !== "ignore" && bias !== "include") throw new InputError(`--bias must be ignore or include, got '${bias}'`);
  const seed = numberOption("seed", v("seed")) ?? 0;
  if (!Number.isInteger(seed) || seed < 0) throw new InputError(`--seed must be a non-negative integer, got ${v("seed")}`);
  const batch = numberOption("batch", v("batch"));
  if (batch !== undefined && (!Number.isInteger(batch) || batch < 1)) throw new InputError(`--batch must be a positive integer, got ${v("batch")}`);
  let alphaLayers: [number, number] | undefined;
  if (v("alpha-layers") !== undefined) {
    if (directions !== "alpha") throw new InputError("--alpha-layers goes with --directions alpha");
    const parts = v("alpha-layers")!.split(",").map((s) => s.trim());
    if (parts.length !== 2 || !parts.every((p) => /^\d+$/.test(p))) throw new InputError(`--alpha-layers must be two layer indices U,D (e.g. 0,2), got '${v("alpha-layers")}'`);
    alphaLayers = [Number(parts[0]), Number(parts[1])];
  }
  const outPath = v("out");
  if (outPath !== undefined && !/\.(csv|json)$/i.test(outPath)) throw new InputError(`--out ${outPath}: the grid is written as .csv or .json`);
  const plotPath = v("plot");
  if (plotPath !== undefined && !/\.svg$/i.test(plotPath)) throw new InputError(`--plot ${plotPath}: the plot is written as .svg`);
  const log = values.quiet ? () => {} : err;

  const loaded = await loadModel(v("model"), parseActivation(v("activation"), v("negative-slope")), v("architecture"));
  const data = await loadDataset(v("data"), v("labels"), loss, loaded, v("label-column"), { dataset: v("dataset"), "dataset-samples": v("dataset-samples"), "dataset-seed": v("dataset-seed"), split: v("split") });
  const spec: ModelSpec = loaded.model.spec;
  const theta = loaded.model.theta;
  const points = axes.reduce((p, a) => p * a.steps, 1);
  log(`model ${v("model")}: ${theta.length} parameters; ${data.n} samples; ${dims}-D ${directions} slice, ${points} grid points`);
  const options: LandscapeOptions = { directions, dims, axes, seed, bias, alphaLayers };

  const { result, engine, passes } = await withCliBackend(values as { backend?: string; cpu?: boolean }, log, async (backend) => {
    const evaluator = await backend.batchLoss(spec, data, loss, { maxBatch: batch });
    let objective: Objective<unknown> | null = null;
    try {
      // An objective (HVPs) only where eigenvector directions need one.
      if (directions === "eigen") objective = await backend.objective(spec, data, loss);
      if (evaluator.maxBatch !== undefined) log(`evaluating up to ${evaluator.maxBatch} points per pass, ${evaluator.chunkRows} samples per chunk`);
      const result = await computeLandscape(evaluator, spec, theta, options, objective ?? undefined);
      const engine = backend.gpu ? `webgpu (${backend.gpu.describe()})` : "cpu (float64 reference)";
      return { result, engine, passes: evaluator.passes ?? null };
    } finally {
      evaluator.dispose();
      objective?.dispose();
    }
  });

  const summary = {
    loss: loss,
    model: v("model"),
    samples: data.n,
    engine,
    ...result,
    evaluation: { points: result.points, wallMs: result.wallMs, pointsPerSecond: result.points / Math.max(result.wallMs, 1e-9) * 1000, dataPasses: passes },
  };
  // Not repeated at the top level: they live in `evaluation`.
  delete (summary as Partial<typeof summary>).points;
  delete (summary as Partial<typeof summary>).wallMs;
  const json = JSON.stringify(summary);
  if (outPath) await writeFileAtomic(outPath, new TextEncoder().encode(/\.json$/i.test(outPath) ? json + "\n" : sliceCsv(result)));
  if (plotPath) await writeFileAtomic(plotPath, new TextEncoder().encode(landscapeSvg(result, loss)));
  if (values.json) {
    out(json);
    return 0;
  }
  out(formatLandscape(result, spec, loss, engine));
  for (const [what, path] of [["grid", outPath], ["plot", plotPath]]) if (path) out(`wrote ${what} ${path}`);
  return 0;
}

/** The readable summary (and, for 1-D slices, the table of values). */
export function formatLandscape(r: LandscapeResult, spec: ModelSpec, loss: string, engine: string): string {
  const widths = describeModel(spec);
  const f = formatNumber;
  const grid = r.b ? `${r.a.length} x ${r.b.length} grid on [${f(r.a[0])}, ${f(r.a.at(-1)!)}] x [${f(r.b[0])}, ${f(r.b.at(-1)!)}]` : `${r.a.length} points on [${f(r.a[0])}, ${f(r.a.at(-1)!)}]`;
  const lines = [
    `model ${widths}, ${r.parameters} parameters, ||theta|| ${f(r.thetaNorm)}; loss ${loss}`,
    `directions: ${describeDirections(r)}; norms ${r.directionInfo.map((d) => f(d.norm)).join(", ")}`,
    `${r.dims}-D slice, ${grid}`,
    `L(theta) = ${f(r.center)};  min ${f(r.min.loss)} at a = ${f(r.min.a)}${r.b ? `, b = ${f(r.min.b)}` : ""};  max ${f(r.max.loss)} at a = ${f(r.max.a)}${r.b ? `, b = ${f(r.max.b)}` : ""}`,
  ];
  if (r.orbit) {
    if (r.orbit.orbitMaxDeviation !== null) {
      lines.push(
        `T_alpha: along the orbit the loss stays within ${f(r.orbit.orbitMaxDeviation)} of L(theta) (a flat direction); ` +
          `along the straight tangent line it moves by up to ${f(r.orbit.lineMaxDeviation)} (second order only)`,
      );
    } else {
      lines.push(`T_alpha: along the tangent line (b = 0) the loss moves by up to ${f(r.orbit.lineMaxDeviation)} (second order only: the slope is zero)`);
    }
  }
  lines.push(`${r.points} parameter vectors evaluated in ${f(Math.round(r.wallMs))} ms on ${engine}${r.hvps ? `; ${r.hvps} HVPs for the eigenvectors` : ""}`);
  if (r.dims === 1) {
    const rows = r.a.map((a, i) => (r.orbitValues ? [f(a), f(r.values[i]), f(r.orbitValues[i])] : [f(a), f(r.values[i])]));
    lines.push("", table(r.orbitValues ? ["a", "L(theta + a d)", "L(T_alpha(a) theta)"] : ["a", "L(theta + a d)"], rows));
  }
  return lines.join("\n");
}
