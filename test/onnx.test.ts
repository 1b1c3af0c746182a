/**
 * ONNX import (src/io/onnx.ts through readModel): files built here with onnx-proto's encoder in the
 * shapes exporters write (PyTorch: Gemm with transB = 1; TensorFlow / Keras: MatMul + Add; Gemm
 * with alpha, beta and transB = 0; LeakyRelu; Flatten / Identity / Dropout), loaded, and their
 * outputs compared with an independent float64 evaluation of the ONNX graph itself; malformed files,
 * unsupported operators, missing initializers and shape mismatches give FileFormatErrors naming the
 * path and the node or tensor.
 */
import { describe, expect, it } from "vitest";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import onnxProto from "onnx-proto";
import type { onnx as OnnxTypes } from "onnx-proto";
import { loadModel } from "../src/cli/load.ts";
import { FileFormatError, InputError } from "../src/errors.ts";
import { checkModelOutputPath, readModel, writeModel } from "../src/io/modelFile.ts";
import { parseOnnxMlp } from "../src/io/onnx.ts";
import type { Dataset } from "../src/data.ts";
import { Rng } from "../src/random.ts";
import { ReferenceObjective } from "../src/reference/engine.ts";
import { assertClose } from "./support/numeric.ts";

const { onnx } = onnxProto as unknown as { onnx: typeof OnnxTypes };
const FLOAT = 1;
const DOUBLE = 11;
const INT64 = 7;

// ------------------------------------------------------------------------------------------------
// building ONNX files

interface Init {
  name: string;
  dims: number[];
  values: number[];
  dtype?: "float" | "double" | "int64";
  /** Store in raw_data (little-endian bytes, as PyTorch does) instead of float_data / double_data. */
  raw?: boolean;
}

function tensor(t: Init): OnnxTypes.ITensorProto {
  const dataType = t.dtype === "double" ? DOUBLE : t.dtype === "int64" ? INT64 : FLOAT;
  const proto: OnnxTypes.ITensorProto = { name: t.name, dims: t.dims, dataType };
  if (t.raw) {
    const arr = dataType === DOUBLE ? Float64Array.from(t.values) : dataType === INT64 ? BigInt64Array.from(t.values.map(BigInt)) : Float32Array.from(t.values);
    proto.rawData = new Uint8Array(arr.buffer);
  } else if (dataType === DOUBLE) proto.doubleData = t.values;
  else if (dataType === INT64) proto.int64Data = t.values;
  else proto.floatData = t.values;
  return proto;
}

type Attr = { name: string; f?: number; i?: number };
function node(opType: string, input: string[], output: string[], name: string, attrs: Attr[] = []): OnnxTypes.INodeProto {
  const attribute = attrs.map((a) => a.f !== undefined
    ? { name: a.name, type: onnx.AttributeProto.AttributeType.FLOAT, f: a.f }
    : { name: a.name, type: onnx.AttributeProto.AttributeType.INT, i: a.i });
  return { opType, input, output, name, attribute };
}

function valueInfo(name: string, dims: (number | string)[]): OnnxTypes.IValueInfoProto {
  return {
    name,
    type: { tensorType: { elemType: FLOAT, shape: { dim: dims.map((d) => (typeof d === "number" ? { dimValue: d } : { dimParam: d })) } } },
  };
}

function onnxModel(nodes: OnnxTypes.INodeProto[], inits: Init[], inputDims: (number | string)[], output: string, extraInputs: string[] = []): Uint8Array {
  return onnx.ModelProto.encode({
    irVersion: 8,
    producerName: "flatness-test",
    opsetImport: [{ domain: "", version: 17 }],
    graph: {
      name: "mlp",
      node: nodes,
      initializer: inits.map(tensor),
      // Old exporters also list initializers as inputs: those must be ignored.
      input: [valueInfo("x", inputDims), ...extraInputs.map((n) => valueInfo(n, []))],
      output: [valueInfo(output, ["N", 0])],
    },
  }).finish();
}

const rng = new Rng(5);
const randn = (n: number, scale = 0.5) => Array.from({ length: n }, () => scale * rng.normal());

// ------------------------------------------------------------------------------------------------
// an independent float64 evaluation of the ONNX graph (only the operators used here)

