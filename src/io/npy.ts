/**
 * NumPy `.npy` files (format versions 1.0, 2.0 and 3.0, as documented in numpy/lib/format.py):
 *
 *   "\x93NUMPY" | major u8 | minor u8 | header length (u16 LE in 1.0, u32 LE in 2.0/3.0)
 *   | header: a Python dict literal {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
 *     padded with spaces and ending in "\n" (latin-1 in 1.0/2.0, UTF-8 in 3.0)
 *   | the array's raw bytes.
 *
 * Only the dtypes the toolkit uses are read: float32/float64 (features, targets, vectors),
 * int32/int64/uint8/bool (labels). Big-endian data is byte-swapped; Fortran-ordered data is
 * reordered to C (row-major) order, so callers always get row-major host-endian arrays.
 */
import { FileFormatError } from "../errors.ts";
import { HOST_LITTLE_ENDIAN, copyElements, formatShape, littleEndianBytes, shapeSize } from "./binary.ts";

/** The .npy element types this reader accepts (little- or big-endian in the file). */
export type NpyDtype = "float32" | "float64" | "int32" | "int64" | "uint8" | "bool";

/** A parsed array, always row-major. int64 data is narrowed to Int32Array; bool is 0/1 bytes. */
export interface NpyArray {
  /** Element type as stored in the file. */
  dtype: NpyDtype;
  /** Array shape; [] for a scalar. */
  shape: number[];
  /** The elements, row-major (int64 narrowed to Int32Array, bool as 0/1 bytes). */
  data: Float32Array | Float64Array | Int32Array | Uint8Array;
}

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // "\x93NUMPY"

/** descr kind+size (without the byte-order character) -> our dtype and its size in bytes. */
const DESCR: Record<string, { dtype: NpyDtype; size: number }> = {
  f4: { dtype: "float32", size: 4 },
  f8: { dtype: "float64", size: 8 },
  i4: { dtype: "int32", size: 4 },
  i8: { dtype: "int64", size: 8 },
  u1: { dtype: "uint8", size: 1 },
  b1: { dtype: "bool", size: 1 },
};

const UNSUPPORTED_HINT = "(use float32/float64 or int32/int64)";

