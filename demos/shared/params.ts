/// <reference lib="dom" />
/**
 * The page's query string: numbers and choices checked against their limits (a bad value throws
 * with the parameter's name), and the demos' problem it asks for (problemFromQuery). Tests use it
 * to keep runs short; shared links use it to restore a page.
 */
import { DEFAULT_PROBLEM, type DemoProblem } from "./problem.ts";

/** The page's query parameters (e.g. ?epochs=5&samples=100 for fast tests). */
export function queryParams(): URLSearchParams {
  return new URLSearchParams(location.search);
}

/**
 * A number from the query string, or `fallback` when absent; a present but bad value (not a
 * number, outside [min, max], not an integer when `integer`) throws with the parameter's name.
 */
export function numberParam(name: string, fallback: number, limits: { min?: number; max?: number; integer?: boolean } = {}): number {
  const raw = queryParams().get(name);
  if (raw === null || raw === "") return fallback;
  const v = Number(raw);
  const { min = -Infinity, max = Infinity, integer = false } = limits;
  if (!Number.isFinite(v) || v < min || v > max || (integer && !Number.isInteger(v))) {
    throw new RangeError(`query parameter ${name}=${raw}: expected ${integer ? "an integer" : "a number"} in [${min}, ${max}]`);
  }
  return v;
}

/** A string from the query string, one of `allowed`, or `fallback` when absent. */
export function choiceParam<T extends string>(name: string, fallback: T, allowed: readonly T[]): T {
  const raw = queryParams().get(name);
  if (raw === null || raw === "") return fallback;
  if (!(allowed as readonly string[]).includes(raw)) throw new RangeError(`query parameter ${name}=${raw}: expected one of ${allowed.join(", ")}`);
  return raw as T;
}

/**
 * `defaults` overridden by the query string: ?dataset=spirals|mixture&samples=N&hidden=16,16
 * &epochs=E&batch=B&lr=R&seed=S (tests use it to keep runs short).
 */
export function problemFromQuery(defaults: DemoProblem = DEFAULT_PROBLEM): DemoProblem {
  const dataset = choiceParam("dataset", defaults.dataset, ["spirals", "mixture"] as const);
  const classes = dataset === "spirals" ? 2 : 3;
  const hiddenRaw = queryParams().get("hidden");
  let hidden = defaults.widths.slice(1, -1);
  if (hiddenRaw) {
    hidden = hiddenRaw.split(",").map(Number);
    if (hidden.length < 1 || !hidden.every((w) => Number.isInteger(w) && w >= 1 && w <= 512)) {
      throw new RangeError(`query parameter hidden=${hiddenRaw}: expected widths like 16,16`);
    }
  }
  return {
    dataset,
    samples: numberParam("samples", defaults.samples, { min: 10, max: 100_000, integer: true }),
    widths: [2, ...hidden, classes],
    optimizer: choiceParam("optimizer", defaults.optimizer, ["adam", "sgd"] as const),
    lr: numberParam("lr", defaults.lr, { min: 1e-6, max: 10 }),
    batchSize: numberParam("batch", defaults.batchSize, { min: 1, max: 100_000, integer: true }),
    epochs: numberParam("epochs", defaults.epochs, { min: 0, max: 100_000, integer: true }),
    seed: numberParam("seed", defaults.seed, { min: 0, max: 2 ** 31 - 1, integer: true }),
    testFraction: defaults.testFraction,
  };
}
