/**
 * ONNX import of rectified nets. Convolutional nets as torch.onnx.export writes them (Conv with
 * groups / dilations / symmetric pads, Relu / LeakyRelu, MaxPool / AveragePool / Global*Pool in
 * floor mode after a convolution's activation, zero Pad before AveragePool or Conv, Flatten or a
 * Reshape to [N, features] including the Shape/Gather/Unsqueeze/Concat computation of
 * x.view(x.size(0), -1), then the Linear layers below) and eval-mode BatchNormalization right after
 * a Conv / Gemm / MatMul(+Add), folded into that layer (the model as evaluated), are read into a
 * ModelSpec with conv2d layers; docs/model-format.md lists what is refused (ceil_mode, asymmetric
 * pads, auto_pad SAME, other operators), always by node. The MLP case, unchanged:
 *
 * ONNX import of rectified MLPs: an ONNX ModelProto (protobuf, decoded with the `onnx-proto`
 * package's generated protobufjs code) whose graph is one chain
 *
 *   input -> [Flatten | Identity | Dropout]* -> Linear -> Act -> Linear -> Act -> ... -> Linear -> output
 *
 * where a Linear is
 *   - Gemm(A = the chain, B = initializer, C = optional initializer), with transA = 0 and any
 *     transB, alpha, beta: Y = alpha A B' + beta C, B' = B^T when transB = 1 (PyTorch's export
 *     of nn.Linear: B is the [out, in] weight) or B [in, out] when transB = 0;
 *   - MatMul(the chain, W [in, out]) optionally followed by Add(., b) or Add(b, .) (TensorFlow /
 *     Keras style); an Add of an initializer right after a Gemm adds to its bias;
 * and Act is Relu, or LeakyRelu (its `alpha` attribute, default 0.01, becomes the negative slope).
 * Every hidden layer must use the same activation, the output layer none (the model is linear on
 * top, as Definition 3 of Dinh et al.). Flatten (axis 1), Identity and Dropout (inference) are
 * accepted where they do nothing to an [N, features] batch. Initializers (or Constant nodes) are
 * FLOAT, DOUBLE or FLOAT16, in raw_data (little-endian) or float_data / double_data; weights are
 * mapped to the flat layout of src/model.ts (per layer W [out, in] row-major, then the bias), so
 * the model reads exactly like the same net saved from PyTorch as safetensors.
 *
 * Writing ONNX is not supported: a model read from ONNX is a LoadedModel of format "safetensors"
 * with PyTorch nn.Sequential tensor names ("0.weight", "0.bias", "2.weight", ...), F32 (F64 when
 * every initializer was DOUBLE), so transforms of it are written as safetensors (or JSON, by the
 * caller's choice) and parameter vectors (directions, gradients) use those names.
 *
 * Every problem is a FileFormatError naming the path, and where it applies the node
 * ("net.onnx: unsupported operator Sigmoid (node 'act1')") or the initializer and shapes.
 */
import onnxProto from "onnx-proto";
import type { onnx as OnnxTypes } from "onnx-proto";
import { FileFormatError } from "../errors.ts";
import {
  type Activation,
  type Conv2dLayerSpec,
  convOutputShape,
  type LayerSpec,
  type ModelSpec,
  type Pair,
  parameterLayout,
  type Pool2dSpec,
  poolOutputShape,
  validateSpec,
} from "../model.ts";
import { copyElements, float16ToFloat32, formatShape, shapeSize } from "./binary.ts";

// onnx-proto is CommonJS (`module.exports = $root`): its namespace is the default export under
// Deno, Node and esbuild alike (a named import fails at run time under Deno).
const { onnx } = onnxProto as unknown as { onnx: typeof OnnxTypes };

/** The ONNX data types read here (onnx.proto TensorProto.DataType). */
const FLOAT = 1;
const INT32 = 6;
const INT64 = 7;
const BOOL = 9;
const FLOAT16 = 10;
const DOUBLE = 11;
const DATA_TYPE_NAMES: Record<number, string> = {
  0: "UNDEFINED", 1: "FLOAT", 2: "UINT8", 3: "INT8", 4: "UINT16", 5: "INT16", 6: "INT32", 7: "INT64", 8: "STRING",
  9: "BOOL", 10: "FLOAT16", 11: "DOUBLE", 12: "UINT32", 13: "UINT64", 14: "COMPLEX64", 15: "COMPLEX128", 16: "BFLOAT16",
};

/** What an ONNX file holds, mapped onto this toolkit's model (see the header). */
export interface OnnxModel {
  spec: ModelSpec;
  theta: Float64Array;
  /** "F64" when every weight and bias initializer was DOUBLE, else "F32". */
  dtype: "F32" | "F64";
  /** Per layer: the ONNX names of the weight and bias tensors it came from (bias null when none). */
  sources: { node: string; weight: string; bias: string | null }[];
  /** producer_name / producer_version / graph name, when the file gives them. */
  metadata: Record<string, string>;
}

/** The earlier name of OnnxModel. */
export type OnnxMlp = OnnxModel;

/** True for a path that names an ONNX file (by its extension). */
export function isOnnxPath(path: string): boolean {
  return /\.onnx$/i.test(path);
}

interface Tensor {
  name: string;
  dims: number[];
  values: Float64Array;
  dataType: number;
}

