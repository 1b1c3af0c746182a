/**
 * Typed errors. Every failure a user can cause or meet (bad files, bad shapes, missing WebGPU,
 * shader compile errors, validation errors, device loss) surfaces as one of these, with a message
 * that names the file, tensor or shape at fault.
 */

/** Base class: everything this toolkit throws on purpose. */
export class FlatnessError extends Error {
  /** `message` is the error's text; `options.cause` the underlying error, if any. */
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** Input that cannot be used: wrong shape, NaN/Inf, labels out of range, empty data. */
export class InputError extends FlatnessError {}

/** A file that cannot be read or parsed; the message starts with the path. */
export class FileFormatError extends FlatnessError {
  /** `path` is the file that failed (it starts the message); `problem` says what is wrong with it. */
  constructor(readonly path: string, problem: string, options?: { cause?: unknown }) {
    super(`${path}: ${problem}`, options);
  }
}

/** No WebGPU in this runtime, or no adapter could be had. */
export class WebGPUUnavailableError extends FlatnessError {}

/** A request the device's limits cannot hold (names the limit, the asked and the allowed value). */
export class DeviceLimitError extends FlatnessError {}

/** WGSL that did not compile; the message carries line:col of each error. */
export class ShaderCompileError extends FlatnessError {}

/** A WebGPU validation or out-of-memory error caught in an error scope. */
export class GpuValidationError extends FlatnessError {}

/** The device was lost (driver reset, destroyed); the context cannot be used any more. */
export class DeviceLostError extends FlatnessError {}

/** Throws InputError if any entry of `values` is NaN or infinite, naming the tensor and index. */
export function assertFinite(name: string, values: ArrayLike<number>): void {
  for (let i = 0; i < values.length; i++) {
    if (!Number.isFinite(values[i])) {
      throw new InputError(`${name} has a non-finite value (${values[i]}) at flat index ${i}`);
    }
  }
}
