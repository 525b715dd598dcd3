#!/usr/bin/python3
"""Text fixtures for test/text.test.ts: CARZero's cleaning and BERT WordPiece tokenisation.

Run with Debian's python (no extra packages needed): /usr/bin/python3 tools/fixtures-text.py
Writes test/fixtures/text/vocab.txt (a tiny uncased WordPiece vocabulary) and
test/fixtures/text/cases.json: for each input text the cleaned text (CARZero's rule, copied from the
original dataset code; nltk's RegexpTokenizer(r"\\w+") is re.findall with re.UNICODE), the report's
kept sentences, and the tokens / ids / mask / kinds of the cleaned text and of the raw text, made by
a transcription of Hugging Face's slow BertTokenizer (BasicTokenizer + WordpieceTokenizer,
transformers/models/bert/tokenization_bert.py), with truncation=True, max_length=97, padding to 97.
"""
import json
import os
import re
import unicodedata

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "test", "fixtures", "text")
L = 97


# ---- CARZero cleaning (original: the dataset's caption processing) ----
def clean_sentences(captions):
    captions = captions.replace("\n", " ")
    splitter = re.compile(r"[0-9]+\.")
    captions = splitter.split(captions)
    captions = [point.split(".") for point in captions]
    captions = [sent for point in captions for sent in point]
    all_sents = []
    for cap in captions:
        if len(cap) == 0:
            continue
        cap = cap.replace("\ufffd\ufffd", " ")
        tokens = re.findall(r"\w+", cap.lower(), flags=re.UNICODE | re.MULTILINE | re.DOTALL)
        if len(tokens) <= 1:
            continue
        included = []
        for t in tokens:
            t = t.encode("ascii", "ignore").decode("ascii")
            if len(t) > 0:
                included.append(t)
        all_sents.append(" ".join(included))
    return all_sents


def clean_text(text):
    return " ".join(clean_sentences(text))


# ---- HF slow BertTokenizer (do_lower_case=True, tokenize_chinese_chars=True) ----
def _is_whitespace(c):
    if c in (" ", "\t", "\n", "\r"):
        return True
    return unicodedata.category(c) == "Zs"


def _is_control(c):
    if c in ("\t", "\n", "\r"):
        return False
    return unicodedata.category(c).startswith("C")


def _is_punctuation(c):
    cp = ord(c)
    if (33 <= cp <= 47) or (58 <= cp <= 64) or (91 <= cp <= 96) or (123 <= cp <= 126):
        return True
    return unicodedata.category(c).startswith("P")


def _is_chinese_char(cp):
    return ((0x4E00 <= cp <= 0x9FFF) or (0x3400 <= cp <= 0x4DBF) or (0x20000 <= cp <= 0x2A6DF)
            or (0x2A700 <= cp <= 0x2B73F) or (0x2B740 <= cp <= 0x2B81F) or (0x2B820 <= cp <= 0x2CEAF)
            or (0xF900 <= cp <= 0xFAFF) or (0x2F800 <= cp <= 0x2FA1F))


def basic_tokenize(text):
    out = []
    for c in text:
        cp = ord(c)
        if cp == 0 or cp == 0xFFFD or _is_control(c):
            continue
        out.append(" " if _is_whitespace(c) else c)
    text = "".join(out)
    out = []
    for c in text:
        if _is_chinese_char(ord(c)):
            out += [" ", c, " "]
        else:
            out.append(c)
    text = "".join(out)
    words = []
    for tok in text.strip().split():
        tok = tok.lower()
        tok = "".join(c for c in unicodedata.normalize("NFD", tok) if unicodedata.category(c) != "Mn")
        cur = []
        for c in tok:
            if _is_punctuation(c):
                if cur:
                    words.append("".join(cur))
                    cur = []
                words.append(c)
            else:
                cur.append(c)
        if cur:
            words.append("".join(cur))
    return " ".join(words).strip().split()