/** Parses a `.npy` file; every problem throws FileFormatError naming `path`. */
export function parseNpy(bytes: Uint8Array, path: string): NpyArray {
  const fail: (problem: string) => never = (problem) => {
    throw new FileFormatError(path, problem);
  };
  if (bytes.length === 0) fail("file is empty");
  if (bytes.length < 10 || MAGIC.some((b, i) => bytes[i] !== b)) {
    fail("not a .npy file (it does not start with the magic string \\x93NUMPY)");
  }
  const major = bytes[6];
  const minor = bytes[7];
  if (!(minor === 0 && (major === 1 || major === 2 || major === 3))) {
    fail(`.npy format version ${major}.${minor} is not supported (versions 1.0, 2.0 and 3.0 are)`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let headerStart: number;
  let headerLength: number;
  if (major === 1) {
    headerStart = 10;
    headerLength = view.getUint16(8, true);
  } else {
    if (bytes.length < 12) fail("file is truncated inside the header length");
    headerStart = 12;
    headerLength = view.getUint32(8, true);
  }
  const dataStart = headerStart + headerLength;
  if (dataStart > bytes.length) {
    fail(`header length ${headerLength} runs past the end of the file (${bytes.length} bytes)`);
  }
  // 1.0 and 2.0 headers are latin-1; 3.0 allows UTF-8 (for structured field names).
  const headerBytes = bytes.subarray(headerStart, dataStart);
  let headerText: string;
  if (major === 3) {
    try {
      headerText = new TextDecoder("utf-8", { fatal: true }).decode(headerBytes);
    } catch {
      return fail("header is not valid UTF-8");
    }
  } else {
    headerText = "";
    for (const b of headerBytes) headerText += String.fromCharCode(b);
  }
  const header = parseHeader(headerText, fail);

  const { descr, fortranOrder, shape } = header;
  const order = descr[0];
  const kind = descr.slice(1);
  const known = DESCR[kind];
  if (!known || !"<>|=".includes(order) || descr.length < 2) {
    fail(`dtype '${descr}' is not supported ${UNSUPPORTED_HINT}`);
  }
  // '|' means "byte order not applicable" (1-byte types); '=' is native, which numpy never writes
  // to files but we read it as little-endian, the order of every platform numpy writes on.
  const littleEndian = order !== ">";
  const count = shapeSize(shape);
  const byteLength = count * known.size;
  if (!Number.isSafeInteger(byteLength)) fail(`shape ${formatShape(shape)} is too large`);
  const available = bytes.length - dataStart;
  if (available < byteLength) {
    fail(
      `file is truncated: shape ${formatShape(shape)} of ${descr} needs ${byteLength} data bytes but only ` +
        `${available} follow the header`,
    );
  }
  if (available > byteLength) {
    // np.load would ignore these, but they usually mean a wrong shape or several arrays appended
    // to one file; reading on would silently drop data.
    fail(`${available - byteLength} unexpected bytes after the array data (shape ${formatShape(shape)}, ${descr})`);
  }
  const buffer = copyElements(bytes, dataStart, count, known.size, littleEndian);
  let data: NpyArray["data"];
  switch (known.dtype) {
    case "float32":
      data = new Float32Array(buffer);
      break;
    case "float64":
      data = new Float64Array(buffer);
      break;
    case "int32":
      data = new Int32Array(buffer);
      break;
    case "int64":
      data = narrowInt64(new Int32Array(buffer), fail);
      break;
    case "uint8":
      data = new Uint8Array(buffer);
      break;
    case "bool":
      // numpy stores 0/1, but normalise anyway so later code can rely on it.
      data = new Uint8Array(buffer).map((b) => (b ? 1 : 0));
      break;
  }
  if (fortranOrder && shape.length > 1) data = fortranToC(data, shape);
  return { dtype: known.dtype, shape, data };
}

/**
 * int64 -> int32 with a range check. `words` holds the host-endian int64 values as pairs of
 * int32 words (low word first on little-endian hosts); a value fits int32 exactly when its high
 * word is the sign extension of its low word.
 */
function narrowInt64(words: Int32Array, fail: (p: string) => never): Int32Array {
  const lo = HOST_LITTLE_ENDIAN ? 0 : 1;
  const out = new Int32Array(words.length / 2);
  for (let i = 0; i < out.length; i++) {
    const low = words[2 * i + lo];
    const high = words[2 * i + 1 - lo];
    if (high !== low >> 31) {
      const value = (BigInt(high) << 32n) + BigInt(low >>> 0);
      fail(`int64 value ${value} at flat index ${i} does not fit in int32 (range -2147483648..2147483647)`);
    }
    out[i] = low;
  }
  return out;
}

/** Reorders column-major (Fortran) data into row-major order. */
function fortranToC<T extends NpyArray["data"]>(data: T, shape: number[]): T {
  const out = new (data.constructor as { new (n: number): T })(data.length);
  const nd = shape.length;
  // Fortran strides: the first axis varies fastest.
  const fStride = new Array<number>(nd);
  fStride[0] = 1;
  for (let a = 1; a < nd; a++) fStride[a] = fStride[a - 1] * shape[a - 1];
  const index = new Array<number>(nd).fill(0);
  let src = 0;
  for (let i = 0; i < out.length; i++) {
    out[i] = data[src];
    // Advance the row-major multi-index (last axis fastest), tracking the Fortran offset.
    for (let a = nd - 1; a >= 0; a--) {
      index[a]++;
      src += fStride[a];
      if (index[a] < shape[a]) break;
      src -= fStride[a] * shape[a];
      index[a] = 0;
    }
  }
  return out;
}

interface NpyHeader {
  descr: string;
  fortranOrder: boolean;
  shape: number[];
}

type PyValue = string | boolean | null | number | PyValue[] | { [key: string]: PyValue };

/** Parses the header dict (a Python literal) and checks its three keys. */
function parseHeader(text: string, fail: (p: string) => never): NpyHeader {
  let value: PyValue;
  try {
    value = parsePythonLiteral(text.trim());
  } catch (e) {
    return fail(`header is not a valid Python dict literal: ${(e as Error).message}`);
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    return fail("header is not a Python dict");
  }
  const dict = value as { [key: string]: PyValue };
  for (const key of ["descr", "fortran_order", "shape"]) {
    if (!(key in dict)) fail(`header has no '${key}' key`);
  }
  const extra = Object.keys(dict).filter((k) => !["descr", "fortran_order", "shape"].includes(k));
  if (extra.length) fail(`header has unexpected key(s) ${extra.map((k) => `'${k}'`).join(", ")}`);
  const { descr, fortran_order: fortranOrder, shape } = dict;
  if (typeof descr !== "string") {
    // A list here is a structured (record) dtype.
    return fail(`dtype ${JSON.stringify(descr)} is not supported: structured arrays cannot be read ${UNSUPPORTED_HINT}`);
  }
  if (typeof fortranOrder !== "boolean") fail("header 'fortran_order' is not True or False");
  if (!Array.isArray(shape) || !shape.every((s) => typeof s === "number" && Number.isSafeInteger(s) && s >= 0)) {
    fail("header 'shape' is not a tuple of non-negative integers");
  }
  return { descr, fortranOrder: fortranOrder as boolean, shape: shape as number[] };
}

/**
 * A recursive-descent reader for the small subset of Python literals numpy writes: dicts, tuples,
 * lists, quoted strings, integers (with the Python 2 `L` suffix), True, False and None.
 */
function parsePythonLiteral(text: string): PyValue {
  let i = 0;
  const skip = () => {
    while (i < text.length && /\s/.test(text[i])) i++;
  };
  const expect = (c: string) => {
    skip();
    if (text[i] !== c) throw new Error(`expected '${c}' at character ${i}, found ${text[i] ? `'${text[i]}'` : "end"}`);
    i++;
  };
  const value = (): PyValue => {
    skip();
    const c = text[i];
    if (c === "{") {
      i++;
      const out: { [key: string]: PyValue } = {};
      for (;;) {
        skip();
        if (text[i] === "}") {
          i++;
          return out;
        }
        const key = value();
        if (typeof key !== "string") throw new Error(`dict key at character ${i} is not a string`);
        expect(":");
        out[key] = value();
        skip();
        if (text[i] === ",") i++;
        else if (text[i] !== "}") throw new Error(`expected ',' or '}' at character ${i}`);
      }
    }
    if (c === "(" || c === "[") {
      const close = c === "(" ? ")" : "]";
      i++;
      const out: PyValue[] = [];
      for (;;) {
        skip();
        if (text[i] === close) {
          i++;
          return out;
        }
        out.push(value());
        skip();
        if (text[i] === ",") i++;
        else if (text[i] !== close) throw new Error(`expected ',' or '${close}' at character ${i}`);
      }
    }
    if (c === "'" || c === '"') {
      const end = text.indexOf(c, i + 1);
      if (end < 0) throw new Error(`unterminated string at character ${i}`);
      const s = text.slice(i + 1, end);
      i = end + 1;
      return s;
    }
    const m = /^(-?\d+)L?|^(True|False|None)\b/.exec(text.slice(i, i + 40));
    if (!m) throw new Error(`unexpected ${c === undefined ? "end" : `'${c}'`} at character ${i}`);
    i += m[0].length;
    if (m[1] !== undefined) return Number(m[1]);
    return m[2] === "True" ? true : m[2] === "False" ? false : null;
  };
  const result = value();
  skip();
  if (i !== text.length) throw new Error(`unexpected text after the dict at character ${i}`);
  return result;
}

function writeDescr(data: Float32Array | Float64Array | Int32Array): string | undefined {
  if (data instanceof Float32Array) return "<f4";
  if (data instanceof Float64Array) return "<f8";
  if (data instanceof Int32Array) return "<i4";
  return undefined;
}

/**
 * Writes a row-major array as a version 1.0 `.npy` file, with the header laid out exactly as
 * numpy >= 1.23 writes it (keys sorted, spare room after the shape so it can grow in place, then
 * spaces and "\n" so the data starts on a 64-byte boundary).
 */
export function writeNpy(data: Float32Array | Float64Array | Int32Array, shape: number[]): Uint8Array {
  const descr = writeDescr(data);
  if (!descr) throw new TypeError("writeNpy takes a Float32Array, Float64Array or Int32Array");
  if (!shape.every((s) => Number.isSafeInteger(s) && s >= 0) || shapeSize(shape) !== data.length) {
    throw new RangeError(`writeNpy: shape ${formatShape(shape)} does not hold ${data.length} values`);
  }
  const shapeText = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(", ")})`;
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shapeText}, }`;
  // numpy's GROWTH_AXIS_MAX_DIGITS = 21: room for the first axis to grow to any int64.
  if (shape.length > 0) header += " ".repeat(21 - String(shape[0]).length);
  // Same arithmetic as numpy's _wrap_header: a full 64 spaces when already aligned.
  const padding = 64 - ((10 + header.length + 1) % 64);
  header += " ".repeat(padding) + "\n";
  const out = new Uint8Array(10 + header.length + data.byteLength);
  out.set(MAGIC, 0);
  out[6] = 1;
  out[7] = 0;
  new DataView(out.buffer).setUint16(8, header.length, true);
  for (let k = 0; k < header.length; k++) out[10 + k] = header.charCodeAt(k);
  out.set(littleEndianBytes(data), 10 + header.length);
  return out;
}

