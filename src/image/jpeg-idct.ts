// Dequantization + 8x8 inverse DCT (ITU-T T.81 A.3.3) computed as libjpeg-turbo's default "islow"
// integer method (jidctint.c, the Loeffler-Ligtenberg-Moschytz factorisation with 12 multiplies):
// 13-bit fixed-point constants, 2 extra bits of precision kept between the column and row passes,
// rounding right shifts (DESCALE), then the level shift (+128, T.81 A.3.1) and clamping to 0..255.
//
// Out-of-range handling follows the x86-64 SIMD version of islow, which is what Debian's cv2 runs:
// dequantized coefficients are 16-bit products, the column-pass results are saturated to 16 bits
// and the outputs are clamped. libjpeg's portable C code differs only for garbage coefficients
// (its range-limit table wraps values beyond -512..511 instead of clamping); for every coefficient
// an encoder produces from 8-bit samples the two agree, and agree with this, bit for bit.
// (Checked against cv2 on corrupt files, where the wrapping table gave 0 and cv2 gave 255.)
//
// Arithmetic is done in float64, which holds every intermediate exactly (each stays below 2^53),
// so the 32/64-bit integer sums of the C code carry over; the descaling right shifts become floor
// divisions by powers of two.

const CONST_BITS = 13;
const PASS1_BITS = 2;

// FIX(x) = round(x * 2^CONST_BITS) for the rotation constants of the factorisation.
const FIX_0_298631336 = 2446;
const FIX_0_390180644 = 3196;
const FIX_0_541196100 = 4433;
const FIX_0_765366865 = 6270;
const FIX_0_899976223 = 7373;
const FIX_1_175875602 = 9633;
const FIX_1_501321110 = 12299;
const FIX_1_847759065 = 15137;
const FIX_1_961570560 = 16069;
const FIX_2_053119869 = 16819;
const FIX_2_562915447 = 20995;
const FIX_3_072711026 = 25172;

/** 2^CONST_BITS: the left shift of the even part's DC/4 terms. */
const ONE_CONST = 1 << CONST_BITS;
/** Pass 1 descale: divide by 2^(CONST_BITS - PASS1_BITS), rounding (DESCALE adds half first). */
const P1_HALF = 1 << (CONST_BITS - PASS1_BITS - 1);
const P1_INV = 1 / (1 << (CONST_BITS - PASS1_BITS));
/** Pass 2 descale: divide by 2^(CONST_BITS + PASS1_BITS + 3); the 3 removes the 8x scale of the 2-D IDCT. */
const P2_HALF = 2 ** (CONST_BITS + PASS1_BITS + 3 - 1);
const P2_INV = 1 / 2 ** (CONST_BITS + PASS1_BITS + 3);
/** Descale of a DC-only row in pass 2: 2^(PASS1_BITS + 3). */
const DC_HALF = 1 << (PASS1_BITS + 3 - 1);
const DC_INV = 1 / (1 << (PASS1_BITS + 3));

/** Saturation of the column pass's results to 16 bits (the SIMD workspace is int16). */
function sat16(x: number): number {
  return x > 32767 ? 32767 : x < -32768 ? -32768 : x;
}

/** Rounds down (the end of DESCALE), level-shifts and clamps one output sample. */
function sample(x: number): number {
  x = Math.floor(x) + 128;
  return x > 255 ? 255 : x < 0 ? 0 : x;
}

/** A coefficient times its quantizer, kept to 16 bits as the SIMD multiply does. */
function dq(c: number, q: number): number {
  return ((c * q) << 16) >> 16;
}

/**
 * Dequantizes one block of coefficients (natural order, coef[co .. co+63]) with `qt` and writes its
 * 8x8 samples to out[oo + y * stride + x]. `ws` is a 64-entry scratch workspace.
 */
