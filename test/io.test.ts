/**
 * The file-format layer: round trips, byte layouts that other tools write (numpy, the safetensors
 * Rust crate, PyTorch state dicts), and malformed inputs, each of which must throw a typed error
 * whose message names the path and the problem.
 */
import { describe, expect, it } from "vitest";
import { FileFormatError, InputError } from "../src/errors.ts";
import { type Activation, mlpSpec, parameterLayout } from "../src/model.ts";
import { parseCsv } from "../src/io/csv.ts";
import { readFileBytes, readFileText, writeFileAtomic } from "../src/io/files.ts";
import {
  type LoadedModel,
  detectModelFormat,
  readModel,
  readParameterVector,
  writeModel,
  writeParameterVector,
} from "../src/io/modelFile.ts";
import { type NpyArray, npyToFloat32, npyToLabels, parseNpy, writeNpy } from "../src/io/npy.ts";
import { parseSafetensors, writeSafetensors } from "../src/io/safetensors.ts";

// ------------------------------------------------------------------------------------------------
// helpers

const enc = new TextEncoder();
const dec = new TextDecoder();

/** Asserts that `fn` throws `cls` whose message starts with the path and contains every fragment. */
function expectError(fn: () => unknown, cls: typeof FileFormatError | typeof InputError, path: string | null, ...fragments: string[]) {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  expect(caught, "expected an error").toBeInstanceOf(cls);
  const message = (caught as Error).message;
  if (path !== null) {
    expect(message.startsWith(`${path}: `), message).toBe(true);
    expect((caught as FileFormatError).path).toBe(path);
  }
  for (const f of fragments) expect(message, message).toContain(f);
}

/** Builds an .npy file by hand from the documented layout (not via writeNpy). */
function npyBytes(header: string, data: Uint8Array, version: 1 | 2 | 3 = 1, pad = true): Uint8Array {
  const prefix = version === 1 ? 10 : 12;
  let h = header;
  if (pad) {
    const total = prefix + h.length + 1;
    h += " ".repeat((64 - (total % 64)) % 64) + "\n";
  }
  const hb = enc.encode(h);
  const out = new Uint8Array(prefix + hb.length + data.length);
  out.set([0x93, ...enc.encode("NUMPY"), version, 0]);
  const view = new DataView(out.buffer);
  if (version === 1) view.setUint16(8, hb.length, true);
  else view.setUint32(8, hb.length, true);
  out.set(hb, prefix);
  out.set(data, prefix + hb.length);
  return out;
}

