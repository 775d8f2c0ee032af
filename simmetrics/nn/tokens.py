"""Token features of transformers for :func:`simmetrics.compare_models`.

- **what a hooked module returned** (:func:`hidden_tensor`): a tensor as it is; a
  ``ModelOutput``-like object (a mapping or an object with attributes) through its
  ``last_hidden_state``, else its ``hidden_states`` (the last entry of a tuple of them); a
  tuple or list through its first item; each rule applied again to what it gives;
- **which tokens are rows** (:func:`token_rows`): the attention mask applied, so padding never
  becomes a row, and one of the pooling options ``"tokens"`` (every token a row), ``"mean"``,
  ``"cls"``, ``"last"`` (one row per sequence) or ``"words"`` (one row per word);
- **two tokenizers** (:func:`word_batch`, :func:`token_words`): sub-word tokens assigned to the
  words of the text by their character offsets (the ``offset_mapping`` of a fast tokenizer),
  so that two models with different tokenizers give one row per word each, the mean of the
  word's sub-word tokens, and are compared word by word.
"""

import re
from collections.abc import Mapping

import numpy as np

__all__ = ["HIDDEN_STATES", "TOKENS", "hidden_tensor", "hidden_states_of", "attention_mask_of",
           "token_rows", "token_words", "word_batch", "WORD_IDS"]

#: The layer selector that means "every entry of the model output's ``hidden_states``".
HIDDEN_STATES = "hidden_states"
#: The row options of :func:`token_rows`.
TOKENS = ("tokens", "mean", "cls", "last", "words")
#: The batch key :func:`word_batch` writes the word of every token under.
WORD_IDS = "word_ids"

_DEPTH = 8  # how deep nested outputs are unpacked before giving up


def _field(output, name):
    if isinstance(output, Mapping):
        return output.get(name)
    return getattr(output, name, None)


def hidden_tensor(output, where="the module"):
    """The hidden-states tensor in what a module returned.

    The rule, applied again to what each step gives (up to 8 levels deep):

    1. a ``torch.Tensor`` is the answer;
    2. a mapping (``dict``, HuggingFace's ``ModelOutput``) or an object (a dataclass) with a
       ``last_hidden_state`` field gives that field; without one, its ``hidden_states`` field
       (a tuple of them, one per layer: the last entry);
    3. a non-empty tuple or list gives its first item (``(hidden, attention)`` pairs of
       attention blocks, ``(output, state)`` of recurrent layers).

    Parameters
    ----------
    output : object
        What the module's ``forward`` returned.
    where : str
        Names the module in the error message.

    Returns
    -------
    torch.Tensor

    Raises
    ------
    TypeError
        When the rule reaches something else (``None``, a mapping without either field, ...).

    Examples
    --------
    >>> import torch
    >>> h = torch.zeros(2, 3, 4)
    >>> hidden_tensor((h, torch.ones(2, 3, 3))) is h
    True
    >>> hidden_tensor({"hidden_states": (h + 1, h)}) is h
    True
    """
    import torch

    value = output
    for _ in range(_DEPTH):
        if isinstance(value, torch.Tensor):
            return value
        found = None
        if isinstance(value, Mapping) or hasattr(value, "last_hidden_state") \
                or hasattr(value, "hidden_states"):
            found = _field(value, "last_hidden_state")
            if found is None:
                found = _field(value, "hidden_states")
                if isinstance(found, (tuple, list)):
                    found = found[-1] if found else None
        elif isinstance(value, (tuple, list)) and value:
            found = value[0]
        if found is None:
            break
        value = found
    fields = f" (keys {list(value)})" if isinstance(value, Mapping) else ""
    raise TypeError(
        f"{where} returned a {type(output).__name__} in which no tensor was found: "
        f"the search reached a {type(value).__name__}{fields}. Hidden states are read from a "
        "tensor, the last_hidden_state (else hidden_states) of a ModelOutput-like mapping or "
        "object, or the first item of a tuple; hook a module that returns one of these")


