/**
 * The WebAssembly kernels of the CPU engine, generated as bytes (src/wasm/assemble.ts) at build
 * time: a blocked single-precision GEMM with packed panels in the manner of BLIS / GotoBLAS, and
 * the element-wise passes that dominate otherwise (the rectifier and its derivative, im2col and
 * its transpose for convolutions, column sums for bias gradients). The GEMM adds a bias row and
 * applies the rectifier or its derivative as it stores C (its epilogues), so the layers of an MLP
 * need no separate passes over their outputs.
 *
 *   gemm(M, N, K, A, rsA, csA, B, rsB, csB, C, ldc, accumulate, work, Z, mode, slope, bias)
 *     C[i, j] (+)= sum_k A[i*rsA + k*csA] · B[k*rsB + j*csB]       (f32, addresses in bytes)
 *     (+ bias[j] where bias is not 0 and C is overwritten)
 *     then the epilogue `mode`, applied as the last block of the sum is stored, Z laid out as C
 *     (same leading dimension): 0 none; 1 C = Z > 0 ? v : slope·v (phi' of a rectifier applied to
 *     the product v); 2 C = v and Z = v > 0 ? v : slope·v (the activation).
 *
 * Any transposition of A and B is a choice of strides, so the forward pass (a·W^T), the data
 * gradient (d·W) and the weight gradient (d^T·a) of a linear layer, and the im2col products of a
 * convolution, all run through this one routine. C is row-major with leading dimension ldc.
 * Loops, outermost first: columns in blocks of NC, the sum in blocks of KC (B's block packed into
 * NR-wide strips, k-major), rows in blocks of MC (A's block packed into MR-tall strips), then the
 * MR x NR micro-kernel over every strip pair: MR·NR/4 f32x4 accumulators in locals, one splat of
 * A and NR/4 loads of B per k, four k per loop iteration. Packing moves four k at a time through
 * 4x4 shuffles where the source runs along k. Tiles at the right and bottom edges are computed into
 * a scratch tile and copied. The order of every sum is fixed by K alone (k ascending, in KC
 * blocks), so the result does not depend on how callers split M or N among threads.
 *
 * `relaxed` uses f32x4.relaxed_madd (one fused multiply-add where the hardware has FMA) instead of
 * f32x4.mul + f32x4.add; `shared` declares the imported memory shared (threads). Four variants are
 * embedded; the runtime takes the best one the engine validates.
 */
import { assembleModule, F32, FunctionBuilder, I32, type Local, V128 } from "./assemble.ts";

/** Blocking of the GEMM (elements). */
export const GEMM_BLOCKING = { MR: 6, NR: 8, KC: 256, MC: 96, NC: 2048 } as const;

/** Bytes of the per-thread work area gemm needs (packed A block, packed B block, edge tile). */
export function gemmWorkBytes(): number {
  const { MR, NR, KC, MC, NC } = GEMM_BLOCKING;
  return 4 * (MC * KC + KC * NC + MR * NR);
}

const KERNEL = 0;
/** Steps of the micro-kernel's sum per loop iteration. */
const UNROLL = 4;
const PACK_A = 1;
const PACK_B = 2;

