/**
 * `flatness measure`: flatness and sharpness metrics of a model file over a dataset (the metrics
 * of src/metrics/suite.ts), as a readable table or one JSON object.
 */
import { parseArgs } from "node:util";
import type { Dataset } from "../data.ts";
import { InputError } from "../errors.ts";
import { formatArchitecture } from "../architecture.ts";
import { isConv, isMlp, layerUnits, type LossKind, type ModelSpec } from "../model.ts";
import { type Objective, withVectors } from "../objective.ts";
import { METRICS, type MeasureOptions, type MeasureReport, measureMetrics, parseMetricList } from "../metrics/suite.ts";
import { formatNumber, table } from "./format.ts";
import { BACKEND_ARGS, BACKEND_HELP, numberOption, progressPrinter, withCliBackend } from "./engine.ts";
import { loadDataset, loadModel, MODEL_DATA_ARGS, MODEL_DATA_HELP, parseActivation, parseLoss } from "./load.ts";

export const MEASURE_HELP = `flatness measure: flatness and sharpness metrics of a model's loss over a dataset

Usage:
  flatness measure --model M --data X --labels Y --loss ce|mse|logistic [options]

Input (as flatness hvp):
  --model M            .safetensors (PyTorch nn.Sequential of Linear + ReLU/LeakyReLU) or .json
  --data X             .npy [N, features] or .csv;  --labels Y  .npy labels [N] or targets [N, outputs]
  --label-column C     CSV label column, by index or header name (default: last)
  --loss L             ce, mse or logistic
  --activation A       relu or leaky_relu when the model file does not say;  --negative-slope S (0.01)

What to measure:
  --metrics LIST       comma-separated, or "all" (default: spectrum,trace). Available:
${Object.entries(METRICS).map(([name, m]) => `                         ${name.padEnd(21)}${m.about}`).join("\n")}
  --top-k K            eigenpairs for spectrum / smallest / power (default 3)
  --trace-samples S    HVPs of the trace estimator (default 99; Hutch++ uses them in thirds)
  --trace-method T     hutch++ (default) or hutchinson
  --probe-samples S    probes of the diagonal and Frobenius estimators (default 64)
  --density-runs R     SLQ runs (default 10);  --density-steps S  Lanczos steps per run (default 80)
  --layers LIST        restrict the curvature metrics to these layers or tensors: 0,1 or 2.weight
  --epsilon E          epsilon-sharpness radius (default 1e-3)
  --volume-epsilon E   volume flatness loss tolerance (default 0.01);  --volume-rays R (default 64)
  --rho R              adaptive sharpness radius (default 0.1);  --sam-rho R  SAM radius (default 0.05)
  --m M                m of m-sharpness (default 128)
  --subspace-dim P     Keskar random subspace dimension (default 100)
  --seed N             seed of every stochastic metric (default 0): same seed, same device, same numbers

Output:
  --json               one JSON object: loss, gradientNorm, topEigenvalues (descending),
                       trace {estimate, stderr}, and one key per further metric; each with its cost
${MODEL_DATA_HELP}
${BACKEND_HELP}
  --quiet              no progress on stderr
  -h, --help           this help

Example:
  flatness measure --model net.safetensors --data x.npy --labels y.npy --loss ce --metrics spectrum,trace,adaptive --json
`;

