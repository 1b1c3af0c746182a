/**
 * Model files: a rectified MLP's architecture and parameters, in one of two formats, detected
 * from the content (a JSON document starts with `{` after optional whitespace; anything else is
 * read as safetensors).
 *
 * 1. JSON ("flatness-mlp", version 1; also described in docs/model-format.md):
 *
 *      {
 *        "format": "flatness-mlp",
 *        "version": 1,
 *        "activation": "relu" | "leaky_relu",   // optional: else the caller's option, else relu
 *        "negativeSlope": 0.01,                 // leaky_relu only; default 0.01 (PyTorch's)
 *        "metadata": { "key": "value" },        // optional, strings only, kept on rewrite
 *        "layers": [                            // in order, input layer first
 *          { "weight": [[...], ...],            // [out][in], row i = weights into output unit i
 *            "bias": [...] }                    // optional, [out]
 *        ]
 *      }
 *
 *    Tensor names for JSON models are those of parameterLayout ("0.weight", "0.bias",
 *    "2.weight", ...). Parameter vectors (gradients, Hessian-vector products, directions) use
 *    the same document with "format": "flatness-parameters" and no activation.
 *
 * 2. safetensors, as PyTorch saves an nn.Sequential of Linear and ReLU/LeakyReLU modules
 *    (`save_file(model.state_dict(), ...)`): tensors `<prefix><i>.weight` [out, in] and optional
 *    `<prefix><i>.bias` [out]. The indices i need not be 0, 2, 4: layers are ordered by i, and
 *    every tensor must share the one prefix (e.g. "net."). The activation comes from the
 *    `__metadata__` keys "activation" ("relu" | "leaky_relu") and "negative_slope", else from
 *    the caller's option, else ReLU. A model read from safetensors is written back as safetensors
 *    with the same tensor names, so PyTorch can load it with `load_state_dict`.
 *
 * Convolutional nets (docs/model-format.md, "Convolutional nets"): JSON version 2 adds an
 * "architecture" (src/architecture.ts's Architecture) and nests each weight to its shape; a
 * safetensors state dict carries the architecture in __metadata__ "architecture" (JSON, or the
 * text form with "input_shape"), or the caller gives it (ReadModelOptions.architecture), and its
 * tensors, in module order, must fit it. MLP files read and write exactly as described here.
 *
 * 3. ONNX (read only; src/io/onnx.ts): a path ending in `.onnx`, or content that is neither JSON
 *    nor a plausible safetensors file and starts like an ONNX ModelProto (field 1, ir_version).
 *    The model becomes a "safetensors" LoadedModel with PyTorch nn.Sequential names ("0.weight",
 *    ...), so transforms of it are written as safetensors, never as ONNX (checkModelOutputPath).
 */
import { type Architecture, architectureOf, parseArchitecture, specFromArchitecture } from "../architecture.ts";
import { FileFormatError, InputError } from "../errors.ts";
import {
  type Activation,
  isConv,
  isMlp,
  type LayerSpec,
  layerUnits,
  type Model,
  type ModelSpec,
  type ParameterLayout,
  parameterLayout,
  validateSpec,
  weightShape,
} from "../model.ts";
import { formatShape } from "./binary.ts";
import { isOnnxPath, parseOnnxModel } from "./onnx.ts";
import { parseSafetensors, type SafetensorsTensor, writeSafetensors } from "./safetensors.ts";

/** A model as read from a file, with what is needed to write it (or vectors like it) back. */
export interface LoadedModel {
  /** The architecture and flat parameters (parameterLayout order). */
  model: Model;
  /** The file format it was read from (and is written back in). */
  format: "json" | "safetensors";
  /** Per TensorView of parameterLayout(model.spec), in order: the tensor's name in the file. */
  tensorNames: string[];
  /** String metadata of the file (safetensors `__metadata__`, JSON "metadata"), kept on rewrite. */
  metadata: Record<string, string>;
  /** safetensors only: the float width to write back ("F64" when the file's tensors were all F64). */
  dtype?: "F32" | "F64";
}

/** Options of readModel and loadModelFile. */
export interface ReadModelOptions {
  /** Activation when the file does not say (safetensors without metadata, JSON without "activation"). */
  activation?: Activation;
  /**
   * The architecture of a safetensors state dict whose `__metadata__` has none (a small JSON spec
   * kept beside the file, e.g. read from --architecture): an Architecture object, or its JSON text.
   */
  architecture?: Architecture | string;
}

export const JSON_MODEL_FORMAT = "flatness-mlp";
export const JSON_VECTOR_FORMAT = "flatness-parameters";
export const JSON_FORMAT_VERSION = 1;
/** JSON version of nets with convolutions: an "architecture" field and weights nested to their shape. */
export const JSON_ARCHITECTURE_VERSION = 2;
/** The safetensors `__metadata__` key (and JSON field) holding the architecture. */
export const ARCHITECTURE_KEY = "architecture";
/** PyTorch's nn.LeakyReLU default, used when a file says leaky_relu but gives no slope. */
export const DEFAULT_NEGATIVE_SLOPE = 0.01;