interface Layer {
  kind: "linear" | "conv2d";
  node: string;
  /** [out, in] (linear) or [out, in/groups, kh, kw] (conv2d), row-major. */
  weight: Float64Array;
  /** Output units (features or channels). */
  out: number;
  /** Input features or channels. */
  in: number;
  bias: Float64Array | null;
  weightName: string;
  biasName: string | null;
  dtypes: number[];
  /** Activation applied to this layer's output (null: none yet). */
  activation: Activation | null;
  /** Pooling after it (convolutions only). */
  pool: Pool2dSpec | null;
  /** The convolution's geometry (bias and pool filled in at the end). */
  conv?: Conv2dLayerSpec;
}

/** int64 fields decode as number or Long; both become a safe integer (or a clear error). */
function toInt(v: unknown, what: string, fail: (p: string) => never): number {
  const n = typeof v === "number" ? v : typeof (v as { toNumber?: () => number })?.toNumber === "function"
    ? (v as { toNumber: () => number }).toNumber()
    : Number(v);
  if (!Number.isSafeInteger(n)) fail(`${what} is not an integer (${String(v)})`);
  return n;
}

function nodeLabel(node: OnnxTypes.INodeProto, index: number): string {
  return node.name ? `node '${node.name}'` : `node #${index}${node.output?.[0] ? ` (output '${node.output[0]}')` : ""}`;
}

/** Decodes one TensorProto to float64 values, checking its type, storage and size. */
function readTensor(t: OnnxTypes.ITensorProto, where: string, fail: (p: string) => never): Tensor {
  const name = t.name ?? "";
  const label = `${where} '${name}'`;
  const dims = (t.dims ?? []).map((d, i) => toInt(d, `${label} dimension ${i}`, fail));
  if (dims.some((d) => d < 0)) fail(`${label} has a negative dimension ${formatShape(dims)}`);
  const count = shapeSize(dims);
  const dataType = t.dataType ?? 0;
  if (t.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL) {
    fail(`${label} keeps its data in an external file, which is not supported (save the model with the weights inside)`);
  }
  if (dataType !== FLOAT && dataType !== DOUBLE && dataType !== FLOAT16) {
    fail(`${label} has data type ${DATA_TYPE_NAMES[dataType] ?? dataType}, which is not supported (use FLOAT, DOUBLE or FLOAT16)`);
  }
  const raw = t.rawData && t.rawData.length > 0 ? t.rawData : null;
  let values: Float64Array;
  if (raw) {
    const size = dataType === DOUBLE ? 8 : dataType === FLOAT ? 4 : 2;
    if (raw.length !== count * size) {
      fail(`${label} has ${raw.length} bytes of raw_data but shape ${formatShape(dims)} of ${DATA_TYPE_NAMES[dataType]} needs ${count * size}`);
    }
    const buffer = copyElements(raw, 0, count, size, true);
    values = dataType === DOUBLE
      ? new Float64Array(buffer)
      : dataType === FLOAT
      ? Float64Array.from(new Float32Array(buffer))
      : Float64Array.from(float16ToFloat32(new Uint16Array(buffer)));
  } else if (dataType === DOUBLE) {
    values = Float64Array.from(t.doubleData ?? []);
  } else if (dataType === FLOAT) {
    values = Float64Array.from(t.floatData ?? []);
  } else {
    // FLOAT16 outside raw_data is stored as its bit patterns in int32_data.
    values = Float64Array.from(float16ToFloat32(Uint16Array.from(t.int32Data ?? [])));
  }
  if (values.length !== count) {
    fail(`${label} has ${values.length} values but its shape ${formatShape(dims)} needs ${count}`);
  }
  for (let i = 0; i < values.length; i++) {
    if (!Number.isFinite(values[i])) fail(`${label} has a non-finite value (${values[i]}) at flat index ${i}`);
  }
  return { name, dims, values, dataType };
}

function attribute(node: OnnxTypes.INodeProto, name: string): OnnxTypes.IAttributeProto | undefined {
  return node.attribute?.find((a) => a.name === name);
}

/** A FLOAT attribute, as stored (float32: PyTorch's LeakyReLU(0.2) arrives as 0.20000000298...). */
function floatAttribute(node: OnnxTypes.INodeProto, name: string, fallback: number): number {
  const a = attribute(node, name);
  return a ? (a.f ?? fallback) : fallback;
}

function intAttribute(node: OnnxTypes.INodeProto, name: string, fallback: number, fail: (p: string) => never, where: string): number {
  const a = attribute(node, name);
  return a ? toInt(a.i ?? 0, `${where} attribute ${name}`, fail) : fallback;
}

function intsAttribute(node: OnnxTypes.INodeProto, name: string, fail: (p: string) => never, where: string): number[] | undefined {
  const a = attribute(node, name);
  return a ? (a.ints ?? []).map((v, i) => toInt(v, `${where} attribute ${name}[${i}]`, fail)) : undefined;
}

function stringAttribute(node: OnnxTypes.INodeProto, name: string, fallback: string): string {
  const a = attribute(node, name);
  return a?.s && a.s.length ? new TextDecoder().decode(a.s) : fallback;
}

