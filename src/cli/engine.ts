/** Shared by the commands that measure: numeric options, stderr progress, and the engine choice. */
import type { Dataset } from "../data.ts";
import { InputError } from "../errors.ts";
import { GpuContext } from "../gpu/context.ts";
import { GpuObjective } from "../gpu/objective.ts";
import type { LossKind, ModelSpec } from "../model.ts";
import type { Objective } from "../objective.ts";
import { ReferenceObjective } from "../reference/engine.ts";

/** --name value as a number (undefined when absent); a clear error for anything else. */
export function numberOption(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const x = Number(value);
  if (value.trim() === "" || !Number.isFinite(x)) throw new InputError(`--${name} must be a number, got '${value}'`);
  return x;
}

/** A stderr progress line per stage, at most every 2 s (plus each stage's first and last). */
export function progressPrinter(err: (s: string) => void) {
  let last = 0;
  let lastStage = "";
  return (stage: string, fraction: number, message: string) => {
    const now = Date.now();
    if (stage !== lastStage || fraction >= 1 || now - last > 2000) {
      err(`[${stage}] ${(100 * Math.min(1, fraction)).toFixed(0)}% ${message}`);
      last = now;
      lastStage = stage;
    }
  };
}

export type MakeObjective = (spec: ModelSpec, data: Dataset) => Promise<Objective<unknown>>;

/**
 * Runs `work` with an objective factory: the float64 reference with `cpu`, else the WebGPU engine
 * on one context (created here, destroyed after, and its adapter reported through `log`).
 */
export async function withEngine<T>(cpu: boolean, loss: LossKind, log: ((s: string) => void) | null, work: (make: MakeObjective) => Promise<T>): Promise<T> {
  if (cpu) return await work((spec, data) => Promise.resolve(new ReferenceObjective(spec, data, loss) as Objective<unknown>));
  const ctx = await GpuContext.create();
  log?.(`adapter: ${ctx.describe()}`);
  try {
    return await work(async (spec, data) => (await GpuObjective.create(ctx, spec, data, loss)) as Objective<unknown>);
  } finally {
    ctx.destroy();
  }
}