function evalOnnx(bytes: Uint8Array, x: Float64Array, n: number, d: number): { values: Float64Array; cols: number } {
  const m = onnx.ModelProto.decode(bytes);
  const g = m.graph!;
  type Mat = { v: Float64Array; r: number; c: number };
  const env = new Map<string, Mat>();
  const values = (t: OnnxTypes.ITensorProto) => {
    if (t.rawData && t.rawData.length) {
      const buf = new Uint8Array(t.rawData).buffer;
      return t.dataType === DOUBLE ? new Float64Array(buf) : Float64Array.from(new Float32Array(buf));
    }
    return Float64Array.from(t.dataType === DOUBLE ? t.doubleData! : t.floatData!);
  };
  for (const t of g.initializer!) {
    const dims = t.dims!.map(Number);
    env.set(t.name!, { v: values(t), r: dims.length === 2 ? dims[0] : 1, c: dims.length === 2 ? dims[1] : dims[0] ?? 1 });
  }
  env.set("x", { v: x, r: n, c: d });
  const at = (a: Mat, i: number, j: number) => a.v[i * a.c + j];
  const matmul = (a: Mat, b: Mat, transB: boolean): Mat => {
    const cols = transB ? b.r : b.c;
    const out = new Float64Array(a.r * cols);
    for (let i = 0; i < a.r; i++) for (let j = 0; j < cols; j++) {
      let s = 0;
      for (let k = 0; k < a.c; k++) s += at(a, i, k) * (transB ? at(b, j, k) : at(b, k, j));
      out[i * cols + j] = s;
    }
    return { v: out, r: a.r, c: cols };
  };
  const broadcastAdd = (a: Mat, b: Mat, beta = 1): Mat => ({ v: a.v.map((v, i) => v + beta * b.v[(i % a.c) % b.v.length]), r: a.r, c: a.c });
  const attr = (nd: OnnxTypes.INodeProto, name: string, def: number) => {
    const a = nd.attribute!.find((x) => x.name === name);
    return a ? (a.type === onnx.AttributeProto.AttributeType.FLOAT ? a.f! : Number(a.i)) : def;
  };
  for (const nd of g.node!) {
    const ins = nd.input!.map((s) => env.get(s)!);
    let y: Mat;
    switch (nd.opType) {
      case "Gemm": {
        const alpha = attr(nd, "alpha", 1);
        const p = matmul(ins[0], ins[1], attr(nd, "transB", 0) === 1);
        y = { ...p, v: p.v.map((v) => alpha * v) };
        if (ins[2]) y = broadcastAdd(y, ins[2], attr(nd, "beta", 1));
        break;
      }
      case "MatMul":
        y = matmul(ins[0], ins[1], false);
        break;
      case "Add": {
        const di = g.initializer!.some((t) => t.name === nd.input![0]) ? 1 : 0; // the data side
        y = broadcastAdd(ins[di], ins[1 - di]);
        break;
      }
      case "Relu":
        y = { ...ins[0], v: ins[0].v.map((v) => Math.max(v, 0)) };
        break;
      case "LeakyRelu": {
        const s = attr(nd, "alpha", 0.01);
        y = { ...ins[0], v: ins[0].v.map((v) => (v > 0 ? v : s * v)) };
        break;
      }
      default: // Flatten, Identity, Dropout on [N, d]
        y = ins[0];
    }
    env.set(nd.output![0], y);
  }
  const out = env.get(g.output![0].name!)!;
  return { values: out.v, cols: out.c };
}

/** Loads `bytes` as net.onnx and compares the model's outputs with the graph's own evaluation. */
function checkOutputs(label: string, bytes: Uint8Array, d: number) {
  const loaded = readModel(bytes, "net.onnx");
  const n = 9;
  const x = Float32Array.from(randn(n * d, 1));
  const data: Dataset = { n, features: d, x, targets: new Float32Array(n * loaded.model.spec.layers.at(-1)!.outFeatures) };
  const got = new ReferenceObjective(loaded.model.spec, data, "mse");
  const want = evalOnnx(bytes, Float64Array.from(x), n, d);
  return got.outputs(loaded.model.theta).then((out) => {
    expect(out.length, label).toBe(want.values.length);
    assertClose(label, out, want.values, 1e-12, 1e-12);
    return loaded;
  });
}

function expectFileError(fn: () => unknown, path: string, ...fragments: string[]) {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  expect(caught, "expected a FileFormatError").toBeInstanceOf(FileFormatError);
  const message = (caught as Error).message;
  expect(message.startsWith(`${path}: `), message).toBe(true);
  for (const f of fragments) expect(message, message).toContain(f);
}

// ------------------------------------------------------------------------------------------------
// the nets