/** True when `bytes` start like a safetensors file: a u64 header size that fits, then "{". */
function plausibleSafetensors(bytes: Uint8Array): boolean {
  if (bytes.length < 9) return false;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const size = view.getUint32(0, true);
  return view.getUint32(4, true) === 0 && 8 + size <= bytes.length && bytes[8] === 0x7b;
}

/** Which of the two model formats `bytes` holds. */
export function detectModelFormat(bytes: Uint8Array): "json" | "safetensors" {
  // A safetensors file starts with its u64 header size; when that is small its first byte can be
  // 0x7b "{", so first check for a plausible safetensors prefix (size fits, header starts "{").
  if (plausibleSafetensors(bytes)) return "safetensors";
  let i = 0;
  if (bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) i = 3; // UTF-8 byte-order mark
  while (i < bytes.length && (bytes[i] === 0x20 || bytes[i] === 0x09 || bytes[i] === 0x0a || bytes[i] === 0x0d)) i++;
  return bytes[i] === 0x7b ? "json" : "safetensors";
}

/**
 * True when `bytes` should be read as ONNX: the path ends in .onnx, or the content is neither
 * JSON nor a plausible safetensors file and starts with the protobuf tag of ModelProto.ir_version
 * (0x08), as every ONNX serializer writes it.
 */
export function isOnnxModel(bytes: Uint8Array, path: string): boolean {
  if (isOnnxPath(path)) return true;
  return bytes.length > 0 && bytes[0] === 0x08 && !plausibleSafetensors(bytes) && detectModelFormat(bytes) !== "json";
}

/**
 * Refuses output paths this toolkit cannot write: models and parameter vectors are written as
 * safetensors or JSON, never as ONNX (also for models read from ONNX). InputError naming `option`.
 */
export function checkModelOutputPath(path: string, option = "--out"): void {
  if (isOnnxPath(path)) {
    throw new InputError(`${option} ${path}: writing ONNX is not supported; models and vectors are written as .safetensors (PyTorch state-dict names) or .json`);
  }
}

/** Reads a model file in either format; every problem throws FileFormatError naming `path`. */
export function readModel(bytes: Uint8Array, path: string, options: ReadModelOptions = {}): LoadedModel {
  if (bytes.length === 0) throw new FileFormatError(path, "file is empty");
  if (isOnnxModel(bytes, path)) {
    if (plausibleSafetensors(bytes) || detectModelFormat(bytes) === "json") {
      // Most often a transform's output named .onnx, read back before it is written.
      throw new FileFormatError(
        path,
        `holds a ${detectModelFormat(bytes)} model, not ONNX: ONNX is read but never written here; name the file .safetensors or .json`,
      );
    }
    return readOnnxModel(bytes, path, options);
  }
  return detectModelFormat(bytes) === "json"
    ? readJsonModel(bytes, path, options)
    : readSafetensorsModel(bytes, path, options);
}

/** An ONNX net (src/io/onnx.ts) as a safetensors-format LoadedModel with PyTorch nn.Sequential names. */
function readOnnxModel(bytes: Uint8Array, path: string, options: ReadModelOptions): LoadedModel {
  const m = parseOnnxModel(bytes, path, options);
  const layout = parameterLayout(m.spec);
  return {
    model: { spec: m.spec, theta: m.theta },
    format: "safetensors",
    tensorNames: layout.views.map((v) => v.name),
    metadata: m.metadata,
    dtype: m.dtype,
  };
}

/**
 * Writes `loaded` back in its own format with its own tensor names; `theta` (default
 * loaded.model.theta) replaces the parameters, e.g. after a reparametrization.
 */
export function writeModel(loaded: LoadedModel, theta?: Float64Array | Float32Array): Uint8Array {
  const params = theta ?? loaded.model.theta;
  const { spec } = loaded.model;
  const layout = checkVector(loaded, params, "model parameters");
  if (loaded.format === "safetensors") {
    const metadata = { ...loaded.metadata, ...activationMetadata(spec.activation) };
    if (spec.activation.kind === "relu") delete metadata.negative_slope;
    if (!isMlp(spec)) {
      // Convolutional nets carry their architecture (tensor shapes alone do not give strides, pooling, ...).
      metadata[ARCHITECTURE_KEY] = JSON.stringify(architectureOf(spec));
      delete metadata.input_shape;
    }
    return writeSafetensors(tensorsOf(loaded, layout, params), metadata);
  }
  const cnn = !isMlp(spec);
  const head = [`"format": ${JSON.stringify(JSON_MODEL_FORMAT)}`, `"version": ${cnn ? JSON_ARCHITECTURE_VERSION : JSON_FORMAT_VERSION}`];
  head.push(`"activation": ${JSON.stringify(spec.activation.kind)}`);
  if (spec.activation.kind === "leaky_relu") head.push(`"negativeSlope": ${spec.activation.slope}`);
  if (cnn) head.push(`"architecture": ${JSON.stringify(architectureOf(spec))}`);
  return jsonDocument(head, loaded.metadata, layout, params);
}

