// Text pipeline: cleaning (spec 3.1), tokenisation (spec 3.2) and prompt files, against fixtures
// made by tools/fixtures-text.py (the original cleaning code + a transcription of HF BertTokenizer),
// and, when present, the reference engineer's fixtures in test/fixtures/tiny/.
import test from 'ava';
import { existsSync, readFileSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  cleanText,
  cleanReportSentences,
  Tokenizer,
  vocabToTokenizerJson,
  loadPrompts,
  parsePrompts,
  PromptFileError,
} from '../src/text/index.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const FIX = path.join(here, 'fixtures', 'text');
const vocabText = readFileSync(path.join(FIX, 'vocab.txt'), 'utf8');

interface Enc {
  tokens: string[];
  ids: number[];
  mask: number[];
  kinds: number[];
}
interface Case {
  text: string;
  cleaned: string;
  sentences: string[];
  encodedCleaned: Enc;
  encodedRaw: Enc;
}
const fixture = JSON.parse(readFileSync(path.join(FIX, 'cases.json'), 'utf8')) as { maxLength: number; cases: Case[] };

test('cleanText: spec examples', (t) => {
  t.is(cleanText('Cardiomegaly'), '');
  t.is(cleanText('There is atelectasis'), 'there is atelectasis');
  t.is(
    cleanText('1. Heart size normal. 2. No pneumothorax.\n3. Mild left opacity'),
    'heart size normal no pneumothorax mild left opacity',
  );
  t.is(cleanText('Heart \ufffd\ufffdsize normal'), 'heart size normal');
  t.is(cleanText('Lung\ufffdclear'), 'lung clear'); // a single U+FFFD is not a word char either
  t.is(cleanText('Café naïve'), 'caf nave');
  t.is(cleanText('There is Pleural_Thickening'), 'there is pleural_thickening');
  t.is(cleanText('No. Yes.'), '');
  t.is(cleanText('3.5 cm lesion'), '5 cm lesion');
  t.is(cleanText('İstanbul ok'), 'i stanbul ok');
  t.is(cleanText(''), '');
  t.deepEqual(cleanReportSentences('Heart normal. Clear. Lungs are clear.'), ['heart normal', 'lungs are clear']);
  t.throws(() => cleanText(3 as unknown as string), { instanceOf: TypeError });
});

test('cleanText and sentences match the Python original on every fixture', (t) => {
  for (const c of fixture.cases) {
    t.is(cleanText(c.text), c.cleaned, JSON.stringify(c.text));
    t.deepEqual(cleanReportSentences(c.text), c.sentences, JSON.stringify(c.text));
  }
});

function checkEncoding(t: import('ava').ExecutionContext, tok: Tokenizer, texts: string[], expected: Enc[], L: number) {
  const enc = tok.encode(texts, { maxLength: L });
  t.is(enc.ids.length, texts.length * L);
  for (let q = 0; q < texts.length; q++) {
    const e = expected[q];
    const msg = JSON.stringify(texts[q]).slice(0, 80);
    t.deepEqual(enc.tokens[q], e.tokens, msg);
    t.deepEqual(Array.from(enc.ids.subarray(q * L, (q + 1) * L)), e.ids, msg);
    t.deepEqual(Array.from(enc.mask.subarray(q * L, (q + 1) * L)), e.mask, msg);
    t.deepEqual(Array.from(enc.kinds.subarray(q * L, (q + 1) * L)), e.kinds, msg);
  }
}

test('tokenizer from vocab.txt matches HF BertTokenizer on cleaned and raw fixtures', (t) => {
  const tok = Tokenizer.fromVocab(vocabText, { lowercase: true });
  checkEncoding(
    t,
    tok,
    fixture.cases.map((c) => c.cleaned),
    fixture.cases.map((c) => c.encodedCleaned),
    fixture.maxLength,
  );
  checkEncoding(
    t,
    tok,
    fixture.cases.map((c) => c.text),
    fixture.cases.map((c) => c.encodedRaw),
    fixture.maxLength,
  );
});

test('tokenizer.json round trip, fromFile on a file and a folder', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'cz-tok-'));
  const json = vocabToTokenizerJson(vocabText, { lowercase: true });
  writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(json));
  const a = await Tokenizer.fromFile(path.join(dir, 'tokenizer.json'));
  const b = await Tokenizer.fromFile(dir);
  const c = await Tokenizer.fromFile(path.join(FIX, 'vocab.txt'));
  const texts = fixture.cases.map((x) => x.cleaned);
  const ea = a.encode(texts),
    eb = b.encode(texts),
    ec = c.encode(texts);
  t.deepEqual(ea.ids, eb.ids);
  t.deepEqual(ea.ids, ec.ids);
  t.deepEqual(ea.kinds, ec.kinds);
  t.is(a.clsId, 2);
  t.is(a.sepId, 3);
  t.is(a.padId, 0);
  const model = json.model as { vocab: Record<string, number>; max_input_chars_per_word: number };
  t.is(model.vocab['##ly'], vocabText.split('\n').indexOf('##ly'));
  t.is(model.max_input_chars_per_word, 100);
});

test('truncation to 97 keeps [CLS] first and [SEP] last', (t) => {
  const tok = Tokenizer.fromVocab(vocabText);
  const long = Array(200).fill('lung').join(' ');
  const enc = tok.encode([long, 'lung'], { maxLength: 97 });
  t.is(enc.tokens[0].length, 97);
  t.is(enc.tokens[0][0], '[CLS]');
  t.is(enc.tokens[0][96], '[SEP]');
  t.is(enc.ids[96], tok.sepId);
  t.is(enc.kinds[96], 2);
  t.true(enc.mask.subarray(0, 97).every((m) => m === 1));
  t.deepEqual(Array.from(enc.kinds.subarray(97, 97 + 4)), [0, 0, 2, 3]);
  t.deepEqual(Array.from(enc.mask.subarray(97, 97 + 4)), [1, 1, 1, 0]);
  t.throws(() => tok.encode(['x'], { maxLength: 1 }), { instanceOf: RangeError });
  t.throws(() => tok.encode([3 as unknown as string]), { instanceOf: TypeError });
});

