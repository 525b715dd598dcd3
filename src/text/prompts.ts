// Prompt files of the original zero-shot script: a JSON object `{class: prompt}` or
// `{class: [prompt, ...]}`, one prompt per class, classes in file order.
//
// Decisions (documented in the report and here):
// - A list with more than one prompt: the first is used and a warning names the class (the
//   CARZero head scores one text per class); an empty list is an error.
// - Key order is the file's order, as Python's dict keeps it, including keys that look like
//   integers (which JS objects would move first): the top-level keys are scanned from the text.
// - A prompt that cleans to "" (one-word prompts such as "Cardiomegaly") is kept and scored the
//   faithful way ([CLS] [SEP]); a warning names the class.
import { readFile } from 'node:fs/promises';
import { cleanText } from './clean.js';
import { PromptFileError } from './errors.js';

export interface PromptSet {
  /** Class names in file order. */
  classes: string[];
  /** The prompt used per class, as written in the file. */
  prompts: string[];
  /** cleanText(prompt) per class: what the tokenizer receives on the faithful path. */
  cleaned: string[];
  /** Human-readable warnings (also passed to onWarning). */
  warnings: string[];
}

export interface LoadPromptsOptions {
  /** Called once per warning; default process.emitWarning. Pass `() => {}` to silence. */
  onWarning?: (message: string) => void;
}

/** Top-level keys of a JSON object text in order of first appearance (text already valid JSON). */
function topLevelKeys(text: string): string[] {
  const keys: string[] = [];
  const seen = new Set<string>();
  let depth = 0;
  let expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '"') {
      let j = i + 1;
      while (text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      if (depth === 1 && expectKey) {
        const key = JSON.parse(text.slice(i, j + 1)) as string;
        if (!seen.has(key)) {
          seen.add(key);
          keys.push(key);
        }
        expectKey = false;
      }
      i = j;
    } else if (c === '{' || c === '[') {
      depth++;
      expectKey = c === '{' && depth === 1;
    } else if (c === '}' || c === ']') {
      depth--;
    } else if (c === ',' && depth === 1) {
      expectKey = true;
    }
  }
  return keys;
}

/** Parses the text of a prompt file; `file` names it in errors and warnings. */
export function parsePrompts(text: string, file = 'prompts.json', options: LoadPromptsOptions = {}): PromptSet {
  const warn = options.onWarning ?? ((m: string) => process.emitWarning(m, 'CarzeroPromptWarning'));
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new PromptFileError(file, `malformed JSON (${(e as Error).message})`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json))
    throw new PromptFileError(
      file,
      `expected a JSON object {class: prompt}, got ${Array.isArray(json) ? 'an array' : typeof json}`,
    );
  const obj = json as Record<string, unknown>;
  const classes = topLevelKeys(text);
  if (classes.length === 0) throw new PromptFileError(file, 'no classes (empty object)');
  const out: PromptSet = { classes, prompts: [], cleaned: [], warnings: [] };
  const warning = (m: string) => {
    out.warnings.push(m);
    warn(m);
  };
  for (const cls of classes) {
    const v = obj[cls];
    let prompt: string;
    if (typeof v === 'string') prompt = v;
    else if (Array.isArray(v)) {
      if (v.length === 0) throw new PromptFileError(file, `class "${cls}" has an empty prompt list`);
      v.forEach((p, i) => {
        if (typeof p !== 'string')
          throw new PromptFileError(
            file,
            `class "${cls}": prompt ${i} must be a string, got ${p === null ? 'null' : typeof p}`,
          );
      });
      prompt = v[0] as string;
      if (v.length > 1) warning(`${file}: class "${cls}" has ${v.length} prompts; using the first`);
    } else {
      throw new PromptFileError(
        file,
        `class "${cls}": prompt must be a string or a list of strings, got ${v === null ? 'null' : typeof v}`,
      );
    }
    const cleaned = cleanText(prompt);
    if (cleaned === '')
      warning(
        `${file}: class "${cls}": prompt ${JSON.stringify(prompt)} cleans to the empty string ` +
          '(CARZero drops one-word sentences); it is scored as [CLS] [SEP]',
      );
    out.prompts.push(prompt);
    out.cleaned.push(cleaned);
  }
  return out;
}

/** Reads a prompt file (see parsePrompts). */
export async function loadPrompts(file: string, options: LoadPromptsOptions = {}): Promise<PromptSet> {
  if (typeof file !== 'string') throw new TypeError("loadPrompts: argument 'file' must be a path string");
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new PromptFileError(file, `cannot read (${(e as Error).message})`);
  }
  return parsePrompts(text, file, options);
}
