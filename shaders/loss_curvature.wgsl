// loss_curvature.wgsl: Rdelta = (d^2 L / dz^2) · Rz per sample, for `batch` tangent directions.
// LOSS (override): 0 softmax cross-entropy, 1 mean squared error, 2 binary logistic.
//   ce:       Rdelta = (p ⊙ Rz - p (p · Rz)) * scale, p = softmax(z)   (full softmax Hessian)
//   mse:      Rdelta = 2 Rz * scale
//   logistic: Rdelta = sigmoid(z) (1 - sigmoid(z)) Rz * scale
// Bindings: 0 Z (read, [rows, C]), 1 RZ (read, [batch][rows, C]), 2 RDelta (read_write, same
//           layout as RZ), 3 params (uniform). One (sample, direction) per thread.
// CPU twin: lossCurvature (src/reference/losses.ts).

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
    var m = Z[zBase];
    for (var j = 1u; j < c; j++) {
      m = max(m, Z[zBase + j]);
    }
    var total = 0.0;
    for (var j = 0u; j < c; j++) {
      total += exp(Z[zBase + j] - m);
    }
    var pr = 0.0;
    for (var j = 0u; j < c; j++) {
      pr += exp(Z[zBase + j] - m) / total * RZ[rBase + j];
    }
    for (var j = 0u; j < c; j++) {
      let prob = exp(Z[zBase + j] - m) / total;
      RDelta[rBase + j] = prob * (RZ[rBase + j] - pr) * p.scale;
    }
  } else if (LOSS == 1u) {
    for (var j = 0u; j < c; j++) {
      RDelta[rBase + j] = 2.0 * RZ[rBase + j] * p.scale;
    }
  } else {
    let e = exp(-abs(Z[s]));
    let q = select(e / (1.0 + e), 1.0 / (1.0 + e), Z[s] >= 0.0);
    RDelta[rBase] = q * (1.0 - q) * RZ[rBase] * p.scale;
  }
}
