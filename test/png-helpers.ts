// Synthetic PNGs for the image tests.
import { crc32, deflateSync } from 'node:zlib';

/**
 * A grey 8-bit PNG of zeros. `rows`: all rows of data (the default up to 16 M pixels), or only one
 * row: a file that declares a huge size in a few bytes (enough for header-time refusals).
 */
export function greyPng(width: number, height: number, rows = width * height <= 1 << 24): Buffer {
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
  const data = deflateSync(Buffer.alloc(rows ? height * (1 + width) : 1 + width));
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), chunk('IDAT', data), chunk('IEND', Buffer.alloc(0))]);
}