function microKernel(relaxed: boolean): FunctionBuilder {
  const { MR, NR } = GEMM_BLOCKING;
  const NV = NR / 4;
  const f = new FunctionBuilder("kernel", [I32, I32, I32, I32, I32, I32, I32, I32, F32, I32]);
  // acc: 0 C = product, 1 C += product, 2 C = product + the row vector at bias.
  const [ap, bp, kc, c, ldc4, acc, z, mode, slope, bias] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
  const sums: Local[][] = Array.from({ length: MR }, () => Array.from({ length: NV }, () => f.local(V128)));
  const b: Local[] = Array.from({ length: NV }, () => f.local(V128));
  const a = f.local(V128);
  const k = f.local(I32);
  const row = f.local(I32);
  const kEnd = f.local(I32);
  for (const rs of sums) for (const s of rs) f.v128Zero().set(s);
  // One step of the sum (u-th of an unrolled group: constant offsets from ap and bp).
  const step = (u: number) => {
    for (let v = 0; v < NV; v++) f.get(bp).v128Load(16 * v + 4 * NR * u).set(b[v]);
    for (let r = 0; r < MR; r++) {
      f.get(ap).load32Splat(4 * r + 4 * MR * u).set(a);
      for (let v = 0; v < NV; v++) {
        if (relaxed) f.get(a).get(b[v]).get(sums[r][v]).f32x4RelaxedMadd().set(sums[r][v]);
        else f.get(sums[r][v]).get(a).get(b[v]).f32x4Mul().f32x4Add().set(sums[r][v]);
      }
    }
  };
  const advance = (u: number) => {
    f.get(ap).i32(4 * MR * u).add().set(ap);
    f.get(bp).i32(4 * NR * u).add().set(bp);
  };
  f.get(kc).i32(-UNROLL).and().set(kEnd);
  f.forRange(k, () => f.i32(0), () => f.get(kEnd), UNROLL, () => {
    for (let u = 0; u < UNROLL; u++) step(u);
    advance(UNROLL);
  });
  f.forRange(k, () => f.get(kEnd), () => f.get(kc), 1, () => {
    step(0);
    advance(1);
  });
  const zrow = f.local(I32);
  const sv = f.local(V128);
  const zero = f.local(V128);
  // The epilogue (see EPILOGUE): 0 stores the tile; 1 stores it masked by z > 0 (slope below);
  // 2 stores it and its rectified copy at z.
  const store = (accumulate: number, epi: number) => {
    f.get(c).set(row);
    if (epi) {
      f.get(z).set(zrow);
      f.get(slope).f32x4Splat().set(sv);
      f.v128Zero().set(zero);
    }
    const rectified = (val: Local, cond: () => void) => {
      f.get(val).get(val).get(sv).f32x4Mul();
      cond();
      f.v128Bitselect();
    };
    for (let r = 0; r < MR; r++) {
      for (let v = 0; v < NV; v++) {
        const val = sums[r][v];
        if (accumulate === 1) f.get(row).v128Load(16 * v).get(val).f32x4Add().set(val);
        else if (accumulate === 2) f.get(bias).v128Load(16 * v).get(val).f32x4Add().set(val);
        f.get(row);
        if (epi === 1) rectified(val, () => f.get(zrow).v128Load(16 * v).get(zero).f32x4Gt());
        else f.get(val);
        f.v128Store(16 * v);
        if (epi === 2) {
          f.get(zrow);
          rectified(val, () => f.get(val).get(zero).f32x4Gt());
          f.v128Store(16 * v);
        }
      }
      if (r + 1 < MR) {
        f.get(row).get(ldc4).add().set(row);
        if (epi) f.get(zrow).get(ldc4).add().set(zrow);
      }
    }
  };
  const byMode = (accumulate: number) => {
    f.get(mode).i32(0).eq().ifThen(() => store(accumulate, 0), () => {
      f.get(mode).i32(1).eq().ifThen(() => store(accumulate, 1), () => store(accumulate, 2));
    });
  };
  f.get(acc).i32(1).eq().ifThen(() => byMode(1), () => {
    f.get(acc).ifThen(() => byMode(2), () => byMode(0));
  });
  return f;
}