/**
 * Converts any numeric npy array to float32 (features, targets). `name` says what the array is
 * for in messages; NaN and infinities (also float64 values too large for float32) are rejected.
 */
export function npyToFloat32(arr: NpyArray, path: string, name: string): Float32Array {
  const out = arr.data instanceof Float32Array ? arr.data : Float32Array.from(arr.data);
  for (let i = 0; i < out.length; i++) {
    if (!Number.isFinite(out[i])) {
      const original = arr.data[i];
      const why = Number.isFinite(original) ? ` (${original} is too large for float32)` : "";
      throw new FileFormatError(path, `${name} has a non-finite value (${out[i]}) at flat index ${i}${why}`);
    }
  }
  return out;
}

/** Features read from an npy array: samples, per-sample width, row-major float32 values, image shape. */
export interface NpyFeatures {
  /** Sample count N. */
  n: number;
  /** Entries per sample (C·H·W for images). */
  features: number;
  /** The values, row-major [N, features] (images flattened per sample in C, H, W order). */
  x: Float32Array;
  /** Images only: the per-sample shape [C, H, W]. */
  imageShape?: [number, number, number];
}

/**
 * Features from an array [N, d], images [N, C, H, W] (NCHW, PyTorch's layout), or one-channel
 * images [N, H, W] (read as [N, 1, H, W]); images are flattened per sample, which keeps their
 * bytes as they are. Other ranks and empty dimensions are FileFormatErrors naming the shape.
 */
