/**
 * `flatness transform`: function-preserving transforms of a model file (T_alpha, neuron-wise
 * rescaling) and the constructions of Dinh et al. 2017 built on them (sharpen, sharpen-count,
 * flatten, eps-construction). The new model is written in the input's format with the same tensor
 * names (safetensors stays safetensors), atomically and only after every check passed; each
 * subcommand reports the max output difference of the parameters as written.
 */
import { parseArgs } from "node:util";
import type { Dataset } from "../data.ts";
import { InputError } from "../errors.ts";
import { writeFileAtomic } from "../io/files.ts";
import { type LoadedModel, readModel, writeModel, writeParameterVector } from "../io/modelFile.ts";
import { type LossKind, type ModelSpec, inputWidth, outputWidth } from "../model.ts";
import type { Objective } from "../objective.ts";
import { Rng } from "../random.ts";
import { ReferenceObjective } from "../reference/engine.ts";
import { homogeneousAlphaScale } from "../transforms/alphaScale.ts";
import {
  epsilonSharpnessConstruction,
  flatten,
  type FunctionCheck,
  functionCheck,
  sharpen,
  sharpenCount,
} from "../transforms/constructions.ts";
import { checkHiddenLayer, neuronScale, randomNeuronFactors } from "../transforms/neuronScale.ts";
import { BACKEND_ARGS, BACKEND_HELP, withCliBackend } from "./engine.ts";
import { formatNumber } from "./format.ts";
import { loadDataset, loadModel, MODEL_DATA_ARGS, MODEL_DATA_HELP, parseActivation, parseLoss } from "./load.ts";

const SUBCOMMANDS = ["alpha", "neuron", "sharpen", "sharpen-count", "flatten", "eps-construction"] as const;
type Subcommand = typeof SUBCOMMANDS[number];

const INPUT = `Model and data:
  --model M            .safetensors (PyTorch nn.Sequential of Linear + ReLU/LeakyReLU) or .json
  --out M2             where to write the new model (same format and tensor names as M)
  --activation A       relu or leaky_relu when the model file does not say;  --negative-slope S (0.01)`;
const DATA = `  --data X             .npy [N, features] or .csv;  --labels Y  .npy labels [N] or targets [N, outputs]
  --label-column C     CSV label column, by index or header name (default: last)
  --loss L             ce, mse or logistic`;
const OUTPUT = `Output:
  --json               print one JSON object instead of text
  --quiet              no progress on stderr
  -h, --help           this help`;
const ENGINE = `${MODEL_DATA_HELP}
${BACKEND_HELP}
  --seed N             seed of the Lanczos start vectors (default 0)
  --lanczos-steps S    Lanczos steps per eigenvalue estimate (default 42)`;

