/**
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
import { type Activation, type LayerSpec, type ModelSpec, parameterLayout, validateSpec } from "../model.ts";
import { copyElements, float16ToFloat32, formatShape, shapeSize } from "./binary.ts";

// onnx-proto is CommonJS (`module.exports = $root`): its namespace is the default export under
// Deno, Node and esbuild alike (a named import fails at run time under Deno).
const { onnx } = onnxProto as unknown as { onnx: typeof OnnxTypes };

/** The ONNX data types read here (onnx.proto TensorProto.DataType). */
const FLOAT = 1;
const FLOAT16 = 10;
const DOUBLE = 11;
const DATA_TYPE_NAMES: Record<number, string> = {
  0: "UNDEFINED", 1: "FLOAT", 2: "UINT8", 3: "INT8", 4: "UINT16", 5: "INT16", 6: "INT32", 7: "INT64", 8: "STRING",
  9: "BOOL", 10: "FLOAT16", 11: "DOUBLE", 12: "UINT32", 13: "UINT64", 14: "COMPLEX64", 15: "COMPLEX128", 16: "BFLOAT16",
};

/** What an ONNX file holds, mapped onto this toolkit's model (see the header). */
export interface OnnxMlp {
  spec: ModelSpec;
  theta: Float64Array;
  /** "F64" when every weight and bias initializer was DOUBLE, else "F32". */
  dtype: "F32" | "F64";
  /** Per layer: the ONNX names of the weight and bias tensors it came from (bias null when none). */
  sources: { node: string; weight: string; bias: string | null }[];
  /** producer_name / producer_version / graph name, when the file gives them. */
  metadata: Record<string, string>;
}

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
  node: string;
  weight: Float64Array; // [out, in] row-major
  out: number;
  in: number;
  bias: Float64Array | null;
  weightName: string;
  biasName: string | null;
  dtypes: number[];
  /** Activation applied to this layer's output (null: none yet). */
  activation: Activation | null;
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

function floatAttribute(node: OnnxTypes.INodeProto, name: string, fallback: number): number {
  const a = attribute(node, name);
  return a ? (a.f ?? fallback) : fallback;
}

function intAttribute(node: OnnxTypes.INodeProto, name: string, fallback: number, fail: (p: string) => never, where: string): number {
  const a = attribute(node, name);
  return a ? toInt(a.i ?? 0, `${where} attribute ${name}`, fail) : fallback;
}