test('prompt files: shapes, order, warnings, errors naming the file', async (t) => {
  const warnings: string[] = [];
  const onWarning = (m: string) => warnings.push(m);
  const p = parsePrompts(
    '{"Cardiomegaly": "Cardiomegaly", "2": ["There is edema", "x y"], "Atelectasis": "There is atelectasis"}',
    'p.json',
    { onWarning },
  );
  t.deepEqual(p.classes, ['Cardiomegaly', '2', 'Atelectasis']); // file order, even integer-like keys
  t.deepEqual(p.prompts, ['Cardiomegaly', 'There is edema', 'There is atelectasis']);
  t.deepEqual(p.cleaned, ['', 'there is edema', 'there is atelectasis']);
  t.is(warnings.length, 2);
  t.regex(warnings[0], /Cardiomegaly.*empty string/);
  t.regex(warnings[1], /"2" has 2 prompts/);
  const bad: [string, RegExp][] = [
    ['{"a": ', /bad\.json: malformed JSON/],
    ['{}', /bad\.json: no classes/],
    ['["a"]', /bad\.json: expected a JSON object/],
    ['{"a": 3}', /bad\.json: class "a": prompt must be a string/],
    ['{"a": []}', /bad\.json: class "a" has an empty prompt list/],
    ['{"a": ["x", null]}', /bad\.json: class "a": prompt 1 must be a string, got null/],
  ];
  for (const [text, re] of bad) {
    const e = t.throws(() => parsePrompts(text, 'bad.json', { onWarning }), { instanceOf: PromptFileError });
    t.regex(e!.message, re);
  }
  const dir = mkdtempSync(path.join(tmpdir(), 'cz-prompts-'));
  const f = path.join(dir, 'prompts.json');
  writeFileSync(f, '{"Effusion": ["There is pleural effusion"]}');
  const q = await loadPrompts(f, { onWarning });
  t.deepEqual(q.cleaned, ['there is pleural effusion']);
  const missing = path.join(dir, 'missing.json');
  await t.throwsAsync(loadPrompts(missing), {
    instanceOf: PromptFileError,
    message: new RegExp(missing.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')),
  });
});

// The reference engineer's fixtures (test/fixtures/tiny/text, bert-tiny), when present.
const TINY = path.join(here, 'fixtures', 'tiny');
const TT = path.join(TINY, 'text');
// The reference fixtures are committed: their absence is a failure, not a skip.
test('reference fixtures are present', (t) => {
  t.true(existsSync(path.join(TT, 'expected.json')) && existsSync(path.join(TINY, 'bert-tiny', 'vocab.txt')));
});
{
  test('reference: cleaning and tokens of clean-cases.json', async (t) => {
    const tok = await Tokenizer.fromFile(path.join(TINY, 'bert-tiny', 'vocab.txt'));
    const cases = JSON.parse(readFileSync(path.join(TT, 'clean-cases.json'), 'utf8')).cases as {
      raw: string;
      cleaned: string;
      tokens: string[];
    }[];
    for (const c of cases) {
      t.is(cleanText(c.raw), c.cleaned, JSON.stringify(c.raw));
      t.deepEqual(tok.tokenize(c.cleaned), c.tokens, JSON.stringify(c.raw));
    }
  });
  test('reference: raw-text tokenizer cases', async (t) => {
    const tok = await Tokenizer.fromFile(path.join(TINY, 'bert-tiny'));
    const f = path.join(TT, 'tokenizer-raw-cases.json');
    const cases = JSON.parse(readFileSync(f, 'utf8')).cases as { raw: string; tokens: string[] }[];
    for (const c of cases) t.deepEqual(tok.tokenize(c.raw), c.tokens, JSON.stringify(c.raw));
  });
  test('reference: prompt files -> ids, mask, kinds', async (t) => {
    const tok = await Tokenizer.fromFile(path.join(TINY, 'bert-tiny', 'vocab.txt'));
    const exp = JSON.parse(readFileSync(path.join(TT, 'expected.json'), 'utf8')) as {
      max_length: number;
      rows: { class: string; raw: string; cleaned: string; tokens: string[] }[];
      binaries: Record<'ids' | 'mask' | 'kinds', { file: string }>;
    };
    const bin = (k: 'ids' | 'mask' | 'kinds') => readFileSync(path.join(TINY, exp.binaries[k].file));
    const ids = new Int32Array(bin('ids').buffer.slice(0));
    for (const name of ['prompts.json', 'prompts-str.json']) {
      const p = await loadPrompts(path.join(TT, name), { onWarning: () => {} });
      t.deepEqual(
        p.classes,
        exp.rows.map((r) => r.class),
        name,
      );
      t.deepEqual(
        p.cleaned,
        exp.rows.map((r) => r.cleaned),
        name,
      );
      const enc = tok.encode(p.cleaned, { maxLength: exp.max_length });
      t.deepEqual(
        enc.tokens,
        exp.rows.map((r) => r.tokens),
        name,
      );
      t.deepEqual(Array.from(enc.ids), Array.from(ids), name);
      t.deepEqual(Array.from(enc.mask), Array.from(bin('mask')), name);
      t.deepEqual(Array.from(enc.kinds), Array.from(bin('kinds')), name);
    }
  });
}