const HELP: Record<Subcommand, string> = {
  alpha: `flatness transform alpha: T_alpha, theta_k -> alpha_k theta_k (Dinh et al. Definition 5)

Usage:
  flatness transform alpha --model M --alphas a1,...,aK --out M2 [--data X --labels Y --loss L]

  --alphas LIST        one positive factor per Linear layer, multiplying to 1 (fractions like 1/3
                       allowed); biases scale by the product of the alphas up to their layer
                       (Appendix B), so the function is unchanged

The output difference is measured over --data when given (with --labels and --loss, whose loss is
reported before and after), else over 256 seeded Gaussian inputs.

${INPUT}
${DATA}
${OUTPUT}

Example:
  flatness transform alpha --model net.safetensors --alphas 4,0.5,0.5 --out net4.safetensors
`,
  neuron: `flatness transform neuron: neuron-wise rescaling of one hidden layer

Usage:
  flatness transform neuron --model M --layer k (--factors c1,...,cn | --seed N [--spread S]) --out M2

  --layer k            hidden layer, by Linear index 0..K-2 (tensors 2k.weight, 2k.bias)
  --factors LIST       one positive factor per unit of layer k: unit j's incoming weights and bias
                       are multiplied by c_j, its outgoing weights (column j of layer k+1) divided
  --seed N             instead of --factors: seeded factors, log-uniform in [1/S, S]
  --spread S           for --seed (default 10)

The output difference is measured over --data when given, else over 256 seeded Gaussian inputs.

${INPUT}
${DATA}
${OUTPUT}
`,
  sharpen: `flatness transform sharpen: an equivalent model whose Hessian has top eigenvalue >= V (Theorem 4)

Usage:
  flatness transform sharpen --model M --data X --labels Y --loss L --min-top-eigenvalue V --out M2

  --min-top-eigenvalue V   the target M; the layer with the largest weight-block top eigenvalue
                           lambda_k is shrunk by alpha_k = sqrt(lambda_k / (1.25 M)), the others grow,
                           and the result is verified by Lanczos at the new parameters
  --layer k                shrink this layer instead

${INPUT}
${DATA}
${ENGINE}
${OUTPUT}
`,
  "sharpen-count": `flatness transform sharpen-count: an equivalent model with many Hessian eigenvalues above V (Theorem 5)

Usage:
  flatness transform sharpen-count --model M --data X --labels Y --loss L --threshold V --out M2 [--rank R]

  --threshold V        eigenvalues above V are counted; at least r - |S| of them are guaranteed, r the
                       number of positive eigenvalues of H, |S| the parameters T_alpha cannot lift
                       (the smallest layer's weights and the biases from it on)
  --rank R             use the top R eigenvalues (Lanczos) instead of the dense spectrum (needed
                       above --max-dense parameters)
  --max-dense N        largest model for the dense Hessian (default 400)

${INPUT}
${DATA}
${ENGINE}
${OUTPUT}
`,
  flatten: `flatness transform flatten: the flattest equivalent model T_alpha allows

Usage:
  flatness transform flatten --model M --data X --labels Y --loss L --out M2 [--max-top-eigenvalue m] [--refine N]
  flatness transform flatten ... --measure volume --log-volume-gain G --out M2

  --measure top-eigenvalue (default): balances the layers' weight-block top eigenvalues to their
                       geometric mean G, which no T_alpha can go below (the alphas multiply to 1);
                       the result is never sharper than the input
  --max-top-eigenvalue m   fail unless the result's top eigenvalue is <= m (refused at once if m < G)
  --refine N           N more Lanczos evaluations of a search over the alphas (default 0)
  --measure volume     grow the star-shaped epsilon-sublevel region's volume (Definition 1) by at
                       least e^G: --log-volume-gain G

${INPUT}
${DATA}
${ENGINE}
${OUTPUT}
`,
  "eps-construction": `flatness transform eps-construction: an equivalent model with high epsilon-sharpness (section 4.3)

Usage:
  flatness transform eps-construction --model M --data X --labels Y --loss L --epsilon E --out M2
      [--layer k] [--subspace-dim p] [--perturbation-out P]

  --epsilon E          radius of the l2 ball (Definition 2)
  --layer k            the layer shrunk to norm E (default: the one whose zeroing raises the loss most)
  --shrink s           shrink it to E / s instead (default 1)
  --subspace-dim p     also reach the constant function inside a random p-dimensional subspace
                       (the seeded basis of measure's keskar-subspace metric, --seed)
  --seed N             seed of that subspace (default 0)
  --perturbation-out P write the full-space perturbation delta (norm <= E) in the model's format

The epsilon-sharpness of the new model is at least (L_k - L) / (1 + L), where L_k is the loss of
the constant function reached by zeroing layer k's weights.

${INPUT}
${DATA}
  --cpu                use the float64 CPU reference engine instead of WebGPU
${OUTPUT}
`,
};

export const TRANSFORM_HELP = `flatness transform: function-preserving transforms and the constructions of Dinh et al. (ICML 2017)

Usage: flatness transform <transform> [options]      (flatness transform <transform> --help for each)

Transforms (each writes a model with the same function, and reports the max output difference):
  alpha             T_alpha: layer k's weights times alpha_k, the alphas multiplying to 1
  neuron            neuron-wise rescaling of one hidden layer's units
  sharpen           top Hessian eigenvalue >= V (Theorem 4)
  sharpen-count     at least r - |S| Hessian eigenvalues above V (Theorem 5)
  flatten           as flat as T_alpha allows (balanced layers), or a larger volume epsilon-flatness
  eps-construction  an epsilon-ball that reaches a constant function: high epsilon-sharpness

Every transform needs a ReLU or leaky ReLU net.

Examples:
  flatness transform alpha --model net.safetensors --alphas 4,1,0.25 --out net_alpha.safetensors
  flatness transform sharpen --model net.safetensors --data x.npy --labels y.npy --loss ce --min-top-eigenvalue 1e4 --out sharp.safetensors
`;

