/**
 * safetensors files (https://github.com/huggingface/safetensors):
 *
 *   header size N: u64 little-endian | N bytes of UTF-8 JSON | data buffer
 *
 * The JSON maps each tensor name to {"dtype", "shape", "data_offsets": [begin, end]} (offsets
 * relative to the data buffer) plus an optional "__metadata__" map of string to string.
 * Floating-point tensors are read: F32 and F64 as they are, F16 and BF16 widened to float32.
 * Every offset is checked against the buffer and the shape before any byte is touched, so a
 * corrupt or hostile file fails with a message instead of garbage or a crash.
 */
import { FileFormatError } from "../errors.ts";
import {
  bfloat16ToFloat32,
  copyElements,
  float16ToFloat32,
  formatShape,
  littleEndianBytes,
  shapeSize,
} from "./binary.ts";

/** One tensor of a safetensors file, decoded. */
export interface SafetensorsTensor {
  /** The dtype as written in the file ("F32", "F64", "F16", "BF16"). */
  dtype: string;
  /** Tensor shape; [] for a scalar. */
  shape: number[];
  /** F64 stays Float64Array; F32, F16 and BF16 become Float32Array. */
  data: Float32Array | Float64Array;
}

/** A parsed safetensors file. */
export interface SafetensorsFile {
  /** Tensors in the order their data lies in the file. */
  tensors: Map<string, SafetensorsTensor>;
  /** The `__metadata__` string map ({} when absent). */
  metadata: Record<string, string>;
}

/** Tensors to write; Float64Array data is written as F64, Float32Array as F32. */
export interface SafetensorsInput {
  /** Tensor name (the file's key). */
  name: string;
  /** Tensor shape; its product must equal data.length. */
  shape: number[];
  /** The elements, row-major. */
  data: Float32Array | Float64Array;
}

/** The Rust crate's limit (MAX_HEADER_SIZE); anything bigger is corruption, not a real header. */
const MAX_HEADER_SIZE = 100_000_000;

const DTYPE_SIZE: Record<string, number> = { F32: 4, F64: 8, F16: 2, BF16: 2 };

/** Every dtype the format defines, so unsupported ones can be told apart from garbage. */
const KNOWN_DTYPES = new Set([
  "BOOL", "U8", "I8", "U16", "I16", "U32", "I32", "U64", "I64", "F16", "BF16", "F32", "F64",
  "F8_E4M3", "F8_E5M2", "F8_E8M0", "F4", "F6_E2M3", "F6_E3M2", "C64",
]);

