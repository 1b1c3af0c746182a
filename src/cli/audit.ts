/**
 * `flatness audit`: the invariance audit of src/audit/audit.ts on a model file and a dataset, as a
 * table, one JSON object, and an SVG heat map.
 */
import { parseArgs } from "node:util";
import { InputError } from "../errors.ts";
import { writeFileAtomic } from "../io/files.ts";
import { audit, DEFAULT_AUDIT_METRICS } from "../audit/audit.ts";
import { auditSvg, formatAudit } from "../audit/report.ts";
import { AUDIT_TRANSFORM_NAMES, AUDIT_TRANSFORMS, type AuditTransformName, DEFAULT_AUDIT_TRANSFORMS } from "../audit/transforms.ts";
import { parseMetricList } from "../metrics/suite.ts";
import { BACKEND_ARGS, BACKEND_HELP, numberOption, progressPrinter, withCliBackend } from "./engine.ts";
import { loadDataset, loadModel, MODEL_DATA_ARGS, MODEL_DATA_HELP, parseActivation, parseLoss } from "./load.ts";

export const AUDIT_HELP = `flatness audit: which flatness measures move under function-preserving transforms and
reparametrizations, beside proof that the function did not change (Dinh et al., ICML 2017)

Usage:
  flatness audit --model M --data X --labels Y --loss ce|mse|logistic [options]

Input (as flatness measure): --model, --data, --labels, --label-column, --loss, --activation, --negative-slope

Options:
  --transforms LIST    comma-separated or "all" (default ${DEFAULT_AUDIT_TRANSFORMS.join(",")}):
${Object.entries(AUDIT_TRANSFORMS).map(([name, about]) => `                         ${name.padEnd(13)}${about}`).join("\n")}
  --metrics LIST       metrics of flatness measure, or "all" (default ${DEFAULT_AUDIT_METRICS.join(",")})
  --factor A           transform strength a (default 4)
  --tolerance T        relative tolerance of the "invariant" verdict (default 1e-3); a stochastic
                       estimate that moved by more, but by less than 3 standard errors, is "within noise"
  --top-k K, --trace-samples S, --epsilon E, --rho R, --volume-epsilon E, --volume-rays R
                       as flatness measure
  --seed N             seed of every stochastic metric and of the neuron factors (default 0)
  --json               print the whole report as one JSON object
  --plot FILE.svg      write a heat map of log10(after / before), metric x transform
${MODEL_DATA_HELP}
${BACKEND_HELP}
  --quiet              no progress on stderr
  -h, --help           this help

Each transform row starts with the function check: the largest output difference over the data
and the loss before and after. Metrics that read theta's layout (path norm, relative flatness, ...)
are n/a in eta coordinates (weight-norm, radial).

Example:
  flatness audit --model net.safetensors --data x.npy --labels y.npy --loss ce --transforms alpha,neuron,zca --plot audit.svg
`;

function parseTransforms(list: string | undefined): AuditTransformName[] {
  if (list === undefined || list.trim() === "") return [...DEFAULT_AUDIT_TRANSFORMS];
  const out = new Set<AuditTransformName>();
  for (const name of list.split(",").map((s) => s.trim()).filter(Boolean)) {
    if (name === "all") AUDIT_TRANSFORM_NAMES.forEach((t) => out.add(t));
    else if ((AUDIT_TRANSFORM_NAMES as string[]).includes(name)) out.add(name as AuditTransformName);
    else throw new InputError(`unknown transform '${name}': choose from ${AUDIT_TRANSFORM_NAMES.join(", ")} or all`);
  }
  return [...out];
}

export async function runAudit(argv: string[], out: (s: string) => void, err: (s: string) => void): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      model: { type: "string" }, data: { type: "string" }, labels: { type: "string" }, loss: { type: "string" },
      "label-column": { type: "string" }, activation: { type: "string" }, "negative-slope": { type: "string" },
      transforms: { type: "string" }, metrics: { type: "string" }, factor: { type: "string" }, tolerance: { type: "string" },
      "top-k": { type: "string" }, "trace-samples": { type: "string" }, epsilon: { type: "string" }, rho: { type: "string" },
      "volume-epsilon": { type: "string" }, "volume-rays": { type: "string" }, seed: { type: "string" },
      json: { type: "boolean" }, plot: { type: "string" }, ...BACKEND_ARGS, ...MODEL_DATA_ARGS, quiet: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
    strict: true,
  });
  if (values.help) {
    out(AUDIT_HELP);
    return 0;
  }
  const loss = parseLoss(values.loss);
  const transforms = parseTransforms(values.transforms);
  const metrics = values.metrics ? parseMetricList(values.metrics) : [...DEFAULT_AUDIT_METRICS];
  if (values.plot !== undefined && !/\.svg$/i.test(values.plot)) throw new InputError(`--plot writes SVG: give a path ending in .svg, got ${values.plot}`);
  const loaded = await loadModel(values.model, parseActivation(values.activation, values["negative-slope"]), values.architecture);
  const data = await loadDataset(values.data, values.labels, loss, loaded, values["label-column"], values);
  const base = { spec: loaded.model.spec, theta: loaded.model.theta, data, loss };
  if (!values.quiet) err(`model ${values.model}: ${base.theta.length} parameters; ${data.n} samples; transforms ${transforms.join(", ")}`);
  const report = await withCliBackend(values, values.quiet ? null : err, (backend) =>
    audit(base, backend, {
      transforms,
      metrics,
      factor: numberOption("factor", values.factor),
      tolerance: numberOption("tolerance", values.tolerance),
      seed: numberOption("seed", values.seed),
      measure: {
        topK: numberOption("top-k", values["top-k"]),
        traceSamples: numberOption("trace-samples", values["trace-samples"]),
        epsilon: numberOption("epsilon", values.epsilon),
        rho: numberOption("rho", values.rho),
        volumeEpsilon: numberOption("volume-epsilon", values["volume-epsilon"]),
        volumeRays: numberOption("volume-rays", values["volume-rays"]),
      },
      onProgress: values.quiet ? undefined : progressPrinter(err),
    }));
  if (values.plot) {
    await writeFileAtomic(values.plot, new TextEncoder().encode(auditSvg(report)));
    if (!values.quiet) err(`wrote ${values.plot}`);
  }
  out(values.json ? JSON.stringify(report) : formatAudit(report));
  return 0;
}
