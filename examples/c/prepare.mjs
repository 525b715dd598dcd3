// prepare.mjs: writes the raw inputs of examples/c/classify with the carzero package's own image
// pipeline and tokenizer (decoding, resize, pad, crop, normalise; cleaning, WordPiece, kinds).
//
//   node prepare.mjs <model dir> <prompts.json> <image>...
//
// Writes, in the current directory: pixels.f32 (N, 1, 224, 224) f32, ids.i32 (Q, 97) i32,
// mask.u8 and kinds.u8 (Q, 97) u8, where prompts.json is {class: [prompt, ...]} and Q counts
// every prompt in key order. Prints "<N> <Q>", the counts classify takes.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Tokenizer, cleanText, loadImage } from 'carzero';

const [modelDir, promptsJson, ...images] = process.argv.slice(2);
if (!modelDir || !promptsJson || images.length === 0) {
  console.error('usage: node prepare.mjs <model dir> <prompts.json> <image>...');
  process.exit(2);
}
const bytes = (a) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

const pixels = [];
for (const file of images) pixels.push(bytes((await loadImage(file)).pixels)); // (224, 224), 1 channel
writeFileSync('pixels.f32', Buffer.concat(pixels));

const prompts = Object.values(JSON.parse(readFileSync(promptsJson, 'utf8'))).flat();
const tokenizer = await Tokenizer.fromFile(join(modelDir, 'tokenizer.json'));
const text = tokenizer.encode(prompts.map(cleanText)); // CARZero cleans prompts before tokenising
writeFileSync('ids.i32', bytes(text.ids));
writeFileSync('mask.u8', bytes(text.mask));
writeFileSync('kinds.u8', bytes(text.kinds));
console.log(`${images.length} ${text.count}`);
