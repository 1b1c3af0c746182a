/**
 * flatness: exact Hessian-vector products of rectified nets on WebGPU (and a float64 CPU engine),
 * the flatness and sharpness measures built on them, and the function-preserving transforms and
 * reparametrizations that change those measures (Dinh, Pascanu, Bengio, Bengio, "Sharp Minima Can
 * Generalize For Deep Nets", ICML 2017).
 *
 * The one public entry: what is not exported here is internal and may change.
 *
 * ```ts
 * import { loadDatasetFiles, loadModelFile, measureMetrics, openBackend, withVectors } from "flatness";
 *
 * const model = await loadModelFile("net.safetensors");
 * const data = await loadDatasetFiles("x.npy", "y.npy", "ce", model);
 * const backend = await openBackend();            // "webgpu" on a hardware GPU, else "wasm", else "cpu"
 * const objective = await backend.objective(model.model.spec, data, "ce");
 * const report = await withVectors(objective, [model.model.theta], ([theta]) =>
 *   measureMetrics(objective, theta, model.model.theta, data, { metrics: ["spectrum"], backend }));
 * console.log(report.topEigenvalues);
 * objective.dispose();
 * await backend.close();
 * ```
 *
 * @module
 */

// ---- models, parameters, data -------------------------------------------------------------------
export {
  type Activation,
  type Conv2dLayerSpec,
  convOutputShape,
  inputWidth,
  isConv,
  isMlp,
  type LayerSpec,
  layerOutputShape,
  type LinearLayerSpec,
  LOSS_KINDS,
  type LossKind,
  type MlpSpec,
  mlpSpec,
  type Model,
  type ModelSpec,
  moduleIndices,
  outputWidth,
  type Pair,
  parameterLayout,
  type ParameterLayout,
  type Pool2dSpec,
  type TensorView,
  validateSpec,
} from "./model.ts";
export { type Architecture, architectureOf, formatArchitecture, type ModuleSpec, parseArchitecture, specFromArchitecture } from "./architecture.ts";
export { initParameters, randomDataset } from "./init.ts";
export { type Dataset, subsetDataset, validateDataset } from "./data.ts";
export {
  BUILTIN_DATASETS,
  builtinDataset,
  type BuiltinDataset,
  type BuiltinDatasetName,
  type BuiltinDatasetOptions,
  gaussianMixture,
  type Split,
  splitDataset,
  teacherStudent,
  twoSpirals,
} from "./datasets.ts";
export type { MixtureOptions, SpiralOptions, TeacherOptions } from "./datasets.ts";
export { IMAGE_DATASETS, type ImageDatasetName } from "./imageDatasets.ts";
export { type FashionMnistPart, loadImageDataset, type LoadImageDatasetOptions, loadImageSplit } from "./io/imageDatasets.ts";

// ---- files: safetensors, ONNX, JSON, npy, CSV ---------------------------------------------------
export { loadDatasetFiles, loadModelFile } from "./io/load.ts";
export { type LoadedModel, readModel, type ReadModelOptions, readParameterVector, writeModel, writeParameterVector } from "./io/modelFile.ts";
export { datasetFromBytes, type InputFile } from "./io/dataset.ts";
export { type NpyArray, parseNpy, writeNpy } from "./io/npy.ts";
export type { NpyDtype } from "./io/npy.ts";
export { type CsvData, type CsvOptions, parseCsv } from "./io/csv.ts";
export { parseSafetensors, type SafetensorsFile, writeSafetensors } from "./io/safetensors.ts";
export type { SafetensorsInput, SafetensorsTensor } from "./io/safetensors.ts";

// ---- backends and objectives --------------------------------------------------------------------
export {
  type Backend,
  type BackendChoice,
  type BackendName,
  BACKEND_NAMES,
  cpuBackend,
  openBackend,
  type OpenBackendOptions,
  withBackend,
} from "./backend/mod.ts";
export type { BatchLossOptions, ObjectiveOptions } from "./backend/types.ts";
export type { TrainingEngine } from "./train/engines.ts";
export type { MinibatchObjective } from "./train/trainer.ts";
export type { Optimizer } from "./train/optimizers.ts";
export { type Objective, type PassCounters, type VectorSpace, withVectors } from "./objective.ts";
export { HostVectorSpace } from "./hostVectorSpace.ts";
export { type ContextOptions, GpuContext } from "./gpu/context.ts";
export type { BindingKind, GemmVariant, Kernel, KernelDescriptor } from "./gpu/context.ts";
export type { BufferPool, PoolCounters } from "./gpu/pool.ts";
export type { ShaderName, WGSL } from "./gpu/shaders.generated.ts";