export async function runMeasure(argv: string[], out: (s: string) => void, err: (s: string) => void): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      model: { type: "string" }, data: { type: "string" }, labels: { type: "string" }, loss: { type: "string" },
      "label-column": { type: "string" }, activation: { type: "string" }, "negative-slope": { type: "string" },
      metrics: { type: "string" }, "top-k": { type: "string" }, "trace-samples": { type: "string" },
      "trace-method": { type: "string" }, "probe-samples": { type: "string" }, "density-runs": { type: "string" },
      "density-steps": { type: "string" }, layers: { type: "string" }, epsilon: { type: "string" },
      "volume-epsilon": { type: "string" }, "volume-rays": { type: "string" }, rho: { type: "string" },
      "sam-rho": { type: "string" }, m: { type: "string" }, "subspace-dim": { type: "string" }, seed: { type: "string" },
      json: { type: "boolean" }, ...BACKEND_ARGS, ...MODEL_DATA_ARGS, quiet: { type: "boolean" }, help: { type: "boolean", short: "h" },
    },
    strict: true,
  });
  if (values.help) {
    out(MEASURE_HELP);
    return 0;
  }
  const loss = parseLoss(values.loss);
  const traceMethod = values["trace-method"] ?? "hutch++";
  if (traceMethod !== "hutch++" && traceMethod !== "hutchinson") throw new InputError(`--trace-method must be hutch++ or hutchinson, got '${traceMethod}'`);
  const metrics = parseMetricList(values.metrics);
  const options: MeasureOptions = {
    metrics,
    topK: numberOption("top-k", values["top-k"]),
    traceSamples: numberOption("trace-samples", values["trace-samples"]),
    traceMethod,
    probeSamples: numberOption("probe-samples", values["probe-samples"]),
    densityRuns: numberOption("density-runs", values["density-runs"]),
    densitySteps: numberOption("density-steps", values["density-steps"]),
    seed: numberOption("seed", values.seed),
    layers: values.layers?.split(",").map((s) => s.trim()).filter(Boolean),
    epsilon: numberOption("epsilon", values.epsilon),
    volumeEpsilon: numberOption("volume-epsilon", values["volume-epsilon"]),
    volumeRays: numberOption("volume-rays", values["volume-rays"]),
    rho: numberOption("rho", values.rho),
    samRho: numberOption("sam-rho", values["sam-rho"]),
    m: numberOption("m", values.m),
    subspaceDim: numberOption("subspace-dim", values["subspace-dim"]),
    onProgress: values.quiet ? undefined : progressPrinter(err),
  };
  const loaded = await loadModel(values.model, parseActivation(values.activation, values["negative-slope"]), values.architecture);
  const data = await loadDataset(values.data, values.labels, loss, loaded, values["label-column"], values);
  const spec = loaded.model.spec;
  const theta = loaded.model.theta;
  if (!values.quiet) err(`model ${values.model}: ${theta.length} parameters; ${data.n} samples; metrics ${metrics.join(", ")}`);

  const report = await withCliBackend(values, values.quiet ? null : err, async (backend) => {
    const objective = await backend.objective(spec, data, loss);
    try {
      return await measureOn(objective, theta, data, { ...options, backend });
    } finally {
      objective.dispose();
    }
  });
  if (values.json) out(JSON.stringify(report));
  else out(formatReport(report, spec, loss));
  return 0;
}

function measureOn<V>(objective: Objective<V>, theta: Float64Array, data: Dataset, options: MeasureOptions): Promise<MeasureReport> {
  return withVectors(objective, [theta], ([t]) => measureMetrics(objective, t, theta, data, options));
}

type Row = [string, string, string, string];

/** A model's shape for the summaries: "d0 -> d1 -> ..." for an MLP, "CxHxW -> <architecture text>" for a CNN. */
export function describeModel(spec: ModelSpec): string {
  if (isMlp(spec)) return [spec.layers[0].inFeatures, ...spec.layers.map(layerUnits)].join(" -> ");
  const first = spec.layers[0];
  const input = isConv(first) ? `${first.inChannels}x${first.inHeight}x${first.inWidth}` : `${first.inFeatures}`;
  return `${input} -> ${formatArchitecture(spec)}`;
}