const OPTIONS = {
  model: { type: "string" }, out: { type: "string" }, activation: { type: "string" }, "negative-slope": { type: "string" },
  data: { type: "string" }, labels: { type: "string" }, loss: { type: "string" }, "label-column": { type: "string" },
  json: { type: "boolean" }, quiet: { type: "boolean" }, help: { type: "boolean", short: "h" },
  ...BACKEND_ARGS, ...MODEL_DATA_ARGS, seed: { type: "string" }, "lanczos-steps": { type: "string" },
  alphas: { type: "string" }, layer: { type: "string" }, factors: { type: "string" }, spread: { type: "string" },
  "min-top-eigenvalue": { type: "string" }, threshold: { type: "string" }, rank: { type: "string" }, "max-dense": { type: "string" },
  "max-top-eigenvalue": { type: "string" }, refine: { type: "string" }, measure: { type: "string" }, "log-volume-gain": { type: "string" },
  epsilon: { type: "string" }, shrink: { type: "string" }, "subspace-dim": { type: "string" }, "perturbation-out": { type: "string" },
} as const;

/** Which options each transform accepts (beyond model, out, activation, json, quiet, help). */
const ALLOWED: Record<Subcommand, string[]> = {
  alpha: ["alphas", "data", "labels", "loss", "label-column"],
  neuron: ["layer", "factors", "seed", "spread", "data", "labels", "loss", "label-column"],
  sharpen: ["data", "labels", "loss", "label-column", "backend", "cpu", "seed", "lanczos-steps", "min-top-eigenvalue", "layer"],
  "sharpen-count": ["data", "labels", "loss", "label-column", "backend", "cpu", "seed", "lanczos-steps", "threshold", "rank", "max-dense"],
  flatten: ["data", "labels", "loss", "label-column", "backend", "cpu", "seed", "lanczos-steps", "max-top-eigenvalue", "refine", "measure", "log-volume-gain"],
  "eps-construction": ["data", "labels", "loss", "label-column", "backend", "cpu", "seed", "epsilon", "layer", "shrink", "subspace-dim", "perturbation-out"],
};
const COMMON = ["model", "out", "activation", "negative-slope", "json", "quiet", "help"];

type Values = { [K in keyof typeof OPTIONS]?: (typeof OPTIONS)[K]["type"] extends "boolean" ? boolean : string };

/** A number (finite; "p/q" fractions allowed), or undefined when the option is absent. */
function parseNumber(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const text = value.trim();
  const parts = text.split("/");
  const x = parts.length === 2 ? Number(parts[0]) / Number(parts[1]) : Number(text);
  if (text === "" || parts.length > 2 || parts.some((p) => p.trim() === "") || !Number.isFinite(x)) {
    throw new InputError(`--${name} must be a number, got '${value}'`);
  }
  return x;
}

function requireNumber(name: string, value: string | undefined, what: string): number {
  const x = parseNumber(name, value);
  if (x === undefined) throw new InputError(`--${name} is required (${what})`);
  return x;
}

function parseInteger(name: string, value: string | undefined, min: number): number | undefined {
  const x = parseNumber(name, value);
  if (x !== undefined && (!Number.isInteger(x) || x < min)) throw new InputError(`--${name} must be an integer >= ${min}, got '${value}'`);
  return x;
}

function parseList(name: string, value: string): number[] {
  const items = value.split(",");
  return items.map((item, i) => {
    try {
      return parseNumber(name, item)!;
    } catch {
      throw new InputError(`--${name}: entry ${i + 1} ('${item}') is not a number`);
    }
  });
}

/** A stderr progress line at most every 2 s (plus the first and the last). */
function progressPrinter(err: (s: string) => void, label: string) {
  let last = 0;
  return (fraction: number, message: string) => {
    const now = Date.now();
    if (last === 0 || fraction >= 1 || now - last > 2000) {
      err(`[${label}] ${(100 * Math.min(1, fraction)).toFixed(0)}% ${message}`);
      last = now;
    }
  };
}

/** Seeded Gaussian inputs (targets unused) for the function check when no data is given. */
function probeInputs(spec: ModelSpec, n = 256): Dataset {
  const d = inputWidth(spec);
  const rng = new Rng(12345);
  return { n, features: d, x: Float32Array.from(rng.normals(n * d)), targets: new Float32Array(n * outputWidth(spec)) };
}

/** The parameters as they will be read back from the file (F32 safetensors round them). */
function asWritten(loaded: LoadedModel, theta: Float64Array, out: string): { bytes: Uint8Array; theta: Float64Array } {
  const bytes = writeModel(loaded, theta);
  return { bytes, theta: readModel(bytes, out, { activation: loaded.model.spec.activation }).model.theta };
}

