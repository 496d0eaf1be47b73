"""The single description of how a checkpoint encodes text.

Every default of the encoding recipe (lengths, marker ids, which dims exist) is decided here, from the
checkpoint's own files, so that the encoder, the server and the index never guess.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Layout = Literal["jina", "stanford", "pylate", "polycolbert", "packaged"]
BackboneKind = Literal["bert", "xlm-roberta", "jina-xlm-roberta"]

# The Matryoshka sizes, largest first: what heads are trained to, what a model offers below its largest
# head (by truncation), what training and evaluation cover by default; the first is the default size.
MATRYOSHKA_DIMS: tuple[int, ...] = (128, 96, 64)


@dataclass
class ModelSpec:
    """What a loaded checkpoint is and how to feed it.

    ``head_dims`` lists the dimensions that have a trained linear head of their own;
    ``dims`` lists every dimension the model will produce (the others come from truncating the
    largest head and re-normalising, which ``notes`` then says).
    """

    name: str
    layout: Layout
    backbone: BackboneKind
    hidden_size: int
    head_dims: tuple[int, ...]
    query_maxlen: int = 32
    doc_maxlen: int = 8192
    query_marker_id: int | None = None
    doc_marker_id: int | None = None
    query_prefix: str = ""
    doc_prefix: str = ""
    cls_id: int = 0
    sep_id: int = 2
    pad_id: int = 1
    mask_id: int = 250001
    attend_to_mask_tokens: bool = True
    # How a short query becomes query_maxlen vectors: "mask" pads the input with <mask> tokens and encodes
    # them (Stanford / jina query augmentation, for models trained that way); "repeat" encodes only the
    # real tokens and cycles their vectors; "zero" encodes only the real tokens and fills the remaining
    # rows with zero vectors, which add nothing to MaxSim, so every real token weighs the same (cycling
    # weighs the first 32 mod n tokens once more than the rest; docs/quality.md measures the difference);
    # "none" encodes only the real tokens and returns only their rows (PyLate with do_query_expansion off).
    query_padding: Literal["mask", "repeat", "zero", "none"] = "mask"
    mask_punctuation: bool = True
    # Strip surrounding whitespace (prefix included) before tokenising, as sentence-transformers does.
    strip_text: bool = False
    max_positions: int | None = None  # None: no absolute position table (rotary)
    similarity: Literal["cosine", "l2"] = "cosine"
    license: str = "unknown"
    source: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def dims(self) -> tuple[int, ...]:
        top = max(self.head_dims)
        extra = tuple(d for d in MATRYOSHKA_DIMS if d < top and d not in self.head_dims)
        return tuple(sorted(set(self.head_dims) | set(extra), reverse=True))

    @property
    def default_dim(self) -> int:
        return MATRYOSHKA_DIMS[0] if MATRYOSHKA_DIMS[0] in self.dims else max(self.dims)