def wordpiece(word, vocab):
    if len(word) > 100:
        return ["[UNK]"]
    start, subs = 0, []
    while start < len(word):
        end, cur = len(word), None
        while start < end:
            s = word[start:end]
            if start > 0:
                s = "##" + s
            if s in vocab:
                cur = s
                break
            end -= 1
        if cur is None:
            return ["[UNK]"]
        subs.append(cur)
        start = end
    return subs


def encode(text, vocab):
    toks = [p for w in basic_tokenize(text) for p in wordpiece(w, vocab)]
    toks = ["[CLS]"] + toks[: L - 2] + ["[SEP]"]
    ids = [vocab[t] for t in toks] + [vocab["[PAD]"]] * (L - len(toks))
    mask = [1] * len(toks) + [0] * (L - len(toks))
    kinds = [1 if t.startswith("##") else 0 for t in toks[:-1]] + [2] + [3] * (L - len(toks))
    return {"tokens": toks, "ids": ids, "mask": mask, "kinds": kinds}


VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + list("abcdefghijklmnopqrstuvwxyz0123456789") + [
    "_", ".", ",", "-", "(", ")", "/", ":", "!", "?", "'", "\"", "%", "+",
    "there", "is", "no", "the", "of", "a", "an", "and", "or", "with", "in", "lung", "lungs", "left",
    "right", "heart", "size", "normal", "pleural", "effusion", "pneumothorax", "atelectasis",
    "cardio", "##mega", "##ly", "##s", "##ing", "##ed", "##al", "##ia", "##ion", "consolid", "##ation",
    "opac", "##ity", "##ities", "thick", "##en", "nod", "##ule", "mass", "edema", "fracture", "hernia",
    "emphys", "##ema", "fibro", "##sis", "pneum", "##onia", "infiltr", "##ate", "cal", "##ci", "##fied",
    "gran", "##uloma", "lesion", "clear", "mild", "small", "large", "bilateral", "cafe", "##s", "x", "ray",
    "##1", "##2", "##3", "##0", "mm", "cm", "seen", "are", "be", "to", "on", "at", "new", "old",
]
CASES = [
    "There is atelectasis",
    "Cardiomegaly",
    "there is no pleural effusion",
    "There is Pleural_Thickening",
    "1. Heart size normal. 2. No pneumothorax.\n3. Mild left basilar opacity",
    "FINDINGS: The lungs are clear.\nIMPRESSION: No acute process.",
    "Heart \ufffd\ufffdsize normal. Lung\ufffdclear.",
    "Café opacity in the right lung. Naïve edema",
    "İstanbul consolidation ışık",
    "small 5 mm nodule. 12 cm mass. 3.5 cm lesion",
    "   \n  ",
    "",
    "x-ray shows (mild) edema, left > right; see 10:30",
    "calcified granuloma",
    "No. Yes. Pneumothorax.",
    "Σίσυφος ΣΟΦΟΣ lung opacity",
    "lungs clear 日本語 text",
    "word_with_underscore and__double",
    "a" * 120 + " lung",
    " ".join(["bilateral pleural effusion with atelectasis"] * 30),
    "fluid\u00a0in\u2003the\tlung\r\nbase",
    "consolidation consolidations thickening thickened cardiomegaly",
    "zzz qqq unknownword lung",
]


def main():
    os.makedirs(OUT, exist_ok=True)
    seen, vocab_list = set(), []
    for t in VOCAB:
        if t not in seen:
            seen.add(t)
            vocab_list.append(t)
    with open(os.path.join(OUT, "vocab.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(vocab_list) + "\n")
    vocab = {t: i for i, t in enumerate(vocab_list)}
    cases = []
    for text in CASES:
        cleaned = clean_text(text)
        cases.append({
            "text": text,
            "cleaned": cleaned,
            "sentences": clean_sentences(text),
            "encodedCleaned": encode(cleaned, vocab),
            "encodedRaw": encode(text, vocab),
        })
    with open(os.path.join(OUT, "cases.json"), "w", encoding="utf-8") as f:
        f.write('{"maxLength": %d, "cases": [\n' % L)
        f.write(",\n".join(json.dumps(c, ensure_ascii=False, separators=(",", ":")) for c in cases))
        f.write("\n]}\n")


if __name__ == "__main__":
    main()