async function checkOn<V>(objective: Objective<V>, before: Float64Array, after: Float64Array): Promise<FunctionCheck> {
  const s = objective.space;
  const a = s.fromArray(before);
  const b = s.fromArray(after);
  try {
    return await functionCheck(objective, a, b);
  } finally {
    s.dispose(a);
    s.dispose(b);
  }
}

function describeCheck(c: FunctionCheck, what: string): string {
  return `max output difference ${formatNumber(c.maxAbsDifference)} (relative ${formatNumber(c.relativeDifference)}) over ${c.samples} ${what}`;
}

const list = (xs: number[]) => xs.map(formatNumber).join(", ");

export async function runTransform(argv: string[], out: (s: string) => void, err: (s: string) => void): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === undefined || sub === "--help" || sub === "-h" || sub === "help") {
    out(TRANSFORM_HELP);
    return 0;
  }
  if (!(SUBCOMMANDS as readonly string[]).includes(sub)) {
    throw new InputError(`unknown transform '${sub}': use one of ${SUBCOMMANDS.join(", ")} (see flatness transform --help)`);
  }
  const command = sub as Subcommand;
  const { values: raw } = parseArgs({ args: rest, options: OPTIONS, strict: true });
  const values = raw as Values;
  if (values.help) {
    out(HELP[command]);
    return 0;
  }
  for (const key of Object.keys(values)) {
    if (!COMMON.includes(key) && !ALLOWED[command].includes(key)) {
      throw new InputError(`--${key} does not apply to 'transform ${command}' (see flatness transform ${command} --help)`);
    }
  }
  if (!values.out) throw new InputError("--out is required (where to write the new model)");
  const loaded = await loadModel(values.model, parseActivation(values.activation, values["negative-slope"]), values.architecture);
  const spec = loaded.model.spec;
  const theta = loaded.model.theta;
  const say = values.quiet ? () => {} : err;
  say(`model ${values.model}: ${theta.length} parameters, ${spec.layers.length} layers`);
  if (command === "alpha" || command === "neuron") return await runExact(command, values, loaded, out);
  return await runConstruction(command, values, loaded, out, say);
}

/** alpha and neuron: closed-form transforms, checked on the CPU over the data or probe inputs. */
async function runExact(command: "alpha" | "neuron", values: Values, loaded: LoadedModel, out: (s: string) => void): Promise<number> {
  const spec = loaded.model.spec;
  const theta = loaded.model.theta;
  let theta2: Float64Array;
  const summary: Record<string, unknown> = { transform: command };
  if (command === "alpha") {
    if (values.alphas === undefined) throw new InputError(`--alphas is required: ${spec.layers.length} positive factors, one per layer, multiplying to 1`);
    const alphas = parseList("alphas", values.alphas);
    if (alphas.length !== spec.layers.length) {
      throw new InputError(`--alphas has ${alphas.length} entries but the model has ${spec.layers.length} layers (one alpha per layer)`);
    }
    try {
      theta2 = homogeneousAlphaScale(spec, theta, alphas);
    } catch (e) {
      if (e instanceof InputError) throw new InputError(`--alphas ${values.alphas}: ${e.message}`);
      throw e;
    }
    summary.alphas = alphas;
  } else {
    const layer = parseInteger("layer", values.layer, 0);
    if (layer === undefined) throw new InputError(`--layer is required: a hidden layer 0..${spec.layers.length - 2}`);
    const width = checkHiddenLayer(spec, layer);
    let factors: number[];
    if (values.factors !== undefined) {
      if (values.seed !== undefined) throw new InputError("give either --factors or --seed, not both");
      factors = parseList("factors", values.factors);
    } else if (values.seed !== undefined) {
      factors = randomNeuronFactors(width, parseInteger("seed", values.seed, 0)!, parseNumber("spread", values.spread) ?? 10);
    } else {
      throw new InputError(`--factors c1,...,c${width} or --seed N is required`);
    }
    if (values.spread !== undefined && values.factors !== undefined) throw new InputError("--spread goes with --seed, not --factors");
    theta2 = neuronScale(spec, theta, layer, factors);
    summary.layer = layer;
    summary.factors = factors;
  }
  let objective: ReferenceObjective;
  let what: string;
  if (values.data !== undefined) {
    const loss = parseLoss(values.loss);
    const data = await loadDataset(values.data, values.labels, loss, loaded, values["label-column"], values);
    objective = new ReferenceObjective(spec, data, loss);
    what = `samples of ${values.data}`;
    summary.baseLoss = await objective.loss(theta);
    summary.loss = await objective.loss(theta2);
  } else {
    for (const key of ["labels", "loss", "label-column"] as const) {
      if (values[key] !== undefined) throw new InputError(`--${key} needs --data`);
    }
    objective = new ReferenceObjective(spec, probeInputs(spec), "mse");
    what = "seeded Gaussian inputs";
  }
  const written = asWritten(loaded, theta2, values.out!);
  const check = await checkOn(objective, theta, written.theta);
  summary.functionCheck = check;
  await writeFileAtomic(values.out!, written.bytes);
  summary.out = values.out;
  if (values.json) {
    out(JSON.stringify(summary));
  } else {
    out(command === "alpha" ? `T_alpha with alphas ${list(summary.alphas as number[])}` : `neuron-wise rescaling of layer ${summary.layer} by ${list(summary.factors as number[])}`);
    if (summary.loss !== undefined) out(`loss ${formatNumber(summary.baseLoss as number)} -> ${formatNumber(summary.loss as number)}`);
    out(describeCheck(check, what) + " (the parameters as written)");
    out(`wrote ${values.out}`);
  }
  return 0;
}

