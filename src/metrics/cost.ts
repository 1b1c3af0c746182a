/**
 * What a metric cost: the passes it ran on its objective and its wall time. Every metric result
 * carries one, so users can compare estimators at equal cost.
 */
import type { Objective, PassCounters } from "../objective.ts";

/** What a metric cost on its objective: passes run and wall time. */
export interface MetricCost {
  /** Hessian-vector products (single, plus directions of block products). */
  hvps: number;
  /** Gradient passes. */
  gradients: number;
  /** Loss-only forward passes. */
  forwards: number;
  /** Wall-clock time in milliseconds. */
  wallMs: number;
}

/** Progress callback for long runs: fraction in [0, 1] and a short message. */
export type Progress = (fraction: number, message: string) => void;

function snapshot(c: PassCounters): PassCounters {
  return { ...c };
}

/** Runs `work` and returns its result with the passes it made on `objective` and the elapsed time. */
export async function withCost<T, V>(objective: Objective<V>, work: () => Promise<T>): Promise<{ result: T; cost: MetricCost }> {
  const before = snapshot(objective.counters);
  const t0 = performance.now();
  const result = await work();
  const after = objective.counters;
  return {
    result,
    cost: {
      hvps: after.hvp - before.hvp + after.blockHvpDirections - before.blockHvpDirections,
      gradients: after.gradient - before.gradient,
      forwards: after.forward - before.forward,
      wallMs: performance.now() - t0,
    },
  };
}
