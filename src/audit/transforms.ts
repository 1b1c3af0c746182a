/**
 * The transforms the invariance audit applies, each as a pair of "views" of the same function:
 * an objective and a point before, an objective and a point after, and the function check between
 * them. Three families (Dinh et al. 2017):
 *  - function-preserving maps of theta (same parameter space): T_alpha (Definition 5 with the
 *    Appendix B bias scaling) and neuron-wise rescaling; every metric applies;
 *  - reparametrizations theta = Phi(eta) (section 5.1): weight normalization with v -> alpha v
 *    (both views in eta), the Appendix A radial map (theta before, eta after); only metrics that
 *    see the objective through its loss, gradient and HVPs apply (the others read theta's layout);
 *  - input maps x -> A(x - mu) (section 5.2): standardization, PCA and ZCA whitening folded into
 *    the first layer, with the data transformed; every metric applies.
 */
import type { Dataset } from "../data.ts";
import { InputError } from "../errors.ts";
import { type LossKind, type ModelSpec, layerUnits } from "../model.ts";
import type { Objective } from "../objective.ts";
import { RadialTransformation } from "../reparam/radial.ts";
import { ReparametrizedObjective } from "../reparam/objective.ts";
import { WeightNormalization } from "../reparam/weightNorm.ts";
import { type AffineInputKind, fitAffineInputMap, foldInputMap, transformDataset } from "../reparam/input.ts";
import { homogeneousAlphaScale } from "../transforms/alphaScale.ts";
import { neuronScale, randomNeuronFactors } from "../transforms/neuronScale.ts";

/** The audit's transforms, each with a one-line description (Dinh et al. 2017: Definition 5, section 5.1, Appendix A, section 5.2). */
export const AUDIT_TRANSFORMS = {
  alpha: "T_alpha: first layer times a, last layer times 1/a, biases as Appendix B (Definition 5)",
  neuron: "neuron-wise rescaling of the first hidden layer by seeded factors in [1/10, 10]",
  "weight-norm": "weight normalization w = s v/||v||, then v -> a v (section 5.1); both views in eta",
  radial: "radial reparametrization of Appendix A centred at theta: eta - c = a (theta - c) near c, so the Hessian is divided by a^2 there",
  standardize: "input standardization folded into the first layer (section 5.2)",
  pca: "PCA whitening of the inputs folded into the first layer (section 5.2)",
  zca: "ZCA whitening of the inputs folded into the first layer (section 5.2)",
} as const;

/** A transform the audit can apply: a key of AUDIT_TRANSFORMS. */
export type AuditTransformName = keyof typeof AUDIT_TRANSFORMS;
export const AUDIT_TRANSFORM_NAMES = Object.keys(AUDIT_TRANSFORMS) as AuditTransformName[];
export const DEFAULT_AUDIT_TRANSFORMS: AuditTransformName[] = ["alpha", "neuron", "weight-norm", "zca"];

/** What a transform changes: parameters with the function kept ("function-preserving"), the coordinates ("reparametrization", Dinh et al. section 5.1) or the inputs ("input", section 5.2). */
export type TransformFamily = "function-preserving" | "reparametrization" | "input";

/** Builds objectives: the GPU engine or the float64 reference (vectors then live in their space). */
export type ObjectiveFactory = (spec: ModelSpec, data: Dataset) => Promise<Objective<unknown>>;

/** One side of an audit row: an objective, the point to measure at (host), and what to dispose. */
export interface AuditView {
  objective: Objective<unknown>;
  point: Float64Array;
  /** The model parameters theta this view stands for (theta = Phi(eta) for a reparametrization). */
  theta: Float64Array;
  spec: ModelSpec;
  data: Dataset;
  /** false for eta views: metrics that read the model layout from theta do not apply. */
  thetaCoordinates: boolean;
  dispose(): void;
}

export interface AuditTransformSetup {
  name: AuditTransformName;
  family: TransformFamily;
  description: string;
  /** What was applied (alphas, factors, ...), for the report. */
  parameters: Record<string, unknown>;
  /** null: the base view (theta coordinates, original data) is the "before". */
  before: AuditView | null;
  after: AuditView;
}