/** Packs an mc x kc block of A (byte strides rs4, cs4) into MR-row strips, k-major, zero-padded. */
function packA(): FunctionBuilder {
  const { MR } = GEMM_BLOCKING;
  const f = new FunctionBuilder("packA", [I32, I32, I32, I32, I32, I32]);
  const [src, rs4, cs4, mc, kc, dst] = [0, 1, 2, 3, 4, 5];
  const ir = f.local(I32);
  const rows = f.local(I32);
  const k = f.local(I32);
  const rp: Local[] = Array.from({ length: MR }, () => f.local(I32));
  const kc4 = f.local(I32);
  const rv: Local[] = Array.from({ length: MR }, () => f.local(V128));
  const t: Local[] = Array.from({ length: 6 }, () => f.local(V128));
  if (MR !== 6) throw new Error("packA's vector paths assume MR = 6");
  f.get(kc).i32(-4).and().set(kc4);
  f.forRange(ir, () => f.i32(0), () => f.get(mc), MR, () => {
    f.get(mc).get(ir).sub().set(rows);
    for (let r = 0; r < MR; r++) f.get(src).get(ir).i32(r).add().get(rs4).mul().add().set(rp[r]);
    const step = () => {
      for (let r = 0; r < MR; r++) f.get(rp[r]).get(cs4).add().set(rp[r]);
      f.get(dst).i32(4 * MR).add().set(dst);
    };
    f.get(rows).i32(MR).geS().ifThen(() => {
      // Full strip. Rows contiguous along k (cs 4 bytes): four k at a time, 4x4 transposes by
      // shuffles; a transposed A (rs 4 bytes): each k's MR values are contiguous.
      f.get(cs4).i32(4).eq().ifThen(() => {
        f.forRange(k, () => f.i32(0), () => f.get(kc4), 4, () => {
          for (let r = 0; r < MR; r++) f.get(rp[r]).v128Load().set(rv[r]);
          f.get(rv[0]).get(rv[1]).shuffle32([0, 4, 1, 5]).set(t[0]);
          f.get(rv[0]).get(rv[1]).shuffle32([2, 6, 3, 7]).set(t[1]);
          f.get(rv[2]).get(rv[3]).shuffle32([0, 4, 1, 5]).set(t[2]);
          f.get(rv[2]).get(rv[3]).shuffle32([2, 6, 3, 7]).set(t[3]);
          f.get(rv[4]).get(rv[5]).shuffle32([0, 4, 1, 5]).set(t[4]);
          f.get(rv[4]).get(rv[5]).shuffle32([2, 6, 3, 7]).set(t[5]);
          for (let q = 0; q < 4; q++) {
            const lo = q < 2 ? t[0] : t[1];
            const hi = q < 2 ? t[2] : t[3];
            f.get(dst).get(lo).get(hi).shuffle32(q % 2 === 0 ? [0, 1, 4, 5] : [2, 3, 6, 7]).v128Store(4 * MR * q);
            f.get(dst).get(q < 2 ? t[4] : t[5]).store64Lane(q % 2, 4 * MR * q + 16);
          }
          for (let r = 0; r < MR; r++) f.get(rp[r]).i32(16).add().set(rp[r]);
          f.get(dst).i32(16 * MR).add().set(dst);
        });
        f.forRange(k, () => f.get(kc4), () => f.get(kc), 1, () => {
          for (let r = 0; r < MR; r++) f.get(dst).get(rp[r]).f32Load().f32Store(4 * r);
          step();
        });
      }, () => {
        f.get(rs4).i32(4).eq().ifThen(() => {
          f.forRange(k, () => f.i32(0), () => f.get(kc), 1, () => {
            f.get(dst).get(rp[0]).v128Load().v128Store();
            f.get(dst).get(rp[0]).v128Load(16).store64Lane(0, 16);
            step();
          });
        }, () => {
          f.forRange(k, () => f.i32(0), () => f.get(kc), 1, () => {
            for (let r = 0; r < MR; r++) f.get(dst).get(rp[r]).f32Load().f32Store(4 * r);
            step();
          });
        });
      });
    }, () => {
      f.forRange(k, () => f.i32(0), () => f.get(kc), 1, () => {
        for (let r = 0; r < MR; r++) {
          f.get(dst).f32(0).f32Store(4 * r);
          if (r > 0) f.get(rows).i32(r).gtS().ifThen(() => f.get(dst).get(rp[r]).f32Load().f32Store(4 * r));
          else f.get(dst).get(rp[r]).f32Load().f32Store(0);
        }
        step();
      });
    });
  });
  return f;
}