/** PyTorch's export of nn.Sequential(Linear(4, 6), ReLU(), Linear(6, 5), ReLU(), Linear(5, 3)). */
function pytorchNet(raw = true): { bytes: Uint8Array; inits: Init[] } {
  const inits: Init[] = [
    { name: "0.weight", dims: [6, 4], values: randn(24), raw },
    { name: "0.bias", dims: [6], values: randn(6), raw },
    { name: "2.weight", dims: [5, 6], values: randn(30), raw },
    { name: "2.bias", dims: [5], values: randn(5), raw },
    { name: "4.weight", dims: [3, 5], values: randn(15), raw },
    { name: "4.bias", dims: [3], values: randn(3), raw },
  ];
  const nodes = [
    node("Gemm", ["x", "0.weight", "0.bias"], ["h0"], "/0/Gemm", [{ name: "alpha", f: 1 }, { name: "beta", f: 1 }, { name: "transB", i: 1 }]),
    node("Relu", ["h0"], ["a0"], "/1/Relu"),
    node("Gemm", ["a0", "2.weight", "2.bias"], ["h1"], "/2/Gemm", [{ name: "transB", i: 1 }]),
    node("Relu", ["h1"], ["a1"], "/3/Relu"),
    node("Gemm", ["a1", "4.weight", "4.bias"], ["y"], "/4/Gemm", [{ name: "transB", i: 1 }]),
  ];
  return { bytes: onnxModel(nodes, inits, ["batch", 4], "y"), inits };
}

