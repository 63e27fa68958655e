"""Makes the tokenizer package's test fixtures with the Python reference.

Run from this folder with a Python that has the `regex` module:

    python3 gen_fixtures.py [path/to/bpe_simple_vocab_16e6.txt.gz path/to/imagenet_zeroshot.json]

It learns a small byte-level BPE (a few hundred merges) from the corpus
below, writes it in every format the Go loader reads (CLIP's gzipped merges
file, the same uncompressed, a Hugging Face folder with vocab.json,
merges.txt and tokenizer.json, and a folder with only a tokenizer.json in
the newer list-of-pairs layout), then writes expected.json: for hand-picked
and seeded random texts, the cleaned text, the pre-tokenized pieces, the BPE
ids, the input ids (zero and EOT padding), truncation, and decodings, all
computed by clipref.Reference. Given CLIP's vocabulary and the ImageNet
prompts it also writes imagenet_prompts.sha256, the hash of the input ids of
all 80 x 1000 prompts.
"""

import collections
import gzip
import hashlib
import json
import os
import random
import struct
import sys

import clipref

NUM_MERGES = 400
CONTEXT = 77

CORPUS = """
A photo of a cat sitting on the table. A photo of a dog running in the park.
The quick brown fox jumps over the lazy dog; it's a sunny day and they're happy.
We'll see the photograph of the bird, the plane and the train at the station.
Pictures of small things, large things, bright things and dark things were taken.
This is a rendering of an origami crane; that is a sketch of a tattoo.
She said she'd come, but he'd already gone. I'm sure you've seen it: it isn't new.
Numbers such as 12, 345 and 6789 appear in captions, as do dates like 2024-05-17.
Photographs, photos, photographers and photographing are all related words.
A close-up photo of the cool dog. A black and white photo of the old boat.
Café, naïve, résumé, façade and jalapeño are words with accents.
Ελληνικά κείμενα και λέξεις. Русский текст и слова. 日本語のテキストと写真。
Emoji like 😀 and 🚀 and 🐈 show up in captions!!! Do they??? Yes...
a bad photo of the object. a good photo of the object. a photo of many objects.
""" * 3


def learn_merges(corpus, count):
    """Learns `count` merges over the byte alphabet from the corpus words,
    most frequent pair first (ties: the smaller pair)."""
    ref = clipref.Reference([])
    words = collections.Counter()
    for piece in clipref.PATTERN.findall(clipref.clean(corpus)):
        chars = "".join(ref.byte_to_char[b] for b in piece.encode("utf-8"))
        words[tuple(chars[:-1]) + (chars[-1] + "</w>",)] += 1
    merges = []
    for _ in range(count):
        pairs = collections.Counter()
        for word, n in words.items():
            for pair in zip(word, word[1:]):
                pairs[pair] += n
        if not pairs:
            break
        best = min(pairs, key=lambda p: (-pairs[p], p))
        merges.append(best)
        merged = collections.Counter()
        for word, n in words.items():
            out, i = [], 0
            while i < len(word):
                if i + 1 < len(word) and (word[i], word[i + 1]) == best:
                    out.append(word[i] + word[i + 1])
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            merged[tuple(out)] += n
        words = merged
    return merges


def write_formats(merges, ref):
    text = "\n".join(["fixture merges for qatclip tests"] + [" ".join(m) for m in merges])
    with open("fixture_merges.txt", "w", encoding="utf-8") as f:
        f.write(text)  # no final newline: see clipref.Reference.from_openai_file
    with open("fixture_merges.txt.gz", "wb") as raw:
        with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as f:
            f.write(text.encode("utf-8"))
    os.makedirs("hf", exist_ok=True)
    with open("hf/vocab.json", "w", encoding="utf-8") as f:
        json.dump(ref.encoder, f, ensure_ascii=False)
    with open("hf/merges.txt", "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n" + "".join(" ".join(m) + "\n" for m in merges))
    special = [{"id": ref.encoder[s], "content": s, "special": True}
               for s in (clipref.SOT, clipref.EOT)]
    model = {"type": "BPE", "dropout": None, "unk_token": clipref.EOT,
             "continuing_subword_prefix": "", "end_of_word_suffix": "</w>",
             "fuse_unk": False, "vocab": ref.encoder,
             "merges": [" ".join(m) for m in merges]}
    with open("hf/tokenizer.json", "w", encoding="utf-8") as f:
        json.dump({"version": "1.0", "added_tokens": special, "model": model}, f, ensure_ascii=False)
    # The newer layout: merges as pairs, special tokens only in added_tokens.
    os.makedirs("hf_json_only", exist_ok=True)
    vocab = {s: i for s, i in ref.encoder.items() if s not in (clipref.SOT, clipref.EOT)}
    model = dict(model, vocab=vocab, merges=[list(m) for m in merges])
    with open("hf_json_only/tokenizer.json", "w", encoding="utf-8") as f:
        json.dump({"version": "1.0", "added_tokens": special, "model": model}, f, ensure_ascii=False)