/** Packs a kc x nc block of B (byte strides rs4, cs4) into NR-column strips, k-major, zero-padded. */
function packB(): FunctionBuilder {
  const { NR } = GEMM_BLOCKING;
  const f = new FunctionBuilder("packB", [I32, I32, I32, I32, I32, I32]);
  const [src, rs4, cs4, kc, nc, dst] = [0, 1, 2, 3, 4, 5];
  const jr = f.local(I32);
  const cols = f.local(I32);
  const k = f.local(I32);
  const p = f.local(I32);
  const kc4 = f.local(I32);
  const cp: Local[] = Array.from({ length: NR }, () => f.local(I32));
  const cv: Local[] = Array.from({ length: 4 }, () => f.local(V128));
  const t: Local[] = Array.from({ length: 4 }, () => f.local(V128));
  if (NR % 4 !== 0) throw new Error("packB's vector paths assume NR a multiple of 4");
  f.get(kc).i32(-4).and().set(kc4);
  f.forRange(jr, () => f.i32(0), () => f.get(nc), NR, () => {
    f.get(nc).get(jr).sub().set(cols);
    f.get(src).get(jr).get(cs4).mul().add().set(p);
    const step = () => {
      f.get(p).get(rs4).add().set(p);
      f.get(dst).i32(4 * NR).add().set(dst);
    };
    f.get(cols).i32(NR).geS().get(cs4).i32(4).eq().and().ifThen(() => {
      // Full strip of contiguous rows: vector copies.
      f.forRange(k, () => f.i32(0), () => f.get(kc), 1, () => {
        for (let v = 0; v < NR / 4; v++) f.get(dst).get(p).v128Load(16 * v).v128Store(16 * v);
        step();
      });
    }, () => {
      f.get(cols).i32(NR).geS().get(rs4).i32(4).eq().and().ifThen(() => {
        // Full strip of a transposed B (each column contiguous along k): four k at a time, 4x4
        // transposes by shuffles, then the rest one k at a time.
        for (let c = 0; c < NR; c++) f.get(p).get(cs4).i32(c).mul().add().set(cp[c]);
        f.forRange(k, () => f.i32(0), () => f.get(kc4), 4, () => {
          for (let g = 0; g < NR / 4; g++) {
            for (let c = 0; c < 4; c++) f.get(cp[4 * g + c]).v128Load().set(cv[c]);
            f.get(cv[0]).get(cv[1]).shuffle32([0, 4, 1, 5]).set(t[0]);
            f.get(cv[0]).get(cv[1]).shuffle32([2, 6, 3, 7]).set(t[1]);
            f.get(cv[2]).get(cv[3]).shuffle32([0, 4, 1, 5]).set(t[2]);
            f.get(cv[2]).get(cv[3]).shuffle32([2, 6, 3, 7]).set(t[3]);
            for (let q = 0; q < 4; q++) {
              f.get(dst).get(q < 2 ? t[0] : t[1]).get(q < 2 ? t[2] : t[3]).shuffle32(q % 2 === 0 ? [0, 1, 4, 5] : [2, 3, 6, 7]).v128Store(4 * NR * q + 16 * g);
            }
          }
          for (let c = 0; c < NR; c++) f.get(cp[c]).i32(16).add().set(cp[c]);
          f.get(dst).i32(16 * NR).add().set(dst);
        });
        f.forRange(k, () => f.get(kc4), () => f.get(kc), 1, () => {
          for (let c = 0; c < NR; c++) {
            f.get(dst).get(cp[c]).f32Load().f32Store(4 * c);
            f.get(cp[c]).i32(4).add().set(cp[c]);
          }
          f.get(dst).i32(4 * NR).add().set(dst);
        });
      }, () => {
      f.forRange(k, () => f.i32(0), () => f.get(kc), 1, () => {
        for (let c = 0; c < NR; c++) {
          f.get(dst).f32(0).f32Store(4 * c);
          const load = () => f.get(dst).get(p).get(cs4).i32(c).mul().add().f32Load().f32Store(4 * c);
          if (c > 0) f.get(cols).i32(c).gtS().ifThen(load);
          else load();
        }
        step();
      });
      });
    });
  });
  return f;
}