/**
 * Reads a vector shaped like `like`'s parameters (a gradient, a direction, a Hessian-vector
 * product) from safetensors with the same tensor names and shapes, or from the JSON format
 * ("flatness-parameters" or a whole "flatness-mlp" model). Missing, extra or misshapen tensors
 * and non-finite values are FileFormatErrors naming the tensor.
 */
export function readParameterVector(bytes: Uint8Array, path: string, like: LoadedModel): Float64Array {
  if (bytes.length === 0) throw new FileFormatError(path, "file is empty");
  const layout = layoutOf(like);
  const out = new Float64Array(layout.dim);
  if (detectModelFormat(bytes) === "json") {
    const doc = parseJsonDocument(bytes, path, [JSON_VECTOR_FORMAT, JSON_MODEL_FORMAT]);
    const layers = jsonLayers(doc, path);
    if (layers.length !== like.model.spec.layers.length) {
      throw new FileFormatError(path, `has ${layers.length} layers but the model has ${like.model.spec.layers.length}`);
    }
    for (const view of layout.views) {
      const found = layers[view.layer][view.role];
      const where = `layers[${view.layer}].${view.role}`;
      if (!found) throw new FileFormatError(path, `${where} is missing (the model's ${view.role} has shape ${formatShape(view.shape)})`);
      if (!sameShape(found.shape, view.shape)) {
        throw new FileFormatError(path, `${where} has shape ${formatShape(found.shape)} but the model's is ${formatShape(view.shape)}`);
      }
      out.set(found.values, view.offset);
    }
    layers.forEach((l, k) => {
      if (l.bias && layout.layers[k].biasOffset < 0) {
        throw new FileFormatError(path, `layers[${k}].bias is present but the model's layer ${k} has no bias`);
      }
    });
    return out;
  }
  const file = parseSafetensors(bytes, path);
  const expected = new Set(like.tensorNames);
  const missing = like.tensorNames.filter((name) => !file.tensors.has(name));
  if (missing.length) {
    throw new FileFormatError(path, `missing tensor(s) ${quoteList(missing)} that the model has`);
  }
  const extra = [...file.tensors.keys()].filter((name) => !expected.has(name));
  if (extra.length) throw new FileFormatError(path, `unexpected tensor(s) ${quoteList(extra)} that the model does not have`);
  layout.views.forEach((view, i) => {
    const name = like.tensorNames[i];
    const t = file.tensors.get(name)!;
    if (!sameShape(t.shape, view.shape)) {
      throw new FileFormatError(path, `tensor '${name}' has shape ${formatShape(t.shape)} but the model's is ${formatShape(view.shape)}`);
    }
    checkFinite(t.data, `tensor '${name}'`, path);
    out.set(t.data, view.offset);
  });
  return out;
}

/**
 * Writes a vector shaped like `like`'s parameters in the model's format, with its tensor names
 * and shapes (so PyTorch can load a gradient or Hessian-vector product next to the model).
 */
export function writeParameterVector(
  like: LoadedModel,
  vector: Float64Array | Float32Array,
  metadata: Record<string, string> = {},
): Uint8Array {
  const layout = checkVector(like, vector, "parameter vector");
  if (like.format === "safetensors") return writeSafetensors(tensorsOf(like, layout, vector), metadata);
  const version = isMlp(like.model.spec) ? JSON_FORMAT_VERSION : JSON_ARCHITECTURE_VERSION;
  const head = [`"format": ${JSON.stringify(JSON_VECTOR_FORMAT)}`, `"version": ${version}`];
  return jsonDocument(head, metadata, layout, vector);
}

// ---------------------------------------------------------------------------------------------
// Shared checks

function layoutOf(loaded: LoadedModel): ParameterLayout {
  const layout = parameterLayout(loaded.model.spec);
  if (loaded.tensorNames.length !== layout.views.length) {
    throw new InputError(
      `the model has ${layout.views.length} parameter tensors but ${loaded.tensorNames.length} tensor names`,
    );
  }
  return layout;
}

/** Checks a vector to be written: right length, finite (JSON cannot hold NaN, and a NaN model is a bug). */
function checkVector(loaded: LoadedModel, vector: ArrayLike<number>, what: string): ParameterLayout {
  const layout = layoutOf(loaded);
  if (vector.length !== layout.dim) {
    throw new InputError(`${what} have ${vector.length} values but the model has ${layout.dim} parameters`);
  }
  for (const [i, view] of layout.views.entries()) {
    for (let j = 0; j < view.size; j++) {
      const v = vector[view.offset + j];
      if (!Number.isFinite(v)) {
        throw new InputError(`${what}: tensor '${loaded.tensorNames[i]}' has a non-finite value (${v}) at flat index ${j}`);
      }
    }
  }
  return layout;
}