// ---- metrics ------------------------------------------------------------------------------------
export { ALL_METRICS, DEFAULT_METRICS, type MeasureOptions, type MeasureReport, measureMetrics, METRIC_NAMES, type MetricName } from "./metrics/suite.ts";
export type { METRICS } from "./metrics/suite.ts";
export type { MetricCost, Progress } from "./metrics/cost.ts";
export type { ProbeDistribution } from "./metrics/lanczos.ts";
export type { BallNorm } from "./metrics/ascent.ts";
export { gaussNewtonOperator, hessianOperator, restrictedOperator, type SymmetricOperator } from "./metrics/operator.ts";
export { lanczosEigenpairs, type LanczosResult, powerIteration } from "./metrics/spectrum.ts";
export type { EigenWhich, LanczosOptions, PowerIterationOptions, PowerIterationResult } from "./metrics/spectrum.ts";
export { hessianDiagonal, hutchinsonTrace, hutchPlusPlusTrace, squaredFrobeniusNorm } from "./metrics/trace.ts";
export type {
  DiagonalResult,
  FrobeniusResult,
  HutchinsonOptions,
  HutchinsonResult,
  HutchPlusPlusOptions,
  HutchPlusPlusResult,
  ProbeOptions,
} from "./metrics/trace.ts";
export { spectralDensity, type SpectralDensityResult } from "./metrics/density.ts";
export type { SpectralDensityOptions } from "./metrics/density.ts";
export { adaptiveSharpness, epsilonSharpness, mSharpness, samSharpness } from "./metrics/sharpness.ts";
export type {
  AdaptiveSharpnessOptions,
  AdaptiveSharpnessResult,
  EpsilonSharpnessKind,
  EpsilonSharpnessOptions,
  EpsilonSharpnessResult,
  MSharpnessOptions,
  MSharpnessResult,
  SamSharpnessOptions,
  SamSharpnessResult,
} from "./metrics/sharpness.ts";
export { volumeFlatness } from "./metrics/volume.ts";
export type { VolumeCoordinates, VolumeFlatnessOptions, VolumeFlatnessResult } from "./metrics/volume.ts";
export { fisherRaoNorm, pathNorm } from "./metrics/normBased.ts";
export type { FisherRaoResult, PathNormResult } from "./metrics/normBased.ts";
export { relativeFlatness } from "./metrics/relativeFlatness.ts";
export type { LayerRelativeFlatness, RelativeFlatnessOptions, RelativeFlatnessResult } from "./metrics/relativeFlatness.ts";
export { normalizedSharpness } from "./metrics/normalizedSharpness.ts";
export type { LayerNormalizedSharpness, NormalizedSharpnessOptions, NormalizedSharpnessResult } from "./metrics/normalizedSharpness.ts";
export { pacBayesBound, pacBayesSigma } from "./metrics/pacBayes.ts";
export type { PacBayesSigmaOptions, PacBayesSigmaResult } from "./metrics/pacBayes.ts";
export { binaryKl, klInverseUpper, pacBayesBoundDR } from "./metrics/pacBayesDR.ts";
export type { PacBayesDROptions, PacBayesDRResult } from "./metrics/pacBayesDR.ts";
export { inputGradientNorms, layerGradientNorms } from "./metrics/sensitivity.ts";
export type {
  InputGradientNormsResult,
  InputGradientOptions,
  LayerGradientNorm,
  LayerGradientNormsResult,
  TensorGradientNorm,
} from "./metrics/sensitivity.ts";