/** The model and data an audit starts from. */
export interface AuditBase {
  /** The architecture. */
  spec: ModelSpec;
  /** The flat parameters. */
  theta: Float64Array;
  /** The dataset the metrics are measured on. */
  data: Dataset;
  /** The loss. */
  loss: LossKind;
}

/** A plain view: theta coordinates. */
async function plainView(make: ObjectiveFactory, spec: ModelSpec, theta: Float64Array, data: Dataset): Promise<AuditView> {
  const objective = await make(spec, data);
  return { objective, point: theta, theta, spec, data, thetaCoordinates: true, dispose: () => (objective as { dispose?: () => void }).dispose?.() };
}

/** An eta view over a fresh inner objective; `theta` is Phi(eta). */
async function etaView(make: ObjectiveFactory, base: AuditBase, phi: ConstructorParameters<typeof ReparametrizedObjective>[1], eta: Float64Array): Promise<AuditView> {
  const inner = await make(base.spec, base.data);
  const objective = new ReparametrizedObjective(inner, phi, { ownsInner: true });
  return {
    objective: objective as Objective<unknown>,
    point: eta,
    theta: phi.phi(eta),
    spec: base.spec,
    data: base.data,
    thetaCoordinates: false,
    dispose: () => objective.dispose(),
  };
}

/**
 * Sets up transform `name` on `base` with strength `factor` (the a of AUDIT_TRANSFORMS; default 4).
 * Throws InputError where the transform does not apply (e.g. T_alpha on a one-layer model).
 */
export async function setupTransform(name: AuditTransformName, base: AuditBase, make: ObjectiveFactory, factor: number, seed: number): Promise<AuditTransformSetup> {
  const { spec, theta, data } = base;
  const K = spec.layers.length;
  const description = AUDIT_TRANSFORMS[name];
  switch (name) {
    case "alpha": {
      if (K < 2) throw new InputError("alpha: T_alpha needs at least two layers (the product of the alphas is 1)");
      const alphas = spec.layers.map((_, k) => (k === 0 ? factor : k === K - 1 ? 1 / factor : 1));
      return { name, family: "function-preserving", description, parameters: { alphas }, before: null, after: await plainView(make, spec, homogeneousAlphaScale(spec, theta, alphas), data) };
    }
    case "neuron": {
      if (K < 2) throw new InputError("neuron: neuron-wise rescaling needs a hidden layer");
      const factors = randomNeuronFactors(layerUnits(spec.layers[0]), seed);
      return { name, family: "function-preserving", description, parameters: { layer: 0, factors }, before: null, after: await plainView(make, spec, neuronScale(spec, theta, 0, factors), data) };
    }
    case "weight-norm": {
      const wn = new WeightNormalization(spec);
      const eta = wn.inverse(theta);
      const before = await etaView(make, base, wn, eta);
      try {
        const after = await etaView(make, base, wn, wn.scaleDirections(eta, factor));
        return { name, family: "reparametrization", description, parameters: { alpha: factor }, before, after };
      } catch (e) {
        before.dispose();
        throw e;
      }
    }
    case "radial": {
      // Centred at theta: inside the inner ball Phi is the linear map (rHat/rho)(eta - c) + c, so
      // at the centre J = (rHat/rho) I and the Hessian in eta is (rHat/rho)^2 H (+ the gradient term).
      let norm = 0;
      for (const t of theta) norm += t * t;
      const delta = Math.max(1e-3, 0.1 * Math.sqrt(norm));
      const rHat = factor >= 1 ? delta / (2 * factor) : delta / 2;
      const rho = factor >= 1 ? delta / 2 : (delta * factor) / 2;
      const radial = new RadialTransformation({ centre: theta, delta, rHat, rho });
      const eta = radial.inverse(theta);
      return { name, family: "reparametrization", description, parameters: { delta, rHat, rho }, before: null, after: await etaView(make, base, radial, eta) };
    }
    case "standardize":
    case "pca":
    case "zca": {
      const map = fitAffineInputMap(data.x, data.features, name as AffineInputKind);
      const folded = foldInputMap(spec, theta, map);
      const newData = transformDataset(map, data);
      return { name, family: "input", description, parameters: { kind: name }, before: null, after: await plainView(make, folded.spec, folded.theta, newData) };
    }
  }
}