function checkFinite(values: ArrayLike<number>, what: string, path: string): void {
  for (let i = 0; i < values.length; i++) {
    if (!Number.isFinite(values[i])) {
      throw new FileFormatError(path, `${what} has a non-finite value (${values[i]}) at flat index ${i}`);
    }
  }
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function quoteList(names: string[]): string {
  const shown = names.slice(0, 8).map((n) => `'${n}'`).join(", ");
  return names.length > 8 ? `${shown} and ${names.length - 8} more` : shown;
}

/** Validates an assembled spec; shapes are checked before this, so a failure here is a format problem too. */
function finishSpec(spec: ModelSpec, path: string): ModelSpec {
  try {
    validateSpec(spec);
  } catch (e) {
    if (e instanceof InputError) throw new FileFormatError(path, e.message, { cause: e });
    throw e;
  }
  return spec;
}

// ---------------------------------------------------------------------------------------------
// safetensors (PyTorch nn.Sequential state dicts)

const LINEAR_NAME = /^(?:(.*)\.)?(\d+)\.(weight|bias)$/;

interface NamedTensor {
  name: string;
  tensor: SafetensorsTensor;
}

function readSafetensorsModel(bytes: Uint8Array, path: string, options: ReadModelOptions): LoadedModel {
  const file = parseSafetensors(bytes, path);
  const fail: (problem: string) => never = (problem) => {
    throw new FileFormatError(path, problem);
  };
  if (file.tensors.size === 0) fail("holds no tensors");

  // Group tensors by module index, checking that they all share one prefix.
  const byIndex = new Map<number, { weight?: NamedTensor; bias?: NamedTensor }>();
  let prefix: { value: string; example: string } | undefined;
  for (const [name, tensor] of file.tensors) {
    const m = LINEAR_NAME.exec(name);
    if (!m) {
      fail(`tensor '${name}' is not a Linear weight or bias (expected names like '0.weight', '0.bias', '2.weight')`);
    }
    const [, p = "", digits, role] = m!;
    if (prefix && prefix.value !== p) {
      fail(`tensors '${prefix.example}' and '${name}' have different prefixes: the model must be one nn.Sequential`);
    }
    prefix ??= { value: p, example: name };
    const index = Number(digits);
    const entry = byIndex.get(index) ?? {};
    const slot = role as "weight" | "bias";
    if (entry[slot]) fail(`tensors '${entry[slot]!.name}' and '${name}' both claim to be the ${slot} of Linear ${index}`);
    entry[slot] = { name, tensor };
    byIndex.set(index, entry);
  }
  const groups = [...byIndex.keys()].sort((a, b) => a - b).map((index) => byIndex.get(index)!);
  for (const { weight, bias } of groups) if (!weight) fail(`tensor '${bias!.name}' has no matching weight tensor`);

  const tensorNames: string[] = [];
  const parts: (Float32Array | Float64Array)[] = [];
  let allF64 = true;
  const take = (t: NamedTensor) => {
    checkFinite(t.tensor.data, `tensor '${t.name}'`, path);
    tensorNames.push(t.name);
    parts.push(t.tensor.data);
    if (t.tensor.dtype !== "F64") allF64 = false;
  };

  let spec: ModelSpec;
  const architecture = architectureSpec(file.metadata, options, path);
  if (architecture) {
    // The architecture gives the layers; the file's tensors, in module order, must fit them.
    const K = architecture.layers.length;
    if (groups.length !== K) {
      const kinds = architecture.layers.map((l) => (isConv(l) ? "conv2d" : "linear")).join(", ");
      fail(`the architecture has ${K} parametric layers (${kinds}) but the file has ${groups.length} weight tensors (${quoteList(groups.map((g) => g.weight!.name))})`);
    }
    architecture.layers.forEach((l, k) => {
      const { weight, bias } = groups[k];
      const kind = isConv(l) ? "conv2d" : "linear";
      const expected = weightShape(l);
      if (!sameShape(weight!.tensor.shape, expected)) {
        fail(`tensor '${weight!.name}' has shape ${formatShape(weight!.tensor.shape)} but the architecture's layer ${k} (${kind}) needs ${formatShape(expected)}`);
      }
      if (l.bias && !bias) fail(`tensor '${weight!.name.replace(/weight$/, "bias")}' is missing: the architecture's layer ${k} (${kind}) has a bias`);
      if (bias && !l.bias) fail(`tensor '${bias.name}' is present but the architecture's layer ${k} (${kind}) has no bias (bias: false)`);
      if (bias && !sameShape(bias.tensor.shape, [layerUnits(l)])) {
        fail(`tensor '${bias.name}' has shape ${formatShape(bias.tensor.shape)} but the architecture's layer ${k} (${kind}) needs [${layerUnits(l)}]`);
      }
      for (const t of bias ? [weight!, bias] : [weight!]) take(t);
    });
    spec = architecture;
  } else {
    const layers: LayerSpec[] = [];
    groups.forEach(({ weight, bias }, k) => {
      const ws = weight!.tensor.shape;
      if (ws.length === 4) {
        fail(
          `tensor '${weight!.name}' has shape ${formatShape(ws)}, a Conv2d weight: a convolutional net needs its architecture, ` +
            `in __metadata__ '${ARCHITECTURE_KEY}' or given beside the file (docs/model-format.md)`,
        );
      }
      if (ws.length !== 2) {
        fail(`tensor '${weight!.name}' has shape ${formatShape(ws)} but a Linear weight must be 2-D [out, in]`);
      }
      const [out, inp] = ws;
      if (out < 1 || inp < 1) fail(`tensor '${weight!.name}' has shape ${formatShape(ws)}: a layer needs at least one input and one output`);
      const previous = layers[k - 1] as { outFeatures: number; bias: boolean } | undefined;
      if (previous && inp !== previous.outFeatures) {
        fail(
          `tensor '${weight!.name}' has shape ${formatShape(ws)} but layer ${k} takes ${previous.outFeatures} inputs ` +
            `(tensor '${tensorNames[tensorNames.length - (previous.bias ? 2 : 1)]}' gives ${previous.outFeatures} outputs)`,
        );
      }
      if (bias && !sameShape(bias.tensor.shape, [out])) {
        fail(`tensor '${bias.name}' has shape ${formatShape(bias.tensor.shape)} but '${weight!.name}' has ${out} outputs, so it must be [${out}]`);
      }
      layers.push({ inFeatures: inp, outFeatures: out, bias: !!bias });
      for (const t of bias ? [weight!, bias] : [weight!]) take(t);
    });
    spec = finishSpec({ layers, activation: activationFrom(file.metadata, options, path) }, path);
  }

  const theta = new Float64Array(parameterLayout(spec).dim);
  let offset = 0;
  for (const p of parts) {
    theta.set(p, offset);
    offset += p.length;
  }
  return { model: { spec, theta }, format: "safetensors", tensorNames, metadata: file.metadata, dtype: allF64 ? "F64" : "F32" };
}

/**
 * The spec of the architecture in safetensors `__metadata__` (key "architecture": the JSON of an
 * Architecture, or the text form of parseArchitecture with the input shape in "input_shape"),
 * else the one the caller gives; null when neither. The activation comes from the architecture's
 * modules; a single-layer net takes it from the metadata / option as MLPs do, and metadata naming
 * another activation than the architecture's is an error.
 */
function architectureSpec(metadata: Record<string, string>, options: ReadModelOptions, path: string): ModelSpec | null {
  const given = metadata[ARCHITECTURE_KEY] ?? options.architecture;
  if (given === undefined) return null;
  const where = metadata[ARCHITECTURE_KEY] !== undefined ? `__metadata__ '${ARCHITECTURE_KEY}'` : "the architecture given beside it";
  let spec: ModelSpec;
  try {
    if (typeof given === "string" && !given.trim().startsWith("{")) {
      const inputText = metadata.input_shape;
      if (inputText === undefined) {
        throw new InputError(`the text form ${JSON.stringify(given)} needs the per-sample input shape in __metadata__ 'input_shape' (e.g. "1,28,28")`);
      }
      const input = inputText.replace(/[[\]()\s]/g, "").split(",").filter(Boolean).map(Number);
      if (!input.length || !input.every((v) => Number.isInteger(v) && v >= 1)) {
        throw new InputError(`__metadata__ 'input_shape' must be positive integers like "1,28,28", got ${JSON.stringify(inputText)}`);
      }
      spec = parseArchitecture(given, input);
    } else {
      let arch: unknown = given;
      if (typeof given === "string") {
        try {
          arch = JSON.parse(given);
        } catch (e) {
          throw new InputError(`not valid JSON: ${(e as Error).message}`);
        }
      }
      spec = specFromArchitecture(checkArchitecture(arch));
    }
  } catch (e) {
    if (e instanceof InputError) throw new FileFormatError(path, `${where}: ${e.message}`, { cause: e });
    throw e;
  }
  const hidden = spec.layers.length > 1;
  const fromMetadata = activationFrom(metadata, { activation: hidden ? spec.activation : options.activation }, path);
  if (hidden && (metadata.activation !== undefined || metadata.negative_slope !== undefined) && !sameActivation(fromMetadata, spec.activation)) {
    throw new FileFormatError(path, `__metadata__ activation ${describeActivation(fromMetadata)} disagrees with the architecture's ${describeActivation(spec.activation)}`);
  }
  return { ...spec, activation: hidden ? spec.activation : fromMetadata };
}

/** An Architecture's outer shape ({input: number[], modules: object[]}); specFromArchitecture checks the rest. */
function checkArchitecture(value: unknown): Architecture {
  if (value === null || typeof value !== "object" || Array.isArray(value)) throw new InputError(`not an object {"input": [...], "modules": [...]}`);
  const a = value as Record<string, unknown>;
  if (!Array.isArray(a.input)) throw new InputError(`"input" must be the per-sample input shape, e.g. [1, 28, 28], got ${JSON.stringify(a.input)}`);
  if (!Array.isArray(a.modules) || !a.modules.every((m) => m !== null && typeof m === "object" && typeof (m as { type?: unknown }).type === "string")) {
    throw new InputError(`"modules" must be an array of objects with a "type", got ${JSON.stringify(a.modules)?.slice(0, 80)}`);
  }
  return a as unknown as Architecture;
}

function sameActivation(a: Activation, b: Activation): boolean {
  return a.kind === b.kind && (a.kind !== "leaky_relu" || a.slope === (b as { slope: number }).slope);
}

function describeActivation(a: Activation): string {
  return a.kind === "relu" ? "relu" : `leaky_relu (slope ${a.slope})`;
}

/** The activation from safetensors metadata, else the option, else ReLU. */
function activationFrom(metadata: Record<string, string>, options: ReadModelOptions, path: string): Activation {
  const name = metadata.activation;
  const slopeText = metadata.negative_slope;
  let slope = DEFAULT_NEGATIVE_SLOPE;
  if (slopeText !== undefined) {
    slope = Number(slopeText);
    if (slopeText.trim() === "" || !Number.isFinite(slope)) {
      throw new FileFormatError(path, `__metadata__ negative_slope '${slopeText}' is not a finite number`);
    }
  }
  if (name === undefined) {
    // A slope alone can only mean leaky ReLU.
    if (slopeText !== undefined) return { kind: "leaky_relu", slope };
    return options.activation ?? { kind: "relu" };
  }
  // Accept PyTorch's class names too ("ReLU", "LeakyReLU").
  const key = name.toLowerCase().replace(/[^a-z]/g, "");
  if (key === "relu") return { kind: "relu" };
  if (key === "leakyrelu") return { kind: "leaky_relu", slope };
  throw new FileFormatError(path, `__metadata__ activation '${name}' is not supported (use relu or leaky_relu)`);
}

function activationMetadata(a: Activation): Record<string, string> {
  return a.kind === "leaky_relu" ? { activation: "leaky_relu", negative_slope: String(a.slope) } : { activation: "relu" };
}

function tensorsOf(loaded: LoadedModel, layout: ParameterLayout, vector: Float64Array | Float32Array) {
  const F = loaded.dtype === "F64" ? Float64Array : Float32Array;
  return layout.views.map((view, i) => ({
    name: loaded.tensorNames[i],
    shape: view.shape,
    data: F.from(vector.subarray(view.offset, view.offset + view.size)),
  }));
}

// ---------------------------------------------------------------------------------------------
// JSON

interface JsonTensor {
  shape: number[];
  values: Float64Array;
}

/** Parses the bytes as a JSON object whose "format" is one of `formats` and "version" is 1. */
function parseJsonDocument(bytes: Uint8Array, path: string, formats: string[]): Record<string, unknown> {
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new FileFormatError(path, "is not valid UTF-8 text");
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    // Python's json.dump writes NaN and Infinity, which JSON (and we) do not accept.
    const hint = /\b(NaN|Infinity)\b/.test(text) ? " (it contains NaN or Infinity, which JSON cannot hold and weights must not be)" : "";
    throw new FileFormatError(path, `is not valid JSON: ${(e as Error).message}${hint}`);
  }
  if (doc === null || typeof doc !== "object" || Array.isArray(doc)) throw new FileFormatError(path, "is not a JSON object");
  const d = doc as Record<string, unknown>;
  if (!formats.includes(d.format as string)) {
    throw new FileFormatError(
      path,
      `"format" is ${JSON.stringify(d.format)}, expected ${formats.map((f) => JSON.stringify(f)).join(" or ")}`,
    );
  }
  if (d.version !== JSON_FORMAT_VERSION && d.version !== JSON_ARCHITECTURE_VERSION) {
    throw new FileFormatError(
      path,
      `"version" ${JSON.stringify(d.version)} is not supported (this reader knows version ${JSON_FORMAT_VERSION}, and ${JSON_ARCHITECTURE_VERSION} for nets with an architecture)`,
    );
  }
  return d;
}