function gemm(): FunctionBuilder {
  const { MR, NR, KC, MC, NC } = GEMM_BLOCKING;
  const f = new FunctionBuilder("gemm", [I32, I32, I32, I32, I32, I32, I32, I32, I32, I32, I32, I32, I32, I32, I32, F32, I32]);
  const [M, N, K, A, rsA, csA, B, rsB, csB, C, ldc, accumulate, work, Z, mode, slope, bias] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16];
  const L = () => f.local(I32);
  const [jc, nc, pc, kc, ic, mc, jr, nr, ir, mr, cp, accFlag, pA, pB, tile, r, c, ldc4, kmode, zp, at, zat, bp] = Array.from({ length: 23 }, L);
  const v = f.local(F32);
  // Strides to bytes.
  for (const s of [rsA, csA, rsB, csB]) f.get(s).i32(2).shl().set(s);
  f.get(ldc).i32(2).shl().set(ldc4);
  f.get(work).set(pA);
  f.get(work).i32(4 * MC * KC).add().set(pB);
  f.get(pB).i32(4 * KC * NC).add().set(tile);
  f.forRange(jc, () => f.i32(0), () => f.get(N), NC, () => {
    f.get(N).get(jc).sub().set(nc);
    f.get(nc).i32(NC).gtS().ifThen(() => f.i32(NC).set(nc));
    f.forRange(pc, () => f.i32(0), () => f.get(K), KC, () => {
      f.get(K).get(pc).sub().set(kc);
      f.get(kc).i32(KC).gtS().ifThen(() => f.i32(KC).set(kc));
      f.get(B).get(pc).get(rsB).mul().add().get(jc).get(csB).mul().add().get(rsB).get(csB).get(kc).get(nc).get(pB).call(PACK_B);
      // Accumulate into C unless this is the first block of the sum and the caller asked to overwrite.
      // (The bias, where given, is added by the first block when C is overwritten: accFlag 2.)
      f.i32(1).i32(2).i32(0).get(bias).select().get(accumulate).get(pc).i32(0).ne().add().select().set(accFlag);
      // The epilogue runs with the last block of the sum only.
      f.get(mode).i32(0).get(pc).get(kc).add().get(K).geS().select().set(kmode);
      f.forRange(ic, () => f.i32(0), () => f.get(M), MC, () => {
        f.get(M).get(ic).sub().set(mc);
        f.get(mc).i32(MC).gtS().ifThen(() => f.i32(MC).set(mc));
        f.get(A).get(ic).get(rsA).mul().add().get(pc).get(csA).mul().add().get(rsA).get(csA).get(mc).get(kc).get(pA).call(PACK_A);
        f.forRange(jr, () => f.i32(0), () => f.get(nc), NR, () => {
          f.get(nc).get(jr).sub().set(nr);
          f.get(nr).i32(NR).gtS().ifThen(() => f.i32(NR).set(nr));
          f.forRange(ir, () => f.i32(0), () => f.get(mc), MR, () => {
            f.get(mc).get(ir).sub().set(mr);
            f.get(mr).i32(MR).gtS().ifThen(() => f.i32(MR).set(mr));
            f.get(C).get(ic).get(ir).add().get(ldc4).mul().add().get(jc).get(jr).add().i32(2).shl().add().set(cp);
            f.get(Z).get(ic).get(ir).add().get(ldc4).mul().add().get(jc).get(jr).add().i32(2).shl().add().set(zp);
            f.get(bias).get(jc).get(jr).add().i32(2).shl().add().set(bp);
            const apan = () => f.get(pA).get(ir).get(kc).mul().i32(2).shl().add();
            const bpan = () => f.get(pB).get(jr).get(kc).mul().i32(2).shl().add();
            f.get(mr).i32(MR).geS().get(nr).i32(NR).geS().and().ifThen(() => {
              apan();
              bpan();
              f.get(kc).get(cp).get(ldc4).get(accFlag).get(zp).get(kmode).get(slope).get(bp).call(KERNEL);
            }, () => {
              apan();
              bpan();
              f.get(kc).get(tile).i32(4 * NR).i32(0).i32(0).i32(0).get(slope).i32(0).call(KERNEL);
              f.forRange(r, () => f.i32(0), () => f.get(mr), 1, () => {
                f.forRange(c, () => f.i32(0), () => f.get(nr), 1, () => {
                  // v = (accFlag 1: C[r, c], 2: bias[c], else 0) + tile[r, c]
                  f.get(cp).get(r).get(ldc4).mul().add().get(c).i32(2).shl().add().set(at);
                  f.get(zp).get(r).get(ldc4).mul().add().get(c).i32(2).shl().add().set(zat);
                  f.get(tile).get(r).i32(NR).mul().get(c).add().i32(2).shl().add().f32Load();
                  f.get(accFlag).i32(1).eq().ifThenValue(F32, () => f.get(at).f32Load(), () => {
                    f.get(accFlag).ifThenValue(F32, () => f.get(bp).get(c).i32(2).shl().add().f32Load(), () => f.f32(0));
                  });
                  f.f32Add().set(v);
                  // The epilogue, as the kernel's: 1: C = z > 0 ? v : slope·v; 2: C = v, z = v > 0 ? v : slope·v.
                  f.get(kmode).i32(1).eq().ifThen(() => {
                    f.get(at).get(v).get(v).get(slope).f32Mul().get(zat).f32Load().f32(0).f32Gt().select().f32Store();
                  }, () => {
                    f.get(at).get(v).f32Store();
                    f.get(kmode).i32(2).eq().ifThen(() => {
                      f.get(zat).get(v).get(v).get(slope).f32Mul().get(v).f32(0).f32Gt().select().f32Store();
                    });
                  });
                });
              });
            });
          });
        });
      });
    });
  });
  return f;
}