export function npyToFeatures(arr: NpyArray, path: string, name = "data"): NpyFeatures {
  const { shape } = arr;
  if (shape.length < 2 || shape.length > 4) {
    throw new FileFormatError(
      path,
      `${name} must have shape [N, features], [N, C, H, W] or [N, H, W] (one-channel images), got ${formatShape(shape)}`,
    );
  }
  if (shape.some((d) => d === 0)) throw new FileFormatError(path, `${name} has an empty dimension: shape ${formatShape(shape)}`);
  const x = npyToFloat32(arr, path, name);
  const n = shape[0];
  const features = shapeSize(shape.slice(1));
  if (shape.length === 2) return { n, features, x };
  const imageShape: [number, number, number] = shape.length === 4 ? [shape[1], shape[2], shape[3]] : [1, shape[1], shape[2]];
  return { n, features, x, imageShape };
}

/**
 * Converts an npy array to integer labels: integer and bool dtypes pass through; floats are
 * accepted when every value is a whole number in int32 range. The shape must be [N] or [N, 1].
 */
export function npyToLabels(arr: NpyArray, path: string): Int32Array {
  const { shape } = arr;
  if (!(shape.length === 1 || (shape.length === 2 && shape[1] === 1))) {
    throw new FileFormatError(path, `labels must have shape [N] or [N, 1], got ${formatShape(shape)}`);
  }
  if (arr.data instanceof Int32Array) return arr.data;
  if (arr.data instanceof Uint8Array) return Int32Array.from(arr.data);
  const data = arr.data;
  for (let i = 0; i < data.length; i++) {
    const v = data[i];
    if (!Number.isInteger(v) || v < -2147483648 || v > 2147483647) {
      throw new FileFormatError(
        path,
        `labels must be whole numbers, but the ${arr.dtype} value at index ${i} is ${v}`,
      );
    }
  }
  return Int32Array.from(data);
}