/** Reads and checks "layers": shapes, numbers, finiteness and chaining. */
function jsonLayers(doc: Record<string, unknown>, path: string): { weight: JsonTensor; bias?: JsonTensor }[] {
  const fail: (problem: string) => never = (problem) => {
    throw new FileFormatError(path, problem);
  };
  const layers = doc.layers;
  if (!Array.isArray(layers) || layers.length === 0) fail(`"layers" must be a non-empty array`);
  return (layers as unknown[]).map((layer, k) => {
    const at = `layers[${k}]`;
    if (layer === null || typeof layer !== "object" || Array.isArray(layer)) fail(`${at} is not an object`);
    const { weight, bias } = layer as Record<string, unknown>;
    if (!Array.isArray(weight) || weight.length === 0) fail(`${at}.weight must be a non-empty array of rows [out][in]`);
    const rows = weight as unknown[];
    if (Array.isArray(rows[0]) && Array.isArray(rows[0][0])) {
      // A convolution's weight [out][in/groups][kh][kw] (version 2), nested to its shape.
      const w = nestedTensor(weight, `${at}.weight`, fail);
      const result: { weight: JsonTensor; bias?: JsonTensor } = { weight: w };
      if (bias !== undefined && bias !== null) {
        if (!Array.isArray(bias)) fail(`${at}.bias is not an array`);
        const b = bias as unknown[];
        if (b.length !== w.shape[0]) fail(`${at}.bias has ${b.length} entries but ${at}.weight has ${w.shape[0]} outputs`);
        result.bias = { shape: [b.length], values: Float64Array.from(b, (v, i) => jsonNumber(v, `${at}.bias[${i}]`, fail)) };
      }
      return result;
    }
    if (!Array.isArray(rows[0]) || rows[0].length === 0) fail(`${at}.weight[0] must be a non-empty array of numbers`);
    const inp = (rows[0] as unknown[]).length;
    const out = rows.length;
    const values = new Float64Array(out * inp);
    rows.forEach((row, i) => {
      if (!Array.isArray(row)) return fail(`${at}.weight[${i}] is not an array`);
      if (row.length !== inp) fail(`${at}.weight[${i}] has ${row.length} entries but ${at}.weight[0] has ${inp}`);
      row.forEach((v, j) => {
        values[i * inp + j] = jsonNumber(v, `${at}.weight[${i}][${j}]`, fail);
      });
    });
    const result: { weight: JsonTensor; bias?: JsonTensor } = { weight: { shape: [out, inp], values } };
    if (bias !== undefined && bias !== null) {
      if (!Array.isArray(bias)) fail(`${at}.bias is not an array`);
      const b = bias as unknown[];
      if (b.length !== out) fail(`${at}.bias has ${b.length} entries but ${at}.weight has ${out} rows (outputs)`);
      result.bias = { shape: [out], values: Float64Array.from(b, (v, i) => jsonNumber(v, `${at}.bias[${i}]`, fail)) };
    }
    return result;
  });
}