/** Parses a safetensors file; every problem throws FileFormatError naming `path`. */
export function parseSafetensors(bytes: Uint8Array, path: string): SafetensorsFile {
  const fail: (problem: string) => never = (problem) => {
    throw new FileFormatError(path, problem);
  };
  if (bytes.length === 0) fail("file is empty");
  if (bytes.length < 8) fail(`file is truncated: ${bytes.length} bytes, too short for the 8-byte header size`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const low = view.getUint32(0, true);
  const high = view.getUint32(4, true);
  const headerSize = high * 2 ** 32 + low;
  if (high !== 0 || headerSize > MAX_HEADER_SIZE) {
    fail(`header size ${headerSize} is not plausible (limit ${MAX_HEADER_SIZE}): not a safetensors file?`);
  }
  if (8 + headerSize > bytes.length) {
    fail(`header size ${headerSize} runs past the end of the file (${bytes.length} bytes): file truncated?`);
  }
  let json: unknown;
  try {
    const text = new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(8, 8 + headerSize));
    if (!text.startsWith("{")) fail("header is not a JSON object: not a safetensors file?");
    json = JSON.parse(text);
  } catch (e) {
    if (e instanceof FileFormatError) throw e;
    fail(`header is not valid JSON: ${(e as Error).message}`);
  }
  if (json === null || typeof json !== "object" || Array.isArray(json)) fail("header is not a JSON object");
  const header = json as Record<string, unknown>;

  const metadata: Record<string, string> = {};
  if ("__metadata__" in header) {
    const m = header.__metadata__;
    if (m === null || typeof m !== "object" || Array.isArray(m)) fail("__metadata__ is not an object of strings");
    for (const [k, v] of Object.entries(m as object)) {
      if (typeof v !== "string") fail(`__metadata__ value '${k}' is not a string`);
      metadata[k] = v as string;
    }
  }

  const dataStart = 8 + headerSize;
  const dataLength = bytes.length - dataStart;
  const entries: { name: string; dtype: string; shape: number[]; begin: number; end: number }[] = [];
  for (const [name, info] of Object.entries(header)) {
    if (name === "__metadata__") continue;
    const t = `tensor '${name}'`;
    if (info === null || typeof info !== "object" || Array.isArray(info)) fail(`${t}: entry is not an object`);
    const { dtype, shape, data_offsets: offsets } = info as Record<string, unknown>;
    if (typeof dtype !== "string") fail(`${t}: missing or non-string "dtype"`);
    const size = DTYPE_SIZE[dtype as string];
    if (size === undefined) {
      fail(
        `${t} has ${KNOWN_DTYPES.has(dtype as string) ? "" : "unknown "}dtype ${dtype}, which is not supported ` +
          "(use F32, F64, F16 or BF16)",
      );
    }
    if (!Array.isArray(shape) || !shape.every((s) => Number.isSafeInteger(s) && s >= 0)) {
      fail(`${t}: "shape" is not a list of non-negative integers`);
    }
    if (
      !Array.isArray(offsets) || offsets.length !== 2 ||
      !offsets.every((o) => Number.isSafeInteger(o) && o >= 0)
    ) {
      fail(`${t}: "data_offsets" is not a pair of non-negative integers`);
    }
    const [begin, end] = offsets as number[];
    const expected = shapeSize(shape as number[]) * size;
    if (end < begin) fail(`${t}: data_offsets [${begin}, ${end}] end before they begin`);
    if (end > dataLength) {
      fail(`${t}: data_offsets [${begin}, ${end}] run past the end of the data (${dataLength} bytes): file truncated?`);
    }
    if (end - begin !== expected) {
      fail(
        `${t}: data_offsets [${begin}, ${end}] hold ${end - begin} bytes but shape ` +
          `${formatShape(shape as number[])} of ${dtype} needs ${expected}`,
      );
    }
    entries.push({ name, dtype: dtype as string, shape: shape as number[], begin, end });
  }
  // Overlapping tensors would alias each other's bytes; the reference writer never makes them.
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let previous: (typeof entries)[number] | undefined;
  for (const e of entries) {
    if (e.end === e.begin) continue;
    if (previous && e.begin < previous.end) {
      fail(`tensors '${previous.name}' and '${e.name}' overlap in the data buffer`);
    }
    previous = e;
  }

  const tensors = new Map<string, SafetensorsTensor>();
  for (const e of entries) {
    const count = shapeSize(e.shape);
    const size = DTYPE_SIZE[e.dtype];
    const buffer = copyElements(bytes, dataStart + e.begin, count, size, true);
    let data: Float32Array | Float64Array;
    if (e.dtype === "F32") data = new Float32Array(buffer);
    else if (e.dtype === "F64") data = new Float64Array(buffer);
    else if (e.dtype === "F16") data = float16ToFloat32(new Uint16Array(buffer));
    else data = bfloat16ToFloat32(new Uint16Array(buffer));
    tensors.set(e.name, { dtype: e.dtype, shape: e.shape, data });
  }
  return { tensors, metadata };
}

/**
 * Writes tensors in the safetensors format as the Rust crate does: compact JSON header with
 * "__metadata__" first (only when `metadata` is given), header padded with spaces to a multiple
 * of 8 bytes so the data buffer is 8-byte aligned, tensors laid out in the order given.
 */
export function writeSafetensors(tensors: SafetensorsInput[], metadata?: Record<string, string>): Uint8Array {
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  let offset = 0;
  const seen = new Set<string>();
  for (const t of tensors) {
    if (t.name === "__metadata__" || seen.has(t.name)) {
      throw new RangeError(`writeSafetensors: tensor name '${t.name}' is reserved or repeated`);
    }
    seen.add(t.name);
    if (shapeSize(t.shape) !== t.data.length) {
      throw new RangeError(`writeSafetensors: tensor '${t.name}' has shape ${formatShape(t.shape)} but ${t.data.length} values`);
    }
    const dtype = t.data instanceof Float64Array ? "F64" : "F32";
    header[t.name] = { dtype, shape: t.shape, data_offsets: [offset, offset + t.data.byteLength] };
    offset += t.data.byteLength;
  }
  let headerBytes = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(headerBytes.length / 8) * 8;
  if (padded !== headerBytes.length) {
    const p = new Uint8Array(padded).fill(0x20);
    p.set(headerBytes);
    headerBytes = p;
  }
  const out = new Uint8Array(8 + headerBytes.length + offset);
  const view = new DataView(out.buffer);
  view.setUint32(0, headerBytes.length, true);
  view.setUint32(4, 0, true);
  out.set(headerBytes, 8);
  let at = 8 + headerBytes.length;
  for (const t of tensors) {
    out.set(littleEndianBytes(t.data), at);
    at += t.data.byteLength;
  }
  return out;
}
