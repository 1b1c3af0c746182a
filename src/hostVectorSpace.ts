/**
 * Dense float64 vectors on the host: the vector space of the float64 reference engine, and of the
 * small host-side spaces the metrics build (random subspaces, reparametrized coordinates).
 */
import { InputError } from "./errors.ts";
import type { VectorSpace } from "./objective.ts";

/** Dense float64 vectors on the host (unit roundoff 2^-52). */
export class HostVectorSpace implements VectorSpace<Float64Array> {
  readonly epsilon = 2 ** -52;
  /** A space of `dim`-entry Float64Array vectors. */
  constructor(readonly dim: number) {}
  zeros(): Float64Array {
    return new Float64Array(this.dim);
  }
  /** A copy of `values` as a Float64Array; throws InputError unless it has dim entries. */
  fromArray(values: ArrayLike<number>): Float64Array {
    this.checkLength(values.length);
    return Float64Array.from(values);
  }
  toArray(v: Float64Array): Promise<Float64Array> {
    return Promise.resolve(Float64Array.from(v));
  }
  write(v: Float64Array, values: ArrayLike<number>): void {
    this.checkLength(values.length);
    v.set(values);
  }
  /** a·b, summed in index order. */
  dot(a: Float64Array, b: Float64Array): Promise<number> {
    let s = 0;
    for (let i = 0; i < a.length; i++) s += a[i] * b[i];
    return Promise.resolve(s);
  }
  async dots(xs: Float64Array[], y: Float64Array): Promise<number[]> {
    return await Promise.all(xs.map((x) => this.dot(x, y)));
  }
  axpy(alpha: number, x: Float64Array, y: Float64Array): void {
    for (let i = 0; i < y.length; i++) y[i] += alpha * x[i];
  }
  scale(alpha: number, x: Float64Array): void {
    for (let i = 0; i < x.length; i++) x[i] *= alpha;
  }
  copy(src: Float64Array, dst: Float64Array): void {
    dst.set(src);
  }
  multiply(x: Float64Array, y: Float64Array): void {
    for (let i = 0; i < y.length; i++) y[i] *= x[i];
  }
  linearCombination(alpha: number, x: Float64Array, beta: number, y: Float64Array): void {
    for (let i = 0; i < y.length; i++) y[i] = alpha * x[i] + beta * y[i];
  }
  /** Nothing to release: host arrays are garbage-collected. */
  dispose(_v: Float64Array): void {}
  /** Throws InputError unless n equals dim. */
  private checkLength(n: number): void {
    if (n !== this.dim) throw new InputError(`vector has ${n} entries, the parameter space has ${this.dim}`);
  }
}
