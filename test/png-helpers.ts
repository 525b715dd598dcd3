// Synthetic PNGs for the image tests.
import { constants, crc32, deflateSync } from 'node:zlib';

/**
 * A grey 8-bit PNG of zeros. `rows`: all rows of data (the default up to 16 M pixels), or only one
 * row: a file that declares a huge size in a few bytes (enough for header-time refusals).
 */
export function greyPng(
  width: number,
  height: number,
  rows = width * height <= 1 << 24,
  options: { interlaced?: boolean; idatBytes?: number } = {},
): Buffer {
  const chunk = (type: string, data: Buffer) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const td = Buffer.concat([Buffer.from(type, 'latin1'), data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(td));
    return Buffer.concat([len, td, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 0; // grey
  ihdr[12] = options.interlaced ? 1 : 0;
  // idatBytes: that many zero bytes, whatever the header says (a bomb when large)
  const data =
    options.idatBytes !== undefined
      ? zeroStream(options.idatBytes)
      : deflateSync(Buffer.alloc(rows ? height * (1 + width) : 1 + width));
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', data),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

/**
 * A valid zlib stream of `n` zero bytes (n a multiple of 1 MiB) without compressing them: one
 * sync-flushed deflate block of 1 MiB of zeros repeated (its back-references only ever see zeros),
 * an empty final block, and the Adler-32 of n zeros ((n mod 65521) << 16 | 1).
 */
export function zeroStream(n: number): Buffer {
  const mib = 1 << 20;
  if (n % mib !== 0) throw new RangeError('zeroStream: n must be a multiple of 1 MiB');
  const chunk = deflateSync(Buffer.alloc(mib), { finishFlush: constants.Z_SYNC_FLUSH });
  const body = chunk.subarray(2); // after the zlib header
  const adler = Buffer.alloc(4);
  adler.writeUInt32BE((((n % 65521) << 16) | 1) >>> 0);
  return Buffer.concat([
    chunk.subarray(0, 2),
    ...Array.from({ length: n / mib }, () => body),
    Buffer.from([0x03, 0x00]),
    adler,
  ]);
}