/** A rectangular nested array of numbers, its shape read from the nesting; names the first entry that breaks it. */
function nestedTensor(value: unknown, where: string, fail: (p: string) => never): JsonTensor {
  const shape: number[] = [];
  for (let v = value; Array.isArray(v); v = v[0]) {
    if (v.length === 0) fail(`${where} has an empty dimension`);
    shape.push(v.length);
  }
  const values = new Float64Array(shape.reduce((a, b) => a * b, 1));
  let at = 0;
  const walk = (v: unknown, depth: number, label: string) => {
    if (depth === shape.length) {
      values[at++] = jsonNumber(v, label, fail);
      return;
    }
    if (!Array.isArray(v)) return fail(`${label} is ${JSON.stringify(v)}, not an array (${where} has shape ${formatShape(shape)})`);
    if (v.length !== shape[depth]) fail(`${label} has ${v.length} entries but ${where} has shape ${formatShape(shape)}`);
    v.forEach((x, i) => walk(x, depth + 1, `${label}[${i}]`));
  };
  walk(value, 0, where);
  return { shape, values };
}

function jsonNumber(v: unknown, where: string, fail: (p: string) => never): number {
  if (typeof v !== "number") return fail(`${where} is ${JSON.stringify(v)}, not a number`);
  // JSON.parse turns out-of-range literals such as 1e999 into Infinity.
  if (!Number.isFinite(v)) return fail(`${where} is not a finite number`);
  return v;
}