/** Decodes an INT64 / INT32 TensorProto (shapes, pads, indices), or null for other types. */
function readInts(t: OnnxTypes.ITensorProto, label: string, fail: (p: string) => never): { dims: number[]; values: number[] } | null {
  const dataType = t.dataType ?? 0;
  if (dataType !== INT64 && dataType !== INT32) return null;
  const dims = (t.dims ?? []).map((d, i) => toInt(d, `${label} dimension ${i}`, fail));
  const count = shapeSize(dims);
  let values: number[];
  if (t.rawData && t.rawData.length) {
    const size = dataType === INT64 ? 8 : 4;
    if (t.rawData.length !== count * size) fail(`${label} has ${t.rawData.length} bytes of raw_data but shape ${formatShape(dims)} needs ${count * size}`);
    const view = new DataView(t.rawData.buffer, t.rawData.byteOffset, t.rawData.byteLength);
    values = Array.from({ length: count }, (_, i) =>
      dataType === INT64 ? toInt(view.getBigInt64(i * 8, true), `${label}[${i}]`, fail) : view.getInt32(i * 4, true));
  } else {
    values = ((dataType === INT64 ? t.int64Data : t.int32Data) ?? []).map((v, i) => toInt(v, `${label}[${i}]`, fail));
  }
  if (values.length !== count) fail(`${label} has ${values.length} values but its shape ${formatShape(dims)} needs ${count}`);
  return { dims, values };
}

/** A value computed beside the data path from Shape (the batch size is unknown: null). */
interface ShapeValue {
  values: (number | null)[];
  scalar: boolean;
}

/** Operators of the small shape computations exporters write for x.view(x.size(0), -1). */
const SHAPE_OPS = new Set(["Gather", "Unsqueeze", "Squeeze", "Concat", "Cast"]);

