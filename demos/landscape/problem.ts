/**
 * The loss-landscape page's problem and settings, with no DOM or WebGPU so the tests import it in
 * Node: the seeded teacher-student net the page slices by default, the files that reproduce it on
 * the command line (model JSON, data and targets .npy), the settings -> computeLandscape options,
 * and the equivalent `flatness landscape` command.
 */
import type { Dataset } from "../../src/data.ts";
import { teacherStudent } from "../../src/datasets.ts";
import { writeModel } from "../../src/io/modelFile.ts";
import { writeNpy } from "../../src/io/npy.ts";
import type { BiasPolicy, DirectionKind } from "../../src/landscape/directions.ts";
import type { LandscapeOptions } from "../../src/landscape/landscape.ts";
import { type LossKind, type ModelSpec, outputWidth, parameterLayout } from "../../src/model.ts";

/**
 * Teacher-student regression: x ~ N(0, I_4), targets = teacher(x) + 0.05 N(0, 1); theta is the
 * teacher itself, a near-minimum of its own data (the noise keeps L(theta) > 0). Small enough for
 * software WebGPU: 369 parameters, 128 samples.
 */
export const PROBLEM = { widths: [4, 16, 16, 1], samples: 128, noise: 0.05, seed: 3 } as const;

export interface LandscapeProblem {
  spec: ModelSpec;
  theta: Float64Array;
  data: Dataset;
  loss: LossKind;
  description: string;
}

export function landscapeProblem(): LandscapeProblem {
  const t = teacherStudent({ samples: PROBLEM.samples, widths: [...PROBLEM.widths], noise: PROBLEM.noise, seed: PROBLEM.seed });
  return {
    spec: t.teacher!.spec,
    theta: t.teacher!.theta,
    data: t.data,
    loss: "mse",
    description: `${t.description}, seed ${PROBLEM.seed}; θ = the teacher (${t.teacher!.theta.length} parameters)`,
  };
}

/** The problem as files: the model (JSON, float64 exactly), the inputs and the targets (.npy). */
export function problemFiles(p: LandscapeProblem): { name: string; bytes: Uint8Array }[] {
  const layout = parameterLayout(p.spec);
  const model = writeModel({ model: { spec: p.spec, theta: p.theta }, format: "json", tensorNames: layout.views.map((v) => v.name), metadata: { source: "flatness demos/landscape/" } });
  const outputs = outputWidth(p.spec);
  return [
    { name: "landscape-model.json", bytes: model },
    { name: "landscape-x.npy", bytes: writeNpy(p.data.x, [p.data.n, p.data.features]) },
    { name: "landscape-y.npy", bytes: writeNpy(p.data.targets!, [p.data.n, outputs]) },
  ];
}

export interface LandscapeSettings {
  directions: DirectionKind;
  dims: 1 | 2;
  from: number;
  to: number;
  steps: number;
  seed: number;
  bias: BiasPolicy;
}

export const DEFAULT_SETTINGS: LandscapeSettings = { directions: "filter", dims: 2, from: -1, to: 1, steps: 25, seed: 0, bias: "ignore" };

/** The computeLandscape options of the settings (the same axis on both dimensions). */
export function landscapeOptions(s: LandscapeSettings): LandscapeOptions {
  const axis = { from: s.from, to: s.to, steps: s.steps };
  return { directions: s.directions, dims: s.dims, axes: s.dims === 2 ? [axis, axis] : [axis], seed: s.seed, bias: s.bias };
}

/** The command line that computes the same slice from the downloaded files. */
export function cliCommand(s: LandscapeSettings): string {
  return [
    "npx flatness landscape --model landscape-model.json --data landscape-x.npy --labels landscape-y.npy --loss mse",
    `--directions ${s.directions} --dims ${s.dims} --range ${s.from}:${s.to} --steps ${s.steps} --seed ${s.seed}`,
    s.bias !== "ignore" ? `--bias ${s.bias}` : "",
    "--json",
  ].filter(Boolean).join(" ");
}
