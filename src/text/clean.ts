// Text cleaning: CARZero's caption rule (spec 3.1), applied to prompts and report sentences alike.
//
// Transcribed from the original dataset code:
//   captions.replace("\n", " ") -> re.split("[0-9]+\.") -> each piece .split(".") -> per sentence:
//   replace "\ufffd\ufffd" by " ", lower(), RegexpTokenizer(r"\w+") (re.findall, Unicode), drop the
//   sentence when it has <= 1 match, drop non-ASCII characters of each match, drop empty matches,
//   " ".join; the kept sentences are joined with " ".
//
// Python's `\w` on str is `ch.isalnum() or ch == "_"`, i.e. Unicode categories L* and N* plus "_"
// (combining marks M* and other connector punctuation are NOT word characters). `[\p{L}\p{N}_]`
// with the `u` flag is exactly that set: checked over all code points against CPython 3.11
// (Unicode 14); the only differences come from characters added in later Unicode versions, which
// Node (Unicode 15.1+) knows and Python 3.11 does not. Python's str.lower() and JS toLowerCase() both
// apply the unconditional full case mappings (e.g. "İ" -> "i" + U+0307, whose combining dot then
// splits the word exactly as in Python) and the final-sigma rule; they agree on every code point
// known to both Unicode versions. Since non-ASCII characters are dropped afterwards, these details
// only decide word boundaries and so whether a sentence keeps more than one match.

const NUMBERED = /[0-9]+\./;
const WORD = /[\p{L}\p{N}_]+/gu;
// eslint-disable-next-line no-control-regex -- the ASCII range starts at NUL on purpose
const NON_ASCII = /[^\x00-\x7f]/g;

function checkText(text: unknown, what: string): string {
  if (typeof text !== 'string') throw new TypeError(`${what} must be a string, got ${typeof text}`);
  return text;
}

/** Cleans one sentence; returns null when the sentence is dropped (one `\w+` match or none). */
function cleanSentence(sentence: string): string | null {
  const words = sentence.replaceAll('\ufffd\ufffd', ' ').toLowerCase().match(WORD);
  if (words === null || words.length <= 1) return null;
  const kept: string[] = [];
  for (const w of words) {
    const ascii = w.replace(NON_ASCII, '');
    if (ascii.length > 0) kept.push(ascii);
  }
  return kept.join(' ');
}

/**
 * The kept sentences of a report (or prompt), each cleaned, in order. A kept sentence can be the
 * empty string when all its words were non-ASCII (the original keeps it too).
 */
export function cleanReportSentences(report: string): string[] {
  const text = checkText(report, "cleanReportSentences: argument 'report'").replaceAll('\n', ' ');
  const out: string[] = [];
  for (const point of text.split(NUMBERED)) {
    for (const sentence of point.split('.')) {
      if (sentence.length === 0) continue;
      const cleaned = cleanSentence(sentence);
      if (cleaned !== null) out.push(cleaned);
    }
  }
  return out;
}

/**
 * CARZero's cleaned text: the kept sentences joined by single spaces. A one-word text such as
 * "Cardiomegaly" becomes "" (kept on purpose: the faithful path scores it that way).
 */
export function cleanText(text: string): string {
  return cleanReportSentences(checkText(text, "cleanText: argument 'text'")).join(' ');
}