/** The readable form: one row per reported quantity, with its uncertainty and cost. */
export function formatReport(report: MeasureReport, spec: ModelSpec, loss: LossKind): string {
  const r = report as Record<string, any>;
  const rows: Row[] = [];
  const f = (x: unknown) => (typeof x === "number" ? formatNumber(x) : String(x ?? "-"));
  const costOf = (c: any) => (c ? `${c.hvps} hvp, ${c.gradients} grad, ${c.forwards} fwd, ${formatNumber(Math.round(c.wallMs))} ms` : "");
  const add = (name: string, value: unknown, extra = "", cost?: unknown) => rows.push([name, f(value), extra, costOf(cost)]);
  if (r.spectrum) {
    const s = r.spectrum;
    s.eigenvalues.forEach((v: number, i: number) =>
      add(`eigenvalue ${i + 1} (top)`, v, `residual ${f(s.residuals[i])}${s.converged[i] ? "" : " NOT converged"}`, i === 0 ? s.cost : undefined)
    );
  }
  if (r.trace) add(`trace (${r.trace.method})`, r.trace.estimate, `± ${f(r.trace.stderr)}`, r.trace.cost);
  if (r.smallestEigenvalues) {
    const s = r.smallestEigenvalues;
    s.eigenvalues.forEach((v: number, i: number) =>
      add(`eigenvalue ${i + 1} (smallest)`, v, `residual ${f(s.residuals[i])}${s.converged[i] ? "" : " NOT converged"}`, i === 0 ? s.cost : undefined)
    );
  }
  if (r.powerIteration) {
    const s = r.powerIteration;
    s.eigenvalues.forEach((v: number, i: number) =>
      add(`eigenvalue ${i + 1} (power it.)`, v, `residual ${f(s.residuals[i])}${s.converged[i] ? "" : " NOT converged"}`, i === 0 ? s.cost : undefined)
    );
  }
  if (r.diagonal) {
    r.diagonal.perTensor.forEach((t: any, i: number) => add(`diagonal sum ${t.name}`, t.sum, `mean ${f(t.mean)}`, i === 0 ? r.diagonal.cost : undefined));
  }
  if (r.frobenius) add("||H||_F^2", r.frobenius.estimate, `± ${f(r.frobenius.stderr)}`, r.frobenius.cost);
  if (r.density) {
    const nodes = r.density.nodes.flat() as number[];
    add("density (SLQ)", `${r.density.runs} runs x ${r.density.steps} steps`, `nodes in [${f(Math.min(...nodes))}, ${f(Math.max(...nodes))}]`, r.density.cost);
  }
  if (r.perLayer) {
    for (const l of r.perLayer) add(`layer ${l.layer} block`, l.topEigenvalue, `trace ${f(l.trace)} ± ${f(l.traceStderr)}, ${l.parameters} params`, l.cost);
  }
  if (r.epsilonSharpness) {
    const e = r.epsilonSharpness;
    add(`eps-sharpness (Dinh, eps ${f(e.epsilon)})`, e.value, e.secondOrderEstimate !== null ? `2nd order ${f(e.secondOrderEstimate)}` : "", e.cost);
  }
  if (r.keskarSharpness) add(`Keskar sharpness (eps ${f(r.keskarSharpness.epsilon)})`, r.keskarSharpness.value, "", r.keskarSharpness.cost);
  if (r.keskarSubspaceSharpness) {
    const e = r.keskarSubspaceSharpness;
    add(`Keskar subspace (eps ${f(e.epsilon)})`, e.value, `p = ${e.subspaceDim}`, e.cost);
  }
  if (r.volumeFlatness) {
    const v = r.volumeFlatness;
    add(`log volume (eps ${f(v.epsilon)})`, v.logVolume, `± ${f(v.stderrLog)}, ${f(v.effectiveRays)} effective rays`, v.cost);
  }
  if (r.adaptiveSharpness) add(`adaptive sharpness (rho ${f(r.adaptiveSharpness.rho)})`, r.adaptiveSharpness.value, "worst case, l2", r.adaptiveSharpness.cost);
  if (r.adaptiveAverageSharpness) {
    const a = r.adaptiveAverageSharpness;
    add(`adaptive average (rho ${f(a.rho)})`, a.value, `± ${f(a.stderr)}`, a.cost);
  }
  if (r.samSharpness) add("SAM sharpness", r.samSharpness.value, "", r.samSharpness.cost);
  if (r.mSharpness) add(`m-sharpness (m ${r.mSharpness.m})`, r.mSharpness.value, `${r.mSharpness.subsets} subsets`, r.mSharpness.cost);
  if (r.fisherRaoNorm) add("Fisher-Rao norm", r.fisherRaoNorm.value, "", r.fisherRaoNorm.cost);
  if (r.pathNorm) add(`l${r.pathNorm.p} path norm`, r.pathNorm.value, "", r.pathNorm.cost);
  if (r.relativeFlatness) add("relative flatness", r.relativeFlatness.total, `± ${f(r.relativeFlatness.totalStderr)}`, r.relativeFlatness.cost);
  if (r.normalizedSharpness) add("normalized sharpness", r.normalizedSharpness.total, `per-entry ${f(r.normalizedSharpness.totalPerEntry)}`, r.normalizedSharpness.cost);
  if (r.pacBayes) add("PAC-Bayes 1/sigma'^2", r.pacBayes.flatness, `sigma' ${f(r.pacBayes.sigma)}`, r.pacBayes.cost);
  if (r.pacBayesMagnitude) add("PAC-Bayes mag. 1/sigma'^2", r.pacBayesMagnitude.flatness, `sigma' ${f(r.pacBayesMagnitude.sigma)}`, r.pacBayesMagnitude.cost);
  if (r.pacBayesDR) add("PAC-Bayes bound (Dziugaite-Roy)", r.pacBayesDR.bound, `error of Q ${f(r.pacBayesDR.empiricalErrorQ)}, KL ${f(r.pacBayesDR.kl)}`, r.pacBayesDR.cost);
  if (r.gradientNorms) {
    for (const l of r.gradientNorms.layers) add(`grad norm layer ${l.layer}`, l.norm, `weight ${f(l.weight)}, bias ${f(l.bias)}`, undefined);
  }
  if (r.inputGradients) add("input-gradient norm (mean)", r.inputGradients.mean, `max ${f(r.inputGradients.max)}`, r.inputGradients.cost);
  const nameWidth = Math.max(6, ...rows.map((r) => r[0].length));
  const detailWidth = Math.max(6, ...rows.map((r) => r[2].length));
  const widths = describeModel(spec);
  return [
    `model ${widths}, ${report.parameters} parameters; ${report.samples} samples; loss ${loss}; seed ${report.seed}` +
    (report.layers ? `; curvature restricted to ${report.layers.join(",")}` : ""),
    `loss ${f(report.loss)}   gradient norm ${f(report.gradientNorm)}`,
    "",
    table(["metric".padEnd(nameWidth), "value", "detail".padEnd(detailWidth), "cost"], rows.map(([a, b, c, d]) => [a.padEnd(nameWidth), b, c.padEnd(detailWidth), d])),
  ].join("\n");
}