HAND_PICKED = [
    "a photo of a cat.",
    "A PHOTO OF A DOG",
    "",
    "   ",
    "   leading and trailing   spaces   ",
    "tabs\tand\nnewlines\r\nand\x0bvertical\x0cfeeds",
    "separators\x1cfile\x1dgroup\x1erecord\x1funit",
    "nbsp\xa0nel\x85ideographic\u3000em\u2003space",
    "zero\u200bwidth space stays",
    "it's a dog's life, isn't it?",
    "we'll see; they've gone. I'm here, you'd know, they're THERE'S",
    "''s 's' 'x '' 'll'll 'rest 'ver",
    "long s: it'\u017f and <|\u017ftartoftext|> and \u017f",
    "ypogegrammeni a\u0345b !\u0345! \u0345x",
    "<|startoftext|>special<|endoftext|>",
    "<|STARTOFTEXT|> <|EndOfText|> <|start of text|> <<|endoftext|>> !<|endoftext|>",
    "numbers 123 4567 3.14159 1,000,000",
    "arabic-indic \u0663\u0664 roman \u216b half \u00bd super\u00b2",
    "hyphen-ated and under_scored words",
    "emoji \U0001F600\U0001F408\u200d\u2b1b \U0001F680!",
    "caf\u00e9 cafe\u0301 na\u00efve r\u00e9sum\u00e9",
    "\u212b ohm \u2126 kelvin \u212a",
    "hangul \u1100\u1161\u11a8 \ud55c\uad6d\uc5b4",
    "\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8 \u4e2d\u6587",
    "\u0395\u039b\u039b\u0397\u039d\u0399\u039a\u0391 \u039f\u0394\u039f\u03a3 \u03a3\u039f\u03a6\u039f\u03a3. \u03a3",
    "\u0130stanbul \u0131s\u0131k D\u0130YARBAKIR",
    "stra\u00dfe \ufb01sh \uff21\uff22\uff23 \u01c5",
    "&amp; &lt;b&gt; html entities &quot;quoted&quot;",
    "&amp;amp; &amp;lt;x&amp;gt; &ampx &amp &AMP; &notit; &notin; &copy2024",
    "&#39;s &#x27;t &#X41; &#65 &#0; &#1; &#x7f; &#128; &#x81; &#x9f; &#13;x",
    "&#xD800; &#99999999999; &#x110000; &#xFDD0; &#xFFFE; &#x1FFFF; &#; &#x; &#xg; & ; &",
    "&#x301; after e: e&#x301; &#769;",
    "url http://example.com/a?b=c&d=e",
    "C++ and C# and F#",
    "multiple!!! punctuation??? ... \u2014 \u201cquotes\u201d \u2018single\u2019",
    "a bad photo of the {}.",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    " ".join(["photo"] * 74),
    " ".join(["photo"] * 75),
    " ".join(["photo"] * 76),
    " ".join(["photos of things"] * 40),
    "\u05e2\u05d1\u05e8\u05d9\u05ea \u0627\u0644\u0639\u0631\u0628\u064a\u0629 \u0939\u093f\u0928\u094d\u0926\u0940",
]