function bytesOf(a: Float32Array | Float64Array | Int32Array | Uint16Array | BigInt64Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/** Builds a safetensors file by hand: u64 LE size, JSON header (unpadded unless asked), data. */
function safetensorsBytes(header: object | string, data: Uint8Array, padTo8 = false): Uint8Array {
  let h = typeof header === "string" ? header : JSON.stringify(header);
  if (padTo8) h += " ".repeat((8 - (h.length % 8)) % 8);
  const hb = enc.encode(h);
  const out = new Uint8Array(8 + hb.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(hb.length), true);
  out.set(hb, 8);
  out.set(data, 8 + hb.length);
  return out;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** A PyTorch-like state dict: Linear tensors named `${prefix}${index}.weight/bias`. */
function stateDict(
  prefix: string,
  indices: number[],
  widths: number[],
  bias = true,
): { name: string; shape: number[]; data: Float32Array }[] {
  const tensors: { name: string; shape: number[]; data: Float32Array }[] = [];
  let v = 0.5;
  indices.forEach((index, k) => {
    const [inp, out] = [widths[k], widths[k + 1]];
    tensors.push({ name: `${prefix}${index}.weight`, shape: [out, inp], data: Float32Array.from({ length: out * inp }, () => (v += 0.25)) });
    if (bias) tensors.push({ name: `${prefix}${index}.bias`, shape: [out], data: Float32Array.from({ length: out }, () => (v -= 0.5)) });
  });
  return tensors;
}

function jsonModel(layers: unknown[], extra: Record<string, unknown> = {}): Uint8Array {
  return enc.encode(JSON.stringify({ format: "flatness-mlp", version: 1, activation: "relu", ...extra, layers }));
}

function loadedJsonModel(widths: number[], activation?: Activation, bias = true): LoadedModel {
  const spec = mlpSpec(widths, { activation, bias });
  const layout = parameterLayout(spec);
  const theta = Float64Array.from({ length: layout.dim }, (_, i) => Math.sin(i + 1) / 3);
  return { model: { spec, theta }, format: "json", tensorNames: layout.views.map((v) => v.name), metadata: {} };
}

// ------------------------------------------------------------------------------------------------
// npy

describe("npy", () => {
  it("reads a file laid out exactly as numpy writes float32 (2, 3)", () => {
    const header = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
    const values = Float32Array.of(1, 2, 3, 4, 5, 6.5);
    const bytes = npyBytes(header, bytesOf(values));
    expect((bytes.length - values.byteLength) % 64).toBe(0);
    const arr = parseNpy(bytes, "x.npy");
    expect(arr.dtype).toBe("float32");
    expect(arr.shape).toEqual([2, 3]);
    expect(arr.data).toBeInstanceOf(Float32Array);
    expect(Array.from(arr.data)).toEqual([1, 2, 3, 4, 5, 6.5]);
  });

  it("writes the same bytes numpy >= 1.23 writes (growth padding, 64-byte alignment)", () => {
    const values = Float32Array.of(1, 2, 3, 4, 5, 6);
    // np.save of np.arange(1, 7, dtype=np.float32).reshape(2, 3): 21 - len('2') spare spaces.
    const header = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }" + " ".repeat(20);
    const expected = npyBytes(header, bytesOf(values));
    const written = writeNpy(values, [2, 3]);
    expect(written).toEqual(expected);
    expect((written.length - values.byteLength) % 64).toBe(0);
    expect(dec.decode(written.subarray(10, written.length - values.byteLength)).endsWith("\n")).toBe(true);
  });

  it.each([
    ["float32", Float32Array.of(1.5, -2, 3e-8, 0), [4]],
    ["float64", Float64Array.of(Math.PI, -1e300, 0.1, 2, 3, 4), [3, 2]],
    ["int32", Int32Array.of(-2147483648, 2147483647, 0, 7), [2, 1, 2]],
  ] as const)("round-trips %s", (dtype, data, shape) => {
    const arr = parseNpy(writeNpy(data, [...shape]), "r.npy");
    expect(arr.dtype).toBe(dtype);
    expect(arr.shape).toEqual(shape);
    expect(arr.data.constructor).toBe(data.constructor);
    expect(Array.from(arr.data)).toEqual(Array.from(data));
  });

  it("round-trips scalars and empty arrays", () => {
    const s = parseNpy(writeNpy(Float64Array.of(42), []), "s.npy");
    expect(s.shape).toEqual([]);
    expect(Array.from(s.data)).toEqual([42]);
    const e = parseNpy(writeNpy(new Float32Array(0), [0, 3]), "e.npy");
    expect(e.shape).toEqual([0, 3]);
    expect(e.data.length).toBe(0);
  });

  it("reads int64 (narrowed to int32), uint8 and bool", () => {
    const i64 = parseNpy(npyBytes("{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }", bytesOf(BigInt64Array.of(-5n, 0n, 2147483647n))), "l.npy");
    expect(i64.dtype).toBe("int64");
    expect(i64.data).toBeInstanceOf(Int32Array);
    expect(Array.from(i64.data)).toEqual([-5, 0, 2147483647]);
    const u8 = parseNpy(npyBytes("{'descr': '|u1', 'fortran_order': False, 'shape': (2,), }", Uint8Array.of(0, 255)), "u.npy");
    expect(u8.dtype).toBe("uint8");
    expect(Array.from(u8.data)).toEqual([0, 255]);
    const b = parseNpy(npyBytes("{'descr': '|b1', 'fortran_order': False, 'shape': (3,), }", Uint8Array.of(1, 0, 1)), "b.npy");
    expect(b.dtype).toBe("bool");
    expect(Array.from(b.data)).toEqual([1, 0, 1]);
  });

  it("byte-swaps big-endian data", () => {
    const raw = new Uint8Array(16);
    const view = new DataView(raw.buffer);
    view.setFloat64(0, 1.25, false);
    view.setFloat64(8, -3, false);
    const arr = parseNpy(npyBytes("{'descr': '>f8', 'fortran_order': False, 'shape': (2,), }", raw), "be.npy");
    expect(Array.from(arr.data)).toEqual([1.25, -3]);
    const raw32 = new Uint8Array(4);
    new DataView(raw32.buffer).setInt32(0, -7, false);
    expect(Array.from(parseNpy(npyBytes("{'descr': '>i4', 'fortran_order': False, 'shape': (1,), }", raw32), "be.npy").data)).toEqual([-7]);
  });

  it("reorders Fortran-ordered data to row-major", () => {
    // The 2x3 matrix [[1,2,3],[4,5,6]] stored column by column.
    const f = npyBytes("{'descr': '<f8', 'fortran_order': True, 'shape': (2, 3), }", bytesOf(Float64Array.of(1, 4, 2, 5, 3, 6)));
    expect(Array.from(parseNpy(f, "f.npy").data)).toEqual([1, 2, 3, 4, 5, 6]);
    // A 2x2x2 tensor: element (i,j,k) = 100i + 10j + k, Fortran offset i + 2j + 4k.
    const col = new Float64Array(8);
    for (let i = 0; i < 2; i++) for (let j = 0; j < 2; j++) for (let k = 0; k < 2; k++) col[i + 2 * j + 4 * k] = 100 * i + 10 * j + k;
    const arr = parseNpy(npyBytes("{'descr': '<f8', 'fortran_order': True, 'shape': (2, 2, 2), }", bytesOf(col)), "f3.npy");
    expect(Array.from(arr.data)).toEqual([0, 1, 10, 11, 100, 101, 110, 111]);
  });

  it("reads format versions 2.0 and 3.0", () => {
    const header = "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }";
    for (const v of [2, 3] as const) {
      expect(Array.from(parseNpy(npyBytes(header, bytesOf(Float32Array.of(1, 2)), v), "v.npy").data)).toEqual([1, 2]);
    }
  });

  it("rejects malformed files with the path and the problem", () => {
    const good = writeNpy(Float32Array.of(1, 2, 3, 4, 5, 6), [2, 3]);
    expectError(() => parseNpy(new Uint8Array(0), "x.npy"), FileFormatError, "x.npy", "file is empty");
    expectError(() => parseNpy(enc.encode("hello world, not numpy"), "x.npy"), FileFormatError, "x.npy", "magic string");
    expectError(() => parseNpy(good.subarray(0, good.length - 3), "x.npy"), FileFormatError, "x.npy", "truncated", "needs 24 data bytes but only 21");
    expectError(() => parseNpy(good.subarray(0, 40), "x.npy"), FileFormatError, "x.npy", "header length 118 runs past the end of the file (40 bytes)");
    expectError(() => parseNpy(concat(good, Uint8Array.of(0, 0)), "x.npy"), FileFormatError, "x.npy", "2 unexpected bytes after the array data");
    const v9 = Uint8Array.from(good);
    v9[6] = 9;
    expectError(() => parseNpy(v9, "x.npy"), FileFormatError, "x.npy", "version 9.0 is not supported");
    expectError(
      () => parseNpy(npyBytes("{'descr': '<c8', 'fortran_order': False, 'shape': (1,), }", new Uint8Array(8)), "x.npy"),
      FileFormatError, "x.npy", "dtype '<c8' is not supported (use float32/float64 or int32/int64)",
    );
    expectError(
      () => parseNpy(npyBytes("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }", new Uint8Array(4)), "x.npy"),
      FileFormatError, "x.npy", "structured arrays",
    );
    expectError(() => parseNpy(npyBytes("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3)", new Uint8Array(24)), "x.npy"), FileFormatError, "x.npy", "header is not a valid Python dict literal");
    expectError(() => parseNpy(npyBytes("{'descr': '<f4', 'shape': (1,), }", new Uint8Array(4)), "x.npy"), FileFormatError, "x.npy", "no 'fortran_order' key");
    expectError(() => parseNpy(npyBytes("{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }", new Uint8Array(4)), "x.npy"), FileFormatError, "x.npy", "'shape' is not a tuple of non-negative integers");
    expectError(
      () => parseNpy(npyBytes("{'descr': '<i8', 'fortran_order': False, 'shape': (2,), }", bytesOf(BigInt64Array.of(1n, 1n << 40n))), "l.npy"),
      FileFormatError, "l.npy", "int64 value 1099511627776 at flat index 1 does not fit in int32",
    );
  });

  it("converts to float32 features and integer labels", () => {
    const f64: NpyArray = { dtype: "float64", shape: [3], data: Float64Array.of(1, 2.5, -3) };
    expect(Array.from(npyToFloat32(f64, "x.npy", "features"))).toEqual([1, 2.5, -3]);
    expectError(() => npyToFloat32({ dtype: "float64", shape: [2], data: Float64Array.of(1, NaN) }, "x.npy", "features"), FileFormatError, "x.npy", "features has a non-finite value (NaN) at flat index 1");
    expectError(() => npyToFloat32({ dtype: "float64", shape: [1], data: Float64Array.of(1e300) }, "x.npy", "features"), FileFormatError, "x.npy", "too large for float32");

    expect(Array.from(npyToLabels({ dtype: "float32", shape: [3], data: Float32Array.of(0, 2, 1) }, "y.npy"))).toEqual([0, 2, 1]);
    expect(Array.from(npyToLabels({ dtype: "int32", shape: [2, 1], data: Int32Array.of(4, 5) }, "y.npy"))).toEqual([4, 5]);
    expect(Array.from(npyToLabels({ dtype: "bool", shape: [2], data: Uint8Array.of(1, 0) }, "y.npy"))).toEqual([1, 0]);
    expectError(() => npyToLabels({ dtype: "float64", shape: [3], data: Float64Array.of(0, 1, 1.5) }, "y.npy"), FileFormatError, "y.npy", "index 2 is 1.5");
    expectError(() => npyToLabels({ dtype: "float64", shape: [2], data: Float64Array.of(NaN, 1) }, "y.npy"), FileFormatError, "y.npy", "index 0 is NaN");
    expectError(() => npyToLabels({ dtype: "int32", shape: [2, 2], data: new Int32Array(4) }, "y.npy"), FileFormatError, "y.npy", "labels must have shape [N] or [N, 1], got [2, 2]");
  });
});

// ------------------------------------------------------------------------------------------------
// CSV

describe("csv", () => {
  it("detects a header and takes the last column as the label", () => {
    const csv = "# iris-like\nsepal, petal ,class\n\n5.1,1.4,0\n4.9, 1.3 ,1\r\n-1e-2,.5,2\n";
    const d = parseCsv(csv, "d.csv");
    expect(d.n).toBe(3);
    expect(d.features).toBe(2);
    expect(d.columnNames).toEqual(["sepal", "petal"]);
    expect(d.labelName).toBe("class");
    expect(Array.from(d.x)).toEqual(Array.from(Float32Array.of(5.1, 1.4, 4.9, 1.3, -0.01, 0.5)));
    expect(Array.from(d.labels!)).toEqual([0, 1, 2]);
  });

  it("reads files without a header, label by index (also negative and as digits)", () => {
    const csv = "0,1.5,2\n1,2.5,3\n";
    const d = parseCsv(csv, "d.csv", { labelColumn: 0 });
    expect(d.columnNames).toEqual(["column_1", "column_2"]);
    expect(Array.from(d.labels!)).toEqual([0, 1]);
    expect(Array.from(d.x)).toEqual([1.5, 2, 2.5, 3]);
    expect(Array.from(parseCsv(csv, "d.csv", { labelColumn: -2 }).labels!)).toEqual([1.5, 2.5]);
    expect(Array.from(parseCsv(csv, "d.csv", { labelColumn: "1" }).labels!)).toEqual([1.5, 2.5]);
    const none = parseCsv(csv, "d.csv", { labelColumn: "none" });
    expect(none.labels).toBeUndefined();
    expect(none.features).toBe(3);
  });

  it("chooses the label by header name and honours header: true/false", () => {
    const csv = 'y,"a, quoted",b\n1,2,3\n0,4,5\n';
    const d = parseCsv(csv, "d.csv", { labelColumn: "y" });
    expect(d.columnNames).toEqual(["a, quoted", "b"]);
    expect(Array.from(d.labels!)).toEqual([1, 0]);
    expect(Array.from(d.x)).toEqual([2, 3, 4, 5]);
    // An all-numeric first row is a header only when asked.
    const numericHeader = "10,20,30\n1,2,3\n";
    expect(parseCsv(numericHeader, "d.csv").n).toBe(2);
    const h = parseCsv(numericHeader, "d.csv", { header: true, labelColumn: "20" });
    expect(h.n).toBe(1);
    expect(h.columnNames).toEqual(["10", "30"]);
    expect(Array.from(h.labels!)).toEqual([2]);
  });

  it("rejects bad CSV naming line and column", () => {
    expectError(() => parseCsv("a,b\n1,2\n3\n", "d.csv"), FileFormatError, "d.csv", "line 3: has 1 columns but line 1 has 2");
    expectError(() => parseCsv("a,b\n# c\n1,x\n", "d.csv"), FileFormatError, "d.csv", "line 3, column 2 (b): 'x' is not a number");
    expectError(() => parseCsv("1,2\n3,\n", "d.csv"), FileFormatError, "d.csv", "line 2, column 2: empty cell");
    expectError(() => parseCsv("1,nan\n", "d.csv"), FileFormatError, "d.csv", "line 1, column 2: value 'nan' is not a finite number");
    expectError(() => parseCsv("1,1e39\n", "d.csv", { labelColumn: 0 }), FileFormatError, "d.csv", "line 1, column 2: value '1e39' is too large for float32");
    expectError(() => parseCsv("\n# only comments\n", "d.csv"), FileFormatError, "d.csv", "no data");
    // A numeric first row with one bad cell is data, not a header: the cell is named, the row kept.
    expectError(() => parseCsv("1,2,abc,4,0\n5,6,7,8,1\n", "d.csv"), FileFormatError, "d.csv", "line 1, column 3: 'abc' is not a number");
    expectError(() => parseCsv("x,2\n5,6\n", "d.csv"), FileFormatError, "d.csv", "line 1, column 1: 'x' is not a number");
    expectError(() => parseCsv("a,b\n", "d.csv"), FileFormatError, "d.csv", "no data rows after the header");
    expectError(() => parseCsv("a,b\n1,2\n", "d.csv", { labelColumn: "c" }), FileFormatError, "d.csv", "label column 'c' is not in the header (columns: a, b)");
    expectError(() => parseCsv("1,2\n", "d.csv", { labelColumn: "c" }), FileFormatError, "d.csv", "no header line");
    expectError(() => parseCsv("1,2\n", "d.csv", { labelColumn: 5 }), FileFormatError, "d.csv", "label column index 5 is out of range for 2 columns");
    expectError(() => parseCsv("1\n2\n", "d.csv"), FileFormatError, "d.csv", "no feature columns");
    expectError(() => parseCsv('"a,b\n1,2\n', "d.csv"), FileFormatError, "d.csv", "line 1, column 1: unterminated quoted cell");
  });
});

// ------------------------------------------------------------------------------------------------
// safetensors

describe("safetensors", () => {
  it("round-trips tensors in the given order with metadata", () => {
    const a = Float32Array.of(1, 2, 3, 4, 5, 6);
    const b = Float32Array.of(-0.5);
    const bytes = writeSafetensors([{ name: "b", shape: [1], data: b }, { name: "a", shape: [2, 3], data: a }], { format: "pt" });
    const size = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    expect(size % 8).toBe(0);
    const header = JSON.parse(dec.decode(bytes.subarray(8, 8 + size)));
    expect(Object.keys(header)).toEqual(["__metadata__", "b", "a"]);
    expect(header.b.data_offsets).toEqual([0, 4]);
    expect(header.a).toEqual({ dtype: "F32", shape: [2, 3], data_offsets: [4, 28] });
    expect(bytes.length).toBe(8 + size + 28);
    const file = parseSafetensors(bytes, "m.safetensors");
    expect(file.metadata).toEqual({ format: "pt" });
    expect([...file.tensors.keys()]).toEqual(["b", "a"]);
    expect(file.tensors.get("a")).toEqual({ dtype: "F32", shape: [2, 3], data: a });
    expect(Array.from(file.tensors.get("b")!.data)).toEqual([-0.5]);
  });

  it("writes the exact bytes of the reference format", () => {
    const bytes = writeSafetensors([{ name: "w", shape: [2], data: Float32Array.of(1, 2) }]);
    const json = '{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}';
    const padded = json + " ".repeat((8 - (json.length % 8)) % 8);
    expect(bytes).toEqual(safetensorsBytes(padded, bytesOf(Float32Array.of(1, 2))));
  });

  it("reads a hand-built file with metadata, F64, F16 and BF16", () => {
    const f64 = bytesOf(Float64Array.of(0.1, -2));
    const f16 = bytesOf(Uint16Array.of(0x3c00, 0xc000, 0x3555, 0x0001, 0x7c00, 0x0000, 0x8000, 0x7bff));
    const bf16 = bytesOf(Uint16Array.of(0x3f80, 0xc040, 0x3e80, 0xff80));
    const header = {
      __metadata__: { activation: "relu", note: "hand made" },
      d: { dtype: "F64", shape: [2], data_offsets: [0, 16] },
      h: { dtype: "F16", shape: [2, 4], data_offsets: [16, 32] },
      bf: { dtype: "BF16", shape: [4], data_offsets: [32, 40] },
    };
    const file = parseSafetensors(safetensorsBytes(header, concat(f64, f16, bf16)), "h.safetensors");
    expect(file.metadata).toEqual({ activation: "relu", note: "hand made" });
    expect(file.tensors.get("d")!.data).toEqual(Float64Array.of(0.1, -2));
    const h = file.tensors.get("h")!;
    expect(h.dtype).toBe("F16");
    expect(h.data).toBeInstanceOf(Float32Array);
    expect(Array.from(h.data)).toEqual([1, -2, Math.fround(0.333251953125), 2 ** -24, Infinity, 0, -0, 65504]);
    const bf = file.tensors.get("bf")!;
    expect(bf.data).toBeInstanceOf(Float32Array);
    expect(Array.from(bf.data)).toEqual([1, -3, 0.25, -Infinity]);
  });

  it("rejects malformed files with the path and the problem", () => {
    const good = writeSafetensors([{ name: "w", shape: [2, 2], data: Float32Array.of(1, 2, 3, 4) }]);
    const p = "m.safetensors";
    expectError(() => parseSafetensors(new Uint8Array(0), p), FileFormatError, p, "file is empty");
    expectError(() => parseSafetensors(good.subarray(0, 5), p), FileFormatError, p, "truncated");
    expectError(() => parseSafetensors(good.subarray(0, 20), p), FileFormatError, p, "header size 64 runs past the end of the file (20 bytes)");
    expectError(() => parseSafetensors(good.subarray(0, good.length - 4), p), FileFormatError, p, "tensor 'w': data_offsets [0, 16] run past the end of the data (12 bytes)");
    const huge = Uint8Array.from(good);
    huge[7] = 1;
    expectError(() => parseSafetensors(huge, p), FileFormatError, p, "is not plausible");
    expectError(() => parseSafetensors(safetensorsBytes('{"w": {"dtype": ', new Uint8Array(0)), p), FileFormatError, p, "header is not valid JSON");
    expectError(() => parseSafetensors(safetensorsBytes("[1, 2]", new Uint8Array(0)), p), FileFormatError, p, "header is not a JSON object");
    expectError(
      () => parseSafetensors(safetensorsBytes({ w: { dtype: "I64", shape: [1], data_offsets: [0, 8] } }, new Uint8Array(8)), p),
      FileFormatError, p, "tensor 'w' has dtype I64, which is not supported (use F32, F64, F16 or BF16)",
    );
    expectError(
      () => parseSafetensors(safetensorsBytes({ w: { dtype: "Q9", shape: [1], data_offsets: [0, 8] } }, new Uint8Array(8)), p),
      FileFormatError, p, "unknown dtype Q9",
    );
    expectError(
      () => parseSafetensors(safetensorsBytes({ w: { dtype: "F32", shape: [3], data_offsets: [0, 8] } }, new Uint8Array(8)), p),
      FileFormatError, p, "tensor 'w': data_offsets [0, 8] hold 8 bytes but shape [3] of F32 needs 12",
    );
    expectError(
      () => parseSafetensors(safetensorsBytes({ w: { dtype: "F32", shape: [2], data_offsets: [8, 0] } }, new Uint8Array(8)), p),
      FileFormatError, p, "end before they begin",
    );
    expectError(
      () => parseSafetensors(safetensorsBytes({ w: { dtype: "F32", shape: [2.5], data_offsets: [0, 8] } }, new Uint8Array(8)), p),
      FileFormatError, p, '"shape" is not a list of non-negative integers',
    );
    expectError(
      () => parseSafetensors(safetensorsBytes({ w: { dtype: "F32", shape: [2], data_offsets: [0] } }, new Uint8Array(8)), p),
      FileFormatError, p, '"data_offsets" is not a pair',
    );
    expectError(
      () => parseSafetensors(safetensorsBytes({
        a: { dtype: "F32", shape: [2], data_offsets: [0, 8] },
        b: { dtype: "F32", shape: [2], data_offsets: [4, 12] },
      }, new Uint8Array(12)), p),
      FileFormatError, p, "tensors 'a' and 'b' overlap",
    );
    expectError(() => parseSafetensors(safetensorsBytes({ __metadata__: { n: 3 } }, new Uint8Array(0)), p), FileFormatError, p, "__metadata__ value 'n' is not a string");
  });
});

// ------------------------------------------------------------------------------------------------
// model files

describe("model files", () => {
  it("round-trips a JSON model through parameterLayout", () => {
    for (const activation of [{ kind: "relu" }, { kind: "leaky_relu", slope: 0.2 }] as Activation[]) {
      for (const bias of [true, false]) {
        const loaded = loadedJsonModel([3, 4, 2], activation, bias);
        const bytes = writeModel(loaded);
        expect(detectModelFormat(bytes)).toBe("json");
        const back = readModel(bytes, "m.json");
        expect(back.format).toBe("json");
        expect(back.model.spec).toEqual(loaded.model.spec);
        expect(back.model.theta).toEqual(loaded.model.theta); // float64 survives exactly
        expect(back.tensorNames).toEqual(bias ? ["0.weight", "0.bias", "2.weight", "2.bias"] : ["0.weight", "2.weight"]);
      }
    }
  });

  it("reads the documented JSON layout: weight [out][in] lands where parameterLayout says", () => {
    const bytes = jsonModel(
      [{ weight: [[1, 2, 3], [4, 5, 6]], bias: [7, 8] }, { weight: [[9, 10]] }],
      { activation: "leaky_relu", negativeSlope: 0.1, metadata: { source: "hand" } },
    );
    const loaded = readModel(bytes, "m.json");
    expect(loaded.model.spec).toEqual({
      layers: [{ inFeatures: 3, outFeatures: 2, bias: true }, { inFeatures: 2, outFeatures: 1, bias: false }],
      activation: { kind: "leaky_relu", slope: 0.1 },
    });
    expect(Array.from(loaded.model.theta)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(loaded.metadata).toEqual({ source: "hand" });
    // writeModel with a new theta keeps the structure and metadata.
    const again = readModel(writeModel(loaded, Float64Array.from(loaded.model.theta, (v) => -v)), "m2.json");
    expect(Array.from(again.model.theta)).toEqual([-1, -2, -3, -4, -5, -6, -7, -8, -9, -10]);
    expect(again.metadata).toEqual({ source: "hand" });
    expect(again.model.spec.activation).toEqual({ kind: "leaky_relu", slope: 0.1 });
  });

  it("takes the activation from the file, else the option, else relu", () => {
    const noActivation = enc.encode(JSON.stringify({ format: "flatness-mlp", version: 1, layers: [{ weight: [[1]] }] }));
    expect(readModel(noActivation, "m.json").model.spec.activation).toEqual({ kind: "relu" });
    const leaky: Activation = { kind: "leaky_relu", slope: 0.3 };
    expect(readModel(noActivation, "m.json", { activation: leaky }).model.spec.activation).toEqual(leaky);
    expect(readModel(jsonModel([{ weight: [[1]] }], { activation: "leaky_relu" }), "m.json").model.spec.activation).toEqual({ kind: "leaky_relu", slope: 0.01 });

    const st = stateDict("", [0], [2, 1]);
    expect(readModel(writeSafetensors(st), "m.safetensors").model.spec.activation).toEqual({ kind: "relu" });
    expect(readModel(writeSafetensors(st), "m.safetensors", { activation: leaky }).model.spec.activation).toEqual(leaky);
    const meta = writeSafetensors(st, { activation: "leaky_relu", negative_slope: "0.05" });
    expect(readModel(meta, "m.safetensors", { activation: { kind: "relu" } }).model.spec.activation).toEqual({ kind: "leaky_relu", slope: 0.05 });
  });

  it.each([
    ["", [0, 2, 4]],
    ["", [0, 1, 2]],
    ["net.", [0, 2, 4]],
    ["model.layers.", [1, 3, 10]],
  ])("reads PyTorch nn.Sequential safetensors with prefix '%s' and indices %j", (prefix, indices) => {
    const widths = [3, 5, 4, 2];
    const tensors = stateDict(prefix, indices, widths);
    // Store them shuffled: layer order must come from the numeric index, not the file.
    const shuffled = [...tensors].reverse();
    const bytes = writeSafetensors(shuffled, { format: "pt" });
    expect(detectModelFormat(bytes)).toBe("safetensors");
    const loaded = readModel(bytes, "m.safetensors");
    expect(loaded.format).toBe("safetensors");
    expect(loaded.model.spec.layers.map((l) => [l.inFeatures, l.outFeatures, l.bias])).toEqual([[3, 5, true], [5, 4, true], [4, 2, true]]);
    expect(loaded.tensorNames).toEqual(tensors.map((t) => t.name));
    const layout = parameterLayout(loaded.model.spec);
    layout.views.forEach((view, i) => {
      expect(Array.from(loaded.model.theta.subarray(view.offset, view.offset + view.size))).toEqual(Array.from(tensors[i].data));
      expect(view.shape).toEqual(tensors[i].shape);
    });

    // Written back: still safetensors, same names, shapes and values, metadata kept.
    const theta2 = Float64Array.from(loaded.model.theta, (v) => v * 2);
    const written = writeModel(loaded, theta2);
    const file = parseSafetensors(written, "out.safetensors");
    expect([...file.tensors.keys()]).toEqual(loaded.tensorNames);
    expect(file.metadata).toEqual({ format: "pt", activation: "relu" });
    const back = readModel(written, "out.safetensors");
    expect(back.tensorNames).toEqual(loaded.tensorNames);
    expect(Array.from(back.model.theta)).toEqual(Array.from(Float32Array.from(theta2)));
  });

  it("keeps F64 safetensors models in F64 and records a leaky slope in metadata", () => {
    const tensors = stateDict("", [0, 2], [2, 3, 1]).map((t) => ({ ...t, data: Float64Array.from(t.data, (v) => v + 1e-12) }));
    const loaded = readModel(writeSafetensors(tensors), "m.safetensors", { activation: { kind: "leaky_relu", slope: 0.125 } });
    expect(loaded.dtype).toBe("F64");
    const file = parseSafetensors(writeModel(loaded), "o.safetensors");
    expect(file.tensors.get("0.weight")!.dtype).toBe("F64");
    expect(file.metadata).toEqual({ activation: "leaky_relu", negative_slope: "0.125" });
    const back = readModel(writeModel(loaded), "o.safetensors");
    expect(back.model.theta).toEqual(loaded.model.theta);
    expect(back.model.spec.activation).toEqual({ kind: "leaky_relu", slope: 0.125 });
  });

  it("reads F16 and BF16 state dicts", () => {
    const w = bytesOf(Uint16Array.of(0x3c00, 0x4000)); // f16 1, 2
    const b = bytesOf(Uint16Array.of(0x3f80)); // bf16 1
    const bytes = safetensorsBytes({
      "0.weight": { dtype: "F16", shape: [1, 2], data_offsets: [0, 4] },
      "0.bias": { dtype: "BF16", shape: [1], data_offsets: [4, 6] },
    }, concat(w, b));
    const loaded = readModel(bytes, "h.safetensors");
    expect(Array.from(loaded.model.theta)).toEqual([1, 2, 1]);
  });

  it("rejects malformed model files naming the tensor and the problem", () => {
    const p = "m.safetensors";
    const bad = (tensors: { name: string; shape: number[]; data: Float32Array }[], meta?: Record<string, string>) =>
      () => readModel(writeSafetensors(tensors, meta), p);
    const st = stateDict("", [0, 2], [4, 4, 3]);
    expectError(
      bad([st[0], st[1], { name: "2.weight", shape: [3, 5], data: new Float32Array(15) }, st[3]]),
      FileFormatError, p, "tensor '2.weight' has shape [3, 5] but layer 1 takes 4 inputs",
    );
    expectError(bad([st[0], { name: "0.bias", shape: [3], data: new Float32Array(3) }]), FileFormatError, p, "tensor '0.bias' has shape [3] but '0.weight' has 4 outputs");
    expectError(bad([{ name: "0.weight", shape: [4], data: new Float32Array(4) }]), FileFormatError, p, "tensor '0.weight' has shape [4] but a Linear weight must be 2-D");
    expectError(bad([st[0], st[1], st[3]]), FileFormatError, p, "tensor '2.bias' has no matching weight tensor");
    expectError(bad([...st, { name: "bn.running_mean", shape: [1], data: new Float32Array(1) }]), FileFormatError, p, "tensor 'bn.running_mean' is not a Linear weight or bias");
    expectError(bad([st[0], { ...st[2], name: "head.2.weight" }]), FileFormatError, p, "have different prefixes");
    const nan = Float32Array.from(st[2].data);
    nan[5] = NaN;
    expectError(bad([st[0], st[1], { ...st[2], data: nan }]), FileFormatError, p, "tensor '2.weight' has a non-finite value (NaN) at flat index 5");
    expectError(bad(st, { activation: "tanh" }), FileFormatError, p, "__metadata__ activation 'tanh' is not supported");
    expectError(bad(st, { activation: "leaky_relu", negative_slope: "abc" }), FileFormatError, p, "negative_slope 'abc' is not a finite number");
    expectError(bad([]), FileFormatError, p, "holds no tensors");
    expectError(() => readModel(enc.encode("PK\x03\x04 zip file"), "m.pt"), FileFormatError, "m.pt", "not plausible");
    expectError(() => readModel(new Uint8Array(0), "e.json"), FileFormatError, "e.json", "file is empty");

    const j = "m.json";
    expectError(() => readModel(enc.encode('{"format": "flatness-mlp", "version": 1, "layers": [{"weight": [[NaN]]}]}'), j), FileFormatError, j, "is not valid JSON", "NaN or Infinity");
    expectError(() => readModel(enc.encode('{"format": "flatness-mlp", '), j), FileFormatError, j, "is not valid JSON");
    expectError(() => readModel(enc.encode('{"format": "keras", "version": 1}'), j), FileFormatError, j, '"format" is "keras", expected "flatness-mlp"');
    expectError(() => readModel(jsonModel([{ weight: [[1]] }], { version: 3 }), j), FileFormatError, j, '"version" 3 is not supported');
    // Version 2 is the format of nets with an architecture (test/io/cnnImport.test.ts).
    expectError(() => readModel(jsonModel([{ weight: [[1]] }], { version: 2 }), j), FileFormatError, j, 'version 2 needs "architecture"');
    expectError(() => readModel(jsonModel([]), j), FileFormatError, j, '"layers" must be a non-empty array');
    expectError(() => readModel(jsonModel([{ weight: [[1, 2], [3]] }]), j), FileFormatError, j, "layers[0].weight[1] has 1 entries but layers[0].weight[0] has 2");
    expectError(() => readModel(jsonModel([{ weight: [[1, "2"]] }]), j), FileFormatError, j, 'layers[0].weight[0][1] is "2", not a number');
    expectError(() => readModel(enc.encode('{"format": "flatness-mlp", "version": 1, "layers": [{"weight": [[1e999]]}]}'), j), FileFormatError, j, "layers[0].weight[0][0] is not a finite number");
    expectError(() => readModel(jsonModel([{ weight: [[1, 2]], bias: [1, 2] }]), j), FileFormatError, j, "layers[0].bias has 2 entries but layers[0].weight has 1 rows");
    expectError(() => readModel(jsonModel([{ weight: [[1, 2], [3, 4]] }, { weight: [[1, 2, 3]] }]), j), FileFormatError, j, "layers[1].weight has shape [1, 3] but layer 1 takes 2 inputs");
    expectError(() => readModel(jsonModel([{ weight: [[1]] }], { activation: "gelu" }), j), FileFormatError, j, '"activation" "gelu" is not supported');
    expectError(() => readModel(jsonModel([{ weight: [[1]] }], { activation: "leaky_relu", negativeSlope: "x" }), j), FileFormatError, j, '"negativeSlope" is "x"');
  });

  it("refuses to write non-finite or wrongly sized parameters", () => {
    const loaded = loadedJsonModel([2, 2]);
    expectError(() => writeModel(loaded, new Float64Array(3)), InputError, null, "have 3 values but the model has 6 parameters");
    const theta = Float64Array.from(loaded.model.theta);
    theta[4] = Infinity;
    expectError(() => writeModel(loaded, theta), InputError, null, "tensor '0.bias' has a non-finite value (Infinity) at flat index 0");
  });
});

// ------------------------------------------------------------------------------------------------
// parameter vectors

describe("parameter vectors", () => {
  const st = stateDict("net.", [0, 2], [3, 4, 2]);
  const model = readModel(writeSafetensors(st), "m.safetensors");
  const dim = model.model.theta.length;
  const vector = Float64Array.from({ length: dim }, (_, i) => (i % 7) - 3.5);

  it("round-trips as safetensors with the model's tensor names and shapes", () => {
    const bytes = writeParameterVector(model, vector, { content: "hvp" });
    const file = parseSafetensors(bytes, "v.safetensors");
    expect([...file.tensors.keys()]).toEqual(["net.0.weight", "net.0.bias", "net.2.weight", "net.2.bias"]);
    expect(file.tensors.get("net.2.weight")!.shape).toEqual([2, 4]);
    expect(file.metadata).toEqual({ content: "hvp" });
    expect(readParameterVector(bytes, "v.safetensors", model)).toEqual(vector);
  });

  it("round-trips as JSON for JSON models, and accepts a whole model file as a vector", () => {
    const json = loadedJsonModel([3, 4, 2]);
    const v = Float64Array.from({ length: json.model.theta.length }, (_, i) => 1 / (i + 1));
    const bytes = writeParameterVector(json, v);
    expect(JSON.parse(dec.decode(bytes)).format).toBe("flatness-parameters");
    expect(readParameterVector(bytes, "v.json", json)).toEqual(v);
    expect(readParameterVector(writeModel(json), "m.json", json)).toEqual(json.model.theta);
    // A JSON vector also fits a safetensors model of the same shape (matched by layer).
    expect(readParameterVector(writeParameterVector(json, v), "v.json", model)).toEqual(v);
  });

  it("names missing, extra and misshapen tensors", () => {
    const p = "v.safetensors";
    const t = (name: string, shape: number[]) => ({ name, shape, data: new Float32Array(shape.reduce((a, b) => a * b, 1)) });
    expectError(() => readParameterVector(writeSafetensors(st.slice(0, 3)), p, model), FileFormatError, p, "missing tensor(s) 'net.2.bias'");
    expectError(() => readParameterVector(writeSafetensors([...st, t("net.4.weight", [1, 2])]), p, model), FileFormatError, p, "unexpected tensor(s) 'net.4.weight'");
    expectError(() => readParameterVector(writeSafetensors([st[0], st[1], t("net.2.weight", [4, 2]), st[3]]), p, model), FileFormatError, p, "tensor 'net.2.weight' has shape [4, 2] but the model's is [2, 4]");
    const nan = st.map((x) => ({ ...x, data: Float32Array.from(x.data) }));
    nan[1].data[2] = NaN;
    expectError(() => readParameterVector(writeSafetensors(nan), p, model), FileFormatError, p, "tensor 'net.0.bias' has a non-finite value (NaN) at flat index 2");
    expectError(() => readParameterVector(new Uint8Array(3), p, model), FileFormatError, p, "truncated");

    const j = "v.json";
    const json = loadedJsonModel([3, 4, 2]);
    const doc = (layers: unknown[]) => enc.encode(JSON.stringify({ format: "flatness-parameters", version: 1, layers }));
    expectError(() => readParameterVector(doc([{ weight: [[1, 2, 3]] }]), j, json), FileFormatError, j, "has 1 layers but the model has 2");
    expectError(
      () => readParameterVector(doc([{ weight: [[1, 2, 3]], bias: [0] }, { weight: [[1, 2, 3, 4], [5, 6, 7, 8]], bias: [0, 0] }]), j, json),
      FileFormatError, j, "layers[0].weight has shape [1, 3] but the model's is [4, 3]",
    );
    const noBias = { weight: Array.from({ length: 4 }, () => [0, 0, 0]) };
    expectError(
      () => readParameterVector(doc([noBias, { weight: [[0, 0, 0, 0], [0, 0, 0, 0]], bias: [0, 0] }]), j, json),
      FileFormatError, j, "layers[0].bias is missing",
    );
  });

  it("refuses vectors of the wrong length", () => {
    expectError(() => writeParameterVector(model, new Float64Array(dim + 1)), InputError, null, `have ${dim + 1} values but the model has ${dim} parameters`);
  });
});

// ------------------------------------------------------------------------------------------------
// files

describe("files", () => {
  it("writes atomically and reads back; missing files are FileFormatErrors", async () => {
    const { mkdtemp, readdir, rm } = await import("node:fs/promises");
    const { tmpdir } = await import("node:os");
    const { join } = await import("node:path");
    const dir = await mkdtemp(join(tmpdir(), "flatness-io-"));
    try {
      const path = join(dir, "out.npy");
      const bytes = writeNpy(Float32Array.of(1, 2), [2]);
      await writeFileAtomic(path, bytes);
      await writeFileAtomic(path, bytes); // replacing an existing file
      expect(await readFileBytes(path)).toEqual(bytes);
      expect(await readdir(dir)).toEqual(["out.npy"]); // no temporary file left behind
      await writeFileAtomic(join(dir, "t.csv"), enc.encode("a,b\n1,2\n"));
      expect(await readFileText(join(dir, "t.csv"))).toBe("a,b\n1,2\n");

      const missing = join(dir, "nope.npy");
      await expect(readFileBytes(missing)).rejects.toThrow(FileFormatError);
      await expect(readFileBytes(missing)).rejects.toThrow(`${missing}: cannot read: No such file`);
      const badDir = join(dir, "no-such-dir", "x.npy");
      await expect(writeFileAtomic(badDir, bytes)).rejects.toThrow(`${badDir}: cannot write: No such file`);
      expect(await readdir(dir)).toEqual(["out.npy", "t.csv"].sort());
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

// ------------------------------------------------------------------------------------------------
// robustness: damaged bytes fail with FileFormatError, never with a crash from deep inside

describe("damaged files", () => {
  /** A small deterministic generator (xorshift32), so failures reproduce. */
  function rng(seed: number) {
    let s = seed >>> 0 || 1;
    return () => {
      s ^= s << 13;
      s >>>= 0;
      s ^= s >>> 17;
      s ^= s << 5;
      s >>>= 0;
      return s / 2 ** 32;
    };
  }

  const st = stateDict("net.", [0, 2], [3, 4, 2]);
  const like = readModel(writeSafetensors(st), "m.safetensors");
  const samples: [string, Uint8Array, (b: Uint8Array) => unknown][] = [
    ["npy", writeNpy(Float64Array.of(1, 2, 3, 4, 5, 6), [3, 2]), (b) => parseNpy(b, "f.npy")],
    ["safetensors", writeSafetensors(st, { activation: "relu" }), (b) => readModel(b, "f.safetensors")],
    ["json model", writeModel(loadedJsonModel([2, 3, 1])), (b) => readModel(b, "f.json")],
    ["vector", writeParameterVector(like, like.model.theta), (b) => readParameterVector(b, "f.safetensors", like)],
  ];

  it.each(samples)("%s: every truncation and random byte damage throws FileFormatError or parses", (_, good, read) => {
    const next = rng(12345);
    const attempts: Uint8Array[] = [];
    for (let n = 0; n < good.length; n += Math.max(1, Math.floor(good.length / 97))) attempts.push(good.subarray(0, n));
    for (let k = 0; k < 300; k++) {
      const damaged = Uint8Array.from(good);
      const flips = 1 + Math.floor(next() * 3);
      for (let f = 0; f < flips; f++) damaged[Math.floor(next() * damaged.length)] = Math.floor(next() * 256);
      attempts.push(damaged);
    }
    for (const bytes of attempts) {
      try {
        read(bytes);
      } catch (e) {
        if (!(e instanceof FileFormatError)) throw new Error(`non-FileFormatError for ${Array.from(bytes.subarray(0, 16))}: ${e}`);
      }
    }
  });
});