def hidden_states_of(output, label=""):
    """The ``hidden_states`` tuple of a model's output (called with
    ``output_hidden_states=True``): embeddings first, then every layer.

    Examples
    --------
    >>> import torch
    >>> len(hidden_states_of({"hidden_states": (torch.zeros(1, 2, 3),) * 3}))
    3
    """
    import torch

    states = _field(output, HIDDEN_STATES)
    if not (isinstance(states, (tuple, list)) and states
            and all(isinstance(s, torch.Tensor) for s in states)):
        raise TypeError(
            f"{label}layers {HIDDEN_STATES!r}: the model was called with "
            "output_hidden_states=True, but its output (a "
            f"{type(output).__name__}) has no tuple of tensors under 'hidden_states'; this "
            "source needs a HuggingFace model (or one whose output has that field); select "
            "modules by name instead")
    return tuple(states)


def attention_mask_of(inputs):
    """The ``attention_mask`` of a dict batch (None for any other batch, or without one)."""
    return inputs.get("attention_mask") if isinstance(inputs, Mapping) else None


def _mask(mask, shape, label, device):
    import torch

    if mask is None:
        return torch.ones(shape, dtype=torch.bool, device=device)
    mask = mask.detach().to(device) != 0
    if tuple(mask.shape) != tuple(shape):
        raise ValueError(f"{label}the attention_mask has shape {tuple(mask.shape)}, the output "
                         f"(batch, tokens, d) has {tuple(shape)} for its first two axes; "
                         "hook a module whose output has one position per input token")
    return mask


def token_rows(t, tokens="tokens", mask=None, word_ids=None, label=""):
    """One layer's (batch, seq, d) output for one batch as a float64 (rows, d) tensor.

    Padding never becomes a row: ``mask`` (the batch's ``attention_mask``, 1 for a token, 0
    for padding; None: every token counts) selects the tokens first.

    - ``"tokens"``: every token a row, sequence by sequence;
    - ``"mean"``: per sequence, the mean of its tokens, sum_t m_t h_t / sum_t m_t;
    - ``"cls"``: per sequence, its first token (BERT's ``[CLS]`` under right padding);
    - ``"last"``: per sequence, its last token (the one a causal model has read the whole
      sequence at);
    - ``"words"``: per sequence, one row per word: the mean of the tokens whose
      ``word_ids`` entry is that word (0, 1, ... in order; -1 for none, as
      :func:`word_batch` writes them).

    A (batch, d) output (a pooler) is one row per sequence already and is returned as it is.

    Examples
    --------
    >>> import torch
    >>> t = torch.arange(12.0).reshape(2, 3, 2)   # 2 sequences, 3 positions, 2 features
    >>> m = torch.tensor([[1, 1, 0], [1, 1, 1]])  # the first has one padding position
    >>> token_rows(t, "tokens", m).shape[0]
    5
    >>> token_rows(t, "mean", m).tolist()
    [[1.0, 2.0], [8.0, 9.0]]
    >>> token_rows(t, "last", m).tolist()
    [[2.0, 3.0], [10.0, 11.0]]
    """
    import torch

    t = t.detach().to(torch.float64, copy=True)  # on its device; a copy, as features_of
    if t.ndim == 2:
        return t
    if t.ndim != 3:
        raise ValueError(f"{label}tokens={tokens!r} needs (batch, tokens, d) outputs, got "
                         f"shape {tuple(t.shape)}")
    m = _mask(mask, t.shape[:2], label, t.device)
    counts = m.sum(1)
    if tokens == "tokens":
        return t[m]
    if bool((counts == 0).any()):
        raise ValueError(f"{label}sequence {int(torch.nonzero(counts == 0)[0])} of the batch "
                         "has no token (its attention_mask is all 0)")
    rows = torch.arange(t.shape[0], device=t.device)
    if tokens == "mean":
        return torch.where(m[..., None], t, 0.0).sum(1) / counts[:, None].to(t.dtype)
    if tokens == "cls":
        return t[rows, m.to(torch.int8).argmax(1)]
    if tokens == "last":
        return t[rows, t.shape[1] - 1 - m.flip(1).to(torch.int8).argmax(1)]
    if word_ids is None:
        raise ValueError(f"{label}tokens='words' needs the batch's {WORD_IDS!r} (the word of "
                         "every token); build the batches with simmetrics.nn.tokens.word_batch")
    return _word_means(t, m, word_ids, label)


