"""The ColBERT encoding recipe: which ids go into the model and which output rows come back.

It follows Stanford ColBERT's ``QueryTokenizer`` / ``DocTokenizer`` / ``ColBERT.doc`` row for row, because
jina-colbert-v2 documents Stanford ColBERT as its reference path:

* query: ``<s> [QueryMarker] tokens </s>`` cut to ``query_maxlen``, then padded with ``<mask>`` (attended
  to when the checkpoint says so), so a query is always exactly ``query_maxlen`` vectors (models whose
  backbone never learnt ``<mask>`` expansion may instead repeat their real token vectors, pad with zero
  vectors or return only the real rows: ``ModelSpec.query_padding``);
* document: ``<s> [DocumentMarker] tokens </s>`` cut to ``doc_maxlen``; rows whose id is in the punctuation
  skiplist are dropped. The skiplist is built the way Stanford builds it (first id of each
  ``string.punctuation`` symbol), not written by hand, because for SentencePiece vocabularies that
  first id is often the bare ``▁`` piece.

A backbone with fewer positions than the document needs sees it in overlapping windows; each token's
vector is taken from the window in which it sits most centrally, so no text the user asked to keep is cut.

A *blank* text (empty, whitespace, or only punctuation and symbols: no letter, digit or mark, e.g. a lone
``"``) has nothing a retriever could match. It still encodes, to a defined result: its special rows only
(``<s>``, the marker and any prefix tokens, ``</s>``; queries padded as usual), flagged ``blank`` so that
callers can rank it last (:mod:`polycolbert.rerank`) or report it by id (``polycolbert eval``). One such
text in a corpus never stops a job.
"""

from __future__ import annotations

import string
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from tokenizers import Tokenizer

from polycolbert.models.spec import ModelSpec

# A token is at least one character except in fused <unk> runs, so this many characters per allowed token
# is always enough text; cutting before tokenising keeps a 1M-character input from costing 1M-token memory.
MAX_CHARS_PER_TOKEN = 32
WINDOW_OVERLAP_FRACTION = 0.25


@dataclass
class Window:
    """One model input: ``ids`` and, for each of its rows we keep, where that row goes in the output."""

    ids: list[int]
    attention: list[int]
    source_rows: list[int]  # row indices in this window
    target_rows: list[int]  # row indices in the text's output


@dataclass
class TokenizedText:
    """A text prepared for the model: its windows and the char spans of the rows it returns."""

    windows: list[Window]
    n_rows: int
    spans: list[tuple[int, int]]  # (start, end) char offsets per output row; (0, 0) for special rows
    n_tokens: int  # tokens billed: the full sequence, specials included
    truncated: bool = False
    token_ids: list[int] = field(default_factory=list)  # id of each output row
    blank: bool = False  # nothing to match: encoded as the special rows only (module docstring)


def stanford_skiplist(tokenizer: Tokenizer) -> frozenset[int]:
    """Ids Stanford ColBERT masks out of documents: the first id of each punctuation symbol."""
    ids = set()
    for symbol in string.punctuation:
        encoded = tokenizer.encode(symbol, add_special_tokens=False).ids
        if encoded:
            ids.add(encoded[0])
    return frozenset(ids)


def is_blank(text: str) -> bool:
    """True when no character is a letter, digit or combining mark: nothing a retriever could match.

    ``any`` stops at the first letter, so ordinary text (of any length) costs almost nothing here.

    >>> [is_blank(t) for t in ["", "  ", '"', "— … ¿?", "C++", "٣"]]
    [True, True, True, True, False, False]
    """
    return not any(unicodedata.category(c)[0] in "LNM" for c in text)


def blank_positions(texts: Sequence[str]) -> list[int]:
    """Positions of the blank texts: what a job reports (by id) before it encodes them."""
    return [i for i, text in enumerate(texts) if is_blank(text)]


def _check_texts(texts: Sequence[str]) -> list[bool]:
    """Refuse what is not a list of strings; say which texts are blank."""
    if isinstance(texts, str):
        raise ValueError("expected a list of texts, got a single string; wrap it in a list")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise ValueError(f"input[{i}] must be a string, got {type(text).__name__}")
    return [is_blank(text) for text in texts]


