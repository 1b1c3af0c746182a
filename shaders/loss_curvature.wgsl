// loss_curvature.wgsl: Rdelta = (d^2 L / dz^2) · Rz per sample, for `batch` tangent directions.
// LOSS (override): 0 softmax cross-entropy, 1 mean squared error, 2 binary logistic.
//   ce:       Rdelta = (p ⊙ Rz - p (p · Rz)) * scale, p = softmax(z)   (full softmax Hessian)
//   mse:      Rdelta = 2 Rz * scale
//   logistic: Rdelta = sigmoid(z) (1 - sigmoid(z)) Rz * scale
// Bindings: 0 Z (read, [rows, C]), 1 RZ (read, [batch][rows, C]), 2 RDelta (read_write, same
//           layout as RZ), 3 params (uniform). One (sample, direction) per thread.
// sigmoid and the max-shifted softmax come from include/loss_common.wgsl, the same code that
// gives loss_gradient.wgsl its softmax and sigmoid.
// CPU twin: lossCurvature (src/reference/losses.ts).

// #include "loss_common.wgsl"

struct Params {
  rows: u32, classes: u32, batch: u32, scale: f32,
}

override LOSS: u32 = 0u;

@group(0) @binding(0) var<storage, read> Z: array<f32>;
@group(0) @binding(1) var<storage, read> RZ: array<f32>;
@group(0) @binding(2) var<storage, read_write> RDelta: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let s = gid.x;
  let b = gid.y;
  if (s >= p.rows || b >= p.batch) {
    return;
  }
  let c = p.classes;
  let zBase = s * c;
  let rBase = (b * p.rows + s) * c;
  if (LOSS == 0u) {
    // Softmax Hessian-vector product: (diag(p) - p p^T) Rz = p ⊙ (Rz - p · Rz).
    let sm = softmaxOf(zBase, c);
    var pr = 0.0;
    for (var j = 0u; j < c; j++) {
      pr += softmaxAt(sm, zBase + j) * RZ[rBase + j];
    }
    for (var j = 0u; j < c; j++) {
      RDelta[rBase + j] = softmaxAt(sm, zBase + j) * (RZ[rBase + j] - pr) * p.scale;
    }
  } else if (LOSS == 1u) {
    for (var j = 0u; j < c; j++) {
      RDelta[rBase + j] = 2.0 * RZ[rBase + j] * p.scale;
    }
  } else {
    let q = sigmoid(Z[s]);
    RDelta[rBase] = q * (1.0 - q) * RZ[rBase] * p.scale;
  }
}