def _word_means(t, m, word_ids, label):
    """Per sequence, the mean of each word's tokens (words 0 .. max id, in order)."""
    import torch

    ids = word_ids.detach().to(t.device, torch.int64)
    if tuple(ids.shape) != tuple(m.shape):
        raise ValueError(f"{label}{WORD_IDS!r} has shape {tuple(ids.shape)}, the output "
                         f"(batch, tokens) {tuple(m.shape)}")
    ids = torch.where(m, ids, -1)
    n_words = ids.max(1).values + 1  # per sequence
    start = torch.cumsum(n_words, 0) - n_words
    keep = ids >= 0
    target = (start[:, None] + ids)[keep]
    total = int(n_words.sum())
    sums = torch.zeros(total, t.shape[2], dtype=t.dtype, device=t.device).index_add_(
        0, target, t[keep])
    counts = torch.zeros(total, dtype=t.dtype, device=t.device).index_add_(
        0, target, torch.ones_like(target, dtype=t.dtype))
    if bool((counts == 0).any()):
        raise ValueError(f"{label}a word has no token in {WORD_IDS!r} (the ids of a sequence "
                         "must be 0, 1, ... without gaps)")
    return sums / counts[:, None]


def token_words(offsets, text, pattern=r"\S+"):
    """The word of every token of one sequence, from the tokens' character offsets.

    The words are the matches of ``pattern`` in ``text`` (default: maximal runs of
    non-whitespace characters, so punctuation stays with its word, whatever the tokenizer
    splits off). A token with characters ``text[start:end]`` belongs to the word that
    contains its first non-whitespace character; a token of whitespace only (byte-level BPE's
    lone ``"Ġ"``, SentencePiece's lone ``"▁"``) belongs to the next word that starts at or
    after its end; a token with an empty span (``[CLS]``, ``[SEP]``, padding: offsets
    ``(0, 0)``) belongs to none (-1). Sub-word tokens of one word therefore share its id
    whichever tokenizer made them, which is what lets two tokenizers be compared word by word.

    Parameters
    ----------
    offsets : sequence of (int, int)
        The ``offset_mapping`` of one sequence (a fast tokenizer's
        ``return_offsets_mapping=True``).
    text : str
        The text that was tokenized.
    pattern : str, default r"\\S+"
        A regular expression whose matches are the words.

    Returns
    -------
    ids : numpy.ndarray of int64, shape (n_tokens,)
        The word index of every token, -1 for none.
    n_words : int
        The number of words of ``text``.

    Examples
    --------
    >>> ids, n = token_words([(0, 0), (0, 3), (3, 5), (5, 7), (0, 0)], "the cat")
    >>> ids.tolist(), n                 # [CLS] "the" " c" "at" [SEP]
    ([-1, 0, 1, 1, -1], 2)
    """
    spans = [mt.span() for mt in re.finditer(pattern, text)]
    owner = np.full(len(text) + 1, -1, dtype=np.int64)
    for w, (a, b) in enumerate(spans):
        owner[a:b] = w
    starts = np.array([a for a, _ in spans], dtype=np.int64)
    ids = np.full(len(offsets), -1, dtype=np.int64)
    for k, (a, b) in enumerate(offsets):
        a, b = int(a), int(b)
        if b <= a:
            continue
        inside = owner[a:min(b, len(text))]
        hit = inside[inside >= 0]
        if hit.size:
            ids[k] = hit[0]
        elif text[a:b].isspace():
            after = np.searchsorted(starts, b)
            if after < len(spans):
                ids[k] = after
    return ids, len(spans)