def _mark_blank(result: list[TokenizedText], blank: list[bool]) -> list[TokenizedText]:
    for tokenized, flag in zip(result, blank, strict=True):
        tokenized.blank = flag
    return result


class Recipe:
    """Turns texts into model inputs for one checkpoint, following its :class:`ModelSpec`."""

    def __init__(self, spec: ModelSpec, tokenizer: Tokenizer, skiplist: frozenset[int] | None = None):
        self.spec = spec
        self.tokenizer = tokenizer
        self.tokenizer.no_truncation()
        self.tokenizer.no_padding()
        if skiplist is None:
            skiplist = stanford_skiplist(tokenizer) if spec.mask_punctuation else frozenset()
        self.skiplist = skiplist

    # -- pieces ---------------------------------------------------------------------------------
    def _pieces(
        self, texts: Sequence[str], prefix: str, max_tokens: int, blank: Sequence[bool]
    ) -> list[tuple[list[int], list]]:
        """Token ids and char offsets of each text (prefix rows get offset (0, 0)), specials excluded;
        a blank text contributes no pieces of its own."""
        max_chars = max_tokens * MAX_CHARS_PER_TOKEN
        joined = [prefix + ("" if b else t[:max_chars]) for t, b in zip(texts, blank, strict=True)]
        starts = [len(prefix)] * len(joined)  # where each text starts in what is tokenised
        if self.spec.strip_text:
            starts = [len(prefix) - (len(j) - len(j.lstrip())) for j in joined]
            joined = [j.strip() for j in joined]
        encodings = self.tokenizer.encode_batch(joined, add_special_tokens=False)
        out = []
        for enc, begin in zip(encodings, starts, strict=True):
            offsets = [
                (0, 0) if end <= begin else (max(start - begin, 0), end - begin) for start, end in enc.offsets
            ]
            out.append((list(enc.ids), offsets))
        return out

    def _head(self, marker: int | None) -> list[int]:
        return [self.spec.cls_id] if marker is None else [self.spec.cls_id, marker]

    # -- queries ----------------------------------------------------------------------------------
    def tokenize_queries(self, texts: Sequence[str], query_maxlen: int | None = None) -> list[TokenizedText]:
        """``query_maxlen`` rows per query (long ones cut, short ones padded), or the real ones for "none"."""
        blank = _check_texts(texts)
        spec = self.spec
        maxlen = query_maxlen or spec.query_maxlen
        head = self._head(spec.query_marker_id)
        room = maxlen - len(head) - 1
        if room < 1:
            raise ValueError(f"query_maxlen {maxlen} leaves no room for text")
        result = []
        for ids, offsets in self._pieces(texts, spec.query_prefix, maxlen, blank):
            kept = ids[:room]
            seq = [*head, *kept, spec.sep_id]
            n_real = len(seq)
            real_spans = [(0, 0)] * len(head) + offsets[: len(kept)] + [(0, 0)]
            if spec.query_padding == "zero":
                # Only real tokens go in and come out; rows n..query_maxlen-1 stay zero vectors.
                window = Window(seq, [1] * n_real, list(range(n_real)), list(range(n_real)))
                spans = real_spans + [(0, 0)] * (maxlen - n_real)
                token_ids = seq + [spec.pad_id] * (maxlen - n_real)
                result.append(TokenizedText([window], maxlen, spans, maxlen, len(ids) > room, token_ids))
                continue
            if spec.query_padding == "none":
                # Only real tokens go in and come out: n rows, no padding (PyLate without query expansion).
                window = Window(seq, [1] * n_real, list(range(n_real)), list(range(n_real)))
                result.append(TokenizedText([window], n_real, real_spans, n_real, len(ids) > room, seq))
                continue
            if spec.query_padding == "repeat":
                # Only real tokens go in; output row i is real token i mod n (still query_maxlen rows).
                rows = [i % n_real for i in range(maxlen)]
                window = Window(seq, [1] * n_real, rows, list(range(maxlen)))
                spans = [real_spans[r] for r in rows]
                token_ids = [seq[r] for r in rows]
                result.append(TokenizedText([window], maxlen, spans, maxlen, len(ids) > room, token_ids))
                continue
            seq += [spec.mask_id] * (maxlen - n_real)
            attention = [1] * maxlen if spec.attend_to_mask_tokens else [1] * n_real + [0] * (maxlen - n_real)
            spans = real_spans + [(0, 0)] * (maxlen - n_real)
            window = Window(seq, attention, list(range(maxlen)), list(range(maxlen)))
            result.append(TokenizedText([window], maxlen, spans, maxlen, len(ids) > room, seq))
        return _mark_blank(result, blank)

    # -- documents --------------------------------------------------------------------------------
    def tokenize_documents(self, texts: Sequence[str], doc_maxlen: int | None = None) -> list[TokenizedText]:
        blank = _check_texts(texts)
        spec = self.spec
        maxlen = doc_maxlen or spec.doc_maxlen
        head = self._head(spec.doc_marker_id)
        room = maxlen - len(head) - 1
        if room < 1:
            raise ValueError(f"doc_maxlen {maxlen} leaves no room for text")
        window_room = room if spec.max_positions is None else min(room, spec.max_positions - len(head) - 1)
        result = []
        for ids, offsets in self._pieces(texts, spec.doc_prefix, maxlen, blank):
            kept_ids, kept_offsets = ids[:room], offsets[:room]
            result.append(self._document(head, kept_ids, kept_offsets, window_room, len(ids) > room))
        return _mark_blank(result, blank)

    def _document(
        self, head: list[int], ids: list[int], offsets: list, window_room: int, truncated: bool
    ) -> TokenizedText:
        spec = self.spec
        keep = [i for i, tok in enumerate(ids) if tok not in self.skiplist]
        ranges = plan_windows(len(ids), window_room)
        owners = window_owners(len(ids), ranges)
        windows = []
        out_row = len(head)
        row_of_piece = {}
        for piece in keep:
            row_of_piece[piece] = out_row
            out_row += 1
        n_rows = out_row + 1
        for w, (start, stop) in enumerate(ranges):
            seq = [*head, *ids[start:stop], spec.sep_id]
            src, dst = [], []
            if w == 0:
                src += list(range(len(head)))
                dst += list(range(len(head)))
            for piece in range(start, stop):
                if owners[piece] == w and piece in row_of_piece:
                    src.append(len(head) + piece - start)
                    dst.append(row_of_piece[piece])
            if w == len(ranges) - 1:
                src.append(len(seq) - 1)
                dst.append(n_rows - 1)
            windows.append(Window(seq, [1] * len(seq), src, dst))
        spans = [(0, 0)] * len(head) + [tuple(offsets[p]) for p in keep] + [(0, 0)]
        token_ids = [*head, *(ids[p] for p in keep), spec.sep_id]
        return TokenizedText(windows, n_rows, spans, len(head) + len(ids) + 1, truncated, token_ids)