/**
 * rectify(dst, r, z, n, slope): dst[i] = z[i] > 0 ? r[i] : slope·r[i] over n floats (f32x4
 * compare and bitselect, branch-free). The activation is rectify(a, z, z); phi'(z) ⊙ r in place is
 * rectify(r, r, z).
 */
function rectify(): FunctionBuilder {
  const f = new FunctionBuilder("rectify", [I32, I32, I32, I32, F32]);
  const [dst, r, z, n, slope] = [0, 1, 2, 3, 4];
  const i = f.local(I32);
  const end4 = f.local(I32);
  const end = f.local(I32);
  const sv = f.local(V128);
  const rv = f.local(V128);
  const zero = f.local(V128);
  const rs = f.local(F32);
  f.get(slope).f32x4Splat().set(sv);
  f.v128Zero().set(zero);
  f.get(n).i32(-4).and().i32(2).shl().set(end4);
  f.get(n).i32(2).shl().set(end);
  f.forRange(i, () => f.i32(0), () => f.get(end4), 16, () => {
    f.get(r).get(i).add().v128Load().set(rv);
    f.get(dst).get(i).add();
    f.get(rv).get(rv).get(sv).f32x4Mul();
    f.get(z).get(i).add().v128Load().get(zero).f32x4Gt();
    f.v128Bitselect().v128Store();
  });
  f.forRange(i, () => f.get(end4), () => f.get(end), 4, () => {
    f.get(r).get(i).add().f32Load().set(rs);
    f.get(dst).get(i).add();
    f.get(rs).get(rs).get(slope).f32Mul();
    f.get(z).get(i).add().f32Load().f32(0).f32Gt();
    f.select().f32Store();
  });
  return f;
}

/**
 * im2col(x, cols, R, P, T, Cin, Cg, groups, taps, inSize) and its transpose col2im (same
 * arguments, cols read and x written): cols[(s, p)][g][t][c] = x[s][taps[p, t]][g·Cg + c], zero
 * where the tap reads padding (taps[p, t] < 0); x channels-last, addresses in bytes.
 */
