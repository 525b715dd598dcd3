// BERT WordPiece tokenisation (spec 3.2) and the text input of the native model
// (docs/MODEL-FORMAT.md "Text input to the native model": ids, mask, kinds).
//
// WordPiece itself runs in @huggingface/tokenizers (pure JS, reads a Hugging Face tokenizer.json,
// no network). That library reads neither vocab.txt nor the truncation/padding settings, so
// `vocabToTokenizerJson` converts a vocab.txt the way transformers' BertConverter does, and
// `Tokenizer.encode` truncates and pads itself with Hugging Face's `truncation=True,
// padding="max_length"` semantics: the word pieces are cut to maxLength - 2 from the end, then
// [CLS] and [SEP] are added (so [SEP] always survives), then [PAD] up to maxLength.
//
// Agreement with Hugging Face's BertTokenizer(Fast): exact on every fixture (tools/fixtures-text.py
// is a transcription of the slow BertTokenizer), and necessarily so on CARZero's cleaned text, which
// is ASCII [a-z0-9_] words separated by spaces. Known differences of the JS library on raw text
// (never reached through cleanText): CJK ideographs outside the BMP are not isolated as words,
// unassigned code points (Cn) are kept where Rust drops them, and whitespace is JS `\s`.
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { Tokenizer as HFTokenizer } from '@huggingface/tokenizers';
import { TokenizerFileError } from './errors.js';

/** Kinds of a token position for CARZero's word aggregation (spec 3.4). */
export const TOKEN_KIND = { WORD_START: 0, CONTINUATION: 1, SEP: 2, AFTER: 3 } as const;

export interface VocabOptions {
  /** BertNormalizer lowercase (tokenizer_config `do_lower_case`); default true. */
  lowercase?: boolean;
  /** Strip accents; null/undefined = follow `lowercase` (Hugging Face's default). */
  stripAccents?: boolean | null;
  /** Isolate CJK ideographs as words (tokenizer_config `tokenize_chinese_chars`); default true. */
  handleChineseChars?: boolean;
}

export interface EncodeOptions {
  /** Sequence length L including [CLS] and [SEP]; default 97 (CARZero's text.max_length). */
  maxLength?: number;
}

export interface EncodedText {
  /** (Q, L) token ids: [CLS] pieces [SEP] then [PAD]. */
  ids: Int32Array;
  /** (Q, L) 1 on [CLS] .. [SEP], 0 on padding. */
  mask: Uint8Array;
  /** (Q, L) 0 word start, 1 `##` continuation, 2 [SEP], 3 after [SEP]. */
  kinds: Uint8Array;
  /** Per text the real tokens, [CLS] .. [SEP] (no padding). */
  tokens: string[][];
  /** Q. */
  count: number;
  /** L. */
  maxLength: number;
}

const SPECIALS = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'] as const;

/** Parses vocab.txt like transformers' load_vocab: one token per line, index = line number. */
export function parseVocab(vocabText: string): Map<string, number> {
  if (typeof vocabText !== 'string')
    throw new TypeError(`parseVocab: argument 'vocabText' must be a string, got ${typeof vocabText}`);
  const lines = vocabText.split('\n');
  if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop(); // trailing newline
  const vocab = new Map<string, number>();
  lines.forEach((tok, i) => vocab.set(tok, i)); // a duplicate keeps its last index, as load_vocab
  return vocab;
}

/**
 * Converts a BERT vocab.txt into a Hugging Face tokenizer.json object (what transformers'
 * BertConverter writes): WordPiece with `##` continuation, [UNK], max_input_chars_per_word 100;
 * BertNormalizer; BertPreTokenizer; TemplateProcessing `[CLS] $A [SEP]`; WordPiece decoder.
 */
