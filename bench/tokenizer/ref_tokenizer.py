"""Times the Python reference CLIP tokenizer on the ImageNet zero-shot prompts.

    taskset -c 0 python3 bench/tokenizer/ref_tokenizer.py \
        ../shared/data/clip/bpe_simple_vocab_16e6.txt.gz \
        ../shared/data/clip/imagenet_zeroshot.json [passes]

It tokenizes the 80 templates x 1000 class names the way clip.tokenize does
(start token, BPE ids, end token, zero padding to 77, truncation on) with
the reference of data/tokenizer/testdata/clipref.py, which follows
openai/CLIP's simple_tokenizer (ftfy reduced to NFC). One warm-up pass fills
the BPE cache; the timed passes then run with it warm, in one thread. Needs
the `regex` module. Prints texts/s.
"""

import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "..", "data", "tokenizer", "testdata"))
import clipref  # noqa: E402


def main():
    vocab, prompts = sys.argv[1], sys.argv[2]
    passes = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    ref = clipref.Reference.from_openai_file(vocab)
    with open(prompts, encoding="utf-8") as f:
        z = json.load(f)
    texts = [t.format(c) for t in z["templates"] for c in z["classes"]]
    for text in texts:  # warm the BPE cache
        ref.tokenize(text, truncate=True)
    best = None
    for _ in range(passes):
        start = time.perf_counter()
        rows = [ref.tokenize(text, truncate=True)[0] for text in texts]
        elapsed = time.perf_counter() - start
        best = elapsed if best is None else min(best, elapsed)
    assert len(rows) == len(texts)
    print("python reference: %d texts, best of %d passes %.3f s, %.0f texts/s"
          % (len(texts), passes, best, len(texts) / best))


if __name__ == "__main__":
    main()