describe("ONNX import", () => {
  it("PyTorch export (Gemm, transB = 1, raw_data float32): weights map to [out, in] and outputs match the graph in float64", async () => {
    const { bytes, inits } = pytorchNet();
    const loaded = await checkOutputs("pytorch", bytes, 4);
    const { spec, theta } = loaded.model;
    expect(spec.layers.map((l) => [l.inFeatures, l.outFeatures, l.bias])).toEqual([[4, 6, true], [6, 5, true], [5, 3, true]]);
    expect(spec.activation).toEqual({ kind: "relu" });
    // Layout: 0.weight as given (PyTorch's [out, in]), then 0.bias, ...; values as float32.
    expect(Array.from(theta.subarray(0, 24))).toEqual(Array.from(Float32Array.from(inits[0].values)));
    expect(loaded.format).toBe("safetensors");
    expect(loaded.tensorNames).toEqual(["0.weight", "0.bias", "2.weight", "2.bias", "4.weight", "4.bias"]);
    expect(loaded.dtype).toBe("F32");
    expect(loaded.metadata.source_format).toBe("onnx");
  });

  it("TensorFlow / Keras style (MatMul [in, out] + Add, bias on either side, double float_data, LeakyRelu alpha, Flatten, Identity, Dropout)", async () => {
    const inits: Init[] = [
      { name: "dense/kernel", dims: [5, 7], values: randn(35), dtype: "double" },
      { name: "dense/bias", dims: [7], values: randn(7), dtype: "double" },
      { name: "dense_1/kernel", dims: [7, 4], values: randn(28), dtype: "double" },
      { name: "dense_1/bias", dims: [1, 4], values: randn(4), dtype: "double" },
      { name: "out/kernel", dims: [4, 2], values: randn(8), dtype: "double" },
    ];
    const nodes = [
      node("Flatten", ["x"], ["xf"], "flatten", [{ name: "axis", i: 1 }]),
      node("MatMul", ["xf", "dense/kernel"], ["m0"], "dense/MatMul"),
      node("Add", ["m0", "dense/bias"], ["z0"], "dense/BiasAdd"),
      node("LeakyRelu", ["z0"], ["a0"], "dense/LeakyRelu", [{ name: "alpha", f: 0.2 }]),
      node("Identity", ["a0"], ["a0i"], "identity"),
      node("MatMul", ["a0i", "dense_1/kernel"], ["m1"], "dense_1/MatMul"),
      node("Add", ["dense_1/bias", "m1"], ["z1"], "dense_1/BiasAdd"),
      node("LeakyRelu", ["z1"], ["a1"], "dense_1/LeakyRelu", [{ name: "alpha", f: 0.2 }]),
      node("Dropout", ["a1"], ["a1d"], "dropout"),
      node("MatMul", ["a1d", "out/kernel"], ["y"], "out/MatMul"),
    ];
    const bytes = onnxModel(nodes, inits, ["N", 5], "y", inits.map((i) => i.name));
    const loaded = await checkOutputs("keras", bytes, 5);
    const { spec, theta } = loaded.model;
    expect(spec.layers.map((l) => [l.inFeatures, l.outFeatures, l.bias])).toEqual([[5, 7, true], [7, 4, true], [4, 2, false]]);
    expect(spec.activation.kind).toBe("leaky_relu");
    expect((spec.activation as { slope: number }).slope).toBeCloseTo(0.2, 7);
    expect(loaded.dtype).toBe("F64");
    // W_0[o][i] = kernel[i][o]
    expect(theta[1 * 5 + 3]).toBe(inits[0].values[3 * 7 + 1]);
  });

  it("Gemm with transB = 0, alpha, beta and a [1, out] bias; LeakyRelu without alpha takes ONNX's default 0.01", async () => {
    const inits: Init[] = [
      { name: "W1", dims: [3, 4], values: randn(12) },
      { name: "C1", dims: [1, 4], values: randn(4) },
      { name: "W2", dims: [4, 2], values: randn(8), raw: true },
      { name: "C2", dims: [2], values: randn(2), raw: true },
    ];
    const nodes = [
      node("Gemm", ["x", "W1", "C1"], ["h"], "fc1", [{ name: "alpha", f: 0.5 }, { name: "beta", f: 2 }]),
      node("LeakyRelu", ["h"], ["a"], "act"),
      node("Gemm", ["a", "W2", "C2"], ["y"], "fc2", [{ name: "transB", i: 0 }, { name: "beta", f: -1 }]),
    ];
    const loaded = await checkOutputs("gemm alpha beta", onnxModel(nodes, inits, [2, 3], "y"), 3);
    expect(loaded.model.spec.activation.kind).toBe("leaky_relu");
    expect((loaded.model.spec.activation as { slope: number }).slope).toBeCloseTo(0.01, 7);
  });

  it("a model read from ONNX is written as safetensors with PyTorch names and reads back equal; ONNX output paths are refused", () => {
    const { bytes } = pytorchNet(false);
    const loaded = readModel(bytes, "net.onnx");
    const written = writeModel(loaded);
    const back = readModel(written, "net.safetensors");
    expect(Array.from(back.model.theta)).toEqual(Array.from(loaded.model.theta));
    expect(back.model.spec).toEqual(loaded.model.spec);
    // A transform's output named .onnx is read back before it is written: refused there.
    expectFileError(() => readModel(written, "out.onnx"), "out.onnx", "holds a safetensors model, not ONNX", ".safetensors or .json");
    expect(() => checkModelOutputPath("out.onnx")).toThrow(InputError);
    expect(() => checkModelOutputPath("out.onnx")).toThrow(/writing ONNX is not supported/);
    expect(() => checkModelOutputPath("out.safetensors")).not.toThrow();
    // Detected by content under another name.
    expect(readModel(bytes, "net.bin").model.theta).toEqual(loaded.model.theta);
  });

  it("loadModel (every command's --model) accepts .onnx files", async () => {
    const dir = mkdtempSync(join(tmpdir(), "flatness-onnx-"));
    const { bytes } = pytorchNet();
    writeFileSync(join(dir, "net.onnx"), bytes);
    const loaded = await loadModel(join(dir, "net.onnx"));
    expect(loaded.model.spec.layers.length).toBe(3);
  });

  describe("clear errors naming the path and the node or tensor", () => {
    const base = () => pytorchNet(false);
    const rebuild = (edit: (m: OnnxTypes.ModelProto) => void) => {
      const m = onnx.ModelProto.decode(base().bytes);
      edit(m);
      return onnx.ModelProto.encode(m).finish();
    };

    it("malformed files", () => {
      expectFileError(() => parseOnnxMlp(new Uint8Array(0), "net.onnx"), "net.onnx", "file is empty");
      const truncated = base().bytes.subarray(0, 40);
      expectFileError(() => readModel(truncated, "net.onnx"), "net.onnx", "not a valid ONNX model");
      const garbage = Uint8Array.from({ length: 64 }, (_, i) => (i * 37 + 11) & 0xff);
      expectFileError(() => readModel(garbage, "net.onnx"), "net.onnx");
      expectFileError(() => readModel(onnx.ModelProto.encode({ irVersion: 8 }).finish(), "net.onnx"), "net.onnx", "no graph");
    });

    it("an unsupported operator is named with its node", () => {
      const bytes = rebuild((m) => {
        m.graph!.node![1].opType = "Sigmoid";
        m.graph!.node![1].name = "act1";
      });
      expectFileError(() => readModel(bytes, "net.onnx"), "net.onnx", "unsupported operator Sigmoid (node 'act1')");
      expect(() => readModel(bytes, "net.onnx")).toThrow(/^net\.onnx: unsupported operator Sigmoid \(node 'act1'\)$/);
    });

    it("a missing initializer", () => {
      const bytes = rebuild((m) => {
        m.graph!.initializer = m.graph!.initializer!.filter((t) => t.name !== "2.weight");
      });
      expectFileError(() => readModel(bytes, "net.onnx"), "net.onnx", "node '/2/Gemm' (Gemm)", "'2.weight' is not an initializer");
    });

    it("inconsistent shapes: a weight that does not take the previous layer's outputs, a bias of the wrong length, raw_data of the wrong size", () => {
      const wrongIn = rebuild((m) => {
        const t = m.graph!.initializer!.find((x) => x.name === "2.weight")!;
        t.dims = [5, 5];
        t.floatData = t.floatData!.slice(0, 25);
      });
      expectFileError(() => readModel(wrongIn, "net.onnx"), "net.onnx", "inconsistent shapes", "'2.weight' takes 5 inputs but layer 0 gives 6 outputs");
      const wrongBias = rebuild((m) => {
        const t = m.graph!.initializer!.find((x) => x.name === "0.bias")!;
        t.dims = [4];
        t.floatData = t.floatData!.slice(0, 4);
      });
      expectFileError(() => readModel(wrongBias, "net.onnx"), "net.onnx", "bias '0.bias' has shape [4] but layer 0 has 6 outputs");
      const wrongInput = rebuild((m) => {
        m.graph!.input![0].type!.tensorType!.shape!.dim![1] = onnx.TensorShapeProto.Dimension.create({ dimValue: 7 });
      });
      expectFileError(() => readModel(wrongInput, "net.onnx"), "net.onnx", "graph input 'x' has 7 features");
      const rawShort = onnxModel([node("Gemm", ["x", "W", "b"], ["y"], "fc", [{ name: "transB", i: 1 }])], [
        { name: "W", dims: [2, 3], values: randn(5), raw: true },
        { name: "b", dims: [2], values: randn(2) },
      ], ["N", 3], "y");
      expectFileError(() => readModel(rawShort, "net.onnx"), "net.onnx", "initializer 'W' has 20 bytes of raw_data but shape [2, 3] of FLOAT needs 24");
    });

    it("unsupported data types, activations on the output, mixed activations, dangling graphs", () => {
      const ints = onnxModel([node("MatMul", ["x", "W"], ["y"], "mm")], [{ name: "W", dims: [2, 2], values: [1, 2, 3, 4], dtype: "int64" }], ["N", 2], "y");
      expectFileError(() => readModel(ints, "net.onnx"), "net.onnx", "initializer 'W' has data type INT64");
      const reluOut = rebuild((m) => {
        m.graph!.node!.push(node("Relu", ["y"], ["y2"], "final") as OnnxTypes.NodeProto);
        m.graph!.output![0].name = "y2";
      });
      expectFileError(() => readModel(reluOut, "net.onnx"), "net.onnx", "output layer is followed by Relu");
      const mixed = rebuild((m) => {
        m.graph!.node![3] = node("LeakyRelu", ["h1"], ["a1"], "/3/LeakyRelu") as OnnxTypes.NodeProto;
      });
      expectFileError(() => readModel(mixed, "net.onnx"), "net.onnx", "every hidden layer must use the same activation");
      const noAct = rebuild((m) => {
        m.graph!.node![1] = node("Identity", ["h0"], ["a0"], "skip") as OnnxTypes.NodeProto;
      });
      expectFileError(() => readModel(noAct, "net.onnx"), "net.onnx", "no Relu/LeakyRelu between them");
      const wrongOutput = rebuild((m) => {
        m.graph!.output![0].name = "h1";
      });
      expectFileError(() => readModel(wrongOutput, "net.onnx"), "net.onnx", "graph output 'h1' is not the end of the layer chain");
      const branch = rebuild((m) => {
        m.graph!.node!.splice(2, 0, node("Relu", ["h0"], ["side"], "side") as OnnxTypes.NodeProto);
      });
      expectFileError(() => readModel(branch, "net.onnx"), "net.onnx", "node 'side' (Relu) does not act on the data path");
    });
  });
});