function readJsonModel(bytes: Uint8Array, path: string, options: ReadModelOptions): LoadedModel {
  const doc = parseJsonDocument(bytes, path, [JSON_MODEL_FORMAT]);
  const layers = jsonLayers(doc, path);
  const withArchitecture = doc.version === JSON_ARCHITECTURE_VERSION;
  if (withArchitecture && doc.architecture === undefined) {
    throw new FileFormatError(path, `version ${JSON_ARCHITECTURE_VERSION} needs "${ARCHITECTURE_KEY}" ({"input": [...], "modules": [...]}, docs/model-format.md)`);
  }
  if (!withArchitecture && doc.architecture !== undefined) {
    throw new FileFormatError(path, `"${ARCHITECTURE_KEY}" needs "version": ${JSON_ARCHITECTURE_VERSION}`);
  }
  if (!withArchitecture) {
    layers.forEach((l, k) => {
      if (l.weight.shape.length !== 2) {
        throw new FileFormatError(path, `layers[${k}].weight has shape ${formatShape(l.weight.shape)}: version ${JSON_FORMAT_VERSION} holds Linear layers only ([out][in]); a convolutional net needs version ${JSON_ARCHITECTURE_VERSION} with "${ARCHITECTURE_KEY}"`);
      }
      if (k > 0 && l.weight.shape[1] !== layers[k - 1].weight.shape[0]) {
        throw new FileFormatError(
          path,
          `layers[${k}].weight has shape ${formatShape(l.weight.shape)} but layer ${k} takes ` +
            `${layers[k - 1].weight.shape[0]} inputs (layers[${k - 1}].weight has ${layers[k - 1].weight.shape[0]} rows)`,
        );
      }
    });
  }

  let activation: Activation | undefined;
  if (doc.activation === undefined) {
    activation = undefined;
  } else if (doc.activation === "relu") {
    activation = { kind: "relu" };
  } else if (doc.activation === "leaky_relu") {
    const slope = doc.negativeSlope ?? DEFAULT_NEGATIVE_SLOPE;
    if (typeof slope !== "number" || !Number.isFinite(slope)) {
      throw new FileFormatError(path, `"negativeSlope" is ${JSON.stringify(slope)}, not a finite number`);
    }
    activation = { kind: "leaky_relu", slope };
  } else {
    throw new FileFormatError(path, `"activation" ${JSON.stringify(doc.activation)} is not supported (use "relu" or "leaky_relu")`);
  }

  const metadata = jsonMetadata(doc, path);
  let spec: ModelSpec;
  if (withArchitecture) {
    let arch: ModelSpec;
    try {
      arch = specFromArchitecture(checkArchitecture(doc.architecture));
    } catch (e) {
      if (e instanceof InputError) throw new FileFormatError(path, `"${ARCHITECTURE_KEY}": ${e.message}`, { cause: e });
      throw e;
    }
    const hidden = arch.layers.length > 1;
    if (hidden && activation && !sameActivation(activation, arch.activation)) {
      throw new FileFormatError(path, `"activation" ${describeActivation(activation)} disagrees with the architecture's ${describeActivation(arch.activation)}`);
    }
    spec = hidden ? arch : { ...arch, activation: activation ?? options.activation ?? { kind: "relu" } };
    if (layers.length !== spec.layers.length) {
      throw new FileFormatError(path, `"layers" has ${layers.length} entries but the architecture has ${spec.layers.length} parametric layers`);
    }
    spec.layers.forEach((l, k) => {
      const kind = isConv(l) ? "conv2d" : "linear";
      const expected = weightShape(l);
      if (!sameShape(layers[k].weight.shape, expected)) {
        throw new FileFormatError(path, `layers[${k}].weight has shape ${formatShape(layers[k].weight.shape)} but the architecture's layer ${k} (${kind}) needs ${formatShape(expected)}`);
      }
      if (l.bias !== !!layers[k].bias) {
        throw new FileFormatError(path, l.bias ? `layers[${k}].bias is missing: the architecture's layer ${k} (${kind}) has a bias` : `layers[${k}].bias is present but the architecture's layer ${k} (${kind}) has no bias`);
      }
    });
  } else {
    spec = finishSpec({
      layers: layers.map((l) => ({ inFeatures: l.weight.shape[1], outFeatures: l.weight.shape[0], bias: !!l.bias })),
      activation: activation ?? options.activation ?? { kind: "relu" },
    }, path);
  }
  const layout = parameterLayout(spec);
  const theta = new Float64Array(layout.dim);
  for (const view of layout.views) theta.set(layers[view.layer][view.role]!.values, view.offset);
  return { model: { spec, theta }, format: "json", tensorNames: layout.views.map((v) => v.name), metadata };
}