export function vocabToTokenizerJson(vocabText: string, options: VocabOptions = {}): Record<string, unknown> {
  const { lowercase = true, stripAccents = null, handleChineseChars = true } = options;
  if (typeof lowercase !== 'boolean') throw new TypeError("vocabToTokenizerJson: option 'lowercase' must be a boolean");
  if (stripAccents !== null && typeof stripAccents !== 'boolean')
    throw new TypeError("vocabToTokenizerJson: option 'stripAccents' must be a boolean or null");
  const vocab = parseVocab(vocabText);
  for (const t of ['[UNK]', '[CLS]', '[SEP]', '[PAD]'])
    if (!vocab.has(t)) throw new TokenizerFileError(`vocab.txt has no ${t} token`);
  const id = (t: string): number => vocab.get(t)!;
  const added = SPECIALS.filter((t) => vocab.has(t))
    .map((t) => ({
      id: id(t),
      content: t,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    }))
    .sort((a, b) => a.id - b.id);
  const special = (t: string) => ({ SpecialToken: { id: t, type_id: 0 } });
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: {
      type: 'BertNormalizer',
      clean_text: true,
      handle_chinese_chars: handleChineseChars,
      strip_accents: stripAccents,
      lowercase,
    },
    pre_tokenizer: { type: 'BertPreTokenizer' },
    post_processor: {
      type: 'TemplateProcessing',
      single: [special('[CLS]'), { Sequence: { id: 'A', type_id: 0 } }, special('[SEP]')],
      pair: [
        special('[CLS]'),
        { Sequence: { id: 'A', type_id: 0 } },
        special('[SEP]'),
        { Sequence: { id: 'B', type_id: 1 } },
        { SpecialToken: { id: '[SEP]', type_id: 1 } },
      ],
      special_tokens: Object.fromEntries(['[CLS]', '[SEP]'].map((t) => [t, { id: t, ids: [id(t)], tokens: [t] }])),
    },
    decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
    model: {
      type: 'WordPiece',
      unk_token: '[UNK]',
      continuing_subword_prefix: '##',
      max_input_chars_per_word: 100,
      vocab: Object.fromEntries(vocab),
    },
  };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** [CLS]/[SEP] of the post-processor's template when given, else the BERT names. */
function templateSpecial(json: Record<string, unknown>, which: 'first' | 'last'): string | undefined {
  const pp = json.post_processor;
  if (!isObject(pp)) return undefined;
  if (pp.type === 'BertProcessing') {
    const pair = which === 'first' ? pp.cls : pp.sep;
    return Array.isArray(pair) && typeof pair[0] === 'string' ? pair[0] : undefined;
  }
  if (pp.type === 'TemplateProcessing' && Array.isArray(pp.single)) {
    const item = which === 'first' ? pp.single[0] : pp.single[pp.single.length - 1];
    const id = isObject(item) && isObject(item.SpecialToken) ? item.SpecialToken.id : undefined;
    return typeof id === 'string' ? id : undefined;
  }
  return undefined;
}

export class Tokenizer {
  #hf: HFTokenizer;
  readonly clsId: number;
  readonly sepId: number;
  readonly padId: number;
  readonly clsToken: string;
  readonly sepToken: string;
  readonly padToken: string;

  private constructor(json: Record<string, unknown>, source: string) {
    if (!isObject(json.model) || json.model.type !== 'WordPiece')
      throw new TokenizerFileError(
        `${source}: expected a WordPiece tokenizer (model.type), got ${
          isObject(json.model) ? String(json.model.type) : 'no model'
        }`,
      );
    try {
      this.#hf = new HFTokenizer({ added_tokens: [], ...json }, {});
    } catch (e) {
      throw new TokenizerFileError(`${source}: ${(e as Error).message}`);
    }
    const lookup = (t: string, what: string): number => {
      const id = this.#hf.token_to_id(t);
      if (id === undefined) throw new TokenizerFileError(`${source}: the ${what} token ${t} is not in the vocabulary`);
      return id;
    };
    this.clsToken = templateSpecial(json, 'first') ?? '[CLS]';
    this.sepToken = templateSpecial(json, 'last') ?? '[SEP]';
    const padding = json.padding;
    this.padToken = isObject(padding) && typeof padding.pad_token === 'string' ? padding.pad_token : '[PAD]';
    this.clsId = lookup(this.clsToken, 'first');
    this.sepId = lookup(this.sepToken, 'last');
    this.padId = lookup(this.padToken, 'padding');
  }

  /** From a parsed tokenizer.json object (or its text). */
  static fromJson(json: Record<string, unknown> | string, source = 'tokenizer.json'): Tokenizer {
    let obj: unknown = json;
    if (typeof json === 'string') {
      try {
        obj = JSON.parse(json);
      } catch (e) {
        throw new TokenizerFileError(`${source}: malformed JSON (${(e as Error).message})`);
      }
    }
    if (!isObject(obj)) throw new TypeError("Tokenizer.fromJson: argument 'json' must be an object or JSON text");
    return new Tokenizer(obj, source);
  }

  /** From the text of a BERT vocab.txt (see vocabToTokenizerJson). */
  static fromVocab(vocabText: string, options: VocabOptions = {}, source = 'vocab.txt'): Tokenizer {
    return new Tokenizer(vocabToTokenizerJson(vocabText, options), source);
  }

