/**
 * Progress and cancellation for the landscape engine without changing its numbers:
 *  - ChunkedBatchLoss hands a perturbation batch to the evaluator in chunks of points, reporting
 *    progress and yielding to the browser between chunks (each point's loss does not depend on the
 *    other points of its block, so the values are those of one big call);
 *  - ProgressObjective counts the Hessian-vector products of the eigen directions' Lanczos and lets
 *    a cancelled task stop it at the next product.
 */
import type { BatchLoss, PerturbationBatch } from "../../src/landscape/batchLoss.ts";
import { checkBatch } from "../../src/landscape/batchLoss.ts";
import type { LossKind, ModelSpec } from "../../src/model.ts";
import type { Objective, PassCounters, VectorSpace } from "../../src/objective.ts";

export interface ProgressSink {
  /** fraction in [0, 1] (NaN: unknown); throws to cancel. */
  progress(fraction: number, message?: string): void;
}

export class ChunkedBatchLoss implements BatchLoss {
  constructor(
    private readonly inner: BatchLoss,
    private readonly sink: ProgressSink,
    private readonly pause: () => Promise<void>,
    private readonly chunk = 64,
  ) {}

  get dim(): number {
    return this.inner.dim;
  }
  get sampleCount(): number {
    return this.inner.sampleCount;
  }
  get lossKind(): LossKind {
    return this.inner.lossKind;
  }
  get evaluated(): number {
    return this.inner.evaluated;
  }

  async losses(batch: PerturbationBatch): Promise<Float64Array> {
    const P = checkBatch(batch, this.dim);
    const J = batch.basis.length;
    if (J === 0) return await this.inner.losses(batch);
    const out = new Float64Array(P);
    // About 20 progress steps, and never fewer than `chunk` points per call.
    const step = Math.max(this.chunk, Math.ceil(P / 20));
    for (let start = 0; start < P; start += step) {
      this.sink.progress(start / P, `${start} of ${P} parameter vectors evaluated`);
      await this.pause();
      const end = Math.min(P, start + step);
      const part = await this.inner.losses({ base: batch.base, basis: batch.basis, coefficients: batch.coefficients.subarray(start * J, end * J) });
      out.set(part, start);
    }
    this.sink.progress(1, `${P} parameter vectors evaluated`);
    return out;
  }

  dispose(): void {
    // The inner evaluator belongs to the caller.
  }
}

export class ProgressObjective<V> implements Objective<V> {
  private products = 0;
  constructor(private readonly inner: Objective<V>, private readonly sink: ProgressSink) {}

  get spec(): ModelSpec {
    return this.inner.spec;
  }
  get lossKind(): LossKind {
    return this.inner.lossKind;
  }
  get sampleCount(): number {
    return this.inner.sampleCount;
  }
  get space(): VectorSpace<V> {
    return this.inner.space;
  }
  get counters(): PassCounters {
    return this.inner.counters;
  }
  private tick(n: number) {
    this.products += n;
    this.sink.progress(NaN, `Lanczos for the top eigenvectors: ${this.products} Hessian-vector products`);
  }
  loss(theta: V): Promise<number> {
    return this.inner.loss(theta);
  }
  gradient(theta: V, out: V): Promise<number> {
    return this.inner.gradient(theta, out);
  }
  hvp(theta: V, v: V, out: V): Promise<void> {
    this.tick(1);
    return this.inner.hvp(theta, v, out);
  }
  hvpBlock(theta: V, vs: V[], outs: V[]): Promise<void> {
    this.tick(vs.length);
    return this.inner.hvpBlock(theta, vs, outs);
  }
  outputs(theta: V): Promise<Float64Array> {
    return this.inner.outputs(theta);
  }
  dispose(): void {
    // The inner objective belongs to the caller.
  }
}