def plan_windows(n_pieces: int, room: int) -> list[tuple[int, int]]:
    """Content ranges ``[start, stop)`` covering ``n_pieces`` with windows of ``room`` pieces that overlap.

    >>> plan_windows(10, 4)
    [(0, 4), (3, 7), (6, 10)]
    """
    if n_pieces <= room:
        return [(0, n_pieces)]
    overlap = max(1, int(room * WINDOW_OVERLAP_FRACTION))
    stride = room - overlap
    starts = [*range(0, n_pieces - room, stride), n_pieces - room]
    return [(s, s + room) for s in starts]


def window_owners(n_pieces: int, ranges: list[tuple[int, int]]) -> list[int]:
    """For each piece, the window that supplies its vector: the one where it has most context."""
    owners = [0] * n_pieces
    for w in range(len(ranges)):
        lo = 0 if w == 0 else (ranges[w][0] + ranges[w - 1][1]) // 2
        hi = n_pieces if w == len(ranges) - 1 else (ranges[w + 1][0] + ranges[w][1]) // 2
        for p in range(lo, hi):
            owners[p] = w
    return owners


def length_sorted_batches(lengths: Sequence[int], max_batch: int, max_tokens: int) -> Iterator[list[int]]:
    """Indices grouped into batches of similar length, so padding costs little.

    >>> list(length_sorted_batches([5, 1, 4, 2], max_batch=2, max_tokens=100))
    [[0, 2], [3, 1]]
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batch: list[int] = []
    for i in order:
        longest = lengths[batch[0]] if batch else lengths[i]
        if batch and (len(batch) >= max_batch or longest * (len(batch) + 1) > max_tokens):
            yield batch
            batch = []
        batch.append(i)
    if batch:
        yield batch
