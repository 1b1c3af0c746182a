/**
 * `flatness hvp`: one exact Hessian-vector product (and the gradient) of a model file over a
 * dataset, written with the model's own tensor names and shapes.
 */
import { parseArgs } from "node:util";
import { readFileBytes, writeFileAtomic } from "../io/files.ts";
import { checkModelOutputPath, readParameterVector, writeParameterVector } from "../io/modelFile.ts";
import { InputError } from "../errors.ts";
import type { Objective } from "../objective.ts";
import { BACKEND_ARGS, BACKEND_HELP, withCliBackend } from "./engine.ts";
import { loadDataset, loadModel, MODEL_DATA_ARGS, MODEL_DATA_HELP, parseActivation, parseLoss } from "./load.ts";
import { describeModel } from "./measure.ts";

export const HVP_HELP = `flatness hvp: an exact Hessian-vector product H v and the gradient of a model's loss

Usage:
  flatness hvp --model M --data X --labels Y --loss ce|mse|logistic --vector V --out HV [options]

Options:
  --model M          model file: .safetensors (PyTorch nn.Sequential of Linear + ReLU/LeakyReLU) or .json
  --data X           features: .npy [N, features] (float32/float64) or .csv
  --labels Y         .npy: integer labels [N] (ce, logistic) or float targets [N, outputs] (mse);
                     optional for a CSV whose label column is used instead (--label-column)
  --label-column C   CSV label column, by index or header name (default: last)
  --loss L           ce (softmax cross-entropy), mse (mean squared error) or logistic (binary)
  --vector V         the direction v: a file shaped like the model (same tensor names and shapes)
  --out HV           where to write H v, in the model's format and tensor names
  --grad-out G       also write the gradient there
  --activation A     relu or leaky_relu, when the model file does not say (default relu)
  --negative-slope S slope of leaky_relu (default 0.01)
${MODEL_DATA_HELP}
${BACKEND_HELP}
  --json             print {"loss", "gradientNorm", "vHv"} to stdout
  -h, --help         this help

Example:
  flatness hvp --model net.safetensors --data x.npy --labels y.npy --loss ce --vector v.safetensors --out hv.safetensors --json
`;

export async function runHvp(argv: string[], out: (s: string) => void, err: (s: string) => void): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      model: { type: "string" }, data: { type: "string" }, labels: { type: "string" }, loss: { type: "string" },
      vector: { type: "string" }, out: { type: "string" }, "grad-out": { type: "string" }, activation: { type: "string" },
      "negative-slope": { type: "string" }, "label-column": { type: "string" }, ...BACKEND_ARGS, ...MODEL_DATA_ARGS, json: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
    strict: true,
  });
  if (values.help) {
    out(HVP_HELP);
    return 0;
  }
  const loss = parseLoss(values.loss);
  if (!values.vector) throw new InputError("--vector is required (a file shaped like the model)");
  if (!values.out) throw new InputError("--out is required (where to write H v)");
  checkModelOutputPath(values.out, "--out");
  if (values["grad-out"]) checkModelOutputPath(values["grad-out"], "--grad-out");
  const loaded = await loadModel(values.model, parseActivation(values.activation, values["negative-slope"]), values.architecture);
  const data = await loadDataset(values.data, values.labels, loss, loaded, values["label-column"], values);
  const v = readParameterVector(await readFileBytes(values.vector), values.vector, loaded);
  err(`model ${values.model}: ${describeModel(loaded.model.spec)}, ${v.length} parameters; ${data.n} samples`);

  const result = await withCliBackend(values, err, async (backend) => {
    const objective = await backend.objective(loaded.model.spec, data, loss);
    try {
      return await compute(objective, loaded.model.theta, v);
    } finally {
      objective.dispose();
    }
  });
  const gradientNorm = Math.sqrt(result.gradient.reduce((s, x) => s + x * x, 0));
  const vHv = result.hv.reduce((s, x, i) => s + x * v[i], 0);
  await writeFileAtomic(values.out, writeParameterVector(loaded, result.hv));
  if (values["grad-out"]) await writeFileAtomic(values["grad-out"], writeParameterVector(loaded, result.gradient));
  if (values.json) out(JSON.stringify({ loss: result.loss, gradientNorm, vHv }));
  else out(`loss ${result.loss}\ngradient norm ${gradientNorm}\nv·Hv ${vHv}\nwrote ${values.out}${values["grad-out"] ? ` and ${values["grad-out"]}` : ""}`);
  return 0;
}

async function compute<V>(objective: Objective<V>, theta: Float64Array, v: Float64Array) {
  const s = objective.space;
  const t = s.fromArray(theta);
  const vv = s.fromArray(v);
  const g = s.zeros();
  const hv = s.zeros();
  try {
    const loss = await objective.gradient(t, g);
    await objective.hvp(t, vv, hv);
    return { loss, gradient: await s.toArray(g), hv: await s.toArray(hv) };
  } finally {
    for (const x of [t, vv, g, hv]) s.dispose(x);
  }
}
