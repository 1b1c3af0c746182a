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
 * 3. ONNX (read only; src/io/onnx.ts): a path ending in `.onnx`, or content that is neither JSON
 *    nor a plausible safetensors file and starts like an ONNX ModelProto (field 1, ir_version).
 *    The model becomes a "safetensors" LoadedModel with PyTorch nn.Sequential names ("0.weight",
 *    ...), so transforms of it are written as safetensors, never as ONNX (checkModelOutputPath).
 */
import { FileFormatError, InputError } from "../errors.ts";
import {
  type Activation,
  type LayerSpec,
  type Model,
  type ModelSpec,
  type ParameterLayout,
  parameterLayout,
  validateSpec,
} from "../model.ts";
import { formatShape } from "./binary.ts";
import { isOnnxPath, parseOnnxMlp } from "./onnx.ts";
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
}

export const JSON_MODEL_FORMAT = "flatness-mlp";
export const JSON_VECTOR_FORMAT = "flatness-parameters";
export const JSON_FORMAT_VERSION = 1;
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

/** An ONNX MLP (src/io/onnx.ts) as a safetensors-format LoadedModel with PyTorch nn.Sequential names. */
function readOnnxModel(bytes: Uint8Array, path: string, options: ReadModelOptions): LoadedModel {
  const m = parseOnnxMlp(bytes, path, options);
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
    return writeSafetensors(tensorsOf(loaded, layout, params), metadata);
  }
  const head = [`"format": ${JSON.stringify(JSON_MODEL_FORMAT)}`, `"version": ${JSON_FORMAT_VERSION}`];
  head.push(`"activation": ${JSON.stringify(spec.activation.kind)}`);
  if (spec.activation.kind === "leaky_relu") head.push(`"negativeSlope": ${spec.activation.slope}`);
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
  const head = [`"format": ${JSON.stringify(JSON_VECTOR_FORMAT)}`, `"version": ${JSON_FORMAT_VERSION}`];
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

  // Group tensors by Linear index, checking that they all share one prefix.
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

  const indices = [...byIndex.keys()].sort((a, b) => a - b);
  const layers: LayerSpec[] = [];
  const tensorNames: string[] = [];
  const parts: (Float32Array | Float64Array)[] = [];
  let allF64 = true;
  indices.forEach((index, k) => {
    const { weight, bias } = byIndex.get(index)!;
    if (!weight) return fail(`tensor '${bias!.name}' has no matching weight tensor`);
    const ws = weight.tensor.shape;
    if (ws.length !== 2) {
      fail(`tensor '${weight.name}' has shape ${formatShape(ws)} but a Linear weight must be 2-D [out, in]`);
    }
    const [out, inp] = ws;
    if (out < 1 || inp < 1) fail(`tensor '${weight.name}' has shape ${formatShape(ws)}: a layer needs at least one input and one output`);
    if (k > 0 && inp !== layers[k - 1].outFeatures) {
      fail(
        `tensor '${weight.name}' has shape ${formatShape(ws)} but layer ${k} takes ${layers[k - 1].outFeatures} inputs ` +
          `(tensor '${tensorNames[tensorNames.length - (layers[k - 1].bias ? 2 : 1)]}' gives ${layers[k - 1].outFeatures} outputs)`,
      );
    }
    if (bias && !sameShape(bias.tensor.shape, [out])) {
      fail(`tensor '${bias.name}' has shape ${formatShape(bias.tensor.shape)} but '${weight.name}' has ${out} outputs, so it must be [${out}]`);
    }
    layers.push({ inFeatures: inp, outFeatures: out, bias: !!bias });
    for (const t of bias ? [weight, bias] : [weight]) {
      checkFinite(t.tensor.data, `tensor '${t.name}'`, path);
      tensorNames.push(t.name);
      parts.push(t.tensor.data);
      if (t.tensor.dtype !== "F64") allF64 = false;
    }
  });

  const spec = finishSpec({ layers, activation: activationFrom(file.metadata, options, path) }, path);
  const theta = new Float64Array(parameterLayout(spec).dim);
  let offset = 0;
  for (const p of parts) {
    theta.set(p, offset);
    offset += p.length;
  }
  return { model: { spec, theta }, format: "safetensors", tensorNames, metadata: file.metadata, dtype: allF64 ? "F64" : "F32" };
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
  if (d.version !== JSON_FORMAT_VERSION) {
    throw new FileFormatError(path, `"version" ${JSON.stringify(d.version)} is not supported (this reader knows version ${JSON_FORMAT_VERSION})`);
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

function jsonNumber(v: unknown, where: string, fail: (p: string) => never): number {
  if (typeof v !== "number") return fail(`${where} is ${JSON.stringify(v)}, not a number`);
  // JSON.parse turns out-of-range literals such as 1e999 into Infinity.
  if (!Number.isFinite(v)) return fail(`${where} is not a finite number`);
  return v;
}

function readJsonModel(bytes: Uint8Array, path: string, options: ReadModelOptions): LoadedModel {
  const doc = parseJsonDocument(bytes, path, [JSON_MODEL_FORMAT]);
  const layers = jsonLayers(doc, path);
  layers.forEach((l, k) => {
    if (k > 0 && l.weight.shape[1] !== layers[k - 1].weight.shape[0]) {
      throw new FileFormatError(
        path,
        `layers[${k}].weight has shape ${formatShape(l.weight.shape)} but layer ${k} takes ` +
          `${layers[k - 1].weight.shape[0]} inputs (layers[${k - 1}].weight has ${layers[k - 1].weight.shape[0]} rows)`,
      );
    }
  });

  let activation: Activation;
  if (doc.activation === undefined) {
    activation = options.activation ?? { kind: "relu" };
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
  const spec = finishSpec({
    layers: layers.map((l) => ({ inFeatures: l.weight.shape[1], outFeatures: l.weight.shape[0], bias: !!l.bias })),
    activation,
  }, path);
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
    const [out, inp] = layout.views.find((v) => v.layer === k && v.role === "weight")!.shape;
    const rows = Array.from({ length: out }, (_, i) => `        [${slice(l.weightOffset + i * inp, inp)}]`);
    const fields = [`      "weight": [\n${rows.join(",\n")}\n      ]`];
    if (l.biasOffset >= 0) fields.push(`      "bias": [${slice(l.biasOffset, out)}]`);
    lines.push(`    {\n${fields.join(",\n")}\n    }${k + 1 < layout.layers.length ? "," : ""}`);
  });
  lines.push("  ]", "}", "");
  return new TextEncoder().encode(lines.join("\n"));
}
