// The README's first library example, run as it is by test/consumer.test.ts from a project that
// installed the packed package, in Node and in Deno (each on the backend "auto" picks).
//   node top-eigenvalue.mjs net.safetensors x.npy y.npy        deno run -A top-eigenvalue.mjs ...
import { loadDatasetFiles, loadModelFile, measureMetrics, openBackend, withVectors } from "flatness";

const [modelPath, dataPath, labelsPath] = globalThis.Deno?.args ?? process.argv.slice(2);
const model = await loadModelFile(modelPath); // safetensors, ONNX or JSON
const data = await loadDatasetFiles(dataPath, labelsPath, "ce", model);
const backend = await openBackend(); // "auto": WebGPU on a hardware GPU, else WebAssembly (SIMD), else float64
try {
  const objective = await backend.objective(model.model.spec, data, "ce");
  const theta = model.model.theta;
  const report = await withVectors(objective, [theta], ([point]) =>
    measureMetrics(objective, point, theta, data, { metrics: ["spectrum"], topK: 2, seed: 0, backend }));
  objective.dispose();
  console.log(JSON.stringify({ backend: backend.name, device: backend.describe(), loss: report.loss, topEigenvalues: report.topEigenvalues }));
} finally {
  await backend.close();
}