  /**
   * From a file: a tokenizer.json, a vocab.txt (lower-cased unless a tokenizer_config.json beside
   * it says `do_lower_case: false`), or a model folder holding either (tokenizer.json preferred).
   */
  static async fromFile(file: string): Promise<Tokenizer> {
    if (typeof file !== 'string') throw new TypeError("Tokenizer.fromFile: argument 'file' must be a path string");
    let info;
    try {
      info = await stat(file);
    } catch (e) {
      throw new TokenizerFileError(`${file}: cannot read (${(e as Error).message})`);
    }
    if (info.isDirectory()) {
      for (const name of ['tokenizer.json', 'vocab.txt']) {
        const p = path.join(file, name);
        if (
          await stat(p).then(
            (s) => s.isFile(),
            () => false,
          )
        )
          return Tokenizer.fromFile(p);
      }
      throw new TokenizerFileError(`${file}: no tokenizer.json or vocab.txt in this folder`);
    }
    const text = await readFile(file, 'utf8');
    if (path.extname(file).toLowerCase() === '.json') return Tokenizer.fromJson(text, file);
    const options: VocabOptions = {};
    const configPath = path.join(path.dirname(file), 'tokenizer_config.json');
    const configText = await readFile(configPath, 'utf8').catch(() => null);
    if (configText !== null) {
      let config: unknown;
      try {
        config = JSON.parse(configText);
      } catch (e) {
        throw new TokenizerFileError(`${configPath}: malformed JSON (${(e as Error).message})`);
      }
      if (isObject(config)) {
        if (typeof config.do_lower_case === 'boolean') options.lowercase = config.do_lower_case;
        if (typeof config.strip_accents === 'boolean') options.stripAccents = config.strip_accents;
        if (typeof config.tokenize_chinese_chars === 'boolean')
          options.handleChineseChars = config.tokenize_chinese_chars;
      }
    }
    return Tokenizer.fromVocab(text, options, file);
  }

  /** The word pieces of one text, without [CLS]/[SEP] and without truncation. */
  tokenize(text: string): string[] {
    if (typeof text !== 'string')
      throw new TypeError(`Tokenizer.tokenize: argument 'text' must be a string, got ${typeof text}`);
    return this.#hf.encode(text, { add_special_tokens: false }).tokens;
  }

  /** Token id of a token string, undefined when unknown. */
  tokenToId(token: string): number | undefined {
    return this.#hf.token_to_id(token);
  }

  /**
   * Encodes Q texts into (Q, L) ids, mask and kinds (docs/MODEL-FORMAT.md). Texts are used as
   * given: the faithful CARZero path passes them through cleanText first.
   */
  encode(texts: string | readonly string[], options: EncodeOptions = {}): EncodedText {
    const list = typeof texts === 'string' ? [texts] : texts;
    if (!Array.isArray(list))
      throw new TypeError("Tokenizer.encode: argument 'texts' must be a string or an array of strings");
    const { maxLength = 97 } = options;
    if (!Number.isSafeInteger(maxLength) || maxLength < 2)
      throw new RangeError(`Tokenizer.encode: option 'maxLength' must be an integer >= 2, got ${maxLength}`);
    const Q = list.length;
    const L = maxLength;
    const ids = new Int32Array(Q * L).fill(this.padId);
    const mask = new Uint8Array(Q * L);
    const kinds = new Uint8Array(Q * L).fill(TOKEN_KIND.AFTER);
    const tokens: string[][] = [];
    for (let q = 0; q < Q; q++) {
      const text = list[q];
      if (typeof text !== 'string')
        throw new TypeError(`Tokenizer.encode: texts[${q}] must be a string, got ${typeof text}`);
      const enc = this.#hf.encode(text, { add_special_tokens: false });
      const n = Math.min(enc.ids.length, L - 2);
      const row = q * L;
      const toks = [this.clsToken];
      ids[row] = this.clsId;
      mask[row] = 1;
      kinds[row] = TOKEN_KIND.WORD_START;
      for (let i = 0; i < n; i++) {
        const t = enc.tokens[i];
        toks.push(t);
        ids[row + 1 + i] = enc.ids[i];
        mask[row + 1 + i] = 1;
        kinds[row + 1 + i] = t.startsWith('##') ? TOKEN_KIND.CONTINUATION : TOKEN_KIND.WORD_START;
      }
      toks.push(this.sepToken);
      ids[row + n + 1] = this.sepId;
      mask[row + n + 1] = 1;
      kinds[row + n + 1] = TOKEN_KIND.SEP;
      tokens.push(toks);
    }
    return { ids, mask, kinds, tokens, count: Q, maxLength: L };
  }
}
