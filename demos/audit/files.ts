/**
 * The audit page's inputs, with no DOM (the tests import it in Node): a model and a dataset read
 * from bytes (the browser's File objects) exactly as `flatness audit` reads them from paths
 * (src/cli/load.ts, which reads the file system), a seeded example to start from, the audit
 * options, and the equivalent command line.
 */
import { gaussianMixture } from "../../src/datasets.ts";
import { initParameters } from "../../src/init.ts";
import { type LoadedModel, readModel, writeModel } from "../../src/io/modelFile.ts";
import { writeNpy } from "../../src/io/npy.ts";
import type { AuditOptions } from "../../src/audit/audit.ts";
import type { AuditTransformName } from "../../src/audit/transforms.ts";
import type { MetricName } from "../../src/metrics/suite.ts";
import { type Activation, type LossKind, mlpSpec, parameterLayout } from "../../src/model.ts";

import type { InputFile } from "../../src/io/dataset.ts";
export type { InputFile };
export { datasetFromBytes as loadDatasetFiles } from "../../src/io/dataset.ts";

/** A model file (.safetensors, .onnx or .json); `activation` where the file does not say. */
export function loadModelFile(file: InputFile, activation?: Activation): LoadedModel {
  return readModel(file.bytes, file.name, activation ? { activation } : undefined);
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

export function cliAuditCommand(s: AuditSettings, files: { model: string; data: string; labels: string | null; labelColumn?: string }, loss: LossKind): string {
  const quote = (p: string) => (/^[\w.\-/]+$/.test(p) ? p : `'${p.replace(/'/g, `'\\''`)}'`);
  return [
    `npx flatness audit --model ${quote(files.model)} --data ${quote(files.data)}`,
    files.labels ? `--labels ${quote(files.labels)}` : files.labelColumn ? `--label-column ${quote(files.labelColumn)}` : "",
    `--loss ${loss} --transforms ${s.transforms.join(",")} --metrics ${s.metrics.join(",")}`,
    `--factor ${s.factor} --tolerance ${s.tolerance} --seed ${s.seed} --top-k ${s.topK} --trace-samples ${s.traceSamples} --json`,
  ].filter(Boolean).join(" ");
}
