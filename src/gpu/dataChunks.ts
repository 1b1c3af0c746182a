/**
 * A dataset uploaded to the GPU in chunks of at most `chunkRows` samples, processed in a fixed
 * order (so sums over chunks are deterministic): features x [rows, d] and targets (mse: floats
 * [rows, C]; ce / logistic: the integer labels as floats [rows]). Shared by GpuObjective and the
 * landscape's batched loss.
 */
import type { Dataset } from "../data.ts";
import { type LossKind, type ModelSpec, outputWidth } from "../model.ts";

export interface DataChunk {
  start: number;
  rows: number;
  x: GPUBuffer;
  targets: GPUBuffer;
}

/** Uploads `data` chunk by chunk into buffers made by `buffer(label, floats)` (the caller owns them). */
export function uploadDataChunks(
  queue: GPUQueue,
  spec: ModelSpec,
  data: Dataset,
  lossKind: LossKind,
  chunkRows: number,
  buffer: (label: string, floats: number) => GPUBuffer,
): DataChunk[] {
  const d = data.features;
  const c = outputWidth(spec);
  const chunks: DataChunk[] = [];
  for (let start = 0; start < data.n; start += chunkRows) {
    const rows = Math.min(chunkRows, data.n - start);
    const x = buffer(`x[${start}:${start + rows}]x${d}`, rows * d);
    queue.writeBuffer(x, 0, data.x.buffer as ArrayBuffer, data.x.byteOffset + start * d * 4, rows * d * 4);
    const t = lossKind === "mse" ? data.targets!.subarray(start * c, (start + rows) * c) : Float32Array.from(data.labels!.subarray(start, start + rows));
    const targets = buffer(`targets[${start}:${start + rows}]`, t.length);
    queue.writeBuffer(targets, 0, t.buffer as ArrayBuffer, t.byteOffset, t.byteLength);
    chunks.push({ start, rows, x, targets });
  }
  return chunks;
}