def word_batch(tokenizer, texts, pattern=r"\S+", return_tensors="pt", **kwargs):
    """A batch of model inputs whose ``"word_ids"`` say which word every token belongs to.

    ``tokenizer(texts, return_offsets_mapping=True, **kwargs)`` (padding on by default) with
    the ``offset_mapping`` replaced by ``word_ids`` (batch, tokens): for every token the index
    of its word in its text (:func:`token_words`: words are the matches of ``pattern``, by
    default the whitespace-separated words), -1 for special and padding tokens. With
    ``compare_models(..., tokens="words")`` every word becomes one row, the mean of its
    sub-word tokens, so two models whose tokenizers split the words differently give the same
    rows and are compared word by word (pass both batches through ``inputs=``).

    Parameters
    ----------
    tokenizer : a HuggingFace fast tokenizer (``PreTrainedTokenizerFast``)
        Slow tokenizers have no offset mapping.
    texts : list of str
    pattern : str, default r"\\S+"
    return_tensors : str, default "pt"
    **kwargs
        Further arguments of the tokenizer (``max_length``, ``truncation``, ``padding``).

    Returns
    -------
    dict
        The tokenizer's outputs (``input_ids``, ``attention_mask``, ...) and ``word_ids``.

    Raises
    ------
    ValueError
        A word of a text that no token covers (cut off by ``truncation``/``max_length``: the
        two models would then see different words), a tokenizer without offsets.
    TypeError
        ``texts`` not a list of str.

    Examples
    --------
    >>> from tokenizers import Tokenizer, models, pre_tokenizers
    >>> from transformers import PreTrainedTokenizerFast
    >>> vocab = {"[PAD]": 0, "[UNK]": 1, "the": 2, "c": 3, "##at": 4}
    >>> core = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    >>> core.pre_tokenizer = pre_tokenizers.Whitespace()
    >>> tok = PreTrainedTokenizerFast(tokenizer_object=core, pad_token="[PAD]")
    >>> word_batch(tok, ["the cat", "cat"])["word_ids"].tolist()
    [[0, 1, 1], [0, 0, -1]]
    """
    if isinstance(texts, str) or not isinstance(texts, (list, tuple)) \
            or not all(isinstance(s, str) for s in texts):
        raise TypeError("texts must be a list of str (one text per sequence), got "
                        f"{type(texts).__name__}")
    kwargs.setdefault("padding", True)
    try:
        enc = tokenizer(list(texts), return_offsets_mapping=True, return_tensors=return_tensors,
                        **kwargs)
    except NotImplementedError as exc:
        raise ValueError("tokenizer: word_batch needs the character offsets of a fast "
                         f"tokenizer (PreTrainedTokenizerFast): {exc}") from exc
    batch = dict(enc)
    offsets = batch.pop("offset_mapping")
    rows = []
    for i, text in enumerate(texts):
        ids, n_words = token_words(np.asarray(offsets[i]).tolist(), text, pattern)
        missing = sorted(set(range(n_words)) - set(ids[ids >= 0].tolist()))
        if missing:
            word = re.findall(pattern, text)[missing[0]]
            raise ValueError(
                f"texts[{i}]: the word {word!r} (word {missing[0]}) has no token, cut off by "
                "truncation or max_length; the models would see different words, so give a "
                "larger max_length or shorter texts")
        rows.append(ids)
    ids = np.stack(rows) if rows else np.zeros((0, 0), dtype=np.int64)
    if return_tensors == "pt":
        import torch

        ids = torch.from_numpy(ids)
    batch[WORD_IDS] = ids
    return batch