// ---- transforms, constructions, reparametrizations ----------------------------------------------
export { alphaScale, alphaScaleDiagonal } from "./transforms/alphaScale.ts";
export { neuronScale, neuronScaleDiagonal } from "./transforms/neuronScale.ts";
export { sharpen, sharpenCount, type SharpenCountResult, type SharpenResult } from "./transforms/sharpen.ts";
export type { SharpenCountOptions, SharpenOptions } from "./transforms/sharpen.ts";
export { flatten, type FlattenResult } from "./transforms/flatten.ts";
export type { FlattenMeasure, FlattenOptions } from "./transforms/flatten.ts";
export { type EpsilonConstructionResult, epsilonSharpnessConstruction } from "./transforms/epsilonConstruction.ts";
export type { EpsilonConstructionOptions, EpsilonSubspaceResult } from "./transforms/epsilonConstruction.ts";
export { compareOutputs, type FunctionCheck } from "./transforms/constructionSupport.ts";
export type { LanczosSettings } from "./transforms/constructionSupport.ts";
export { type Reparametrization } from "./reparam/reparametrization.ts";
export { ReparametrizedObjective } from "./reparam/objective.ts";
export type { HvpTerms } from "./reparam/objective.ts";
export { WeightNormalization } from "./reparam/weightNorm.ts";
export type { WeightNormLayerLayout } from "./reparam/weightNorm.ts";
export { RadialTransformation } from "./reparam/radial.ts";
export type { RadialMap, RadialProfile } from "./reparam/radialMap.ts";
export { powerFamily } from "./reparam/powerFamily.ts";
export type { CoordinatewisePowerFamily, PowerFamilyOptions, PowerScalar, RadialPowerFamily } from "./reparam/powerFamily.ts";
export { applyInputMap, fitAffineInputMap, fitAsinhInputMap, foldInputMap, type InputMap, transformDataset } from "./reparam/input.ts";
export type { AffineInputKind, AffineInputMap, ElementwiseInputMap } from "./reparam/input.ts";

// ---- the invariance audit -----------------------------------------------------------------------
export { audit, type AuditOptions, type AuditReport, DEFAULT_AUDIT_METRICS } from "./audit/audit.ts";
export type { AuditMetricRow, FunctionCheck as AuditFunctionCheck, AuditTransformRow } from "./audit/audit.ts";
export type { AUDIT_TRANSFORMS, AuditBase, AuditTransformName, TransformFamily } from "./audit/transforms.ts";
export { auditSvg, formatAudit } from "./audit/report.ts";

// ---- training and landscapes --------------------------------------------------------------------
export { trainModel, type TrainModelOptions, type TrainModelResult } from "./train/trainModel.ts";
export { type EpochRecord } from "./train/trainer.ts";
export type { Snapshot } from "./train/trainer.ts";
export { OPTIMIZER_KINDS, type OptimizerConfig, type OptimizerKind } from "./train/optimizers.ts";
export type { ResolvedOptimizerConfig } from "./train/optimizers.ts";
export { computeLandscape, type LandscapeOptions, type LandscapeResult } from "./landscape/landscape.ts";
export type { DirectionInfo } from "./landscape/landscape.ts";
export type { Axis, LandscapeSlice } from "./landscape/slice.ts";
export type { BatchLoss, PerturbationBatch } from "./landscape/batchLoss.ts";
export { DIRECTION_KINDS, type DirectionKind, filterNormalize } from "./landscape/directions.ts";
export type { BiasPolicy } from "./landscape/directions.ts";

// ---- the paper's claims -------------------------------------------------------------------------
export { CLAIMS, runClaims } from "./reproduce/run.ts";
export type { RunOptions } from "./reproduce/run.ts";
export type { Claim, ClaimOutcome, NegativeControl, ReproduceContext } from "./reproduce/context.ts";
export { renderReport, type ReproduceRecord } from "./reproduce/html.ts";
export type { ClaimRecord, ControlRecord, PlotSeries, PlotSpec } from "./reproduce/html.ts";

// ---- errors -------------------------------------------------------------------------------------
export {
  DeviceLimitError,
  DeviceLostError,
  FileFormatError,
  FlatnessError,
  GpuValidationError,
  InputError,
  ShaderCompileError,
  WebGPUUnavailableError,
} from "./errors.ts";
