/**
 * The constructions from the proofs of Dinh et al. 2017 ("Sharp Minima Can Generalize For Deep
 * Nets"), as operations on a model and an objective. Each returns the new parameters T_alpha(theta)
 * (the same function: every result carries the function check, max |f(theta') - f(theta)| over the
 * objective's data), the alphas, and what was measured to certify it:
 *   - sharpen (Theorem 4): top Hessian eigenvalue >= M, verified by Lanczos (./sharpen.ts);
 *   - sharpenCount (Theorem 5): at least r - |S| eigenvalues above M, verified (./sharpen.ts);
 *   - epsilonSharpnessConstruction (section 4.3, and the thesis' random-subspace argument): an
 *     ε-ball that reaches a constant function, with the perturbation (./epsilonConstruction.ts);
 *   - flatten: as flat as T_alpha allows, with the invariant lower bound it cannot beat (./flatten.ts).
 * Parameters are plain host vectors (Float64Array, the flat layout of src/model.ts); the objective
 * may be the GPU engine or the float64 reference. Activations must be positively homogeneous.
 */
export { ConstructionError, type FunctionCheck, type LanczosSettings, functionCheck, denseHessian } from "./constructionSupport.ts";
export { sharpen, type SharpenOptions, type SharpenResult, sharpenCount, type SharpenCountOptions, type SharpenCountResult } from "./sharpen.ts";
export {
  epsilonSharpnessConstruction,
  type EpsilonConstructionOptions,
  type EpsilonConstructionResult,
  type EpsilonSubspaceResult,
} from "./epsilonConstruction.ts";
export { flatten, type FlattenMeasure, type FlattenOptions, type FlattenResult, logVolumeFactor, volumeWeights } from "./flatten.ts";