function jsonMetadata(doc: Record<string, unknown>, path: string): Record<string, string> {
  const m = doc.metadata;
  if (m === undefined) return {};
  if (m === null || typeof m !== "object" || Array.isArray(m)) throw new FileFormatError(path, `"metadata" is not an object of strings`);
  for (const [k, v] of Object.entries(m)) {
    if (typeof v !== "string") throw new FileFormatError(path, `"metadata" value '${k}' is not a string`);
  }
  return { ...(m as Record<string, string>) };
}

/**
 * Writes the JSON document: `head` fields, optional metadata, then the layers with one weight
 * row per line so the file stays readable and diffs well. Numbers are written with JavaScript's
 * shortest round-trip formatting, so float64 values survive exactly.
 */
function jsonDocument(
  head: string[],
  metadata: Record<string, string>,
  layout: ParameterLayout,
  vector: ArrayLike<number>,
): Uint8Array {
  const lines = ["{", ...head.map((h) => `  ${h},`)];
  if (Object.keys(metadata).length) lines.push(`  "metadata": ${JSON.stringify(metadata)},`);
  lines.push(`  "layers": [`);
  const slice = (offset: number, n: number) => Array.from({ length: n }, (_, i) => vector[offset + i]).join(", ");
  layout.layers.forEach((l, k) => {
    const shape = layout.views.find((v) => v.layer === k && v.role === "weight")!.shape;
    const out = shape[0];
    const inp = shape.slice(1).reduce((a, b) => a * b, 1);
    // One output unit per line: a row [in], or a convolution's filter [in/groups][kh][kw] nested on that line.
    const nest = (offset: number, dims: number[]): string => {
      if (dims.length === 1) return `[${slice(offset, dims[0])}]`;
      const step = dims.slice(1).reduce((a, b) => a * b, 1);
      return `[${Array.from({ length: dims[0] }, (_, i) => nest(offset + i * step, dims.slice(1))).join(", ")}]`;
    };
    const rows = Array.from({ length: out }, (_, i) => `        ${nest(l.weightOffset + i * inp, shape.slice(1))}`);
    const fields = [`      "weight": [\n${rows.join(",\n")}\n      ]`];
    if (l.biasOffset >= 0) fields.push(`      "bias": [${slice(l.biasOffset, out)}]`);
    lines.push(`    {\n${fields.join(",\n")}\n    }${k + 1 < layout.layers.length ? "," : ""}`);
  });
  lines.push("  ]", "}", "");
  return new TextEncoder().encode(lines.join("\n"));
}