/** Runs `work` on an objective over `data`, on the backend the options ask for (--backend, --cpu). */
async function withObjective<T>(
  values: { backend?: string; cpu?: boolean },
  spec: ModelSpec,
  data: Dataset,
  loss: LossKind,
  say: (s: string) => void,
  work: <V>(objective: Objective<V>) => Promise<T>,
): Promise<T> {
  return await withCliBackend(values, say, async (backend) => {
    const objective = await backend.objective(spec, data, loss);
    try {
      return await work(objective);
    } finally {
      objective.dispose();
    }
  });
}

/** Drops the large vectors from a result for printing. */
function summaryOf(result: object): Record<string, unknown> {
  const s: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(result)) {
    if (v instanceof Float64Array || k === "theta") continue;
    s[k] = v !== null && typeof v === "object" && !Array.isArray(v) ? summaryOf(v) : v;
  }
  return s;
}

async function runConstruction(command: Exclude<Subcommand, "alpha" | "neuron">, values: Values, loaded: LoadedModel, out: (s: string) => void, say: (s: string) => void): Promise<number> {
  const spec = loaded.model.spec;
  const theta = loaded.model.theta;
  const loss = parseLoss(values.loss);
  const data = await loadDataset(values.data, values.labels, loss, loaded, values["label-column"], values);
  const seed = parseInteger("seed", values.seed, 0);
  const lanczos = {
    seed,
    lanczosSteps: parseInteger("lanczos-steps", values["lanczos-steps"], 1),
    onProgress: values.quiet ? undefined : progressPrinter(say, command),
  };
  const layer = parseInteger("layer", values.layer, 0);
  // Parse every option before any GPU work.
  let run: <V>(objective: Objective<V>) => Promise<{ theta: Float64Array } & object>;
  if (command === "sharpen") {
    const M = requireNumber("min-top-eigenvalue", values["min-top-eigenvalue"], "the top Hessian eigenvalue to reach");
    run = (o) => sharpen(o, theta, { ...lanczos, minTopEigenvalue: M, layer });
  } else if (command === "sharpen-count") {
    const M = requireNumber("threshold", values.threshold, "eigenvalues above it are counted");
    const rank = parseInteger("rank", values.rank, 1);
    const maxDenseDim = parseInteger("max-dense", values["max-dense"], 1);
    run = (o) => sharpenCount(o, theta, { ...lanczos, threshold: M, rank, maxDenseDim });
  } else if (command === "flatten") {
    const measure = values.measure ?? "top-eigenvalue";
    if (measure !== "top-eigenvalue" && measure !== "volume") throw new InputError(`--measure must be top-eigenvalue or volume, got '${measure}'`);
    const maxTopEigenvalue = parseNumber("max-top-eigenvalue", values["max-top-eigenvalue"]);
    const refineIterations = parseInteger("refine", values.refine, 0);
    const logVolumeGain = parseNumber("log-volume-gain", values["log-volume-gain"]);
    if (measure === "volume" && logVolumeGain === undefined) throw new InputError("--measure volume needs --log-volume-gain G (> 0)");
    if (measure !== "volume" && logVolumeGain !== undefined) throw new InputError("--log-volume-gain goes with --measure volume");
    run = (o) => flatten(o, theta, { ...lanczos, measure, maxTopEigenvalue, refineIterations, logVolumeGain });
  } else {
    const epsilon = requireNumber("epsilon", values.epsilon, "the radius of the l2 ball");
    const subspaceDim = parseInteger("subspace-dim", values["subspace-dim"], 1);
    const shrink = parseNumber("shrink", values.shrink);
    run = (o) => epsilonSharpnessConstruction(o, theta, { epsilon, layer, subspaceDim, seed, shrink, onProgress: lanczos.onProgress });
  }
  const { result, written, check } = await withObjective(values, spec, data, loss, say, async (objective) => {
    const result = await run(objective);
    const written = asWritten(loaded, result.theta, values.out!);
    return { result, written, check: await checkOn(objective, theta, written.theta) };
  });
  const summary = { transform: command, ...summaryOf(result), writtenFunctionCheck: check, out: values.out };
  const perturbationOut = values["perturbation-out"];
  if (perturbationOut !== undefined) {
    const delta = (result as { perturbation?: Float64Array }).perturbation!;
    await writeFileAtomic(perturbationOut, writeParameterVector(loaded, delta, { about: "epsilon-construction perturbation: theta' + delta zeroes one layer's weights" }));
  }
  await writeFileAtomic(values.out!, written.bytes);
  if (values.json) {
    out(JSON.stringify(summary));
    return 0;
  }
  const r = summary as unknown as Record<string, unknown> & { alphas: number[]; baseLoss: number; loss?: number };
  const lines: string[] = [];
  if (command === "sharpen") {
    lines.push(`top Hessian eigenvalue ${formatNumber(r.originalTopEigenvalue as number)} -> ${formatNumber(r.topEigenvalue as number)} (target >= ${formatNumber(r.target as number)})`);
    lines.push(r.layer === -1 ? "already sharp enough: parameters unchanged" : `layer ${r.layer}'s weights shrunk; attempts ${r.attempts}`);
    lines.push(`weight-block top eigenvalues ${list(r.blockTopEigenvalues as number[])}`);
  } else if (command === "sharpen-count") {
    lines.push(`eigenvalues above ${formatNumber(r.threshold as number)}: ${r.originalCountAbove} -> ${r.countAbove} (guaranteed r - |S| = ${r.rank} - ${r.unamplified} = ${r.guaranteedCount}; ${r.method} spectrum)`);
    lines.push(`beta ${formatNumber(r.beta as number)}, compensating layer ${r.compensatingLayer}`);
  } else if (command === "flatten") {
    lines.push(`top Hessian eigenvalue ${formatNumber(r.originalTopEigenvalue as number)} -> ${formatNumber(r.topEigenvalue as number)}` +
      (r.lowerBound !== null ? ` (no T_alpha goes below ${formatNumber(r.lowerBound as number)})` : ""));
    lines.push(`log volume factor of the star-shaped sublevel region: +${formatNumber(r.logVolumeGain as number)}`);
  } else {
    lines.push(`layer ${r.layer} shrunk to norm ${formatNumber(r.perturbationNorm as number)} <= epsilon ${formatNumber(r.epsilon as number)}`);
    lines.push(`epsilon-sharpness >= ${formatNumber(r.bound as number)} (loss ${formatNumber(r.baseLoss)} -> ${formatNumber(r.constantLoss as number)} at the constant function; reached ${formatNumber(r.reachedLoss as number)})`);
    if (!((r.bound as number) > 0)) lines.push("note: the constant function's loss is not above L(theta) (theta is not a minimum here), so this bound says nothing");
    const sub = r.subspace as Record<string, number> | null;
    if (sub) lines.push(`random ${sub.dim}-dimensional subspace: reached loss ${formatNumber(sub.reachedLoss)} (value ${formatNumber(sub.reachedValue)})`);
  }
  lines.push(`alphas ${list(r.alphas)}`);
  if (r.loss !== undefined) lines.push(`loss ${formatNumber(r.baseLoss)} -> ${formatNumber(r.loss)}`);
  lines.push(describeCheck(check, "samples") + " (the parameters as written)");
  lines.push(`wrote ${values.out}${perturbationOut !== undefined ? ` and ${perturbationOut}` : ""}`);
  out(lines.join("\n"));
  return 0;
}