/** Parses an ONNX file into a rectified net (MLP or CNN); every problem throws FileFormatError naming `path`. */
export function parseOnnxModel(bytes: Uint8Array, path: string, options: { activation?: Activation } = {}): OnnxModel {
  const fail = (problem: string): never => {
    throw new FileFormatError(path, problem);
  };
  if (bytes.length === 0) fail("file is empty");
  let model: OnnxTypes.ModelProto;
  try {
    model = onnx.ModelProto.decode(bytes);
  } catch (e) {
    return fail(`not a valid ONNX model (protobuf decoding failed: ${(e as Error).message})`);
  }
  const graph = model.graph;
  if (!graph || (!graph.node?.length && !graph.initializer?.length)) fail("not an ONNX model: it has no graph (or an empty one)");
  const g = graph!;

  // Constants: initializers and Constant nodes (PyTorch emits the latter for pads and shapes).
  // Decoded when used, as floats (weights) or integers (pads, shapes).
  const protos = new Map<string, { t: OnnxTypes.ITensorProto; kind: string }>();
  for (const t of g.initializer ?? []) {
    if (!t.name) fail("an initializer has no name");
    protos.set(t.name!, { t, kind: "initializer" });
  }
  (g.node ?? []).forEach((node, index) => {
    if (node.opType !== "Constant") return;
    const value = attribute(node, "value");
    if (!value?.t) fail(`${nodeLabel(node, index)} (Constant) has no tensor 'value' attribute, which is not supported`);
    const name = node.output?.[0];
    if (!name) fail(`${nodeLabel(node, index)} (Constant) has no output`);
    protos.set(name!, { t: { ...value!.t!, name }, kind: "constant" });
  });
  const floats = new Map<string, Tensor>();
  const floatConstant = (name: string): Tensor | undefined => {
    const p = protos.get(name);
    if (!p) return undefined;
    if (!floats.has(name)) floats.set(name, readTensor({ ...p.t, name }, p.kind, fail));
    return floats.get(name);
  };

  const inputs = (g.input ?? []).filter((v) => v.name && !protos.has(v.name));
  if (inputs.length !== 1) {
    fail(`the graph must have one data input (samples x features), it has ${inputs.length}${inputs.length ? `: ${inputs.map((v) => `'${v.name}'`).join(", ")}` : ""}`);
  }
  const input = inputs[0];
  // Dimensions given as numbers (dim_value > 0); symbolic ones (dim_param, e.g. "batch") are null.
  const inputDims = input.type?.tensorType?.shape?.dim?.map((d, i) =>
    d.dimParam ? null : toInt(d.dimValue ?? 0, `input '${input.name}' dimension ${i}`, fail) || null
  );
  // The per-sample shape on the data path: [C, H, W] for images (spatial), [d] once flat; null when unknown.
  let shape: number[] | null = null;
  let spatial = false;
  if (inputDims && inputDims.length === 4) {
    spatial = true;
    if (inputDims.slice(1).every((d) => typeof d === "number" && d > 0)) shape = inputDims.slice(1) as number[];
  } else if (inputDims && inputDims.length >= 2 && inputDims.slice(1).every((d) => typeof d === "number" && d > 0)) {
    shape = [shapeSize(inputDims.slice(1) as number[])];
  }
  const dataShapes = new Map<string, number[] | null>([[input.name!, shape]]);
  const shapeValues = new Map<string, ShapeValue>();

  const layers: Layer[] = [];
  let current = input.name!; // the value that carries the data through the chain
  // Where the chain stands: after a parametric layer (a bias Add or a BatchNormalization may still
  // join it), after its activation, after its pooling.
  let stage = "input" as "input" | "layer" | "pooled-pre" | "activated" | "pooled";
  let canJoin = false; // the previous op on the chain was linear (Gemm, MatMul, Conv, Add, BatchNormalization)
  let pendingPad: { pads: Pair; what: string } | null = null;
  const folded: string[] = [];

  const what = (node: OnnxTypes.INodeProto, index: number) => `${nodeLabel(node, index)} (${node.opType})`;
  const imageShape = (s: number[]) => s.join("x");

  const initializerInput = (node: OnnxTypes.INodeProto, index: number, slot: number, role: string): Tensor => {
    const name = node.input?.[slot];
    if (!name) return fail(`${what(node, index)} has no ${role} input`);
    const t = floatConstant(name);
    if (!t) {
      return fail(`${what(node, index)}: ${role} '${name}' is not an initializer (a missing initializer, or weights computed in the graph, which is not supported)`);
    }
    return t;
  };

  const intInput = (node: OnnxTypes.INodeProto, index: number, slot: number, role: string): ShapeValue => {
    const name = node.input?.[slot] ?? "";
    const side = shapeValues.get(name);
    if (side) return side;
    const p = protos.get(name);
    if (!p) return fail(`${what(node, index)}: ${role} '${name}' is neither a constant nor computed from Shape, which is not supported`);
    const ints = readInts(p.t, `${p.kind} '${name}'`, fail);
    if (!ints) return fail(`${what(node, index)}: ${role} '${name}' has data type ${DATA_TYPE_NAMES[p.t.dataType ?? 0] ?? p.t.dataType}, expected INT64`);
    return { values: ints.values, scalar: ints.dims.length === 0 };
  };

  const symmetricPads = (pads: number[] | undefined, node: OnnxTypes.INodeProto, index: number): Pair => {
    if (!pads) return [0, 0];
    if (pads.length !== 4) fail(`${what(node, index)}: pads [${pads.join(", ")}] must have 4 entries (top, left, bottom, right): only 2-D windows are supported`);
    if (pads[0] !== pads[2] || pads[1] !== pads[3]) {
      fail(`${what(node, index)}: asymmetric pads [${pads.join(", ")}] (top, left, bottom, right) are not supported; PyTorch pads both sides alike`);
    }
    if (pads.some((p) => p < 0)) fail(`${what(node, index)}: negative pads [${pads.join(", ")}] are not supported`);
    return [pads[0], pads[1]];
  };

  const pairAttribute = (node: OnnxTypes.INodeProto, index: number, name: string, fallback: Pair): Pair => {
    const v = intsAttribute(node, name, fail, what(node, index));
    if (v === undefined) return fallback;
    if (v.length !== 2) fail(`${what(node, index)}: ${name} [${v.join(", ")}] must have 2 entries: only 2-D windows are supported`);
    return [v[0], v[1]];
  };

  const autoPad = (node: OnnxTypes.INodeProto, index: number): void => {
    const mode = stringAttribute(node, "auto_pad", "NOTSET");
    if (mode !== "NOTSET" && mode !== "VALID") {
      fail(`${what(node, index)}: auto_pad ${mode} is not supported (export with explicit pads, e.g. PyTorch's padding=k//2)`);
    }
  };

  const requireImage = (node: OnnxTypes.INodeProto, index: number): [number, number, number] => {
    if (!spatial) {
      fail(`${what(node, index)} acts on a flat [samples, features] value: ${node.opType} needs images [N, C, H, W] (a convolution after a Flatten or a linear layer is not supported)`);
    }
    if (!shape) {
      fail(`${what(node, index)}: the image size is unknown: the graph input '${input.name}' must have fixed channels, height and width (only the batch dimension may be symbolic)`);
    }
    return shape as [number, number, number];
  };

  const pushLayer = (node: OnnxTypes.INodeProto, index: number, layer: Layer) => {
    if (layers.length && layers[layers.length - 1].activation === null) {
      fail(`${what(node, index)} follows layer ${layers.length - 1} with no Relu/LeakyRelu between them: a rectified net needs an activation between parametric layers`);
    }
    layers.push(layer);
    stage = "layer";
    canJoin = true;
  };

  const linearLayer = (node: OnnxTypes.INodeProto, index: number, weightIn: Float64Array, out: number, inp: number, weightName: string, dtypes: number[]) => {
    if (spatial) {
      const s = shape ? ` of ${imageShape(shape)}` : "";
      fail(`${what(node, index)} takes images${s} per sample: flatten them first (Flatten, or Reshape to [N, -1])`);
    }
    const previous = shape ? shape[0] : null;
    if (previous !== null && previous !== inp) {
      const source = layers.length ? `layer ${layers.length - 1} gives ${previous} outputs` : `the graph input '${input.name}' has ${previous} features`;
      fail(`inconsistent shapes: ${what(node, index)} weight '${weightName}' takes ${inp} inputs but ${source}`);
    }
    pushLayer(node, index, { kind: "linear", node: node.name || `#${index}`, weight: weightIn, out, in: inp, bias: null, weightName, biasName: null, dtypes, activation: null, pool: null });
    shape = [out];
  };

  const joinBias = (node: OnnxTypes.INodeProto, index: number, t: Tensor) => {
    const layer = layers[layers.length - 1];
    const size = t.values.length;
    let shapeOk: boolean;
    let expected: string;
    if (layer.conv) {
      // Per-channel over [N, C, H, W]: [C, 1, 1], [1, C, 1, 1], or one number.
      const d = t.dims;
      shapeOk = size === 1 || (size === layer.out && d.length >= 3 && d.length <= 4 && d[d.length - 3] === layer.out && d[d.length - 1] === 1 && d[d.length - 2] === 1);
      expected = `[${layer.out}, 1, 1] or [1, ${layer.out}, 1, 1]`;
    } else {
      shapeOk = t.dims.length === 0 || (t.dims.length <= 2 && t.dims[t.dims.length - 1] === layer.out && shapeSize(t.dims) === layer.out) || size === 1;
      expected = `[${layer.out}] or [1, ${layer.out}]`;
    }
    if (!shapeOk) {
      fail(`inconsistent shapes: ${what(node, index)} bias '${t.name}' has shape ${formatShape(t.dims)} but layer ${layers.length - 1} has ${layer.out} outputs (expected ${expected})`);
    }
    const bias = layer.bias ?? new Float64Array(layer.out);
    for (let o = 0; o < layer.out; o++) bias[o] += size === 1 ? t.values[0] : t.values[o];
    layer.bias = bias;
    layer.biasName = layer.biasName ? `${layer.biasName}+${t.name}` : t.name;
    layer.dtypes.push(t.dataType);
  };

  const nodes = g.node ?? [];
  nodes.forEach((node, index) => {
    const op = node.opType ?? "";
    const w = what(node, index);
    if (op === "Constant") return;
    if (node.domain && node.domain !== "ai.onnx") fail(`unsupported operator ${node.domain}.${op} (${nodeLabel(node, index)})`);
    const ins = node.input ?? [];
    const outs = (node.output ?? []).filter((s) => s);

    // Shape computations beside the data path (x.view(x.size(0), -1) exports Shape, Gather,
    // Unsqueeze, Concat): evaluated here with the batch size unknown.
    if (op === "Shape") {
      const s = dataShapes.get(ins[0] ?? "");
      if (s === undefined) fail(`${w}: only the shape of a value on the data path can be taken`);
      if (s === null) fail(`${w}: the shape of '${ins[0]}' is unknown (give the graph input fixed feature dimensions)`);
      if (attribute(node, "start") || attribute(node, "end")) fail(`${w}: Shape with start / end is not supported`);
      shapeValues.set(outs[0], { values: [null, ...s!], scalar: false });
      return;
    }
    if (SHAPE_OPS.has(op) && !ins.some((n) => dataShapes.has(n)) && ins.some((n) => shapeValues.has(n))) {
      const a = intInput(node, index, 0, "input");
      let result: ShapeValue;
      if (op === "Gather") {
        if (intAttribute(node, "axis", 0, fail, w) !== 0 || a.scalar) fail(`${w}: only Gather along axis 0 of a shape is supported`);
        const idx = intInput(node, index, 1, "indices");
        const picked = idx.values.map((i) => {
          const j = i === null ? NaN : i < 0 ? i + a.values.length : i;
          if (!(j >= 0 && j < a.values.length)) fail(`${w}: index ${i} is outside the shape of rank ${a.values.length}`);
          return a.values[j];
        });
        result = { values: picked, scalar: idx.scalar };
      } else if (op === "Unsqueeze") {
        if (!a.scalar) fail(`${w}: only Unsqueeze of a scalar taken from a shape is supported`);
        result = { values: a.values, scalar: false };
      } else if (op === "Squeeze") {
        if (a.scalar || a.values.length !== 1) fail(`${w}: only Squeeze of a one-element shape is supported`);
        result = { values: a.values, scalar: true };
      } else if (op === "Concat") {
        const parts = ins.map((_, i) => intInput(node, index, i, `input ${i}`));
        if (parts.some((p) => p.scalar)) fail(`${w}: Concat of scalars is not valid ONNX`);
        result = { values: parts.flatMap((p) => p.values), scalar: false };
      } else {
        result = a; // Cast between integer types
      }
      shapeValues.set(outs[0], result);
      return;
    }

    const slot = ins.indexOf(current);
    if (slot < 0) {
      fail(`${w} does not act on the data path (its inputs ${ins.map((s) => `'${s}'`).join(", ") || "none"} do not include '${current}'): only a single chain of layers is supported`);
    }
    if (pendingPad && op !== "Conv" && op !== "AveragePool") {
      fail(`${pendingPad.what} pads the images before ${w}: only zero padding right before a Conv or an AveragePool is supported`);
    }
    switch (op) {
      case "Gemm": {
        if (slot !== 0) fail(`${w}: the data must be input A, not input ${"ABC"[slot] ?? slot}`);
        if (intAttribute(node, "transA", 0, fail, w) !== 0) fail(`${w}: transA = 1 is not supported (the data must be [samples, features])`);
        const transB = intAttribute(node, "transB", 0, fail, w);
        const alpha = floatAttribute(node, "alpha", 1);
        const beta = floatAttribute(node, "beta", 1);
        const b = initializerInput(node, index, 1, "weight B");
        if (b.dims.length !== 2) fail(`inconsistent shapes: ${w} weight '${b.name}' has shape ${formatShape(b.dims)}, not a matrix`);
        const [r, c] = b.dims;
        const out = transB ? r : c;
        const inp = transB ? c : r;
        const wt = new Float64Array(out * inp);
        for (let o = 0; o < out; o++) {
          for (let i = 0; i < inp; i++) wt[o * inp + i] = alpha * (transB ? b.values[o * inp + i] : b.values[i * out + o]);
        }
        linearLayer(node, index, wt, out, inp, b.name, [b.dataType]);
        if (ins[2]) {
          const cT = initializerInput(node, index, 2, "bias C");
          joinBias(node, index, { ...cT, values: cT.values.map((v) => beta * v) });
        }
        break;
      }
      case "MatMul": {
        if (slot !== 0) fail(`${w}: the data must be the first input (x W), not the second`);
        const b = initializerInput(node, index, 1, "weight");
        if (b.dims.length !== 2) fail(`inconsistent shapes: ${w} weight '${b.name}' has shape ${formatShape(b.dims)}, not a matrix`);
        const [inp, out] = b.dims;
        const wt = new Float64Array(out * inp);
        for (let o = 0; o < out; o++) for (let i = 0; i < inp; i++) wt[o * inp + i] = b.values[i * out + o];
        linearLayer(node, index, wt, out, inp, b.name, [b.dataType]);
        break;
      }
      case "Conv": {
        if (slot !== 0) fail(`${w}: the data must be input X, not input ${slot}`);
        const [c, h, wd] = requireImage(node, index);
        const k = initializerInput(node, index, 1, "weight W");
        if (k.dims.length !== 4) {
          fail(`${w}: weight '${k.name}' has shape ${formatShape(k.dims)}: only 2-D convolutions (weight [out, in/groups, kh, kw]) are supported`);
        }
        autoPad(node, index);
        const [out, perGroup, kh, kw] = k.dims;
        const groups = intAttribute(node, "group", 1, fail, w);
        const kernel = pairAttribute(node, index, "kernel_shape", [kh, kw]);
        if (kernel[0] !== kh || kernel[1] !== kw) fail(`inconsistent shapes: ${w} kernel_shape [${kernel.join(", ")}] but weight '${k.name}' has shape ${formatShape(k.dims)}`);
        if (groups < 1 || out % groups !== 0 || perGroup * groups !== c) {
          fail(`inconsistent shapes: ${w} weight '${k.name}' has shape ${formatShape(k.dims)} with group ${groups}, so it takes ${perGroup * groups} channels, but its input has ${c} (${imageShape([c, h, wd])})`);
        }
        const padding = symmetricPads(intsAttribute(node, "pads", fail, w), node, index);
        if (pendingPad) {
          padding[0] += pendingPad.pads[0];
          padding[1] += pendingPad.pads[1];
          pendingPad = null;
        }
        const conv: Conv2dLayerSpec = {
          kind: "conv2d", inChannels: c, inHeight: h, inWidth: wd, outChannels: out, kernel,
          stride: pairAttribute(node, index, "strides", [1, 1]),
          padding,
          dilation: pairAttribute(node, index, "dilations", [1, 1]),
          groups, bias: false,
        };
        const z = convOutputShape(conv);
        if (!(z[1] >= 1 && z[2] >= 1)) fail(`${w}: a ${kernel.join("x")} kernel (stride ${conv.stride.join("x")}, padding ${padding.join("x")}, dilation ${conv.dilation.join("x")}) does not fit the ${h}x${wd} input`);
        pushLayer(node, index, { kind: "conv2d", node: node.name || `#${index}`, weight: Float64Array.from(k.values), out, in: c, bias: null, weightName: k.name, biasName: null, dtypes: [k.dataType], activation: null, pool: null, conv });
        if (ins[2]) joinBias(node, index, { ...initializerInput(node, index, 2, "bias B"), dims: [out, 1, 1] });
        shape = z;
        break;
      }
      case "Add": {
        if (!canJoin) fail(`${w}: an Add is supported only as the bias of the MatMul, Gemm or Conv just before it`);
        if (ins.length !== 2) fail(`${w} must have two inputs`);
        joinBias(node, index, initializerInput(node, index, 1 - slot, "bias"));
        break;
      }
      case "BatchNormalization": {
        if (slot !== 0) fail(`${w}: the data must be input X`);
        if (!canJoin || !layers.length) {
          const after = layers.length ? `it follows ${stage === "layer" ? "a reshape" : "an activation or pooling"}` : "no layer precedes it";
          fail(`${w}: BatchNormalization is supported only right after a Conv, Gemm or MatMul(+Add), where it is folded into that layer (inference mode); ${after}`);
        }
        if (intAttribute(node, "training_mode", 0, fail, w) !== 0) fail(`${w}: training_mode = 1 is not supported (export the model in eval mode)`);
        if (outs.length > 1) fail(`${w}: the running mean / variance outputs (training mode) are not supported (export the model in eval mode)`);
        const layer = layers[layers.length - 1];
        const eps = floatAttribute(node, "epsilon", 1e-5);
        const [scale, bnBias, mean, variance] = ["scale", "B", "input_mean", "input_var"].map((role, i) => {
          const t = initializerInput(node, index, i + 1, role);
          if (t.values.length !== layer.out || t.dims.length !== 1) {
            fail(`inconsistent shapes: ${w} ${role} '${t.name}' has shape ${formatShape(t.dims)} but layer ${layers.length - 1} has ${layer.out} ${layer.conv ? "channels" : "outputs"}`);
          }
          layer.dtypes.push(t.dataType);
          return t;
        });
        // y = scale (z - mean) / sqrt(var + eps) + B = s z + (B - s mean): rows of W scaled by s.
        const bias = layer.bias ?? new Float64Array(layer.out);
        const row = layer.weight.length / layer.out;
        for (let o = 0; o < layer.out; o++) {
          const v = variance.values[o] + eps;
          if (!(v > 0)) fail(`${w}: input_var '${variance.name}' + epsilon is ${v} at channel ${o}, not positive`);
          const s = scale.values[o] / Math.sqrt(v);
          for (let j = 0; j < row; j++) layer.weight[o * row + j] *= s;
          bias[o] = s * (bias[o] - mean.values[o]) + bnBias.values[o];
        }
        layer.bias = bias;
        layer.biasName = `${layer.biasName ?? "0"} folded with ${node.name || `#${index}`}`;
        folded.push(node.name || `#${index}`);
        break;
      }
      case "Relu":
      case "LeakyRelu": {
        if (!layers.length) fail(`${w} comes before any layer: the model must start with Conv, Gemm or MatMul`);
        const layer = layers[layers.length - 1];
        if (layer.activation) fail(`${w}: two activations in a row after layer ${layers.length - 1}`);
        const activation: Activation = op === "Relu" ? { kind: "relu" } : { kind: "leaky_relu", slope: floatAttribute(node, "alpha", 0.01) };
        const first = layers.find((l) => l.activation)?.activation;
        if (first && (first.kind !== activation.kind || (first.kind === "leaky_relu" && activation.kind === "leaky_relu" && first.slope !== activation.slope))) {
          fail(`${w}: every hidden layer must use the same activation, but an earlier one is ${describe(first)} and this one ${describe(activation)}`);
        }
        layer.activation = activation;
        stage = stage === "pooled-pre" ? "pooled" : "activated";
        canJoin = false;
        break;
      }
      case "MaxPool":
      case "AveragePool":
      case "GlobalMaxPool":
      case "GlobalAveragePool": {
        const [c, h, wd] = requireImage(node, index);
        const layer = layers[layers.length - 1];
        const max = op.endsWith("MaxPool");
        if (!layer?.conv || stage === "input") fail(`${w}: pooling is supported only after a Conv (and its activation)`);
        if (layer.pool) fail(`${w}: one pooling per layer is supported (layer ${layers.length - 1} already has one)`);
        if (stage === "layer" && !max) fail(`${w}: average pooling before the activation is not supported (put it after the activation)`);
        if (stage !== "layer" && stage !== "activated") fail(`${w}: pooling must follow a Conv or its activation`);
        if (outs.length > 1) fail(`${w}: the Indices output is not supported`);
        let kernel: Pair = [h, wd];
        let stride: Pair = [h, wd];
        let padding: Pair = [0, 0];
        let countIncludePad = true;
        if (!op.startsWith("Global")) {
          autoPad(node, index);
          if (intAttribute(node, "ceil_mode", 0, fail, w) !== 0) fail(`${w}: ceil_mode = 1 is not supported (PyTorch's ceil_mode=True); use floor mode`);
          const dil = pairAttribute(node, index, "dilations", [1, 1]);
          if (dil[0] !== 1 || dil[1] !== 1) fail(`${w}: dilations [${dil.join(", ")}] are not supported for pooling`);
          const ks = intsAttribute(node, "kernel_shape", fail, w);
          if (!ks) fail(`${w} has no kernel_shape`);
          kernel = pairAttribute(node, index, "kernel_shape", [1, 1]);
          stride = pairAttribute(node, index, "strides", [1, 1]);
          padding = symmetricPads(intsAttribute(node, "pads", fail, w), node, index);
          if (!max) countIncludePad = intAttribute(node, "count_include_pad", 0, fail, w) !== 0;
          if (pendingPad) {
            // PyTorch's AvgPool2d(count_include_pad=True) exports Pad(zeros) + AveragePool.
            if (padding.some((p) => p > 0) && !countIncludePad) fail(`${pendingPad.what} and ${w}'s own pads with count_include_pad = 0 cannot be combined`);
            padding = [padding[0] + pendingPad.pads[0], padding[1] + pendingPad.pads[1]];
            countIncludePad = true;
            pendingPad = null;
          }
        }
        const pool: Pool2dSpec = { kind: max ? "max" : "avg", kernel, stride, padding };
        if (!max && !countIncludePad && padding.some((p) => p > 0)) pool.countIncludePad = false;
        if (2 * padding[0] > kernel[0] || 2 * padding[1] > kernel[1]) fail(`${w}: pads ${padding.join("x")} must be at most half the kernel ${kernel.join("x")}`);
        const next = poolOutputShape(pool, [c, h, wd]);
        if (!(next[1] >= 1 && next[2] >= 1)) fail(`${w}: a ${kernel.join("x")} window does not fit the ${h}x${wd} feature map`);
        layer.pool = pool;
        shape = next;
        stage = stage === "layer" ? "pooled-pre" : "pooled";
        canJoin = false;
        break;
      }
      case "Pad": {
        requireImage(node, index);
        const mode = stringAttribute(node, "mode", "constant");
        if (mode !== "constant") fail(`${w}: Pad mode '${mode}' is not supported (only zero padding)`);
        const pads = ins[1] ? intInput(node, index, 1, "pads").values : intsAttribute(node, "pads", fail, w);
        if (!pads || pads.length !== 8 || pads.some((p) => p === null)) fail(`${w}: pads must have 8 entries for images [N, C, H, W]`);
        if (ins[3]) fail(`${w}: Pad with axes is not supported`);
        const value = ins[2] ? floatConstant(ins[2])?.values[0] : floatAttribute(node, "value", 0);
        if (value !== 0) fail(`${w}: padding with ${value ?? `'${ins[2]}'`} is not supported (only zeros)`);
        const [nb, cb, hb, wb, ne, ce, he, we] = pads as number[];
        if (nb || cb || ne || ce) fail(`${w}: pads [${pads!.join(", ")}] pad the batch or channel dimension, which is not supported`);
        if (hb !== he || wb !== we) fail(`${w}: asymmetric pads [${pads!.join(", ")}] are not supported; PyTorch pads both sides alike`);
        if (hb < 0 || wb < 0) fail(`${w}: negative pads [${pads!.join(", ")}] are not supported`);
        if (hb || wb) pendingPad = { pads: [hb, wb], what: w };
        break;
      }
      case "Flatten": {
        const axis = intAttribute(node, "axis", 1, fail, w);
        if (axis !== 1) fail(`${w}: only axis = 1 (keep the batch dimension) is supported, got ${axis}`);
        if (shape) shape = [shapeSize(shape)];
        spatial = false;
        canJoin = false;
        break;
      }
      case "Reshape": {
        if (slot !== 0) fail(`${w}: the data must be the first input`);
        const target = intInput(node, index, 1, "shape").values;
        const size = shape ? shapeSize(shape) : null;
        const [a, b] = target;
        const ok = target.length === 2 && (b === -1 || (b !== null && b === size) || (size === null && b !== null && b > 0 && a === -1)) &&
          (a === null || a === 0 || a > 0 || (a === -1 && b !== -1));
        if (!ok) {
          fail(`${w}: only a reshape to [N, features] (flattening each sample${shape ? ` of ${imageShape(shape)}` : ""}) is supported, got shape [${target.map((v) => v ?? "N").join(", ")}]`);
        }
        shape = size !== null ? [size] : b !== null && b > 0 ? [b] : null;
        spatial = false;
        canJoin = false;
        break;
      }
      case "Identity":
        break;
      case "Dropout": {
        if (ins.length >= 3 && ins[2]) {
          // training_mode is a BOOL constant; any non-zero value (or a computed one) means training.
          const p = protos.get(ins[2]);
          const values = !p ? null : p.t.dataType === BOOL ? Array.from(p.t.rawData?.length ? p.t.rawData : p.t.int32Data ?? []) : Array.from(floatConstant(ins[2])!.values);
          if (!values || values.some((v) => v !== 0)) fail(`${w}: dropout in training mode is not supported`);
        }
        if (outs.length > 1 && (nodes.some((n) => n.input?.includes(outs[1])) || (g.output ?? []).some((o) => o.name === outs[1]))) {
          fail(`${w}: its mask output is used, which is not supported`);
        }
        break;
      }
      default:
        fail(`unsupported operator ${op || "(empty)"} (${nodeLabel(node, index)})`);
    }
    if (!outs[0]) fail(`${w} has no output`);
    current = outs[0];
    dataShapes.set(current, spatial || shape ? shape : null);
  });

  if (!layers.length) fail("the graph has no Conv, Gemm or MatMul layer");
  const danglingPad = pendingPad as { what: string } | null; // assigned inside the loop's callback
  if (danglingPad) fail(`${danglingPad.what} pads the output, which is not supported`);
  const outputs = g.output ?? [];
  if (outputs.length !== 1) fail(`the graph must have one output, it has ${outputs.length}`);
  if (outputs[0].name !== current) {
    fail(`the graph output '${outputs[0].name}' is not the end of the layer chain ('${current}')`);
  }
  const last = layers[layers.length - 1];
  if (last.activation) {
    fail(`the output layer is followed by ${describe(last.activation)}: the model's output must be linear (logits); remove the last activation`);
  }
  if (last.pool) fail(`the output layer is followed by ${last.pool.kind === "max" ? "MaxPool" : "AveragePool"}: pooling after the output layer is not supported`);
  const activation = layers.find((l) => l.activation)?.activation ?? options.activation ?? { kind: "relu" };

  const layerSpecs: LayerSpec[] = layers.map((l): LayerSpec =>
    l.conv
      ? { ...l.conv, bias: l.bias !== null, ...(l.pool ? { pool: l.pool } : {}) }
      : { inFeatures: l.in, outFeatures: l.out, bias: l.bias !== null }
  );
  const spec: ModelSpec = { layers: layerSpecs, activation };
  try {
    validateSpec(spec);
  } catch (e) {
    fail((e as Error).message);
  }
  const layout = parameterLayout(spec);
  const theta = new Float64Array(layout.dim);
  layers.forEach((l, k) => {
    theta.set(l.weight, layout.layers[k].weightOffset);
    if (l.bias) theta.set(l.bias, layout.layers[k].biasOffset);
  });
  const metadata: Record<string, string> = { source_format: "onnx" };
  if (model.producerName) metadata.onnx_producer = model.producerVersion ? `${model.producerName} ${model.producerVersion}` : model.producerName;
  if (g.name) metadata.onnx_graph = g.name;
  if (folded.length) metadata.onnx_folded_batchnorm = folded.join(", ");
  const dtype = layers.every((l) => l.dtypes.every((d) => d === DOUBLE)) ? "F64" : "F32";
  return {
    spec,
    theta,
    dtype,
    sources: layers.map((l) => ({ node: l.node, weight: l.weightName, bias: l.biasName })),
    metadata,
  };
}

/** The earlier name of parseOnnxModel (MLPs were all it read). */
export const parseOnnxMlp = parseOnnxModel;

function describe(a: Activation): string {
  return a.kind === "relu" ? "Relu" : `LeakyRelu(alpha ${a.slope})`;
}