export function idctIslow(
  coef: Int16Array,
  co: number,
  qt: Int16Array,
  out: Uint8Array,
  oo: number,
  stride: number,
  ws: Int32Array,
): void {
  const floor = Math.floor;
  // Pass 1: columns from the coefficients, into the workspace scaled up by 2^PASS1_BITS.
  for (let c = 0; c < 8; c++) {
    const i = co + c;
    if (
      coef[i + 8] === 0 &&
      coef[i + 16] === 0 &&
      coef[i + 24] === 0 &&
      coef[i + 32] === 0 &&
      coef[i + 40] === 0 &&
      coef[i + 48] === 0 &&
      coef[i + 56] === 0
    ) {
      // AC terms all zero: the column is constant (a common case worth the test, as in libjpeg).
      const dc = dq(coef[i], qt[c]) * (1 << PASS1_BITS);
      ws[c] = dc;
      ws[c + 8] = dc;
      ws[c + 16] = dc;
      ws[c + 24] = dc;
      ws[c + 32] = dc;
      ws[c + 40] = dc;
      ws[c + 48] = dc;
      ws[c + 56] = dc;
      continue;
    }
    // Even part: the rotator is sqrt(2) * c(-6).
    let z2 = dq(coef[i + 16], qt[c + 16]);
    let z3 = dq(coef[i + 48], qt[c + 48]);
    let z1 = (z2 + z3) * FIX_0_541196100;
    let tmp2 = z1 - z3 * FIX_1_847759065;
    let tmp3 = z1 + z2 * FIX_0_765366865;
    z2 = dq(coef[i], qt[c]);
    z3 = dq(coef[i + 32], qt[c + 32]);
    let tmp0 = (z2 + z3) * ONE_CONST;
    let tmp1 = (z2 - z3) * ONE_CONST;
    const tmp10 = tmp0 + tmp3;
    const tmp13 = tmp0 - tmp3;
    const tmp11 = tmp1 + tmp2;
    const tmp12 = tmp1 - tmp2;
    // Odd part: inputs y7, y5, y3, y1.
    tmp0 = dq(coef[i + 56], qt[c + 56]);
    tmp1 = dq(coef[i + 40], qt[c + 40]);
    tmp2 = dq(coef[i + 24], qt[c + 24]);
    tmp3 = dq(coef[i + 8], qt[c + 8]);
    z1 = tmp0 + tmp3;
    z2 = tmp1 + tmp2;
    z3 = tmp0 + tmp2;
    let z4 = tmp1 + tmp3;
    const z5 = (z3 + z4) * FIX_1_175875602;
    tmp0 *= FIX_0_298631336;
    tmp1 *= FIX_2_053119869;
    tmp2 *= FIX_3_072711026;
    tmp3 *= FIX_1_501321110;
    z1 *= -FIX_0_899976223;
    z2 *= -FIX_2_562915447;
    z3 = z3 * -FIX_1_961570560 + z5;
    z4 = z4 * -FIX_0_390180644 + z5;
    tmp0 += z1 + z3;
    tmp1 += z2 + z4;
    tmp2 += z2 + z3;
    tmp3 += z1 + z4;
    ws[c] = sat16(floor((tmp10 + tmp3 + P1_HALF) * P1_INV));
    ws[c + 56] = sat16(floor((tmp10 - tmp3 + P1_HALF) * P1_INV));
    ws[c + 8] = sat16(floor((tmp11 + tmp2 + P1_HALF) * P1_INV));
    ws[c + 48] = sat16(floor((tmp11 - tmp2 + P1_HALF) * P1_INV));
    ws[c + 16] = sat16(floor((tmp12 + tmp1 + P1_HALF) * P1_INV));
    ws[c + 40] = sat16(floor((tmp12 - tmp1 + P1_HALF) * P1_INV));
    ws[c + 24] = sat16(floor((tmp13 + tmp0 + P1_HALF) * P1_INV));
    ws[c + 32] = sat16(floor((tmp13 - tmp0 + P1_HALF) * P1_INV));
  }
  // Pass 2: rows from the workspace, descaled by 2^(PASS1_BITS + 3) more, level-shifted and clamped.
  for (let r = 0; r < 8; r++) {
    const w = r * 8;
    const o = oo + r * stride;
    if (
      ws[w + 1] === 0 &&
      ws[w + 2] === 0 &&
      ws[w + 3] === 0 &&
      ws[w + 4] === 0 &&
      ws[w + 5] === 0 &&
      ws[w + 6] === 0 &&
      ws[w + 7] === 0
    ) {
      const v = sample((ws[w] + DC_HALF) * DC_INV);
      out[o] = v;
      out[o + 1] = v;
      out[o + 2] = v;
      out[o + 3] = v;
      out[o + 4] = v;
      out[o + 5] = v;
      out[o + 6] = v;
      out[o + 7] = v;
      continue;
    }
    let z2 = ws[w + 2];
    let z3 = ws[w + 6];
    let z1 = (z2 + z3) * FIX_0_541196100;
    let tmp2 = z1 - z3 * FIX_1_847759065;
    let tmp3 = z1 + z2 * FIX_0_765366865;
    let tmp0 = (ws[w] + ws[w + 4]) * ONE_CONST;
    let tmp1 = (ws[w] - ws[w + 4]) * ONE_CONST;
    const tmp10 = tmp0 + tmp3;
    const tmp13 = tmp0 - tmp3;
    const tmp11 = tmp1 + tmp2;
    const tmp12 = tmp1 - tmp2;
    tmp0 = ws[w + 7];
    tmp1 = ws[w + 5];
    tmp2 = ws[w + 3];
    tmp3 = ws[w + 1];
    z1 = tmp0 + tmp3;
    z2 = tmp1 + tmp2;
    z3 = tmp0 + tmp2;
    let z4 = tmp1 + tmp3;
    const z5 = (z3 + z4) * FIX_1_175875602;
    tmp0 *= FIX_0_298631336;
    tmp1 *= FIX_2_053119869;
    tmp2 *= FIX_3_072711026;
    tmp3 *= FIX_1_501321110;
    z1 *= -FIX_0_899976223;
    z2 *= -FIX_2_562915447;
    z3 = z3 * -FIX_1_961570560 + z5;
    z4 = z4 * -FIX_0_390180644 + z5;
    tmp0 += z1 + z3;
    tmp1 += z2 + z4;
    tmp2 += z2 + z3;
    tmp3 += z1 + z4;
    out[o] = sample((tmp10 + tmp3 + P2_HALF) * P2_INV);
    out[o + 7] = sample((tmp10 - tmp3 + P2_HALF) * P2_INV);
    out[o + 1] = sample((tmp11 + tmp2 + P2_HALF) * P2_INV);
    out[o + 6] = sample((tmp11 - tmp2 + P2_HALF) * P2_INV);
    out[o + 2] = sample((tmp12 + tmp1 + P2_HALF) * P2_INV);
    out[o + 5] = sample((tmp12 - tmp1 + P2_HALF) * P2_INV);
    out[o + 3] = sample((tmp13 + tmp0 + P2_HALF) * P2_INV);
    out[o + 4] = sample((tmp13 - tmp0 + P2_HALF) * P2_INV);
  }
}