function im2col(transpose: boolean): FunctionBuilder {
  const f = new FunctionBuilder(transpose ? "col2im" : "im2col", [I32, I32, I32, I32, I32, I32, I32, I32, I32, I32]);
  const [x, cols, R, P, T, Cin, Cg, groups, taps, inSize] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
  const L = () => f.local(I32);
  const [s, p, g, t, q, cell, xs, src, dst, cg4, tp] = Array.from({ length: 11 }, L);
  f.get(Cg).i32(2).shl().set(cg4);
  f.get(inSize).i32(2).shl().set(inSize);
  f.get(Cin).i32(2).shl().set(Cin);
  if (transpose) {
    // x = 0, then accumulate.
    f.get(x).i32(0).get(R).get(inSize).mul().memoryFill();
  }
  f.get(cols).set(dst);
  f.forRange(s, () => f.i32(0), () => f.get(R), 1, () => {
    f.get(x).get(s).get(inSize).mul().add().set(xs);
    f.get(taps).set(tp);
    f.forRange(p, () => f.i32(0), () => f.get(P), 1, () => {
      f.forRange(g, () => f.i32(0), () => f.get(groups), 1, () => {
        f.forRange(t, () => f.i32(0), () => f.get(T), 1, () => {
          f.get(tp).get(t).i32(2).shl().add().i32Load().set(cell);
          // src = xs + cell·Cin + g·Cg (bytes)
          f.get(xs).get(cell).get(Cin).mul().add().get(g).get(cg4).mul().add().set(src);
          if (!transpose) {
            f.get(cell).i32(0).ltS().ifThen(() => {
              f.get(dst).i32(0).get(cg4).memoryFill();
            }, () => {
              f.get(Cg).i32(1).eq().ifThen(() => {
                f.get(dst).get(src).f32Load().f32Store();
              }, () => {
                f.get(dst).get(src).get(cg4).memoryCopy();
              });
            });
          } else {
            f.get(cell).i32(0).geS().ifThen(() => {
              f.forRange(q, () => f.i32(0), () => f.get(cg4), 4, () => {
                f.get(src).get(q).add();
                f.get(src).get(q).add().f32Load();
                f.get(dst).get(q).add().f32Load();
                f.f32Add().f32Store();
              });
            });
          }
          f.get(dst).get(cg4).add().set(dst);
        });
      });
      f.get(tp).get(T).i32(2).shl().add().set(tp);
    });
  });
  return f;
}

/**
 * colSums(dst, src, rows, n, scratch): dst[j] += sum over r of src[r·n + j] (f32 rows), the sums
 * taken in f64 in row order in scratch (n doubles), then added to dst once (bias gradients).
 */
function colSums(): FunctionBuilder {
  const f = new FunctionBuilder("colSums", [I32, I32, I32, I32, I32]);
  const [dst, src, rows, n, scratch] = [0, 1, 2, 3, 4];
  const r = f.local(I32);
  const j = f.local(I32);
  const pairs = f.local(I32);
  const end = f.local(I32);
  f.get(scratch).i32(0).get(n).i32(3).shl().memoryFill();
  f.get(n).i32(-2).and().i32(2).shl().set(pairs);
  f.get(n).i32(2).shl().set(end);
  f.forRange(r, () => f.i32(0), () => f.get(rows), 1, () => {
    // j runs over the row in bytes of f32; the f64 accumulator sits at scratch + 2j.
    f.forRange(j, () => f.i32(0), () => f.get(pairs), 8, () => {
      f.get(scratch).get(j).i32(1).shl().add();
      f.get(scratch).get(j).i32(1).shl().add().v128Load();
      f.get(src).get(j).add().load64Zero().f64x2PromoteLowF32x4();
      f.f64x2Add().v128Store();
    });
    f.forRange(j, () => f.get(pairs), () => f.get(end), 4, () => {
      f.get(scratch).get(j).i32(1).shl().add();
      f.get(scratch).get(j).i32(1).shl().add().f64Load();
      f.get(src).get(j).add().f32Load().f64PromoteF32();
      f.f64Add().f64Store();
    });
    f.get(src).get(end).add().set(src);
  });
  f.forRange(j, () => f.i32(0), () => f.get(end), 4, () => {
    f.get(dst).get(j).add();
    f.get(dst).get(j).add().f32Load().f64PromoteF32();
    f.get(scratch).get(j).i32(1).shl().add().f64Load();
    f.f64Add().f32DemoteF64().f32Store();
  });
  return f;
}

/** The kernel module's bytes. */
export function kernelModule(options: { relaxed: boolean; shared: boolean }): Uint8Array {
  // Function indices follow this order: KERNEL, PACK_A, PACK_B.
  return assembleModule([microKernel(options.relaxed), packA(), packB(), gemm(), rectify(), im2col(false), im2col(true), colSums()], { shared: options.shared, maxPages: 65536 });
}

/** The embedded variants, by name. */
export const KERNEL_VARIANTS = {
  relaxedShared: { relaxed: true, shared: true },
  relaxed: { relaxed: true, shared: false },
  simdShared: { relaxed: false, shared: true },
  simd: { relaxed: false, shared: false },
} as const;