/** Parses an ONNX file into a rectified MLP; every problem throws FileFormatError naming `path`. */
export function parseOnnxMlp(bytes: Uint8Array, path: string, options: { activation?: Activation } = {}): OnnxMlp {
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

  // Constants: initializers and Constant nodes (PyTorch sometimes emits the latter).
  const constants = new Map<string, Tensor>();
  for (const t of g.initializer ?? []) {
    if (!t.name) fail("an initializer has no name");
    constants.set(t.name!, readTensor(t, "initializer", fail));
  }
  (g.node ?? []).forEach((node, index) => {
    if (node.opType !== "Constant") return;
    const value = attribute(node, "value");
    if (!value?.t) fail(`${nodeLabel(node, index)} (Constant) has no tensor 'value' attribute, which is not supported`);
    const name = node.output?.[0];
    if (!name) fail(`${nodeLabel(node, index)} (Constant) has no output`);
    constants.set(name!, readTensor({ ...value!.t!, name }, "constant", fail));
  });

  const inputs = (g.input ?? []).filter((v) => v.name && !constants.has(v.name));
  if (inputs.length !== 1) {
    fail(`the graph must have one data input (samples x features), it has ${inputs.length}${inputs.length ? `: ${inputs.map((v) => `'${v.name}'`).join(", ")}` : ""}`);
  }
  const input = inputs[0];
  // Dimensions given as numbers (dim_value > 0); symbolic ones (dim_param, e.g. "batch") are null.
  const inputDims = input.type?.tensorType?.shape?.dim?.map((d, i) =>
    d.dimParam ? null : toInt(d.dimValue ?? 0, `input '${input.name}' dimension ${i}`, fail) || null
  );
  // A fixed feature count (every dimension after the batch one known) is checked against layer 0.
  let inputFeatures: number | null = null;
  if (inputDims && inputDims.length >= 2 && inputDims.slice(1).every((d) => typeof d === "number" && d > 0)) {
    inputFeatures = shapeSize(inputDims.slice(1) as number[]);
  }

  const layers: Layer[] = [];
  let current = input.name!; // the value that carries the data through the chain
  let lastWasLinear = false; // the previous op on the chain was a Linear (an Add may still join its bias)
  const width = () => (layers.length ? layers[layers.length - 1].out : inputFeatures);

  const initializerInput = (node: OnnxTypes.INodeProto, index: number, slot: number, role: string): Tensor => {
    const name = node.input?.[slot];
    const what = `${nodeLabel(node, index)} (${node.opType})`;
    if (!name) return fail(`${what} has no ${role} input`);
    const t = constants.get(name);
    if (!t) {
      return fail(`${what}: ${role} '${name}' is not an initializer (a missing initializer, or weights computed in the graph, which is not supported)`);
    }
    return t;
  };

  const addLayer = (node: OnnxTypes.INodeProto, index: number, weightIn: Float64Array, out: number, inp: number, weightName: string, dtypes: number[]) => {
    const what = `${nodeLabel(node, index)} (${node.opType})`;
    const previous = width();
    if (previous !== null && previous !== inp) {
      const source = layers.length ? `layer ${layers.length - 1} gives ${previous} outputs` : `the graph input '${input.name}' has ${previous} features`;
      fail(`inconsistent shapes: ${what} weight '${weightName}' takes ${inp} inputs but ${source}`);
    }
    if (layers.length && layers[layers.length - 1].activation === null) {
      fail(`${what} follows layer ${layers.length - 1} with no Relu/LeakyRelu between them: a rectified MLP needs an activation between linear layers`);
    }
    layers.push({ node: node.name || `#${index}`, weight: weightIn, out, in: inp, bias: null, weightName, biasName: null, dtypes, activation: null });
  };

  const joinBias = (node: OnnxTypes.INodeProto, index: number, t: Tensor) => {
    const layer = layers[layers.length - 1];
    const what = `${nodeLabel(node, index)} (${node.opType})`;
    const size = t.values.length;
    const shapeOk = t.dims.length === 0 || (t.dims.length <= 2 && t.dims[t.dims.length - 1] === layer.out && shapeSize(t.dims) === layer.out) || size === 1;
    if (!shapeOk) {
      fail(`inconsistent shapes: ${what} bias '${t.name}' has shape ${formatShape(t.dims)} but layer ${layers.length - 1} has ${layer.out} outputs (expected [${layer.out}] or [1, ${layer.out}])`);
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
    const what = `${nodeLabel(node, index)} (${op})`;
    if (op === "Constant") return;
    if (node.domain && node.domain !== "ai.onnx") fail(`unsupported operator ${node.domain}.${op} (${nodeLabel(node, index)})`);
    const ins = node.input ?? [];
    const slot = ins.indexOf(current);
    if (slot < 0) {
      fail(`${what} does not act on the data path (its inputs ${ins.map((s) => `'${s}'`).join(", ") || "none"} do not include '${current}'): only a single chain of layers is supported`);
    }
    const outs = (node.output ?? []).filter((s) => s);
    switch (op) {
      case "Gemm": {
        if (slot !== 0) fail(`${what}: the data must be input A, not input ${"ABC"[slot] ?? slot}`);
        if (intAttribute(node, "transA", 0, fail, what) !== 0) fail(`${what}: transA = 1 is not supported (the data must be [samples, features])`);
        const transB = intAttribute(node, "transB", 0, fail, what);
        const alpha = floatAttribute(node, "alpha", 1);
        const beta = floatAttribute(node, "beta", 1);
        const b = initializerInput(node, index, 1, "weight B");
        if (b.dims.length !== 2) fail(`inconsistent shapes: ${what} weight '${b.name}' has shape ${formatShape(b.dims)}, not a matrix`);
        const [r, c] = b.dims;
        const out = transB ? r : c;
        const inp = transB ? c : r;
        const w = new Float64Array(out * inp);
        for (let o = 0; o < out; o++) {
          for (let i = 0; i < inp; i++) w[o * inp + i] = alpha * (transB ? b.values[o * inp + i] : b.values[i * out + o]);
        }
        addLayer(node, index, w, out, inp, b.name, [b.dataType]);
        if (ins[2]) {
          const cT = initializerInput(node, index, 2, "bias C");
          joinBias(node, index, { ...cT, values: cT.values.map((v) => beta * v) });
        }
        lastWasLinear = true;
        break;
      }
      case "MatMul": {
        if (slot !== 0) fail(`${what}: the data must be the first input (x W), not the second`);
        const b = initializerInput(node, index, 1, "weight");
        if (b.dims.length !== 2) fail(`inconsistent shapes: ${what} weight '${b.name}' has shape ${formatShape(b.dims)}, not a matrix`);
        const [inp, out] = b.dims;
        const w = new Float64Array(out * inp);
        for (let o = 0; o < out; o++) for (let i = 0; i < inp; i++) w[o * inp + i] = b.values[i * out + o];
        addLayer(node, index, w, out, inp, b.name, [b.dataType]);
        lastWasLinear = true;
        break;
      }
      case "Add": {
        if (!lastWasLinear) fail(`${what}: an Add is supported only as the bias of the MatMul or Gemm just before it`);
        if (ins.length !== 2) fail(`${what} must have two inputs`);
        joinBias(node, index, initializerInput(node, index, 1 - slot, "bias"));
        break;
      }
      case "Relu":
      case "LeakyRelu": {
        if (!layers.length) fail(`${what} comes before any linear layer: the model must start with Gemm or MatMul`);
        const layer = layers[layers.length - 1];
        if (layer.activation) fail(`${what}: two activations in a row after layer ${layers.length - 1}`);
        const activation: Activation = op === "Relu" ? { kind: "relu" } : { kind: "leaky_relu", slope: floatAttribute(node, "alpha", 0.01) };
        const first = layers.find((l) => l.activation)?.activation;
        if (first && (first.kind !== activation.kind || (first.kind === "leaky_relu" && activation.kind === "leaky_relu" && first.slope !== activation.slope))) {
          fail(`${what}: every hidden layer must use the same activation, but an earlier one is ${describe(first)} and this one ${describe(activation)}`);
        }
        layer.activation = activation;
        lastWasLinear = false;
        break;
      }
      case "Flatten": {
        const axis = intAttribute(node, "axis", 1, fail, what);
        if (axis !== 1) fail(`${what}: only axis = 1 (keep the batch dimension) is supported, got ${axis}`);
        lastWasLinear = false;
        break;
      }
      case "Identity":
        break;
      case "Dropout": {
        if (ins.length >= 3 && ins[2]) {
          const mode = constants.get(ins[2]);
          if (!mode || mode.values.some((v) => v !== 0)) fail(`${what}: dropout in training mode is not supported`);
        }
        if (outs.length > 1 && (nodes.some((n) => n.input?.includes(outs[1])) || (g.output ?? []).some((o) => o.name === outs[1]))) {
          fail(`${what}: its mask output is used, which is not supported`);
        }
        break;
      }
      default:
        fail(`unsupported operator ${op || "(empty)"} (${nodeLabel(node, index)})`);
    }
    if (!outs[0]) fail(`${what} has no output`);
    current = outs[0];
  });

  if (!layers.length) fail("the graph has no Gemm or MatMul layer");
  const outputs = g.output ?? [];
  if (outputs.length !== 1) fail(`the graph must have one output, it has ${outputs.length}`);
  if (outputs[0].name !== current) {
    fail(`the graph output '${outputs[0].name}' is not the end of the layer chain ('${current}')`);
  }
  const last = layers[layers.length - 1];
  if (last.activation) {
    fail(`the output layer is followed by ${describe(last.activation)}: the model's output must be linear (logits); remove the last activation`);
  }
  const activation = layers.find((l) => l.activation)?.activation ?? options.activation ?? { kind: "relu" };

  const layerSpecs: LayerSpec[] = layers.map((l) => ({ inFeatures: l.in, outFeatures: l.out, bias: l.bias !== null }));
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
  const dtype = layers.every((l) => l.dtypes.every((d) => d === DOUBLE)) ? "F64" : "F32";
  return {
    spec,
    theta,
    dtype,
    sources: layers.map((l) => ({ node: l.node, weight: l.weightName, bias: l.biasName })),
    metadata,
  };
}

function describe(a: Activation): string {
  return a.kind === "relu" ? "Relu" : `LeakyRelu(alpha ${a.slope})`;
}
