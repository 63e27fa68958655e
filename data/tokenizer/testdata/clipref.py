"""Reference CLIP tokenizer used to make the Go package's fixtures.

It follows the logic of openai/CLIP's simple_tokenizer.py (byte-level BPE with
a "</w>" end-of-word marker, the same cleaning and the same pre-tokenizing
pattern) with one change that the shared golden cases also make: ftfy's
fix_text is reduced to Unicode NFC normalisation.

The pattern needs the third-party `regex` module (Python's `re` has no \\p{L}).
Only the standard library and `regex` are used.
"""

import gzip
import html
import re
import unicodedata

import regex

# The pre-tokenizing pattern of CLIP, compiled case-insensitively like CLIP.
PATTERN = regex.compile(
    r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""",
    regex.IGNORECASE,
)

SOT = "<|startoftext|>"
EOT = "<|endoftext|>"

# CLIP's openai merges file holds at most this many merges after its header.
MAX_MERGES = 49152 - 256 - 2


def byte_alphabet():
    """Returns the 256 printable characters standing for the bytes 0..255, in
    vocabulary order, as a list of (byte, character) pairs.

    Printable Latin-1 bytes stand for themselves; the others are moved to
    code points 256 and up, in byte order."""
    kept = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
            + list(range(ord("®"), ord("ÿ") + 1)))
    pairs = [(b, chr(b)) for b in kept]
    extra = 0
    kept_set = set(kept)
    for b in range(256):
        if b not in kept_set:
            pairs.append((b, chr(256 + extra)))
            extra += 1
    return pairs


def clean(text):
    """NFC, HTML-unescape twice, collapse whitespace, strip and lowercase."""
    text = unicodedata.normalize("NFC", text)
    text = html.unescape(html.unescape(text))
    text = text.strip()
    text = re.sub(r"\s+", " ", text).strip()
    return text.lower()


class Reference:
    """A CLIP tokenizer built from an ordered list of merges (pairs of
    strings over the byte alphabet), or from an explicit HF vocabulary."""

    def __init__(self, merges, vocab=None):
        alphabet = byte_alphabet()
        self.byte_to_char = dict(alphabet)
        self.char_to_byte = {c: b for b, c in alphabet}
        if vocab is None:
            symbols = [c for _, c in alphabet]
            symbols = symbols + [c + "</w>" for c in symbols]
            symbols += ["".join(m) for m in merges]
            symbols += [SOT, EOT]
            vocab = dict(zip(symbols, range(len(symbols))))
        self.encoder = vocab
        self.decoder = {i: s for s, i in vocab.items()}
        self.ranks = dict(zip(merges, range(len(merges))))
        self.cache = {SOT: [SOT], EOT: [EOT]}

    @classmethod
    def from_openai_file(cls, path):
        """Loads CLIP's gzipped merges file: a header line, then merges."""
        with gzip.open(path) as f:
            lines = f.read().decode("utf-8").split("\n")
        lines = lines[1:MAX_MERGES + 1]
        return cls([tuple(line.split()) for line in lines])

    def bpe(self, token):
        """Splits one byte-encoded word into vocabulary symbols."""
        if token in self.cache:
            return self.cache[token]
        word = list(token[:-1]) + [token[-1] + "</w>"]
        while len(word) > 1:
            best = None
            for pair in zip(word, word[1:]):
                r = self.ranks.get(pair)
                if r is not None and (best is None or r < best[0]):
                    best = (r, pair)
            if best is None:
                break
            left, right = best[1]
            merged = []
            i = 0
            while i < len(word):
                if i + 1 < len(word) and word[i] == left and word[i + 1] == right:
                    merged.append(left + right)
                    i += 2
                else:
                    merged.append(word[i])
                    i += 1
            word = merged
        self.cache[token] = word
        return word

    def encode(self, text):
        """Returns the BPE ids of text, without start and end tokens."""
        ids = []
        for piece in PATTERN.findall(clean(text)):
            chars = "".join(self.byte_to_char[b] for b in piece.encode("utf-8"))
            ids.extend(self.encoder[s] for s in self.bpe(chars))
        return ids

    def decode(self, ids):
        """Maps ids back to text; "</w>" becomes a space."""
        chars = "".join(self.decoder[i] for i in ids)
        data = bytearray(self.char_to_byte[c] for c in chars)
        return data.decode("utf-8", errors="replace").replace("</w>", " ")

    def tokenize(self, text, context_length=77, truncate=False, pad_eot=False):
        """Returns (input_ids, truncated) as CLIP's clip.tokenize builds them,
        or raises ValueError when the text is too long and truncate is off."""
        sot = self.encoder[SOT]
        eot = self.encoder[EOT]
        ids = [sot] + self.encode(text) + [eot]
        cut = False
        if len(ids) > context_length:
            if not truncate:
                raise ValueError("too long")
            ids = ids[:context_length]
            ids[-1] = eot
            cut = True
        pad = eot if pad_eot else 0
        return ids + [pad] * (context_length - len(ids)), cut
