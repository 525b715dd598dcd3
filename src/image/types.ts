// The decoded image shared by the decoders: 8-bit grey, row-major, W*H bytes.
export interface GrayImage {
  width: number;
  height: number;
  data: Uint8Array;
}