# Characters and fragments for the seeded random texts.
POOL = (list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
        + list(" \t\n\r\x0b\x0c\x1c\x1f\x85\xa0\u2000\u3000  ")
        + list("'<>|&#;.,!?-_/\\()[]{}\"*+=@$%^~`:")
        + ["'s", "'RE", "'ll", "'d", "'m", "'ve", "'t", "<|startoftext|>", "<|endoftext|>",
           "<|ENDOFTEXT|>", "\u017f", "\u0345", "&amp;", "&lt", "&#39;", "&#x27;", "&#128;",
           "&#0;", "&#1;", "&#xD800;", "&amp;amp;", "&notit;", "&ampx", "&nbsp;", "&#x301;",
           "\u00e9", "e\u0301", "\u00c9", "\u00df", "\u0130", "\u0131", "\u03a3", "\u03a3\u039f",
           "\u03c3", "\u03c2", "\u0410\u0411", "\u0436", "\u65e5", "\u672c", "\u30c6", "\ud55c",
           "\u1100\u1161", "\U0001F600", "\U0001F408", "\u200d", "\u2b1b", "\u0663", "\u216b",
           "\u00bd", "\u00b2", "\uff21", "\ufb01", "\u01c5", "\u212b", "\u212a", "\u2126",
           "\u2019", "\u201c", "\u2014", "\u0301", "\u0308", "\u05d0", "\u0627", "\u0939\u093f",
           "photo", "photograph", "the", "dog", "cat", "thing", "they", "caf\u00e9"])


def random_texts(count, seed=20261127):
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        n = rng.randint(1, 40)
        out.append("".join(rng.choice(POOL) for _ in range(n)))
    return out


def case(ref, text):
    ids, cut = ref.tokenize(text, CONTEXT, truncate=True)
    ids_eot, _ = ref.tokenize(text, CONTEXT, truncate=True, pad_eot=True)
    try:
        ref.tokenize(text, CONTEXT)
        too_long = False
    except ValueError:
        too_long = True
    bpe = ref.encode(text)
    cleaned = clipref.clean(text)
    return {"text": text, "clean": cleaned, "pieces": clipref.PATTERN.findall(cleaned),
            "bpe": bpe, "input_ids": ids, "input_ids_eot": ids_eot, "truncated": cut,
            "too_long": too_long, "decoded": ref.decode(bpe)}


def decode_cases(ref, count, seed=7):
    """Random id sequences, many of them cutting multi-byte characters."""
    rng = random.Random(seed)
    size = len(ref.encoder)
    out = []
    for _ in range(count):
        ids = [rng.randrange(size) for _ in range(rng.randint(1, 12))]
        out.append({"ids": ids, "text": ref.decode(ids)})
    # Every byte alone: the non-ASCII ones are invalid UTF-8 on their own.
    out.append({"ids": list(range(512)), "text": ref.decode(list(range(512)))})
    return out


def imagenet_hash(vocab_path, prompts_path):
    ref = clipref.Reference.from_openai_file(vocab_path)
    with open(prompts_path, encoding="utf-8") as f:
        z = json.load(f)
    h = hashlib.sha256()
    for template in z["templates"]:
        for name in z["classes"]:
            ids, _ = ref.tokenize(template.format(name), CONTEXT)
            h.update(struct.pack("<%di" % len(ids), *ids))
    return h.hexdigest()


def main():
    os.chdir(os.path.dirname(os.path.abspath(__file__)))
    merges = learn_merges(CORPUS, NUM_MERGES)
    ref = clipref.Reference(merges)
    write_formats(merges, ref)
    # Parity of the formats: the fixture file loads like the learned list.
    loaded = clipref.Reference.from_openai_file("fixture_merges.txt.gz")
    assert loaded.encoder == ref.encoder and loaded.ranks == ref.ranks
    cases = [case(ref, t) for t in HAND_PICKED + random_texts(300)]
    expected = {"sot": ref.encoder[clipref.SOT], "eot": ref.encoder[clipref.EOT],
                "context_length": CONTEXT, "pad_id": 0, "num_merges": len(merges),
                "cases": cases, "decode": decode_cases(ref, 200)}
    with open("expected.json", "w", encoding="utf-8") as f:
        json.dump(expected, f, ensure_ascii=True, indent=None, separators=(",", ":"))
        f.write("\n")
    print("%d merges, %d cases (%d truncated)" % (len(merges), len(cases), sum(c["truncated"] for c in cases)))
    if len(sys.argv) == 3:
        digest = imagenet_hash(sys.argv[1], sys.argv[2])
        with open("imagenet_prompts.sha256", "w") as f:
            f.write(digest + "\n")
        print("imagenet prompts:", digest)


if __name__ == "__main__":
    main()
